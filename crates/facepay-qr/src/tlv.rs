//! The text TLV of EMVCo QR payloads: a two-digit id, a two-digit length
//! and that many characters of value, repeated; templates nest the same
//! encoding inside a value.

use crate::QrError;

/// One data object, with where its id starts (in characters) for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub id: u8,
    pub value: String,
    pub at: usize,
}

fn two_digits(chars: &[char], at: usize) -> Option<u8> {
    match chars.get(at..at + 2)? {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((*a as u8 - b'0') * 10 + (*b as u8 - b'0'))
        }
        _ => None,
    }
}

/// Splits `text` into fields; `offset` is where `text` starts in the whole
/// payload, so errors point into it.
pub fn split(text: &str, offset: usize) -> Result<Vec<Field>, QrError> {
    let chars: Vec<char> = text.chars().collect();
    let mut fields = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let id = two_digits(&chars, at).ok_or(QrError::BadId { at: offset + at })?;
        if chars.len() < at + 4 {
            return Err(QrError::Truncated { at: offset + at });
        }
        let len = two_digits(&chars, at + 2).ok_or(QrError::BadLength {
            id,
            at: offset + at + 2,
        })?;
        if len == 0 {
            return Err(QrError::BadLength {
                id,
                at: offset + at + 2,
            });
        }
        let start = at + 4;
        let end = start + usize::from(len);
        let value = chars
            .get(start..end)
            .ok_or(QrError::Truncated { at: offset + at })?;
        fields.push(Field {
            id,
            value: value.iter().collect(),
            at: offset + at,
        });
        at = end;
    }
    Ok(fields)
}

/// Writes one field; values over 99 characters or empty cannot be written.
pub fn put(out: &mut String, id: u8, value: &str) -> Result<(), QrError> {
    let len = value.chars().count();
    if id > 99 || !(1..=99).contains(&len) {
        return Err(QrError::BadValue {
            id,
            why: "values are 1 to 99 characters",
        });
    }
    out.push_str(&format!("{id:02}{len:02}{value}"));
    Ok(())
}
