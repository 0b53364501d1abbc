//! Secrets: named in the file by where they are (`{ file = "path" }` or
//! `{ env = "VARIABLE" }`), never written in it, and read when the
//! configuration is loaded.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use zeroize::Zeroizing;

/// A secret file larger than this is not a secret but a mistake.
pub const SECRET_BYTES_MAX: u64 = 64 * 1024;

/// Where a secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// A resolved secret: its bytes are wiped when it is dropped, and its
/// `Debug` shows none of them.
#[derive(Clone)]
pub struct Secret {
    source: SecretSource,
    value: Zeroizing<String>,
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// Reads the secret from its file, or from `env`; the error is the
    /// reason, for the caller to put after the key.
    pub(crate) fn resolve(
        source: SecretSource,
        env: &BTreeMap<String, String>,
    ) -> Result<Secret, String> {
        let value = match &source {
            SecretSource::File(path) => read_secret_file(path)?,
            SecretSource::Env(name) => match env.get(name) {
                Some(value) => Zeroizing::new(value.clone()),
                None => return Err(format!("the environment variable {name} is not set")),
            },
        };
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.trim().is_empty() {
            return Err(match &source {
                SecretSource::File(path) => format!("the file {} is empty", path.display()),
                SecretSource::Env(name) => format!("the environment variable {name} is empty"),
            });
        }
        let value = Zeroizing::new(trimmed.to_owned());
        Ok(Secret { source, value })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**)")
    }
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the file {} does not exist", path.display()),
        _ => format!("cannot read the file {}: {e}", path.display()),
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(SECRET_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file {}: {e}", path.display()))?;
    if bytes.len() as u64 > SECRET_BYTES_MAX {
        return Err(format!(
            "the file {} is over {SECRET_BYTES_MAX} bytes: not a secret",
            path.display()
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("the file {} is not UTF-8 text", path.display()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

const SECRET_SHAPE: &str = "{ file = \"path\" } or { env = \"VARIABLE\" }";

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    file: Option<PathBuf>,
    env: Option<String>,
}

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_SHAPE)
    }

    // Never repeats the text: it may be the secret itself, written in the
    // file by mistake.
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretSource, E> {
        Err(E::custom(format!(
            "a secret is never written in the file; name where it is: {SECRET_SHAPE}"
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretSource, A::Error> {
        use serde::de::Error;
        let fields = SourceFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        match (fields.file, fields.env) {
            (Some(path), None) => Ok(SecretSource::File(path)),
            (None, Some(name)) if name.is_empty() => Err(A::Error::custom("env names no variable")),
            (None, Some(name)) => Ok(SecretSource::Env(name)),
            _ => Err(A::Error::custom(format!(
                "give exactly one of {SECRET_SHAPE}"
            ))),
        }
    }
}
