//! Writing a merchant-presented payload with its CRC.

use crate::{Account, Additional, Language, MerchantQr, QrError, Tip, crc16, parse, tlv};

/// Writes a payload with its CRC. The result parses back to `qr`.
pub fn encode(qr: &MerchantQr) -> Result<String, QrError> {
    let mut out = String::new();
    tlv::put(&mut out, 0, &qr.format_indicator)?;
    if let Some(i) = qr.initiation {
        let value = if i == crate::Initiation::Static {
            "11"
        } else {
            "12"
        };
        tlv::put(&mut out, 1, value)?;
    }
    for account in &qr.accounts {
        put_account(&mut out, account)?;
    }
    put_optional(&mut out, 52, qr.category_code.as_deref())?;
    tlv::put(&mut out, 53, &qr.currency_numeric)?;
    put_optional(&mut out, 54, qr.amount.as_deref())?;
    put_tip(&mut out, qr.tip.as_ref())?;
    put_optional(&mut out, 58, qr.country.as_deref())?;
    put_optional(&mut out, 59, qr.merchant_name.as_deref())?;
    put_optional(&mut out, 60, qr.city.as_deref())?;
    put_optional(&mut out, 61, qr.postal_code.as_deref())?;
    if let Some(a) = &qr.additional {
        put_additional(&mut out, a)?;
    }
    if let Some(l) = &qr.language {
        put_language(&mut out, l)?;
    }
    for (id, value) in &qr.unreserved {
        tlv::put(&mut out, *id, value)?;
    }
    out.push_str("6304");
    let crc = crc16(&out);
    out.push_str(&format!("{crc:04X}"));
    // What we write, we read: a field out of its rules or its scheme's
    // fails here, not at the payer's phone.
    parse(&out)?;
    Ok(out)
}

fn put_optional(out: &mut String, id: u8, value: Option<&str>) -> Result<(), QrError> {
    match value {
        Some(v) => tlv::put(out, id, v),
        None => Ok(()),
    }
}

fn put_account(out: &mut String, account: &Account) -> Result<(), QrError> {
    match account {
        Account::Primitive { id, value } => tlv::put(out, *id, value),
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
            tlv::put(out, *id, &inner)
        }
    }
}

fn put_tip(out: &mut String, tip: Option<&Tip>) -> Result<(), QrError> {
    match tip {
        None => Ok(()),
        Some(Tip::Prompt) => tlv::put(out, 55, "01"),
        Some(Tip::Fixed(fee)) => {
            tlv::put(out, 55, "02")?;
            tlv::put(out, 56, fee)
        }
        Some(Tip::Percentage(p)) => {
            tlv::put(out, 55, "03")?;
            tlv::put(out, 57, p)
        }
    }
}

fn put_additional(out: &mut String, a: &Additional) -> Result<(), QrError> {
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
        put_optional(&mut inner, sub, value.as_deref())?;
    }
    for (sub, value) in &a.payment_system {
        tlv::put(&mut inner, *sub, value)?;
    }
    tlv::put(out, 62, &inner)
}

fn put_language(out: &mut String, l: &Language) -> Result<(), QrError> {
    let mut inner = String::new();
    tlv::put(&mut inner, 0, &l.preference)?;
    tlv::put(&mut inner, 1, &l.merchant_name)?;
    put_optional(&mut inner, 2, l.city.as_deref())?;
    tlv::put(out, 64, &inner)
}
