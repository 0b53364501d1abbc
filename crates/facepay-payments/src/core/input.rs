//! Checks on what a request brings, shared by every service: the
//! idempotency key, the JSON body, base64 frames and phone numbers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;

use super::IDEMPOTENCY_KEY_LEN_MAX;
use crate::error::Failure;
use crate::face::FRAMES_MAX;

pub fn check_idempotency_key(key: &str) -> Result<(), Failure> {
    if key.is_empty() {
        return Err(Failure::bad_request(
            "idempotency_key_missing",
            "every write needs an Idempotency-Key header (a fresh random string per new request)",
        ));
    }
    if key.len() > IDEMPOTENCY_KEY_LEN_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::bad_request(
            "idempotency_key_invalid",
            format!(
                "the Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters"
            ),
        ));
    }
    Ok(())
}

/// A request body as a JSON value, with each number that has no fractional
/// part (`10.0`) read as the integer it is: JSON Schema, which describes the
/// API, counts such numbers as integers.
pub fn json_value(body: &[u8]) -> Result<serde_json::Value, Failure> {
    let mut value = serde_json::from_slice(body).map_err(|e| {
        Failure::bad_request(
            "json_malformed",
            format!("the request body is not JSON: {e}"),
        )
    })?;
    integral_numbers(&mut value);
    Ok(value)
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_value(json_value(body)?).map_err(|e| {
        Failure::bad_request(
            "json_invalid_field",
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

/// Rewrites each number with no fractional part as an integer, inside
/// i64's range. The bounds are open: an integer literal past i64 (which the
/// parser reads as a float) lands on or beyond them, and stays a float that
/// no integer field takes. Depth is bounded by the parser's recursion limit.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Number(n) => {
            let integral = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && -I64_BOUND < *f && *f < I64_BOUND);
            if let Some(f) = integral {
                *n = (f as i64).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

pub(crate) fn decode_frames(frames: &[String]) -> Result<Vec<Vec<u8>>, Failure> {
    if frames.is_empty() || frames.len() > FRAMES_MAX {
        return Err(Failure::unprocessable(
            "frames_count",
            format!("send 1 to {FRAMES_MAX} frames"),
        ));
    }
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.len() > facepay_face::decode::IMAGE_BYTES_MAX / 3 * 4 + 4 {
                return Err(Failure::new(
                    413,
                    "image_too_large",
                    format!(
                        "frame {i} is over {} bytes",
                        facepay_face::decode::IMAGE_BYTES_MAX
                    ),
                ));
            }
            BASE64.decode(f).map_err(|_| {
                Failure::bad_request("frame_not_base64", format!("frame {i} is not valid base64"))
            })
        })
        .collect()
}

pub(crate) fn normalise_phone(phone: &str) -> Result<String, Failure> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::unprocessable(
            "phone_invalid",
            "the phone number must be 8 to 15 digits, with an optional leading '+'",
        ));
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_integers_and_no_precision_is_invented() {
        let value = json_value(br#"{"a":10.0,"b":-3.0,"c":2.5,"d":[7.0]}"#).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": 10, "b": -3, "c": 2.5, "d": [7]})
        );
        let month: u8 = parse_json(b"12.0").unwrap();
        assert_eq!(month, 12);
        let big: i64 = parse_json(b"9007199254740992.0").unwrap();
        assert_eq!(big, 1 << 53);
        for text in ["-9223372036854775809", "1e19", "-9.3e18"] {
            assert_eq!(
                parse_json::<i64>(text.as_bytes()).unwrap_err().code,
                "json_invalid_field",
                "{text}"
            );
        }
        assert_eq!(parse_json::<i64>(b"{").unwrap_err().code, "json_malformed");
    }
}
