//! Reading a merchant-presented payload: the TLV's structure and its CRC
//! first, then each field's value by EMVCo's base rules. Which fields a
//! code must carry is its scheme's to say (`scheme`), not this module's.

use crate::tlv::{self, Field};
use crate::{Account, Additional, Initiation, Language, MerchantQr, QrError, Tip, crc16};

/// Splits a payload into its root fields and checks what every scheme
/// shares: no id twice, the format indicator first, the CRC last and right.
pub(crate) fn structure(payload: &str) -> Result<Vec<Field>, QrError> {
    let fields = tlv::split(payload, 0)?;
    let mut seen = [false; 100];
    for f in &fields {
        if std::mem::replace(&mut seen[usize::from(f.id)], true) {
            return Err(QrError::Duplicate { id: f.id });
        }
    }
    if fields.first().map(|f| f.id) != Some(0) {
        return Err(if seen[0] {
            QrError::Misordered {
                id: 0,
                why: "the payload format indicator comes first",
            }
        } else {
            QrError::Missing {
                id: 0,
                name: "payload format indicator",
            }
        });
    }
    let Some(last) = fields.last().filter(|f| f.id == 63) else {
        return Err(if seen[63] {
            QrError::Misordered {
                id: 63,
                why: "the CRC comes last",
            }
        } else {
            QrError::Missing {
                id: 63,
                name: "CRC",
            }
        });
    };
    check_crc(payload, last)?;
    Ok(fields)
}

fn check_crc(payload: &str, last: &Field) -> Result<(), QrError> {
    check(
        last.value.len() == 4 && last.value.bytes().all(|b| b.is_ascii_hexdigit()),
        63,
        "the CRC is four hexadecimal digits",
    )?;
    // The CRC covers everything up to its value: its id and length too.
    let covered: String = payload.chars().take(last.at + 4).collect();
    let expected = crc16(&covered);
    if last.value.eq_ignore_ascii_case(&format!("{expected:04X}")) {
        Ok(())
    } else {
        Err(QrError::BadCrc {
            expected,
            found: last.value.clone(),
        })
    }
}

/// The root fields' values, each checked by EMVCo's base rules.
pub(crate) fn fields(fields: &[Field]) -> Result<MerchantQr, QrError> {
    let mut qr = MerchantQr::empty();
    let mut tip = TipParts::default();
    for f in fields {
        // The alternate language is the one field meant for other scripts.
        if f.id != 64 {
            check(printable(&f.value), f.id, "only printable ASCII is allowed")?;
        }
        field(&mut qr, &mut tip, f)?;
    }
    qr.tip = tip.resolve()?;
    Ok(qr)
}

fn field(qr: &mut MerchantQr, tip: &mut TipParts, f: &Field) -> Result<(), QrError> {
    let v = f.value.clone();
    match f.id {
        0 => {
            qr.format_indicator = checked(
                v,
                0,
                |v| digits(v, 2, 2),
                "the format indicator is 2 digits",
            )?
        }
        1 => qr.initiation = Some(initiation(&v)?),
        2..=25 => qr.accounts.push(Account::Primitive { id: f.id, value: v }),
        26..=51 => qr.accounts.push(template(f)?),
        52 | 54 | 58..=61 => {
            let (ok, why) = rule(f.id);
            *slot(qr, f.id) = Some(checked(v, f.id, ok, why)?);
        }
        53 => qr.currency_numeric = currency(v)?,
        55..=57 => tip.read(f.id, v)?,
        62 => qr.additional = Some(additional(&v, f.at + 4)?),
        63 => {}
        64 => qr.language = Some(language(&v, f.at + 4)?),
        80..=99 => qr.unreserved.push((f.id, v)),
        _ => {
            return Err(QrError::BadValue {
                id: f.id,
                why: "this id is reserved for future use",
            });
        }
    }
    Ok(())
}

/// The rule of a root field that is one plain value, and what it says.
fn rule(id: u8) -> (fn(&str) -> bool, &'static str) {
    match id {
        52 => (
            |v| digits(v, 4, 4),
            "the merchant category code is 4 digits",
        ),
        54 => (amount_ok, "the amount is digits with at most one '.'"),
        58 => (
            |v| v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase()),
            "the country is 2 capital letters (ISO 3166-1 alpha-2)",
        ),
        59 => (
            |v| v.len() <= 25,
            "the merchant name is at most 25 characters",
        ),
        60 => (|v| v.len() <= 15, "the city is at most 15 characters"),
        _ => (
            |v| v.len() <= 10,
            "the postal code is at most 10 characters",
        ),
    }
}

fn slot(qr: &mut MerchantQr, id: u8) -> &mut Option<String> {
    match id {
        52 => &mut qr.category_code,
        54 => &mut qr.amount,
        58 => &mut qr.country,
        59 => &mut qr.merchant_name,
        60 => &mut qr.city,
        _ => &mut qr.postal_code,
    }
}

fn initiation(v: &str) -> Result<Initiation, QrError> {
    match v {
        "11" => Ok(Initiation::Static),
        "12" => Ok(Initiation::Dynamic),
        _ => Err(QrError::BadValue {
            id: 1,
            why: "the point of initiation is 11 (static) or 12 (dynamic)",
        }),
    }
}

fn template(f: &Field) -> Result<Account, QrError> {
    let mut sub = tlv::split(&f.value, f.at + 4)?;
    let network = match sub.first() {
        Some(s) if s.id == 0 => sub.remove(0).value,
        _ => {
            return Err(QrError::BadValue {
                id: f.id,
                why: "a merchant account template starts with its network's id (00)",
            });
        }
    };
    unique(&sub, f.id)?;
    Ok(Account::Template {
        id: f.id,
        network,
        fields: sub.into_iter().map(|s| (s.id, s.value)).collect(),
    })
}

/// Three digits that ISO 4217 assigns to a currency in use.
fn currency(v: String) -> Result<String, QrError> {
    let v = checked(
        v,
        53,
        |v| digits(v, 3, 3),
        "the currency is 3 digits (ISO 4217 numeric)",
    )?;
    match in_use(&v) {
        Some(_) => Ok(v),
        None => Err(QrError::UnknownCurrency(v)),
    }
}

/// The ISO 4217 currency with numeric code `numeric`, if it is one a
/// payment can be made in: not a metal, a unit of account, the testing
/// code or "no currency" (ISO's special codes), and not superseded.
pub(crate) fn in_use(numeric: &str) -> Option<iso_currency::Currency> {
    numeric
        .parse()
        .ok()
        .and_then(iso_currency::Currency::from_numeric)
        .filter(|c| !c.is_special() && c.is_superseded().is_none())
}

/// Ids 55-57, read in any order and matched once all are in.
#[derive(Default)]
struct TipParts {
    indicator: Option<String>,
    fee: Option<String>,
    percentage: Option<String>,
}

impl TipParts {
    fn read(&mut self, id: u8, v: String) -> Result<(), QrError> {
        match id {
            55 => {
                self.indicator = Some(checked(
                    v,
                    55,
                    |v| matches!(v, "01" | "02" | "03"),
                    "the tip indicator is 01, 02 or 03",
                )?)
            }
            56 => {
                self.fee = Some(checked(
                    v,
                    56,
                    amount_ok,
                    "the fixed fee is digits with at most one '.'",
                )?)
            }
            _ => {
                self.percentage = Some(checked(
                    v,
                    57,
                    |v| v.len() <= 5 && amount_ok(v),
                    "the percentage fee is a decimal of at most 5 characters",
                )?)
            }
        }
        Ok(())
    }

    fn resolve(self) -> Result<Option<Tip>, QrError> {
        match (self.indicator.as_deref(), self.fee, self.percentage) {
            (None, None, None) => Ok(None),
            (Some("01"), None, None) => Ok(Some(Tip::Prompt)),
            (Some("02"), Some(fee), None) => Ok(Some(Tip::Fixed(fee))),
            (Some("03"), None, Some(p)) => Ok(Some(Tip::Percentage(p))),
            _ => Err(QrError::BadValue {
                id: 55,
                why: "a fixed fee (56) goes with indicator 02 only, a percentage (57) with 03 only",
            }),
        }
    }
}

pub(crate) fn unique(fields: &[Field], template: u8) -> Result<(), QrError> {
    let mut seen = [false; 100];
    for f in fields {
        if std::mem::replace(&mut seen[usize::from(f.id)], true) {
            return Err(QrError::BadValue {
                id: template,
                why: "a sub-field appears twice",
            });
        }
    }
    Ok(())
}

fn additional(value: &str, offset: usize) -> Result<Additional, QrError> {
    let fields = tlv::split(value, offset)?;
    unique(&fields, 62)?;
    let mut a = Additional::default();
    for f in fields {
        let slot = match f.id {
            1 => &mut a.bill_number,
            2 => &mut a.mobile_number,
            3 => &mut a.store_label,
            4 => &mut a.loyalty_number,
            5 => &mut a.reference_label,
            6 => &mut a.customer_label,
            7 => &mut a.terminal_label,
            8 => &mut a.purpose,
            9 => &mut a.consumer_data_request,
            50..=99 => {
                a.payment_system.push((f.id, f.value));
                continue;
            }
            _ => {
                return Err(QrError::BadValue {
                    id: 62,
                    why: "additional data holds sub-ids 01 to 09 and payment system templates 50 to 99",
                });
            }
        };
        *slot = Some(f.value);
    }
    Ok(a)
}

fn language(value: &str, offset: usize) -> Result<Language, QrError> {
    let fields = tlv::split(value, offset)?;
    unique(&fields, 64)?;
    let (mut preference, mut name, mut city) = (None, None, None);
    for f in fields {
        match f.id {
            0 => preference = Some(f.value),
            1 => name = Some(f.value),
            2 => city = Some(f.value),
            _ => {
                return Err(QrError::BadValue {
                    id: 64,
                    why: "the language template holds sub-ids 00 to 02",
                });
            }
        }
    }
    match (preference, name) {
        // ISO 639 codes are letters; KHQR prints them in capitals.
        (Some(p), Some(merchant_name))
            if p.len() == 2 && p.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            Ok(Language {
                preference: p,
                merchant_name,
                city,
            })
        }
        _ => Err(QrError::BadValue {
            id: 64,
            why: "the language template needs a 2-letter language (00) and a name (01)",
        }),
    }
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Up to 13 characters: digits with at most one '.', not at the ends.
pub(crate) fn amount_ok(s: &str) -> bool {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
    s.len() <= 13 && digits(whole, 1, 13) && digits(fraction, 1, 13)
}

/// Printable ASCII: what every field but the alternate language holds.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn check(ok: bool, id: u8, why: &'static str) -> Result<(), QrError> {
    if ok {
        Ok(())
    } else {
        Err(QrError::BadValue { id, why })
    }
}

fn checked(
    v: String,
    id: u8,
    ok: impl Fn(&str) -> bool,
    why: &'static str,
) -> Result<String, QrError> {
    check(ok(&v), id, why)?;
    Ok(v)
}
