//! EMVCo QR codes as the cross-border hub reads and writes them:
//! merchant-presented (MPM, here) with a strict parser that names what is
//! wrong with a payload and never panics on any input, and a generator
//! that writes the CRC; and consumer-presented (CPM, `consumer`), a card
//! application with its cryptogram.
//!
//! A payload is text TLV (`tlv`): the payload format indicator first, the
//! CRC last (CRC-16/CCITT-FALSE over everything before its value, its own
//! id and length included), each id at most once, and the mandatory fields
//! present and well formed. Merchant account information (ids 02-51) says
//! which networks can pay the merchant; ids 26-51 are templates whose
//! sub-id 00 is the network's globally unique id.

mod consumer;
mod tlv;

use thiserror::Error;

pub use consumer::{
    Application, CONSUMER_CHARS_MAX, ConsumerQr, ConsumerQrError, Cryptogram, encode_consumer,
    parse_consumer,
};
pub use tlv::Field;

/// Longest payload read: 99-character values cannot add up to more in
/// any sensible code, and a bound keeps a hostile input cheap.
pub const PAYLOAD_CHARS_MAX: usize = 1024;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// CRC-16/CCITT-FALSE of `text`'s bytes, as EMVCo QR uses it.
pub fn crc16(text: &str) -> u16 {
    CRC.checksum(text.as_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QrError {
    #[error("the payload is empty")]
    Empty,
    #[error("the payload is {0} characters, over the limit of {PAYLOAD_CHARS_MAX}")]
    TooLong(usize),
    #[error("no two-digit id at character {at}")]
    BadId { at: usize },
    #[error("field {id:02} has no valid two-digit length at character {at}")]
    BadLength { id: u8, at: usize },
    #[error("the payload ends inside the field at character {at}")]
    Truncated { at: usize },
    #[error("field {id:02} appears twice")]
    Duplicate { id: u8 },
    #[error("field {id:02} is out of place: {why}")]
    Misordered { id: u8, why: &'static str },
    #[error("the mandatory field {id:02} ({name}) is missing")]
    Missing { id: u8, name: &'static str },
    #[error("field {id:02}: {why}")]
    BadValue { id: u8, why: &'static str },
    #[error("the CRC is {found}, the payload's is {expected:04X}")]
    BadCrc { expected: u16, found: String },
}

impl QrError {
    /// Stable and machine-readable, for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            QrError::Empty => "qr_empty",
            QrError::TooLong(_) => "qr_too_long",
            QrError::BadId { .. } => "qr_bad_id",
            QrError::BadLength { .. } => "qr_bad_length",
            QrError::Truncated { .. } => "qr_truncated",
            QrError::Duplicate { .. } => "qr_duplicate_field",
            QrError::Misordered { .. } => "qr_misordered_field",
            QrError::Missing { .. } => "qr_missing_field",
            QrError::BadValue { .. } => "qr_bad_value",
            QrError::BadCrc { .. } => "qr_bad_crc",
        }
    }
}

/// Static codes are printed once and reused; dynamic ones carry the amount
/// of one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiation {
    Static,
    Dynamic,
}

/// How a network can pay the merchant: a primitive value (ids 02-25, card
/// schemes' merchant ids) or a template (26-51) naming its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Primitive {
        id: u8,
        value: String,
    },
    Template {
        id: u8,
        /// Sub-id 00: the network's globally unique id (a reverse domain
        /// name or an AID).
        network: String,
        /// Sub-ids 01-99, such as the merchant's id in that network.
        fields: Vec<(u8, String)>,
    },
}

impl Account {
    pub fn id(&self) -> u8 {
        match self {
            Account::Primitive { id, .. } | Account::Template { id, .. } => *id,
        }
    }
}

/// The tip or convenience fee the payer's app adds (ids 55-57).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tip {
    /// The app asks the payer for a tip.
    Prompt,
    /// A fixed fee, in the transaction currency (56).
    Fixed(String),
    /// A percentage of the amount, such as "3.5" (57).
    Percentage(String),
}

/// Additional data (62): references a payment carries back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Additional {
    pub bill_number: Option<String>,
    pub mobile_number: Option<String>,
    pub store_label: Option<String>,
    pub loyalty_number: Option<String>,
    pub reference_label: Option<String>,
    pub customer_label: Option<String>,
    pub terminal_label: Option<String>,
    pub purpose: Option<String>,
    pub consumer_data_request: Option<String>,
}

/// The merchant's name and city in another language (64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// ISO 639 two-letter code, such as "ko".
    pub preference: String,
    pub merchant_name: String,
    pub city: Option<String>,
}

/// A merchant-presented QR payload, every field read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQr {
    pub initiation: Option<Initiation>,
    pub accounts: Vec<Account>,
    /// ISO 18245, four digits.
    pub category_code: String,
    /// ISO 4217 numeric, three digits.
    pub currency_numeric: String,
    /// Decimal in major units, such as "4500" or "12.50"; always present in
    /// a dynamic code.
    pub amount: Option<String>,
    pub tip: Option<Tip>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub merchant_name: String,
    pub city: String,
    pub postal_code: Option<String>,
    pub additional: Option<Additional>,
    pub language: Option<Language>,
    /// Templates 80-99, for the parties that agree on them.
    pub unreserved: Vec<(u8, String)>,
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Up to 13 characters: digits with at most one '.', not at the ends.
fn amount_ok(s: &str) -> bool {
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

/// Reads a payload. Every rule broken is an error naming the field.
pub fn parse(payload: &str) -> Result<MerchantQr, QrError> {
    if payload.is_empty() {
        return Err(QrError::Empty);
    }
    let length = payload.chars().count();
    if length > PAYLOAD_CHARS_MAX {
        return Err(QrError::TooLong(length));
    }
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
    check(
        last.value.len() == 4 && last.value.bytes().all(|b| b.is_ascii_hexdigit()),
        63,
        "the CRC is four hexadecimal digits",
    )?;
    // The CRC covers everything up to its value: its id and length too.
    let covered: String = payload.chars().take(last.at + 4).collect();
    let expected = crc16(&covered);
    if !last.value.eq_ignore_ascii_case(&format!("{expected:04X}")) {
        return Err(QrError::BadCrc {
            expected,
            found: last.value.clone(),
        });
    }

    let mut qr = MerchantQr {
        initiation: None,
        accounts: Vec::new(),
        category_code: String::new(),
        currency_numeric: String::new(),
        amount: None,
        tip: None,
        country: String::new(),
        merchant_name: String::new(),
        city: String::new(),
        postal_code: None,
        additional: None,
        language: None,
        unreserved: Vec::new(),
    };
    let mut fee = None;
    let mut percentage = None;
    for f in &fields {
        let v = f.value.clone();
        if f.id != 64 {
            check(printable(&v), f.id, "only printable ASCII is allowed")?;
        }
        match f.id {
            0 => check(v == "01", 0, "the payload format indicator is 01")?,
            1 => {
                qr.initiation = Some(match v.as_str() {
                    "11" => Initiation::Static,
                    "12" => Initiation::Dynamic,
                    _ => {
                        return Err(QrError::BadValue {
                            id: 1,
                            why: "the point of initiation is 11 (static) or 12 (dynamic)",
                        });
                    }
                });
            }
            2..=25 => qr.accounts.push(Account::Primitive { id: f.id, value: v }),
            26..=51 => {
                let mut sub = tlv::split(&v, f.at + 4)?;
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
                qr.accounts.push(Account::Template {
                    id: f.id,
                    network,
                    fields: sub.into_iter().map(|s| (s.id, s.value)).collect(),
                });
            }
            52 => {
                check(
                    digits(&v, 4, 4),
                    52,
                    "the merchant category code is 4 digits",
                )?;
                qr.category_code = v;
            }
            53 => {
                check(
                    digits(&v, 3, 3),
                    53,
                    "the currency is 3 digits (ISO 4217 numeric)",
                )?;
                qr.currency_numeric = v;
            }
            54 => {
                check(
                    amount_ok(&v),
                    54,
                    "the amount is digits with at most one '.'",
                )?;
                qr.amount = Some(v);
            }
            55 => {
                qr.tip = Some(match v.as_str() {
                    "01" => Tip::Prompt,
                    "02" | "03" => Tip::Fixed(String::new()),
                    _ => {
                        return Err(QrError::BadValue {
                            id: 55,
                            why: "the tip indicator is 01, 02 or 03",
                        });
                    }
                });
                if v == "03" {
                    qr.tip = Some(Tip::Percentage(String::new()));
                }
            }
            56 => {
                check(
                    amount_ok(&v),
                    56,
                    "the fixed fee is digits with at most one '.'",
                )?;
                fee = Some(v);
            }
            57 => {
                check(
                    v.len() <= 5 && amount_ok(&v),
                    57,
                    "the percentage fee is a decimal of at most 5 characters",
                )?;
                percentage = Some(v);
            }
            58 => {
                check(
                    v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase()),
                    58,
                    "the country is 2 capital letters (ISO 3166-1 alpha-2)",
                )?;
                qr.country = v;
            }
            59 => {
                check(
                    v.len() <= 25,
                    59,
                    "the merchant name is at most 25 characters",
                )?;
                qr.merchant_name = v;
            }
            60 => {
                check(v.len() <= 15, 60, "the city is at most 15 characters")?;
                qr.city = v;
            }
            61 => {
                check(
                    v.len() <= 10,
                    61,
                    "the postal code is at most 10 characters",
                )?;
                qr.postal_code = Some(v);
            }
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
    }
    qr.tip = match (qr.tip.take(), fee, percentage) {
        (None, None, None) => None,
        (Some(Tip::Prompt), None, None) => Some(Tip::Prompt),
        (Some(Tip::Fixed(_)), Some(fee), None) => Some(Tip::Fixed(fee)),
        (Some(Tip::Percentage(_)), None, Some(p)) => Some(Tip::Percentage(p)),
        _ => {
            return Err(QrError::BadValue {
                id: 55,
                why: "a fixed fee (56) goes with indicator 02 only, a percentage (57) with 03 only",
            });
        }
    };
    for (id, name, present) in [
        (52, "merchant category code", !qr.category_code.is_empty()),
        (53, "transaction currency", !qr.currency_numeric.is_empty()),
        (58, "country code", !qr.country.is_empty()),
        (59, "merchant name", !qr.merchant_name.is_empty()),
        (60, "merchant city", !qr.city.is_empty()),
    ] {
        if !present {
            return Err(QrError::Missing { id, name });
        }
    }
    if qr.accounts.is_empty() {
        return Err(QrError::Missing {
            id: 2,
            name: "merchant account information (02-51)",
        });
    }
    if qr.initiation == Some(Initiation::Dynamic) && qr.amount.is_none() {
        return Err(QrError::Missing {
            id: 54,
            name: "transaction amount (a dynamic code has one)",
        });
    }
    Ok(qr)
}

fn unique(fields: &[Field], template: u8) -> Result<(), QrError> {
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
            _ => {
                return Err(QrError::BadValue {
                    id: 62,
                    why: "additional data holds sub-ids 01 to 09",
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
    let mut preference = None;
    let mut name = None;
    let mut city = None;
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
        (Some(p), Some(merchant_name))
            if p.len() == 2 && p.bytes().all(|b| b.is_ascii_lowercase()) =>
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

/// Writes a payload with its CRC. The result parses back to `qr`.
pub fn encode(qr: &MerchantQr) -> Result<String, QrError> {
    let mut out = String::new();
    tlv::put(&mut out, 0, "01")?;
    if let Some(i) = qr.initiation {
        tlv::put(
            &mut out,
            1,
            if i == Initiation::Static { "11" } else { "12" },
        )?;
    }
    for account in &qr.accounts {
        match account {
            Account::Primitive { id, value } => tlv::put(&mut out, *id, value)?,
            Account::Template {
                id,
                network,
                fields,
            } => {
                let mut inner = String::new();
                tlv::put(&mut inner, 0, network)?;
                for (sub, value) in fields {
                    tlv::put(&mut inner, *sub, value)?;
                }
                tlv::put(&mut out, *id, &inner)?;
            }
        }
    }
    tlv::put(&mut out, 52, &qr.category_code)?;
    tlv::put(&mut out, 53, &qr.currency_numeric)?;
    if let Some(amount) = &qr.amount {
        tlv::put(&mut out, 54, amount)?;
    }
    match &qr.tip {
        None => {}
        Some(Tip::Prompt) => tlv::put(&mut out, 55, "01")?,
        Some(Tip::Fixed(fee)) => {
            tlv::put(&mut out, 55, "02")?;
            tlv::put(&mut out, 56, fee)?;
        }
        Some(Tip::Percentage(p)) => {
            tlv::put(&mut out, 55, "03")?;
            tlv::put(&mut out, 57, p)?;
        }
    }
    tlv::put(&mut out, 58, &qr.country)?;
    tlv::put(&mut out, 59, &qr.merchant_name)?;
    tlv::put(&mut out, 60, &qr.city)?;
    if let Some(postal) = &qr.postal_code {
        tlv::put(&mut out, 61, postal)?;
    }
    if let Some(a) = &qr.additional {
        let mut inner = String::new();
        for (sub, value) in [
            (1, &a.bill_number),
            (2, &a.mobile_number),
            (3, &a.store_label),
            (4, &a.loyalty_number),
            (5, &a.reference_label),
            (6, &a.customer_label),
            (7, &a.terminal_label),
            (8, &a.purpose),
            (9, &a.consumer_data_request),
        ] {
            if let Some(v) = value {
                tlv::put(&mut inner, sub, v)?;
            }
        }
        tlv::put(&mut out, 62, &inner)?;
    }
    if let Some(l) = &qr.language {
        let mut inner = String::new();
        tlv::put(&mut inner, 0, &l.preference)?;
        tlv::put(&mut inner, 1, &l.merchant_name)?;
        if let Some(city) = &l.city {
            tlv::put(&mut inner, 2, city)?;
        }
        tlv::put(&mut out, 64, &inner)?;
    }
    for (id, value) in &qr.unreserved {
        tlv::put(&mut out, *id, value)?;
    }
    out.push_str("6304");
    let crc = crc16(&out);
    out.push_str(&format!("{crc:04X}"));
    // What we write, we read: a field out of its rules fails here, not at
    // the payer's phone.
    parse(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
