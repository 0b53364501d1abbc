//! EMVCo QR codes as the cross-border hub reads and writes them:
//! merchant-presented (MPM, here) with a strict parser that names what is
//! wrong with a payload and never panics on any input, and a generator
//! that writes the CRC; and consumer-presented (CPM, `consumer`), a card
//! application with its cryptogram.
//!
//! A payload is text TLV (`tlv`): the payload format indicator first, the
//! CRC last (CRC-16/CCITT-FALSE over everything before its value, its own
//! id and length included), each id at most once, every field well formed
//! (`read`). Merchant account information (ids 02-51) says which networks
//! can pay the merchant; ids 26-51 are templates whose sub-id 00 is the
//! network's globally unique id, and that id names the scheme (`scheme`),
//! whose profile says which of the base specification's mandatory fields
//! its codes may leave out.

mod consumer;
mod model;
mod read;
mod scheme;
mod tlv;
mod write;

use thiserror::Error;

pub use consumer::{
    Application, CONSUMER_CHARS_MAX, ConsumerQr, ConsumerQrError, Cryptogram, encode_consumer,
    parse_consumer,
};
pub use model::{Account, Additional, Initiation, Language, MerchantQr, Tip};
pub use scheme::{MerchantAccount, Named, Profile, Scheme, Warning};
pub use tlv::Field;
pub use write::encode;

/// Longest payload read: the most a QR code symbol holds (2,953 bytes in
/// byte mode, version 40 at error correction L). SGQR codes that carry
/// every Singapore scheme run past a thousand characters; the bound keeps a
/// hostile input cheap all the same.
pub const PAYLOAD_CHARS_MAX: usize = 2953;

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
    #[error("the currency {0} is not an ISO 4217 numeric code")]
    UnknownCurrency(String),
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
            QrError::UnknownCurrency(_) => "qr_unknown_currency",
        }
    }
}

/// A merchant-presented code as read: its fields, the scheme that printed
/// it, where its merchant is paid, the name to show the payer and what the
/// scheme allowed that the base specification does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedQr {
    pub qr: MerchantQr,
    pub scheme: Scheme,
    /// Absent only for a code of no known scheme whose templates name no
    /// merchant and that carries no card scheme's merchant id.
    pub merchant_account: Option<MerchantAccount>,
    /// The merchant name (59), or the scheme's account data when the code
    /// has none (PromptPay's proxy, VietQR's bank and account).
    pub display_name: String,
    /// ISO 4217 alphabetic code of the transaction currency, such as "THB".
    pub currency: &'static str,
    pub warnings: Vec<Warning>,
}

impl ScannedQr {
    /// The amount the code fixes, in major units, if it fixes one.
    pub fn amount(&self) -> Option<&str> {
        self.qr.amount.as_deref()
    }
}

/// Reads a payload: any well-formed EMVCo TLV with a valid CRC, checked
/// against the profile of the scheme its templates name. Every rule broken
/// is an error naming the field; what the scheme allows and the base
/// specification does not is a warning on the result.
pub fn parse(payload: &str) -> Result<ScannedQr, QrError> {
    if payload.is_empty() {
        return Err(QrError::Empty);
    }
    let length = payload.chars().count();
    if length > PAYLOAD_CHARS_MAX {
        return Err(QrError::TooLong(length));
    }
    let fields = read::structure(payload)?;
    let qr = read::fields(&fields)?;
    scheme::scan(qr)
}

#[cfg(test)]
mod tests;
