//! Terminal request signatures. A terminal signs, with its Ed25519 key,
//! the method, path, timestamp, nonce and the SHA-256 of the body; the server
//! refuses a request outside the time window or with a nonce it has seen.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::KeyError;

pub const HEADER_TERMINAL: &str = "x-facepay-terminal";
pub const HEADER_TIMESTAMP: &str = "x-facepay-timestamp";
pub const HEADER_NONCE: &str = "x-facepay-nonce";
pub const HEADER_SIGNATURE: &str = "x-facepay-signature";

/// How far a request's timestamp may be from the server's clock.
pub const WINDOW_MS: i64 = 60_000;
pub const NONCE_LEN_MIN: usize = 16;
pub const NONCE_LEN_MAX: usize = 64;

pub fn canonical(method: &str, path: &str, timestamp_ms: i64, nonce: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{timestamp_ms}\n{nonce}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

/// The four headers of a signed request.
pub struct SignedHeaders {
    pub terminal_id: String,
    pub timestamp_ms: i64,
    pub nonce: String,
    pub signature: String,
}

pub fn sign(
    key: &SigningKey,
    terminal_id: &str,
    method: &str,
    path: &str,
    timestamp_ms: i64,
    body: &[u8],
) -> Result<SignedHeaders, KeyError> {
    let nonce = hex::encode(crate::keys::random_bytes::<16>()?);
    let message = canonical(method, path, timestamp_ms, &nonce, body);
    Ok(SignedHeaders {
        terminal_id: terminal_id.to_owned(),
        timestamp_ms,
        nonce,
        signature: BASE64.encode(key.sign(message.as_bytes()).to_bytes()),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the request is not signed: terminal, timestamp, nonce and signature headers are required"
    )]
    Missing,
    #[error("the nonce must be {NONCE_LEN_MIN} to {NONCE_LEN_MAX} letters, digits, '-' or '_'")]
    BadNonce,
    #[error("the request's timestamp is outside the accepted window; check the terminal's clock")]
    Expired,
    #[error("the signature does not verify with this terminal's key")]
    BadSignature,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::BadNonce => "nonce_invalid",
            SignatureError::Expired => "request_expired",
            SignatureError::BadSignature => "signature_invalid",
        }
    }
}

pub fn check_nonce(nonce: &str) -> Result<(), SignatureError> {
    let ok = (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SignatureError::BadNonce)
    }
}

pub fn verify(
    public_key: &[u8],
    headers: &SignedHeaders,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    check_nonce(&headers.nonce)?;
    if now_ms.abs_diff(headers.timestamp_ms) > WINDOW_MS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    let key_bytes: [u8; 32] = public_key
        .try_into()
        .map_err(|_| SignatureError::BadSignature)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| SignatureError::BadSignature)?;
    let signature_bytes: [u8; 64] = BASE64
        .decode(&headers.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::BadSignature)?;
    let message = canonical(method, path, headers.timestamp_ms, &headers.nonce, body);
    key.verify(message.as_bytes(), &Signature::from_bytes(&signature_bytes))
        .map_err(|_| SignatureError::BadSignature)
}

pub fn new_terminal_key() -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&crate::keys::random_bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_part_of_the_request() {
        let key = new_terminal_key().unwrap();
        let public = key.verifying_key().to_bytes();
        let path = "/v1/terminal/payments";
        let h = sign(&key, "t1", "POST", path, 1_000, b"{\"amount\":\"4500\"}").unwrap();
        assert_eq!(
            verify(&public, &h, "POST", path, b"{\"amount\":\"4500\"}", 1_000),
            Ok(())
        );
        let bad = Err(SignatureError::BadSignature);
        assert_eq!(
            verify(&public, &h, "POST", path, b"{\"amount\":\"9500\"}", 1_000),
            bad
        );
        assert_eq!(
            verify(&public, &h, "PUT", path, b"{\"amount\":\"4500\"}", 1_000),
            bad
        );
        assert_eq!(
            verify(
                &public,
                &h,
                "POST",
                "/v1/x",
                b"{\"amount\":\"4500\"}",
                1_000
            ),
            bad
        );
        let other = new_terminal_key().unwrap().verifying_key().to_bytes();
        assert_eq!(
            verify(&other, &h, "POST", path, b"{\"amount\":\"4500\"}", 1_000),
            bad
        );
        assert_eq!(
            verify(
                &public,
                &h,
                "POST",
                path,
                b"{\"amount\":\"4500\"}",
                1_000 + WINDOW_MS + 1
            ),
            Err(SignatureError::Expired)
        );
        // A timestamp as far from now as an i64 goes is refused, not an
        // overflow.
        for far_ms in [i64::MIN, i64::MAX] {
            let body = b"{\"amount\":\"4500\"}";
            let far = sign(&key, "t1", "POST", path, far_ms, body).unwrap();
            assert_eq!(
                verify(&public, &far, "POST", path, body, 1_000),
                Err(SignatureError::Expired)
            );
        }
        let mut shifted = sign(&key, "t1", "POST", path, 1_000, b"").unwrap();
        shifted.timestamp_ms += 1;
        assert_eq!(verify(&public, &shifted, "POST", path, b"", 1_000), bad);
        assert_eq!(check_nonce("short"), Err(SignatureError::BadNonce));
        assert_eq!(check_nonce(&"a".repeat(65)), Err(SignatureError::BadNonce));
        assert_eq!(
            check_nonce("0123456789abcdef; drop"),
            Err(SignatureError::BadNonce)
        );
    }
}
