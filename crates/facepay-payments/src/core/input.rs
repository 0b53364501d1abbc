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

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "json_invalid_field"
        } else {
            "json_malformed"
        };
        Failure::bad_request(
            code,
            format!("the request body is not the expected JSON: {e}"),
        )
    })
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
