//! The `Facepay-Signature` header: `t=<unix seconds>,v1=<hex>`, where the
//! hex is HMAC-SHA256 keyed with the endpoint's secret (the whole string
//! shown at creation, `whsec_…`, as UTF-8 bytes) over `"<t>.<body>"`. The
//! timestamp is signed with the body, so a captured delivery cannot be
//! replayed later than the receiver's tolerance.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const HEADER_SIGNATURE: &str = "Facepay-Signature";
pub const HEADER_EVENT_ID: &str = "Facepay-Event-Id";
/// What every signing secret starts with, so one pasted in the wrong
/// place is recognised.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a receiver should let a signature's time be from its own
/// clock: five minutes, as [`verify`] does.
pub const TOLERANCE_S: i64 = 300;
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Longest header [`verify`] reads; a real one is under 100 bytes.
const HEADER_LEN_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature's time is more than {TOLERANCE_S} seconds from now")]
    Expired,
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// A new signing secret: `whsec_` and 64 hex digits. The generator
/// failing is the caller's error to answer: no secret from a fallback
/// would be safe.
pub fn new_secret() -> Result<Zeroizing<String>, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    getrandom::fill(bytes.as_mut_slice())?;
    Ok(Zeroizing::new(format!(
        "{SECRET_PREFIX}{}",
        hex::encode(bytes.as_slice())
    )))
}

fn mac(secret: &[u8], timestamp_s: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header's value for `body` sent at `timestamp_s`.
pub fn sign(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp_s, body).finalize().into_bytes();
    format!("t={timestamp_s},v1={}", hex::encode(digest))
}

/// Checks a header as a receiver should: the time within
/// [`TOLERANCE_S`] of `now_s`, and one of its `v1` signatures (several
/// while a secret is rolled) the HMAC of `"<t>.<body>"`, compared in
/// constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: i64) -> Result<(), SignatureError> {
    if header.len() > HEADER_LEN_MAX {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp_s = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp_s.is_none() => {
                timestamp_s = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            Some(("v1", hex_digest)) => {
                signatures.push(hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?)
            }
            // Other schemes a later version may add are skipped.
            Some((_, _)) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp_s = timestamp_s.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_s.abs_diff(timestamp_s) > TOLERANCE_S.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    let expected = mac(secret, timestamp_s, body);
    if signatures
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_body_and_time_only() {
        let secret = new_secret().unwrap();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() == 6 + 64);
        let key = secret.as_bytes();
        let body = br#"{"id":"evt_1","type":"payment.captured"}"#;
        let header = sign(key, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(key, &header, body, 1_700_000_100), Ok(()));
        assert_eq!(
            verify(b"whsec_other", &header, body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(key, &header, b"{}", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(key, &header, body, 1_700_000_000 + TOLERANCE_S + 1),
            Err(SignatureError::Expired)
        );
        // A time as far from now as an i64 goes is refused, not an overflow.
        for far_s in [i64::MIN, i64::MAX] {
            let far = sign(key, far_s, body);
            assert_eq!(
                verify(key, &far, body, 1_700_000_000),
                Err(SignatureError::Expired)
            );
        }
        // The time is signed: moving it breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(key, &moved, body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        // A second v1 (a secret being rolled) is tried as well.
        let other = sign(b"whsec_old", 1_700_000_000, body);
        let both = format!("{other},{}", &header[header.find("v1").unwrap()..]);
        assert_eq!(verify(key, &both, body, 1_700_000_000), Ok(()));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "nonsense"] {
            assert_eq!(
                verify(key, bad, body, 1),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    /// The documented recipe, step by step, agrees with `sign`: this is
    /// what docs/webhooks.md tells a receiver to compute.
    #[test]
    fn the_documented_recipe_computes_the_same_digest() {
        let secret = "whsec_0123456789abcdef";
        let body = br#"{"id":"evt_0"}"#;
        let signed_payload = [b"1700000000.".as_slice(), body].concat();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&signed_payload);
        let digest = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            sign(secret.as_bytes(), 1_700_000_000, body),
            format!("t=1700000000,v1={digest}")
        );
        // A known answer, so that a change to the recipe cannot pass
        // unnoticed (the same value docs/webhooks.md shows).
        assert_eq!(
            digest,
            "bfd360dc4667eef6231c7cb23c16e74b316a7141a8c6131947705af1eaa9548d"
        );
    }
}
