//! Consumer-presented QR (CPM): the shopper's app shows a code the
//! merchant scans. It is Base64 of BER-TLV: the payload format indicator
//! (85, "CPV01"), then one application template (61) per card or account,
//! each with its AID (4F), label (50), PAN (5A) or track 2 equivalent
//! (57), and an application specific transparent template (63) carrying
//! the EMV cryptogram (9F26), its counter (9F36) and the unpredictable
//! number (9F37) the issuer checks, as for a card tap.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use thiserror::Error;

/// Longest code read, in Base64 characters.
pub const CONSUMER_CHARS_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsumerQrError {
    #[error("the code is {0} characters, over the limit of {CONSUMER_CHARS_MAX}")]
    TooLong(usize),
    #[error("the code is not Base64")]
    NotBase64,
    #[error("the data ends inside a tag or length at byte {at}")]
    Truncated { at: usize },
    #[error("a length at byte {at} is not one BER-TLV allows here")]
    BadLength { at: usize },
    #[error("a template holds another where none may (only 61 holds 63)")]
    TooDeep,
    #[error("the payload format indicator (85) must come first and be CPV01")]
    BadFormatIndicator,
    #[error("there is no application template (61)")]
    NoApplication,
    #[error("tag {tag:X}: {why}")]
    BadValue { tag: u32, why: &'static str },
}

impl ConsumerQrError {
    pub fn code(&self) -> &'static str {
        match self {
            ConsumerQrError::TooLong(_) => "cpm_too_long",
            ConsumerQrError::NotBase64 => "cpm_not_base64",
            ConsumerQrError::Truncated { .. } => "cpm_truncated",
            ConsumerQrError::BadLength { .. } => "cpm_bad_length",
            ConsumerQrError::TooDeep => "cpm_too_deep",
            ConsumerQrError::BadFormatIndicator => "cpm_bad_format_indicator",
            ConsumerQrError::NoApplication => "cpm_no_application",
            ConsumerQrError::BadValue { .. } => "cpm_bad_value",
        }
    }
}

/// The cryptogram an application computed for this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cryptogram {
    /// 9F26: the ARQC.
    pub arqc: [u8; 8],
    /// 9F36: the application transaction counter.
    pub atc: u16,
    /// 9F37: the unpredictable number it was computed over.
    pub unpredictable_number: [u8; 4],
}

/// One card or account the shopper offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// 4F: the application identifier, 5 to 16 bytes.
    pub aid: Vec<u8>,
    /// 50: the name shown to people.
    pub label: Option<String>,
    /// 5A, or the digits before the separator of 57.
    pub pan: Option<String>,
    pub cryptogram: Option<Cryptogram>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerQr {
    pub applications: Vec<Application>,
}

struct Tlv<'a> {
    tag: u32,
    constructed: bool,
    value: &'a [u8],
}

/// Splits BER-TLV bytes; `base` is where they start, for errors.
fn split(data: &[u8], base: usize) -> Result<Vec<Tlv<'_>>, ConsumerQrError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let start = at;
        let first = data[at];
        let mut tag = u32::from(first);
        at += 1;
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes while the high bit is set; EMV tags are
            // at most three bytes.
            loop {
                let b = *data
                    .get(at)
                    .ok_or(ConsumerQrError::Truncated { at: base + at })?;
                tag = (tag << 8) | u32::from(b);
                at += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if at - start >= 3 {
                    return Err(ConsumerQrError::BadLength { at: base + start });
                }
            }
        }
        let l = *data
            .get(at)
            .ok_or(ConsumerQrError::Truncated { at: base + at })?;
        at += 1;
        let len = match l {
            0..=0x7F => usize::from(l),
            0x81 => {
                let n = *data
                    .get(at)
                    .ok_or(ConsumerQrError::Truncated { at: base + at })?;
                at += 1;
                usize::from(n)
            }
            0x82 => {
                let bytes = data
                    .get(at..at + 2)
                    .ok_or(ConsumerQrError::Truncated { at: base + at })?;
                at += 2;
                usize::from(u16::from_be_bytes([bytes[0], bytes[1]]))
            }
            _ => return Err(ConsumerQrError::BadLength { at: base + at - 1 }),
        };
        let value = data
            .get(at..at + len)
            .ok_or(ConsumerQrError::Truncated { at: base + at })?;
        out.push(Tlv {
            tag,
            constructed: first & 0x20 != 0,
            value,
        });
        at += len;
    }
    Ok(out)
}

/// Packed BCD digits, padded with F: what 5A holds.
fn bcd(bytes: &[u8], tag: u32) -> Result<String, ConsumerQrError> {
    let mut digits = String::with_capacity(bytes.len() * 2);
    for nibble in bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match nibble {
            0..=9 => digits.push(char::from(b'0' + nibble)),
            0x0F => break,
            _ => {
                return Err(ConsumerQrError::BadValue {
                    tag,
                    why: "not packed decimal digits",
                });
            }
        }
    }
    if !(12..=19).contains(&digits.len()) {
        return Err(ConsumerQrError::BadValue {
            tag,
            why: "a card number is 12 to 19 digits",
        });
    }
    Ok(digits)
}

fn fixed<const N: usize>(
    value: &[u8],
    tag: u32,
    why: &'static str,
) -> Result<[u8; N], ConsumerQrError> {
    value
        .try_into()
        .map_err(|_| ConsumerQrError::BadValue { tag, why })
}

fn application(value: &[u8], base: usize) -> Result<Application, ConsumerQrError> {
    let mut app = Application {
        aid: Vec::new(),
        label: None,
        pan: None,
        cryptogram: None,
    };
    for t in split(value, base)? {
        match t.tag {
            0x4F => {
                if !(5..=16).contains(&t.value.len()) {
                    return Err(ConsumerQrError::BadValue {
                        tag: 0x4F,
                        why: "an AID is 5 to 16 bytes",
                    });
                }
                app.aid = t.value.to_vec();
            }
            0x50 => {
                let label = std::str::from_utf8(t.value)
                    .ok()
                    .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)));
                app.label = Some(
                    label
                        .ok_or(ConsumerQrError::BadValue {
                            tag: 0x50,
                            why: "a label is printable ASCII",
                        })?
                        .to_owned(),
                );
            }
            0x5A => app.pan = Some(bcd(t.value, 0x5A)?),
            0x57 if app.pan.is_none() => {
                // Track 2: the PAN, then D, then expiry and service code.
                let hex: String = t.value.iter().map(|b| format!("{b:02X}")).collect();
                let pan = hex.split('D').next().unwrap_or_default();
                if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ConsumerQrError::BadValue {
                        tag: 0x57,
                        why: "track 2 starts with a 12 to 19 digit card number and D",
                    });
                }
                app.pan = Some(pan.to_owned());
            }
            0x63 if t.constructed => {
                let mut arqc = None;
                let mut atc = None;
                let mut un = None;
                for inner in split(t.value, base)? {
                    match inner.tag {
                        0x9F26 => {
                            arqc = Some(fixed::<8>(inner.value, 0x9F26, "a cryptogram is 8 bytes")?)
                        }
                        0x9F36 => {
                            atc = Some(u16::from_be_bytes(fixed::<2>(
                                inner.value,
                                0x9F36,
                                "a counter is 2 bytes",
                            )?))
                        }
                        0x9F37 => {
                            un = Some(fixed::<4>(
                                inner.value,
                                0x9F37,
                                "an unpredictable number is 4 bytes",
                            )?)
                        }
                        _ if inner.constructed => return Err(ConsumerQrError::TooDeep),
                        _ => {}
                    }
                }
                app.cryptogram = match (arqc, atc, un) {
                    (Some(arqc), Some(atc), Some(unpredictable_number)) => Some(Cryptogram {
                        arqc,
                        atc,
                        unpredictable_number,
                    }),
                    (None, None, None) => None,
                    _ => {
                        return Err(ConsumerQrError::BadValue {
                            tag: 0x63,
                            why: "a cryptogram needs 9F26, 9F36 and 9F37 together",
                        });
                    }
                };
            }
            _ if t.constructed => return Err(ConsumerQrError::TooDeep),
            // Other card data (name, language, version, ...) is not ours
            // to keep.
            _ => {}
        }
    }
    if app.aid.is_empty() {
        return Err(ConsumerQrError::BadValue {
            tag: 0x61,
            why: "an application template needs its AID (4F)",
        });
    }
    Ok(app)
}

/// Reads a consumer-presented code (Base64 of BER-TLV).
pub fn parse_consumer(code: &str) -> Result<ConsumerQr, ConsumerQrError> {
    if code.len() > CONSUMER_CHARS_MAX {
        return Err(ConsumerQrError::TooLong(code.len()));
    }
    let data = BASE64
        .decode(code.trim())
        .map_err(|_| ConsumerQrError::NotBase64)?;
    let top = split(&data, 0)?;
    match top.first() {
        Some(t) if t.tag == 0x85 && t.value == b"CPV01" => {}
        _ => return Err(ConsumerQrError::BadFormatIndicator),
    }
    let mut applications = Vec::new();
    for t in &top[1..] {
        match t.tag {
            0x61 => applications.push(application(t.value, 0)?),
            0x85 => return Err(ConsumerQrError::BadFormatIndicator),
            // The common data template (62) and others carry nothing the
            // hub uses.
            _ => {}
        }
    }
    if applications.is_empty() {
        return Err(ConsumerQrError::NoApplication);
    }
    Ok(ConsumerQr { applications })
}

fn put(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    let bytes = tag.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    out.extend_from_slice(&bytes[first..]);
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
}

/// Writes a consumer-presented code, as a shopper's app would show it.
pub fn encode_consumer(qr: &ConsumerQr) -> String {
    let mut out = Vec::new();
    put(&mut out, 0x85, b"CPV01");
    for app in &qr.applications {
        let mut inner = Vec::new();
        put(&mut inner, 0x4F, &app.aid);
        if let Some(label) = &app.label {
            put(&mut inner, 0x50, label.as_bytes());
        }
        if let Some(pan) = &app.pan {
            let mut digits: Vec<u8> = pan.bytes().map(|b| b - b'0').collect();
            if digits.len() % 2 == 1 {
                digits.push(0x0F);
            }
            let packed: Vec<u8> = digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
            put(&mut inner, 0x5A, &packed);
        }
        if let Some(c) = &app.cryptogram {
            let mut transparent = Vec::new();
            put(&mut transparent, 0x9F26, &c.arqc);
            put(&mut transparent, 0x9F36, &c.atc.to_be_bytes());
            put(&mut transparent, 0x9F37, &c.unpredictable_number);
            put(&mut inner, 0x63, &transparent);
        }
        put(&mut out, 0x61, &inner);
    }
    BASE64.encode(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn sample() -> ConsumerQr {
        ConsumerQr {
            applications: vec![Application {
                aid: vec![0xA0, 0, 0, 0, 0x03, 0x10, 0x10],
                label: Some("VISA DEBIT".into()),
                pan: Some("4111111111111111".into()),
                cryptogram: Some(Cryptogram {
                    arqc: [1, 2, 3, 4, 5, 6, 7, 8],
                    atc: 0x0042,
                    unpredictable_number: [0xDE, 0xAD, 0xBE, 0xEF],
                }),
            }],
        }
    }

    fn code(parts: &[(u32, Vec<u8>)]) -> String {
        let mut out = Vec::new();
        for (tag, value) in parts {
            put(&mut out, *tag, value);
        }
        BASE64.encode(out)
    }

    #[test]
    fn a_code_round_trips_with_its_cryptogram() {
        let qr = sample();
        assert_eq!(parse_consumer(&encode_consumer(&qr)).unwrap(), qr);
        let mut odd = sample();
        odd.applications[0].pan = Some("4111111111111".into());
        assert_eq!(parse_consumer(&encode_consumer(&odd)).unwrap(), odd);
    }

    #[test]
    fn the_card_number_comes_from_track_2_when_5a_is_absent() {
        let mut app = Vec::new();
        put(&mut app, 0x4F, &[0xA0, 0, 0, 0, 0x04, 0x10, 0x10]);
        put(
            &mut app,
            0x57,
            &[
                0x54, 0x13, 0x33, 0x90, 0x00, 0x00, 0x15, 0x13, 0xD2, 0x51, 0x22, 0x01,
            ],
        );
        let qr = parse_consumer(&code(&[(0x85, b"CPV01".to_vec()), (0x61, app)])).unwrap();
        assert_eq!(qr.applications[0].pan.as_deref(), Some("5413339000001513"));
    }

    #[test]
    fn every_broken_rule_is_named() {
        let aid = |n: usize| {
            let mut app = Vec::new();
            put(&mut app, 0x4F, &vec![0xA0; n]);
            app
        };
        let with_app = |extra: &[(u32, Vec<u8>)]| {
            let mut app = aid(7);
            for (tag, value) in extra {
                put(&mut app, *tag, value);
            }
            code(&[(0x85, b"CPV01".to_vec()), (0x61, app)])
        };
        let mut half = Vec::new();
        put(&mut half, 0x9F26, &[0; 8]);
        let good = encode_consumer(&sample());
        let cases = [
            ("x".repeat(CONSUMER_CHARS_MAX + 1), "cpm_too_long"),
            ("not base64!".to_owned(), "cpm_not_base64"),
            (
                code(&[(0x85, b"CPV02".to_vec())]),
                "cpm_bad_format_indicator",
            ),
            (
                code(&[(0x61, aid(7)), (0x85, b"CPV01".to_vec())]),
                "cpm_bad_format_indicator",
            ),
            (code(&[(0x85, b"CPV01".to_vec())]), "cpm_no_application"),
            (
                BASE64.encode(&BASE64.decode(&good).unwrap()[..20]),
                "cpm_truncated",
            ),
            (BASE64.encode([0x85, 0x83, 0, 0, 5]), "cpm_bad_length"),
            (
                code(&[(0x85, b"CPV01".to_vec()), (0x61, aid(3))]),
                "cpm_bad_value",
            ),
            (with_app(&[(0x5A, vec![0x41, 0x11, 0xAB])]), "cpm_bad_value"),
            (with_app(&[(0x63, half)]), "cpm_bad_value"),
            (with_app(&[(0x50, vec![0xFF])]), "cpm_bad_value"),
            (with_app(&[(0x70, vec![0x01, 0x00])]), "cpm_too_deep"),
        ];
        for (text, want) in cases {
            let error = parse_consumer(&text).expect_err(&text);
            assert_eq!(error.code(), want, "{text}: {error}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_consumer(&BASE64.encode(&bytes));
            let mut framed = vec![0x85, 0x05];
            framed.extend_from_slice(b"CPV01");
            framed.extend_from_slice(&bytes);
            let _ = parse_consumer(&BASE64.encode(&framed));
        }

        #[test]
        fn any_generated_code_parses_back(
            aid in proptest::collection::vec(any::<u8>(), 5..=16),
            pan in "[0-9]{12,19}",
            label in proptest::option::of("[A-Z ]{1,16}"),
            arqc in any::<[u8; 8]>(),
            atc in any::<u16>(),
            un in any::<[u8; 4]>(),
        ) {
            let qr = ConsumerQr {
                applications: vec![Application {
                    aid,
                    label,
                    pan: Some(pan),
                    cryptogram: Some(Cryptogram { arqc, atc, unpredictable_number: un }),
                }],
            };
            prop_assert_eq!(parse_consumer(&encode_consumer(&qr)).unwrap(), qr);
        }
    }
}
