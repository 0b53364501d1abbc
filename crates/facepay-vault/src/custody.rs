//! The vault's master key under dual control: two custodians each hold a
//! key part, and the vault opens only with both.
//!
//! The master key is the XOR of the two parts, so each part alone is a
//! uniformly random value that says nothing about the master key; the keys
//! the vault uses are derived from it with HKDF, one per purpose.

use std::io::Write;
use std::path::Path;

use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{VaultError, random_bytes_into};

pub const PART_BYTES: usize = 32;
/// A key part file or variable holds the part in hex, and a newline.
const PART_TEXT_MAX: usize = 2 * PART_BYTES + 2;

/// One custodian's key part.
pub struct KeyPart(Zeroizing<[u8; PART_BYTES]>);

impl KeyPart {
    pub fn generate() -> Result<Self, VaultError> {
        let mut bytes = Zeroizing::new([0u8; PART_BYTES]);
        random_bytes_into(bytes.as_mut_slice())?;
        Ok(Self(bytes))
    }

    pub fn from_hex(text: &str) -> Result<Self, VaultError> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; PART_BYTES]);
        if text.len() != 2 * PART_BYTES || hex::decode_to_slice(text, bytes.as_mut_slice()).is_err()
        {
            return Err(VaultError::KeyParts(format!(
                "a key part is {} hex digits",
                2 * PART_BYTES
            )));
        }
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    pub fn read_file(path: &Path) -> Result<Self, VaultError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| {
            VaultError::KeyParts(format!("cannot read the key part {}: {e}", path.display()))
        })?);
        if text.len() > PART_TEXT_MAX {
            return Err(VaultError::KeyParts(format!(
                "{} is not a key part",
                path.display()
            )));
        }
        let text = std::str::from_utf8(&text)
            .map_err(|_| VaultError::KeyParts(format!("{} is not a key part", path.display())))?;
        Self::from_hex(text)
    }

    /// Writes a new part to `path` (mode 0600), refusing to overwrite one.
    pub fn create_file(path: &Path) -> Result<Self, VaultError> {
        let part = Self::generate()?;
        let failed = |e: std::io::Error| {
            VaultError::KeyParts(format!("cannot write the key part {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            facepay_store::files::private_dir(dir).map_err(failed)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(failed)?;
        file.write_all(format!("{}\n", part.to_hex().as_str()).as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(part)
    }
}

/// The keys derived from the master key.
pub(crate) struct MasterKey {
    /// Wraps each share's data key.
    pub(crate) wrap: Aes256Gcm,
    /// Keys the card fingerprints.
    fingerprint: Zeroizing<[u8; 32]>,
    /// Identifies the master key without revealing it.
    pub(crate) check: String,
}

impl MasterKey {
    pub(crate) fn combine(a: &KeyPart, b: &KeyPart) -> Result<Self, VaultError> {
        if a.0 == b.0 {
            return Err(VaultError::KeyParts(
                "both key parts are the same: dual control needs two custodians' parts".into(),
            ));
        }
        let mut master = Zeroizing::new([0u8; PART_BYTES]);
        for (m, (x, y)) in master.iter_mut().zip(a.0.iter().zip(b.0.iter())) {
            *m = x ^ y;
        }
        let hkdf = Hkdf::<Sha256>::new(Some(b"facepay vault v1"), master.as_slice());
        let derive = |label: &[u8]| -> Result<Zeroizing<[u8; 32]>, VaultError> {
            let mut key = Zeroizing::new([0u8; 32]);
            hkdf.expand(label, key.as_mut_slice())
                .map_err(|_| VaultError::KeyParts("key derivation failed".into()))?;
            Ok(key)
        };
        let wrap_key = derive(b"wrap")?;
        let check_key = derive(b"check")?;
        let check = hex::encode(&mac(check_key.as_slice(), b"facepay vault key check")[..16]);
        Ok(Self {
            wrap: Aes256Gcm::new_from_slice(wrap_key.as_slice())
                .map_err(|_| VaultError::KeyParts("bad wrap key".into()))?,
            fingerprint: derive(b"fingerprint")?,
            check,
        })
    }

    /// The keyed fingerprint of a card number.
    pub(crate) fn fingerprint(&self, pan: &[u8]) -> String {
        format!(
            "fp_{}",
            hex::encode(&mac(self.fingerprint.as_slice(), pan)[..16])
        )
    }
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| {
        unreachable!("HMAC takes keys of any length");
    });
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_combine_in_either_order_and_not_alone() {
        let (a, b) = (KeyPart::generate().unwrap(), KeyPart::generate().unwrap());
        let ab = MasterKey::combine(&a, &b).unwrap();
        let ba = MasterKey::combine(&b, &a).unwrap();
        assert_eq!(ab.check, ba.check);
        assert_eq!(ab.fingerprint(b"4242"), ba.fingerprint(b"4242"));
        let other = MasterKey::combine(&a, &KeyPart::generate().unwrap()).unwrap();
        assert_ne!(ab.check, other.check);
        assert_ne!(ab.fingerprint(b"4242"), other.fingerprint(b"4242"));
        assert!(MasterKey::combine(&a, &KeyPart::from_hex(&a.to_hex()).unwrap()).is_err());
    }

    #[test]
    fn part_files_are_private_hex_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custodian-1.part");
        let part = KeyPart::create_file(&path).unwrap();
        assert_eq!(KeyPart::read_file(&path).unwrap().0, part.0);
        assert!(KeyPart::create_file(&path).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(KeyPart::from_hex("abcd").is_err());
        assert!(KeyPart::from_hex(&"zz".repeat(32)).is_err());
    }
}
