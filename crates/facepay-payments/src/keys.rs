//! Secrets at rest: the data key that seals templates and card numbers, and
//! the hashes of PINs, tokens and API keys.
//!
//! One AES-256-GCM key from a file in the data directory, created on first
//! start. Associated data binds every ciphertext to what it belongs to (a
//! template to its user and model), so a ciphertext moved to another row
//! does not open.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the data key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the data key file {0} is not {KEY_BYTES} bytes")]
    BadKeyFile(String),
    #[error("a ciphertext did not open: wrong key, wrong owner or tampered")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("hashing failed: {0}")]
    Hash(String),
}

pub struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl DataKey {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let key = Zeroizing::new(random_bytes::<KEY_BYTES>());
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                file.write_all(key.as_slice()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Zeroizing::new(key.to_vec())
            }
            Err(e) => return Err(io(e)),
        };
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| KeyError::BadKeyFile(path.display().to_string()))?;
        // The id names the key without revealing it, so rotation can tell
        // which records it has re-sealed.
        let id = format!(
            "local-{}",
            &hex::encode(Sha256::digest(bytes.as_slice()))[..12]
        );
        Ok(Self { id, cipher })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, plaintext: &[u8], associated: &str) -> Result<Sealed, KeyError> {
        let nonce = random_bytes::<NONCE_BYTES>();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Seal)?;
        Ok(Sealed {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        associated: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if nonce.len() != NONCE_BYTES {
            return Err(KeyError::Open);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Open)
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // A machine whose RNG fails cannot issue keys, nonces or tokens safely.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("operating system RNG failed: {e}"));
    bytes
}

/// A new bearer secret (user token, API key) and the hash to store. The
/// secret has 256 bits of entropy, so a plain SHA-256 suffices; a slow hash
/// is for low-entropy secrets like PINs.
pub fn new_secret(prefix: &str) -> (String, String) {
    let secret = format!("{prefix}_{}", hex::encode(random_bytes::<32>()));
    let hash = secret_hash(&secret);
    (secret, hash)
}

pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Argon2id with the crate's default cost (19 MiB, 2 passes).
pub fn hash_pin(pin: &str) -> Result<String, KeyError> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| KeyError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| KeyError::Hash(e.to_string()))
}

pub fn pin_matches(pin: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_for_its_owner_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::load_or_create(&dir.path().join("data.key")).unwrap();
        let sealed = key.seal(b"template bytes", "template:u1:sface").unwrap();
        let opened = key
            .open(&sealed.nonce, &sealed.ciphertext, "template:u1:sface")
            .unwrap();
        assert_eq!(opened.as_slice(), b"template bytes");
        assert!(
            key.open(&sealed.nonce, &sealed.ciphertext, "template:u2:sface")
                .is_err()
        );
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 1;
        assert!(
            key.open(&sealed.nonce, &tampered, "template:u1:sface")
                .is_err()
        );

        let same = DataKey::load_or_create(&dir.path().join("data.key")).unwrap();
        assert_eq!(same.id(), key.id());
        assert!(
            same.open(&sealed.nonce, &sealed.ciphertext, "template:u1:sface")
                .is_ok()
        );
        let other = DataKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.id(), key.id());
        assert!(
            other
                .open(&sealed.nonce, &sealed.ciphertext, "template:u1:sface")
                .is_err()
        );
    }

    #[test]
    fn pins_are_salted_slow_hashes() {
        let a = hash_pin("123456").unwrap();
        let b = hash_pin("123456").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(pin_matches("123456", &a));
        assert!(!pin_matches("123457", &a));
        assert!(!pin_matches("123456", "not a hash"));
    }
}
