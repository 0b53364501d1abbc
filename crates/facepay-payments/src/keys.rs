//! Secrets at rest: envelope encryption of templates, card numbers and
//! phone numbers, the hashes of PINs, tokens and API keys, and keyed hashes
//! of phone numbers for lookups.
//!
//! Every sealed record has its own data key (AES-256-GCM); the data key is
//! stored in the database wrapped by a key-encryption key (KEK) that a
//! [`KeyProvider`] holds outside the database. Associated data binds each
//! ciphertext to what it belongs to (a template to its user and model; a
//! wrapped data key to its id), so a ciphertext moved to another row does
//! not open. Rotating the KEK re-wraps data keys only; deleting a data key
//! makes its record unreadable for good (crypto-shredding).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use facepay_store::keys::DataKeyRow;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// The key file of the first releases, one key sealing every record; still
/// read so that records sealed under it open, and re-sealed by rotation.
const LEGACY_KEY_FILE: &str = "data.key";
const CURRENT_FILE: &str = "current";
const KEK_SUFFIX: &str = ".kek";
/// KEK files read from a key directory at most.
const KEKS_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the key file {0} is not {KEY_BYTES} bytes")]
    BadKeyFile(String),
    #[error("no key-encryption key {0:?} is known; was it removed?")]
    UnknownKey(String),
    #[error("a ciphertext did not open: wrong key, wrong owner or tampered")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn cipher(bytes: &[u8], name: &str) -> Result<Aes256Gcm, KeyError> {
    Aes256Gcm::new_from_slice(bytes).map_err(|_| KeyError::BadKeyFile(name.to_owned()))
}

fn seal_with(
    cipher: &Aes256Gcm,
    plaintext: &[u8],
    associated: &str,
) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let nonce = random_bytes::<NONCE_BYTES>()?;
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: associated.as_bytes(),
            },
        )
        .map_err(|_| KeyError::Seal)?;
    Ok((nonce.to_vec(), ciphertext))
}

fn open_with(
    cipher: &Aes256Gcm,
    nonce: &[u8],
    ciphertext: &[u8],
    associated: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if nonce.len() != NONCE_BYTES {
        return Err(KeyError::Open);
    }
    cipher
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

/// A key-encryption key.
pub struct Kek {
    id: String,
    cipher: Aes256Gcm,
}

impl Kek {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Opens a ciphertext sealed directly under this key (legacy records).
    pub fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        associated: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        open_with(&self.cipher, nonce, ciphertext, associated)
    }
}

/// Where key-encryption keys come from. The file provider is the default; a
/// KMS or an HSM implements the same three calls.
pub trait KeyProvider: Send + Sync {
    /// The KEK new data keys are wrapped under.
    fn current(&self) -> Result<Arc<Kek>, KeyError>;
    fn by_id(&self, id: &str) -> Result<Arc<Kek>, KeyError>;
    /// Every KEK the provider holds.
    fn all(&self) -> Result<Vec<Arc<Kek>>, KeyError>;
}

struct KeyRing {
    current: String,
    keys: HashMap<String, Arc<Kek>>,
}

/// KEKs as files in one directory (mode 0600): `<id>.kek` holds 32 bytes,
/// `current` names the one new data keys are wrapped under. Another process
/// (`facepay keys rotate`) may add a key and move `current`; the provider
/// notices on its next call, so servers rotate without a restart.
pub struct FileKeyProvider {
    dir: PathBuf,
    ring: RwLock<KeyRing>,
}

impl FileKeyProvider {
    /// Opens the key directory, creating it and a first KEK if empty.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        facepay_store::files::private_dir(dir).map_err(io_error(dir))?;
        let mut ring = load_ring(dir)?;
        if ring.current.is_empty() {
            ring.current = create_kek(dir)?;
            ring = load_ring(dir)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            ring: RwLock::new(ring),
        })
    }

    /// Makes a new KEK and makes it current. Returns its id.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let id = create_kek(&self.dir)?;
        self.reload()?;
        Ok(id)
    }

    fn reload(&self) -> Result<(), KeyError> {
        let ring = load_ring(&self.dir)?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(())
    }

    fn current_on_disk(&self) -> Result<String, KeyError> {
        let path = self.dir.join(CURRENT_FILE);
        Ok(std::fs::read_to_string(&path)
            .map_err(io_error(&path))?
            .trim()
            .to_owned())
    }
}

impl KeyProvider for FileKeyProvider {
    fn current(&self) -> Result<Arc<Kek>, KeyError> {
        let on_disk = self.current_on_disk()?;
        let known = self.ring.read().unwrap_or_else(|e| e.into_inner()).current == on_disk;
        if !known {
            self.reload()?;
        }
        self.by_id(&on_disk)
    }

    fn by_id(&self, id: &str) -> Result<Arc<Kek>, KeyError> {
        if let Some(kek) = self
            .ring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .get(id)
        {
            return Ok(Arc::clone(kek));
        }
        self.reload()?;
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        ring.keys
            .get(id)
            .cloned()
            .ok_or_else(|| KeyError::UnknownKey(id.to_owned()))
    }

    fn all(&self) -> Result<Vec<Arc<Kek>>, KeyError> {
        self.reload()?;
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        Ok(ring.keys.values().cloned().collect())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Writes a new KEK file and points `current` at it (by an atomic rename, so
/// a reader sees the old or the new id, never half of one).
fn create_kek(dir: &Path) -> Result<String, KeyError> {
    let id = format!("kek-{}", hex::encode(random_bytes::<8>()?));
    let key = Zeroizing::new(random_bytes::<KEY_BYTES>()?);
    write_private(&dir.join(format!("{id}{KEK_SUFFIX}")), key.as_slice())?;
    let staged = dir.join(format!("{CURRENT_FILE}.{id}"));
    write_private(&staged, id.as_bytes())?;
    let current = dir.join(CURRENT_FILE);
    std::fs::rename(&staged, &current).map_err(io_error(&current))?;
    Ok(id)
}

fn load_ring(dir: &Path) -> Result<KeyRing, KeyError> {
    let mut keys = HashMap::new();
    for entry in std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .take(KEKS_MAX)
    {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let id = if let Some(id) = name.strip_suffix(KEK_SUFFIX) {
            id.to_owned()
        } else if name == LEGACY_KEY_FILE {
            let bytes = Zeroizing::new(std::fs::read(&path).map_err(io_error(&path))?);
            format!(
                "local-{}",
                &hex::encode(Sha256::digest(bytes.as_slice()))[..12]
            )
        } else {
            continue;
        };
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(io_error(&path))?);
        let cipher = cipher(&bytes, &name)?;
        keys.insert(id.clone(), Arc::new(Kek { id, cipher }));
    }
    let current = match std::fs::read_to_string(dir.join(CURRENT_FILE)) {
        Ok(text) => text.trim().to_owned(),
        Err(_) => String::new(),
    };
    if !current.is_empty() && !keys.contains_key(&current) {
        return Err(KeyError::UnknownKey(current));
    }
    Ok(KeyRing { current, keys })
}

/// A sealed record: its ciphertext and its wrapped data key.
pub struct Sealed {
    /// The data key's id, stored as the record's `key_id`.
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub data_key: DataKeyRow,
}

/// Seals and opens records by envelope encryption.
#[derive(Clone)]
pub struct Envelope {
    provider: Arc<dyn KeyProvider>,
}

fn dek_aad(id: &str) -> String {
    format!("dek:{id}")
}

impl Envelope {
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self { provider }
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    pub fn seal(&self, plaintext: &[u8], associated: &str) -> Result<Sealed, KeyError> {
        let dek = Zeroizing::new(random_bytes::<KEY_BYTES>()?);
        let id = facepay_store::ids::time_ordered("dek_").map_err(KeyError::Random)?;
        let (nonce, ciphertext) =
            seal_with(&cipher(dek.as_slice(), "data key")?, plaintext, associated)?;
        let kek = self.provider.current()?;
        let (wrap_nonce, wrapped) = seal_with(&kek.cipher, dek.as_slice(), &dek_aad(&id))?;
        Ok(Sealed {
            key_id: id.clone(),
            nonce,
            ciphertext,
            data_key: DataKeyRow {
                id,
                kek_id: kek.id.clone(),
                nonce: wrap_nonce,
                wrapped,
            },
        })
    }

    /// Opens a record. `data_key` is the row its `key_id` names; `None` for
    /// a legacy record sealed directly under the KEK `key_id`.
    pub fn open(
        &self,
        key_id: &str,
        data_key: Option<&DataKeyRow>,
        nonce: &[u8],
        ciphertext: &[u8],
        associated: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match data_key {
            Some(row) => {
                let dek = self.unwrap(row)?;
                open_with(
                    &cipher(dek.as_slice(), "data key")?,
                    nonce,
                    ciphertext,
                    associated,
                )
            }
            None if key_id.starts_with("dek_") => Err(KeyError::Open),
            None => self
                .provider
                .by_id(key_id)?
                .open(nonce, ciphertext, associated),
        }
    }

    /// A fresh data key for a record sealed by other means than [`seal`]
    /// (a snapshot file, in segments): its wrapped row, whose id starts
    /// with `prefix`, and the key itself.
    ///
    /// [`seal`]: Envelope::seal
    pub fn new_data_key(
        &self,
        prefix: &str,
    ) -> Result<(DataKeyRow, Zeroizing<[u8; KEY_BYTES]>), KeyError> {
        self.new_named_data_key(
            &facepay_store::ids::time_ordered(prefix).map_err(KeyError::Random)?,
        )
    }

    /// A fresh data key whose row has the id `id`: for a key every server
    /// finds by name (the phone lookup key).
    pub fn new_named_data_key(
        &self,
        id: &str,
    ) -> Result<(DataKeyRow, Zeroizing<[u8; KEY_BYTES]>), KeyError> {
        let dek = Zeroizing::new(random_bytes::<KEY_BYTES>()?);
        let id = id.to_owned();
        let kek = self.provider.current()?;
        let (nonce, wrapped) = seal_with(&kek.cipher, dek.as_slice(), &dek_aad(&id))?;
        let row = DataKeyRow {
            id,
            kek_id: kek.id.clone(),
            nonce,
            wrapped,
        };
        Ok((row, dek))
    }

    /// The key a row made by [`Envelope::new_data_key`] wraps.
    pub fn data_key(&self, row: &DataKeyRow) -> Result<Zeroizing<[u8; KEY_BYTES]>, KeyError> {
        let bytes = self.unwrap(row)?;
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| KeyError::Open)?;
        Ok(Zeroizing::new(key))
    }

    fn unwrap(&self, row: &DataKeyRow) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let kek = self.provider.by_id(&row.kek_id)?;
        open_with(&kek.cipher, &row.nonce, &row.wrapped, &dek_aad(&row.id))
    }

    /// The same data key wrapped under the current KEK.
    pub fn rewrap(&self, row: &DataKeyRow) -> Result<DataKeyRow, KeyError> {
        let dek = self.unwrap(row)?;
        let kek = self.provider.current()?;
        let (nonce, wrapped) = seal_with(&kek.cipher, dek.as_slice(), &dek_aad(&row.id))?;
        Ok(DataKeyRow {
            id: row.id.clone(),
            kek_id: kek.id.clone(),
            nonce,
            wrapped,
        })
    }
}

/// A key for keyed hashes (HMAC-SHA256) of values too guessable for a
/// plain hash: a phone number has a few billion possible values, so its
/// plain hash would be found by trying them all. Without the key, which is
/// a data key wrapped by a KEK, a hash says nothing; with it, equal values
/// give equal hashes, so a hash can be a unique column and a lookup.
pub struct LookupKey(Zeroizing<[u8; KEY_BYTES]>);

impl LookupKey {
    pub fn new(key: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        Self(key)
    }

    /// The keyed hash of `value` for `purpose` (so that one key never gives
    /// the same hash for two kinds of value), as 64 hex digits.
    pub fn hash(&self, purpose: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [purpose.as_bytes(), value.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey(..)")
    }
}

/// Whether two hashes are equal, in time that does not depend on where
/// they differ.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `N` bytes from the operating system's generator. Its failure is an
/// error the caller answers (503 `random_unavailable`), never a panic and
/// never a fallback: no key, nonce or token from a weaker source is safe.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
    Ok(bytes)
}

/// A new bearer secret (user token, API key) and the hash to store. The
/// secret has 256 bits of entropy, so a plain SHA-256 suffices; a slow hash
/// is for low-entropy secrets like PINs.
pub fn new_secret(prefix: &str) -> Result<(String, String), KeyError> {
    let secret = format!("{prefix}_{}", hex::encode(random_bytes::<32>()?));
    let hash = secret_hash(&secret);
    Ok((secret, hash))
}

pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Argon2id with the crate's default cost (19 MiB, 2 passes).
pub fn hash_pin(pin: &str) -> Result<String, KeyError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| KeyError::Hash(e.to_string()))?;
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
    fn records_open_only_for_their_owner_and_survive_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let provider = Arc::new(FileKeyProvider::open(dir.path()).unwrap());
        let envelope = Envelope::new(provider.clone());
        let sealed = envelope
            .seal(b"template bytes", "template:u1:sface")
            .unwrap();
        let open = |row: &DataKeyRow, aad: &str| {
            envelope.open(
                &sealed.key_id,
                Some(row),
                &sealed.nonce,
                &sealed.ciphertext,
                aad,
            )
        };
        assert_eq!(
            open(&sealed.data_key, "template:u1:sface")
                .unwrap()
                .as_slice(),
            b"template bytes"
        );
        assert!(open(&sealed.data_key, "template:u2:sface").is_err());
        let mut tampered = sealed.data_key.clone();
        tampered.wrapped[0] ^= 1;
        assert!(open(&tampered, "template:u1:sface").is_err());
        // Without its data key the record does not open under any KEK.
        assert!(
            envelope
                .open(
                    &sealed.key_id,
                    None,
                    &sealed.nonce,
                    &sealed.ciphertext,
                    "template:u1:sface"
                )
                .is_err()
        );
        for kek in provider.all().unwrap() {
            assert!(
                kek.open(&sealed.nonce, &sealed.ciphertext, "template:u1:sface")
                    .is_err()
            );
        }

        // Another process rotates; this provider follows without a restart.
        let other = FileKeyProvider::open(dir.path()).unwrap();
        let new_id = other.rotate().unwrap();
        assert_eq!(provider.current().unwrap().id(), new_id);
        let rewrapped = envelope.rewrap(&sealed.data_key).unwrap();
        assert_eq!(rewrapped.kek_id, new_id);
        assert_ne!(rewrapped.wrapped, sealed.data_key.wrapped);
        assert_eq!(
            open(&rewrapped, "template:u1:sface").unwrap().as_slice(),
            b"template bytes"
        );
        assert_eq!(provider.all().unwrap().len(), 2);
    }

    #[test]
    fn legacy_records_open_under_the_old_data_key() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = random_bytes::<KEY_BYTES>().unwrap();
        std::fs::write(dir.path().join(LEGACY_KEY_FILE), legacy).unwrap();
        let provider = Arc::new(FileKeyProvider::open(dir.path()).unwrap());
        let old_id = format!("local-{}", &hex::encode(Sha256::digest(legacy))[..12]);
        let (nonce, ciphertext) =
            seal_with(&cipher(&legacy, "legacy").unwrap(), b"4242", "card:pm_1").unwrap();
        let envelope = Envelope::new(provider.clone());
        let opened = envelope
            .open(&old_id, None, &nonce, &ciphertext, "card:pm_1")
            .unwrap();
        assert_eq!(opened.as_slice(), b"4242");
        assert_ne!(
            provider.current().unwrap().id(),
            old_id,
            "new records use a new KEK"
        );
    }

    #[test]
    fn lookup_hashes_are_keyed_and_separated_by_purpose() {
        let key = |byte| LookupKey::new(Zeroizing::new([byte; KEY_BYTES]));
        let a = key(1).hash("phone", "+821012345678");
        assert_eq!(a.len(), 64);
        assert_eq!(a, key(1).hash("phone", "+821012345678"));
        assert_ne!(a, key(2).hash("phone", "+821012345678"));
        assert_ne!(a, key(1).hash("phone", "+821012345679"));
        assert_ne!(a, key(1).hash("other", "+821012345678"));
        assert_ne!(key(1).hash("ph", "one"), key(1).hash("pho", "ne"));
        assert!(!a.contains("821012345678"));
        // A value the test pins: changing the derivation changes every
        // stored hash, which a migration would have to redo.
        assert_eq!(
            key(7).hash("phone", "+821012345678"),
            PINNED_PHONE_HASH,
            "the keyed hash of phone numbers changed"
        );
        assert!(hashes_equal(&a, &a.clone()));
        assert!(!hashes_equal(&a, &a[..63]));
        assert!(!hashes_equal(&a, &key(2).hash("phone", "+821012345678")));
    }

    /// HMAC-SHA256 under 32 bytes of 7 over the length-prefixed purpose and
    /// number, computed apart (Python's hmac module).
    const PINNED_PHONE_HASH: &str =
        "b3c02356fdd56c7f73371abb4ffd1228f243820a1aabdca2db3acae3a8f8f1bd";

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
