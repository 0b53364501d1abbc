//! The channel between the core and a vault in another process: every
//! request and every answer is encrypted and authenticated with keys both
//! sides derive from one pre-shared secret, and each request carries a
//! timestamp and a single-use nonce, so a request cannot be read, forged,
//! altered or replayed, and an answer cannot be forged or moved to another
//! request.
//!
//! Hand-written on purpose, in a few lines over AES-256-GCM and HKDF: TLS
//! would authenticate the core with certificates that an operator has to
//! issue and renew, and rustls offers no handshake on a pre-shared key,
//! which is what two processes of one deployment naturally share.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::random_bytes_into;

pub const HEADER_TIMESTAMP: &str = "x-vault-timestamp";
pub const HEADER_NONCE: &str = "x-vault-nonce";
/// How far a request's clock may be from the vault's.
pub const WINDOW_MS: i64 = 30_000;
/// Nonces remembered at most; beyond it the vault refuses until old ones
/// expire out of the window.
pub const REPLAY_CACHE_MAX: usize = 65_536;
/// The largest request or answer body.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
pub const SECRET_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("the channel secret must be {} hex digits", 2 * SECRET_BYTES)]
    BadSecret,
    #[error("cannot read or write the channel secret: {0}")]
    Io(String),
    #[error("the request's timestamp is outside the {WINDOW_MS} ms window")]
    Stale,
    #[error("the request's nonce was already used")]
    Replayed,
    #[error("the message does not authenticate under the channel key")]
    Forged,
    #[error("too many requests in the replay window")]
    Busy,
    #[error("the operating system's random generator failed")]
    Random,
}

impl ChannelError {
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::BadSecret | ChannelError::Io(_) => "channel_secret",
            ChannelError::Random => "random_unavailable",
            ChannelError::Stale => "channel_stale",
            ChannelError::Replayed => "channel_replayed",
            ChannelError::Forged => "channel_forged",
            ChannelError::Busy => "channel_busy",
        }
    }
}

/// The two directional keys of the channel.
pub struct ChannelKey {
    to_vault: Aes256Gcm,
    from_vault: Aes256Gcm,
}

/// A request as it travels: headers and an encrypted body.
pub struct SealedRequest {
    pub timestamp_ms: i64,
    pub nonce: String,
    pub body: Vec<u8>,
}

impl ChannelKey {
    pub fn from_secret_hex(text: &str) -> Result<Self, ChannelError> {
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        hex::decode_to_slice(text.trim(), secret.as_mut_slice())
            .map_err(|_| ChannelError::BadSecret)?;
        let hkdf = Hkdf::<Sha256>::new(Some(b"facepay vault channel v1"), secret.as_slice());
        let derive = |label: &[u8]| -> Result<Aes256Gcm, ChannelError> {
            let mut key = Zeroizing::new([0u8; 32]);
            hkdf.expand(label, key.as_mut_slice())
                .map_err(|_| ChannelError::BadSecret)?;
            Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| ChannelError::BadSecret)
        };
        Ok(Self {
            to_vault: derive(b"core to vault")?,
            from_vault: derive(b"vault to core")?,
        })
    }

    pub fn read_file(path: &Path) -> Result<Self, ChannelError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| ChannelError::Io(format!("{}: {e}", path.display())))?,
        );
        Self::from_secret_hex(&text)
    }

    /// Reads the secret at `path`, creating it (mode 0600) if absent.
    pub fn open_or_create_file(path: &Path) -> Result<Self, ChannelError> {
        if !path.exists() {
            let io = |e: std::io::Error| ChannelError::Io(format!("{}: {e}", path.display()));
            if let Some(dir) = path.parent() {
                facepay_store::files::private_dir(dir).map_err(io)?;
            }
            let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
            random_bytes_into(secret.as_mut_slice()).map_err(|_| ChannelError::Random)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            let text = Zeroizing::new(format!("{}\n", hex::encode(secret.as_slice())));
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Self::read_file(path)
    }

    pub fn seal_request(
        &self,
        op: &str,
        plaintext: &[u8],
        now_ms: i64,
    ) -> Result<SealedRequest, ChannelError> {
        let mut nonce = [0u8; NONCE_BYTES];
        random_bytes_into(&mut nonce).map_err(|_| ChannelError::Random)?;
        let body = self
            .to_vault
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: request_aad(op, now_ms).as_bytes(),
                },
            )
            .unwrap_or_default();
        Ok(SealedRequest {
            timestamp_ms: now_ms,
            nonce: hex::encode(nonce),
            body,
        })
    }

    /// Opens a request for `op`: in the window, authentic, and first.
    pub fn open_request(
        &self,
        op: &str,
        request: &SealedRequest,
        now_ms: i64,
        guard: &ReplayGuard,
    ) -> Result<Zeroizing<Vec<u8>>, ChannelError> {
        if now_ms.abs_diff(request.timestamp_ms) > WINDOW_MS.unsigned_abs() {
            return Err(ChannelError::Stale);
        }
        let nonce = parse_nonce(&request.nonce)?;
        let plaintext = self
            .to_vault
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &request.body,
                    aad: request_aad(op, request.timestamp_ms).as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ChannelError::Forged)?;
        // Only authentic requests reach the cache, so forgeries cannot fill it.
        guard.first_use(nonce, request.timestamp_ms, now_ms)?;
        Ok(plaintext)
    }

    /// An answer bound to the request it answers.
    pub fn seal_response(
        &self,
        request_nonce: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let mut nonce = [0u8; NONCE_BYTES];
        random_bytes_into(&mut nonce).map_err(|_| ChannelError::Random)?;
        let sealed = self
            .from_vault
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: response_aad(request_nonce).as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        Ok(body)
    }

    pub fn open_response(
        &self,
        request_nonce: &str,
        body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ChannelError> {
        if body.len() < NONCE_BYTES {
            return Err(ChannelError::Forged);
        }
        let (nonce, sealed) = body.split_at(NONCE_BYTES);
        self.from_vault
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: response_aad(request_nonce).as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ChannelError::Forged)
    }
}

fn request_aad(op: &str, timestamp_ms: i64) -> String {
    format!("facepay vault request|{op}|{timestamp_ms}")
}

fn response_aad(request_nonce: &str) -> String {
    format!("facepay vault response|{request_nonce}")
}

fn parse_nonce(text: &str) -> Result<[u8; NONCE_BYTES], ChannelError> {
    let mut nonce = [0u8; NONCE_BYTES];
    hex::decode_to_slice(text, &mut nonce).map_err(|_| ChannelError::Forged)?;
    Ok(nonce)
}

/// The nonces seen within the window.
#[derive(Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<[u8; NONCE_BYTES], i64>>,
}

impl ReplayGuard {
    fn first_use(
        &self,
        nonce: [u8; NONCE_BYTES],
        timestamp_ms: i64,
        now_ms: i64,
    ) -> Result<(), ChannelError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REPLAY_CACHE_MAX {
            seen.retain(|_, at_ms| now_ms.abs_diff(*at_ms) <= WINDOW_MS.unsigned_abs());
        }
        if seen.len() >= REPLAY_CACHE_MAX {
            return Err(ChannelError::Busy);
        }
        if seen.insert(nonce, timestamp_ms).is_some() {
            return Err(ChannelError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ChannelKey {
        ChannelKey::from_secret_hex(&hex::encode([byte; SECRET_BYTES])).unwrap()
    }

    #[test]
    fn requests_open_once_in_the_window_under_the_right_key_only() {
        let (core, vault, guard) = (key(7), key(7), ReplayGuard::default());
        let now = 1_000_000;
        let sealed = core
            .seal_request("tokenize", b"{\"pan\":\"4242\"}", now)
            .unwrap();
        assert!(!sealed.body.windows(4).any(|w| w == b"4242"));
        assert_eq!(
            vault
                .open_request("tokenize", &sealed, now + 5, &guard)
                .unwrap()
                .as_slice(),
            b"{\"pan\":\"4242\"}"
        );
        assert_eq!(
            vault.open_request("tokenize", &sealed, now + 6, &guard),
            Err(ChannelError::Replayed)
        );
        let again = core.seal_request("tokenize", b"x", now).unwrap();
        assert_eq!(
            key(8).open_request("tokenize", &again, now, &guard),
            Err(ChannelError::Forged)
        );
        assert_eq!(
            vault.open_request("forget", &again, now, &guard),
            Err(ChannelError::Forged),
            "a request is bound to its operation"
        );
        let moved = SealedRequest {
            timestamp_ms: again.timestamp_ms + 1,
            nonce: again.nonce.clone(),
            body: again.body.clone(),
        };
        assert_eq!(
            vault.open_request("tokenize", &moved, now, &guard),
            Err(ChannelError::Forged),
            "and to its timestamp"
        );
        assert_eq!(
            vault.open_request("tokenize", &again, now + WINDOW_MS + 1, &guard),
            Err(ChannelError::Stale)
        );
        for far_ms in [i64::MIN, i64::MAX] {
            let far = SealedRequest {
                timestamp_ms: far_ms,
                nonce: again.nonce.clone(),
                body: again.body.clone(),
            };
            assert_eq!(
                vault.open_request("tokenize", &far, now, &guard),
                Err(ChannelError::Stale),
                "a timestamp as far as an i64 goes is stale, not an overflow"
            );
        }
        // The core's own key cannot open what it sent as if it were an answer.
        assert!(core.open_response(&again.nonce, &again.body).is_err());
    }

    #[test]
    fn answers_are_bound_to_their_request() {
        let (core, vault) = (key(1), key(1));
        let answer = vault.seal_response("aa", b"{\"ok\":1}").unwrap();
        assert_eq!(
            core.open_response("aa", &answer).unwrap().as_slice(),
            b"{\"ok\":1}"
        );
        assert!(core.open_response("bb", &answer).is_err());
        assert!(core.open_response("aa", &answer[..5]).is_err());
        assert!(ChannelKey::from_secret_hex("abc").is_err());
    }
}
