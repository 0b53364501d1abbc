//! Schemes: which network printed a code, told by the globally unique ids
//! in its merchant account templates, and each scheme's profile of what its
//! codes carry. EMVCo's base specification makes the merchant's name, city
//! and category code mandatory; PromptPay, Thai QR and VietQR codes leave
//! them out. A field a scheme may leave out is a warning on the result when
//! it is missing; one the scheme requires is a refusal.

use std::fmt;

use crate::{Account, Initiation, MerchantQr, QrError, ScannedQr, tlv};

/// The schemes whose codes the parser knows by their templates. A code
/// naming none of them is read by EMVCo's base rules (`Emvco`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Indonesia's national QR standard (Bank Indonesia, ASPI).
    Qris,
    /// Vietnam's interbank transfer codes (NAPAS 247).
    VietQr,
    /// Thailand's PromptPay credit transfer to a proxy.
    PromptPay,
    /// Thailand's bill payment codes (Thai QR Payment).
    ThaiQr,
    /// Malaysia's national QR (PayNet).
    DuitNow,
    /// Singapore's PayNow, alone or inside an SGQR.
    PayNow,
    /// A Singapore SGQR label without PayNow.
    Sgqr,
    /// Cambodia's Bakong KHQR.
    Khqr,
    /// Brazil's Pix BR Code.
    Pix,
    /// Any other EMVCo code, held to the base specification.
    Emvco,
}

impl Scheme {
    pub const ALL: [Scheme; 10] = [
        Scheme::Qris,
        Scheme::VietQr,
        Scheme::PromptPay,
        Scheme::ThaiQr,
        Scheme::DuitNow,
        Scheme::PayNow,
        Scheme::Sgqr,
        Scheme::Khqr,
        Scheme::Pix,
        Scheme::Emvco,
    ];

    /// Stable and machine-readable, for API answers.
    pub fn id(self) -> &'static str {
        match self {
            Scheme::Qris => "qris",
            Scheme::VietQr => "vietqr",
            Scheme::PromptPay => "promptpay",
            Scheme::ThaiQr => "thaiqr",
            Scheme::DuitNow => "duitnow",
            Scheme::PayNow => "paynow",
            Scheme::Sgqr => "sgqr",
            Scheme::Khqr => "khqr",
            Scheme::Pix => "pix",
            Scheme::Emvco => "emvco",
        }
    }

    /// For people.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Qris => "QRIS",
            Scheme::VietQr => "VietQR",
            Scheme::PromptPay => "PromptPay",
            Scheme::ThaiQr => "Thai QR",
            Scheme::DuitNow => "DuitNow",
            Scheme::PayNow => "PayNow",
            Scheme::Sgqr => "SGQR",
            Scheme::Khqr => "KHQR",
            Scheme::Pix => "Pix",
            Scheme::Emvco => "EMVCo",
        }
    }

    pub fn profile(self) -> &'static Profile {
        match self {
            Scheme::Qris => &QRIS,
            Scheme::VietQr => &VIETQR,
            Scheme::PromptPay | Scheme::ThaiQr => &THAI,
            Scheme::DuitNow => &DUITNOW,
            Scheme::PayNow | Scheme::Sgqr => &SINGAPORE,
            Scheme::Khqr => &KHQR,
            Scheme::Pix => &PIX,
            Scheme::Emvco => &EMVCO,
        }
    }
}

/// A root field by its id and name.
pub type Named = (u8, &'static str);

const MCC: Named = (52, "merchant category code");
const COUNTRY: Named = (58, "country code");
const NAME: Named = (59, "merchant name");
const CITY: Named = (60, "merchant city");
const BASE: &[Named] = &[MCC, COUNTRY, NAME, CITY];

/// What a scheme's codes carry. Every code carries a currency (53) and a
/// merchant account (02-51) whatever its scheme.
#[derive(Debug)]
pub struct Profile {
    /// Fields its codes always carry: missing, the code is refused.
    pub requires: &'static [Named],
    /// Fields EMVCo's base specification makes mandatory that its codes
    /// may leave out: missing, a warning.
    pub may_omit: &'static [Named],
    /// Values of the payload format indicator (00) its codes print.
    pub format_indicators: &'static [&'static str],
    /// Whether a dynamic code may leave the amount out because the scheme
    /// keeps it elsewhere (Pix: behind the code's location).
    pub amount_elsewhere: bool,
    /// The country (58) its codes name; another is a warning.
    pub country: Option<&'static str>,
    /// ISO 4217 numeric codes (53) its codes use; another is a warning.
    pub currencies: &'static [&'static str],
}

static EMVCO: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: None,
    currencies: &[],
};
static QRIS: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: Some("ID"),
    currencies: &["360"],
};
static VIETQR: Profile = Profile {
    requires: &[COUNTRY],
    may_omit: &[MCC, NAME, CITY],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: Some("VN"),
    currencies: &["704"],
};
static THAI: Profile = Profile {
    requires: &[COUNTRY],
    may_omit: &[MCC, NAME, CITY],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: Some("TH"),
    currencies: &["764"],
};
static DUITNOW: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01", "02"],
    amount_elsewhere: false,
    country: Some("MY"),
    currencies: &["458"],
};
static SINGAPORE: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: Some("SG"),
    currencies: &["702"],
};
static KHQR: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01"],
    amount_elsewhere: false,
    country: Some("KH"),
    currencies: &["116", "840"],
};
static PIX: Profile = Profile {
    requires: BASE,
    may_omit: &[],
    format_indicators: &["01"],
    amount_elsewhere: true,
    country: Some("BR"),
    currencies: &["986"],
};

/// Globally unique ids (sub-id 00 of templates 26-51) and the scheme each
/// names, in the order they are looked for: a code carrying several (an
/// SGQR with PayNow among its schemes) is read as the first. Each was
/// checked against the scheme's published samples (see docs/qr-schemes.md).
const GUIDS: &[(&str, Scheme)] = &[
    ("ID.CO.QRIS.WWW", Scheme::Qris),
    ("A000000727", Scheme::VietQr),
    ("A000000677010111", Scheme::PromptPay),
    ("A000000677010114", Scheme::PromptPay),
    ("A000000677010112", Scheme::ThaiQr),
    ("A000000677012006", Scheme::ThaiQr),
    ("A0000006150001", Scheme::DuitNow),
    ("SG.PAYNOW", Scheme::PayNow),
    ("SG.SGQR", Scheme::Sgqr),
    ("BR.GOV.BCB.PIX", Scheme::Pix),
];

/// Where a code's merchant can be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantAccount {
    /// The data object it came from: a template (26-51), or a card
    /// scheme's merchant id (02-25).
    pub template_id: u8,
    /// The template's globally unique id as printed, or the card scheme
    /// that EMVCo gives a primitive id to ("visa", "mastercard", ...).
    pub network: String,
    /// What the merchant is known by there: PromptPay's proxy, VietQR's
    /// account or card, QRIS's national merchant id, DuitNow's merchant
    /// id, PayNow's proxy, the SGQR id, KHQR's Bakong account, Pix's key
    /// or location.
    pub id: String,
    /// The bank or acquirer where the scheme names one: VietQR's BIN,
    /// DuitNow's acquirer, KHQR's acquiring bank.
    pub institution: Option<String>,
}

/// Something the scheme allows that EMVCo's base specification does not,
/// reported on the result rather than refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A field the base specification makes mandatory that the scheme's
    /// codes leave out.
    Omitted { id: u8, name: &'static str },
    /// A payload format indicator other than 01 that the scheme prints.
    FormatIndicator { found: String },
    /// A dynamic code without its amount, which the scheme keeps elsewhere.
    AmountElsewhere,
    /// A country other than the scheme's.
    Country {
        expected: &'static str,
        found: String,
    },
    /// A currency the scheme does not use.
    Currency { found: String },
}

impl Warning {
    /// Stable and machine-readable, for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::Omitted { .. } => "qr_field_omitted",
            Warning::FormatIndicator { .. } => "qr_format_indicator",
            Warning::AmountElsewhere => "qr_amount_elsewhere",
            Warning::Country { .. } => "qr_unexpected_country",
            Warning::Currency { .. } => "qr_unexpected_currency",
        }
    }

    /// The root field it is about.
    pub fn field(&self) -> u8 {
        match self {
            Warning::Omitted { id, .. } => *id,
            Warning::FormatIndicator { .. } => 0,
            Warning::AmountElsewhere => 54,
            Warning::Country { .. } => 58,
            Warning::Currency { .. } => 53,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Omitted { id, name } => {
                write!(f, "field {id:02} ({name}) is absent, as the scheme allows")
            }
            Warning::FormatIndicator { found } => {
                write!(f, "the payload format indicator is {found}, not 01")
            }
            Warning::AmountElsewhere => {
                write!(
                    f,
                    "a dynamic code without an amount: the scheme keeps it elsewhere"
                )
            }
            Warning::Country { expected, found } => {
                write!(f, "the country is {found}; the scheme's is {expected}")
            }
            Warning::Currency { found } => write!(f, "the scheme does not use currency {found}"),
        }
    }
}

/// Names a read code's scheme, checks it against the scheme's profile and
/// finds its merchant account and display name.
pub(crate) fn scan(qr: MerchantQr) -> Result<ScannedQr, QrError> {
    let (scheme, template) = identify(&qr);
    let warnings = check(scheme.profile(), &qr)?;
    let (merchant_account, fallback) = match template {
        Some(t) => {
            let (account, fallback) = named_account(scheme, t)?;
            (Some(account), fallback)
        }
        None => generic_account(&qr),
    };
    let display_name = qr
        .merchant_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map_or(fallback, str::to_owned);
    let currency = crate::read::in_use(&qr.currency_numeric)
        .ok_or_else(|| QrError::UnknownCurrency(qr.currency_numeric.clone()))?
        .code();
    Ok(ScannedQr {
        qr,
        scheme,
        merchant_account,
        display_name,
        currency,
        warnings,
    })
}

fn identify(qr: &MerchantQr) -> (Scheme, Option<&Account>) {
    for (guid, scheme) in GUIDS {
        let named = qr.accounts.iter().find(|a| {
            matches!(a, Account::Template { network, .. } if network.eq_ignore_ascii_case(guid))
        });
        if let Some(account) = named {
            return (*scheme, Some(account));
        }
    }
    // KHQR puts a Bakong account where other schemes put their id, in
    // template 29 (individuals) or 30 (merchants).
    let khqr = qr.accounts.iter().find(
        |a| matches!(a, Account::Template { id: 29 | 30, network, .. } if bakong_account(network)),
    );
    match khqr {
        Some(account) if qr.country.as_deref() == Some("KH") => (Scheme::Khqr, Some(account)),
        _ => (Scheme::Emvco, None),
    }
}

/// A Bakong account id, such as "jonhsmith@nbcq": a name, '@' and a bank.
fn bakong_account(s: &str) -> bool {
    matches!(s.split_once('@'), Some((name, bank)) if !name.is_empty() && !bank.is_empty() && !bank.contains('@'))
}

fn check(profile: &Profile, qr: &MerchantQr) -> Result<Vec<Warning>, QrError> {
    let mut warnings = Vec::new();
    if !profile
        .format_indicators
        .contains(&qr.format_indicator.as_str())
    {
        return Err(QrError::BadValue {
            id: 0,
            why: "the payload format indicator is 01 (DuitNow's codes print 02)",
        });
    }
    if qr.format_indicator != "01" {
        warnings.push(Warning::FormatIndicator {
            found: qr.format_indicator.clone(),
        });
    }
    if !qr.has(53) {
        return Err(QrError::Missing {
            id: 53,
            name: "transaction currency",
        });
    }
    if let Some(&(id, name)) = profile.requires.iter().find(|(id, _)| !qr.has(*id)) {
        return Err(QrError::Missing { id, name });
    }
    for &(id, name) in profile.may_omit.iter().filter(|(id, _)| !qr.has(*id)) {
        warnings.push(Warning::Omitted { id, name });
    }
    if qr.accounts.is_empty() {
        return Err(QrError::Missing {
            id: 2,
            name: "merchant account information (02-51)",
        });
    }
    if qr.initiation == Some(Initiation::Dynamic) && qr.amount.is_none() {
        if !profile.amount_elsewhere {
            return Err(QrError::Missing {
                id: 54,
                name: "transaction amount (a dynamic code has one)",
            });
        }
        warnings.push(Warning::AmountElsewhere);
    }
    if let (Some(expected), Some(found)) = (profile.country, &qr.country)
        && expected != found
    {
        warnings.push(Warning::Country {
            expected,
            found: found.clone(),
        });
    }
    if !profile.currencies.is_empty() && !profile.currencies.contains(&qr.currency_numeric.as_str())
    {
        warnings.push(Warning::Currency {
            found: qr.currency_numeric.clone(),
        });
    }
    Ok(warnings)
}

/// The merchant account in a named scheme's template, and the name to show
/// when the code carries no merchant name.
fn named_account(scheme: Scheme, t: &Account) -> Result<(MerchantAccount, String), QrError> {
    let (template_id, network) = match t {
        Account::Template { id, network, .. } => (*id, network.clone()),
        Account::Primitive { id, value } => (*id, value.clone()),
    };
    let sub = |s: u8| t.sub(s).map(str::to_owned);
    let missing = |name: &'static str| QrError::Missing {
        id: template_id,
        name,
    };
    let label = scheme.name();
    let (id, institution, fallback) = match scheme {
        Scheme::PromptPay => promptpay(t).ok_or_else(|| {
            missing(
                "PromptPay proxy (01 mobile, 02 national or tax id, 03 e-wallet, 04 bank account)",
            )
        })?,
        Scheme::ThaiQr => {
            let id = sub(1).ok_or_else(|| missing("Thai QR biller id (01)"))?;
            let fallback = format!("Biller {id}");
            (id, None, fallback)
        }
        Scheme::VietQr => {
            let (bin, account) = beneficiary(t, template_id)?;
            let fallback = format!("Account {account} at bank {bin}");
            (account, Some(bin), fallback)
        }
        Scheme::Qris => named(
            sub(2).ok_or_else(|| missing("QRIS national merchant id (02)"))?,
            None,
            label,
        ),
        Scheme::DuitNow => named(
            sub(2).ok_or_else(|| missing("DuitNow merchant id (02)"))?,
            sub(1),
            label,
        ),
        Scheme::PayNow => named(
            sub(2).ok_or_else(|| missing("PayNow proxy (02)"))?,
            None,
            label,
        ),
        Scheme::Sgqr => named(
            sub(1).ok_or_else(|| missing("SGQR id number (01)"))?,
            None,
            label,
        ),
        Scheme::Khqr => named(network.clone(), sub(2), label),
        Scheme::Pix => named(
            sub(1)
                .or_else(|| sub(25))
                .ok_or_else(|| missing("Pix key (01) or location (25)"))?,
            None,
            label,
        ),
        Scheme::Emvco => named(
            sub(1).ok_or_else(|| missing("merchant id (01)"))?,
            None,
            label,
        ),
    };
    let account = MerchantAccount {
        template_id,
        network,
        id,
        institution,
    };
    Ok((account, fallback))
}

/// PromptPay's proxy: the first of its sub-fields present, shown with the
/// mobile number's country code as people write it.
fn promptpay(t: &Account) -> Option<(String, Option<String>, String)> {
    let (proxy, id) = [1u8, 2, 3, 4]
        .into_iter()
        .find_map(|s| t.sub(s).map(|v| (s, v.to_owned())))?;
    // Mobile numbers are written 0066 and the number without its 0.
    let shown = match (proxy, id.strip_prefix("00")) {
        (1, Some(international)) => format!("+{international}"),
        _ => id.clone(),
    };
    let fallback = format!("{} {shown}", Scheme::PromptPay.name());
    Some((id, None, fallback))
}

fn named(id: String, institution: Option<String>, label: &str) -> (String, Option<String>, String) {
    let fallback = format!("{label} {id}");
    (id, institution, fallback)
}

/// VietQR's beneficiary (01) is itself a template: the bank's BIN (00) and
/// the account or card number (01).
fn beneficiary(t: &Account, template_id: u8) -> Result<(String, String), QrError> {
    let bad = QrError::BadValue {
        id: template_id,
        why: "VietQR's beneficiary (01) holds the bank's BIN (00) and the account or card (01)",
    };
    let fields = tlv::split(t.sub(1).ok_or(bad.clone())?, 0).map_err(|_| bad.clone())?;
    let value = |id: u8| fields.iter().find(|f| f.id == id).map(|f| f.value.clone());
    match (value(0), value(1)) {
        (Some(bin), Some(account)) => Ok((bin, account)),
        _ => Err(bad),
    }
}

/// A code of no known scheme: the first template naming a merchant (01),
/// else the first card scheme's merchant id.
fn generic_account(qr: &MerchantQr) -> (Option<MerchantAccount>, String) {
    let template = qr.accounts.iter().find_map(|a| match a {
        Account::Template { id, network, .. } => a.sub(1).map(|m| MerchantAccount {
            template_id: *id,
            network: network.clone(),
            id: m.to_owned(),
            institution: None,
        }),
        Account::Primitive { .. } => None,
    });
    let account = template.or_else(|| {
        qr.accounts.iter().find_map(|a| match a {
            Account::Primitive { id, value } => Some(MerchantAccount {
                template_id: *id,
                network: card_scheme(*id).to_owned(),
                id: value.clone(),
                institution: None,
            }),
            Account::Template { .. } => None,
        })
    });
    let fallback = match &account {
        Some(a) => format!("{} {}", a.network, a.id),
        None => Scheme::Emvco.name().to_owned(),
    };
    (account, fallback)
}

/// The card schemes EMVCo assigns ids 02-16 to; 06-08 and 17-25 are its own.
fn card_scheme(id: u8) -> &'static str {
    match id {
        2 | 3 => "visa",
        4 | 5 => "mastercard",
        9 | 10 => "discover",
        11 | 12 => "amex",
        13 | 14 => "jcb",
        15 | 16 => "unionpay",
        _ => "emvco",
    }
}
