//! Errors that name the key at fault, where it was set (the file and line,
//! or the environment variable), and why it is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// No file or variable set it: a default, or a key that is missing.
    Default,
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    Env {
        variable: String,
    },
}

/// Shown before the key: "facepay.toml:12: ", "FACEPAY_STORE__URL: ".
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Default => Ok(()),
            Location::File { path, line: None } => write!(f, "{}: ", path.display()),
            Location::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}: ", path.display()),
            Location::Env { variable } => write!(f, "{variable}: "),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{at}{reason}")]
    Syntax { at: Location, reason: String },
    #[error("{at}{key}: unknown key; {expected}")]
    UnknownKey {
        at: Location,
        key: String,
        expected: String,
    },
    #[error("{at}{key}: {reason}")]
    WrongType {
        at: Location,
        key: String,
        reason: String,
    },
    #[error("{at}{key}: {reason}")]
    Missing {
        at: Location,
        key: String,
        reason: String,
    },
    #[error("{at}{key}: {reason}")]
    Invalid {
        at: Location,
        key: String,
        reason: String,
    },
    #[error("{at}{key}: {reason}")]
    Secret {
        at: Location,
        key: String,
        reason: String,
    },
    #[error("{at}{key}: {reason}")]
    File {
        at: Location,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// A stable machine-readable code per kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Unreadable { .. } => "config_unreadable",
            ConfigError::Syntax { .. } => "config_syntax",
            ConfigError::UnknownKey { .. } => "config_unknown_key",
            ConfigError::WrongType { .. } => "config_wrong_type",
            ConfigError::Missing { .. } => "config_missing_key",
            ConfigError::Invalid { .. } => "config_invalid_value",
            ConfigError::Secret { .. } => "config_secret_unavailable",
            ConfigError::File { .. } => "config_file_unusable",
        }
    }

    /// The dotted key at fault (`connector.hyperswitch.api_key`), when the
    /// error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Unreadable { .. } | ConfigError::Syntax { .. } => None,
            ConfigError::UnknownKey { key, .. }
            | ConfigError::WrongType { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Secret { key, .. }
            | ConfigError::File { key, .. } => Some(key),
        }
    }
}

/// Where each key was set: its line in the file, or the variable that
/// overrode it.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    file: Option<PathBuf>,
    lines: BTreeMap<String, usize>,
    /// Dotted key to the variable that set it.
    env: BTreeMap<String, String>,
}

impl Origins {
    pub(crate) fn new(file: Option<PathBuf>, text: &str, table: &DeTable<'_>) -> Self {
        let mut origins = Origins {
            file,
            ..Origins::default()
        };
        origins.record(text, "", table);
        origins
    }

    fn record(&mut self, text: &str, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = join(prefix, key.get_ref());
            self.lines
                .insert(path.clone(), line_of(text, key.span().start));
            self.record_value(text, &path, value.get_ref());
        }
    }

    fn record_value(&mut self, text: &str, path: &str, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.record(text, path, table),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    self.lines
                        .insert(path.clone(), line_of(text, item.span().start));
                    self.record_value(text, &path, item.get_ref());
                }
            }
            _ => {}
        }
    }

    pub(crate) fn set_by_env(&mut self, key: &str, variable: &str) {
        self.env.insert(key.to_owned(), variable.to_owned());
    }

    /// The variable that set `key` or a table holding it, or that created
    /// `key` as a table on its way; else the line of `key`, or of the
    /// nearest table holding it, in the file.
    pub(crate) fn locate(&self, key: &str) -> Location {
        let set_by_env = self.env.iter().find(|(set, _)| {
            within(key, set) || (within(set, key) && !self.lines.contains_key(key))
        });
        if let Some((_, variable)) = set_by_env {
            return Location::Env {
                variable: variable.clone(),
            };
        }
        let Some(path) = &self.file else {
            return Location::Default;
        };
        let mut probe = key;
        let line = loop {
            if let Some(line) = self.lines.get(probe) {
                break Some(*line);
            }
            match probe.rfind(['.', '[']) {
                Some(end) => probe = &probe[..end],
                None => break None,
            }
        };
        Location::File {
            path: path.clone(),
            line,
        }
    }
}

pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Whether `key` is `table` or lies inside it.
fn within(key: &str, table: &str) -> bool {
    key.strip_prefix(table)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns what serde said into an error that names the key, in the file's
/// words rather than Rust's ("an integer", not "u64").
pub(crate) fn from_serde(
    error: &serde_path_to_error::Error<toml::de::Error>,
    origins: &Origins,
) -> ConfigError {
    let path = match error.path().to_string() {
        root if root == "." => String::new(),
        path => path,
    };
    let message = error.inner().message();
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = join(&path, rest.trim_end_matches('`'));
        return ConfigError::Missing {
            at: origins.locate(&key),
            key,
            reason: "missing; this key is required".to_owned(),
        };
    }
    let at = origins.locate(&path);
    if message.starts_with("unknown field `") {
        let expected = match message.split_once(", expected ") {
            Some((_, choices)) => format!("expected {}", choices.replace('`', "")),
            None => "this table takes no keys".to_owned(),
        };
        return ConfigError::UnknownKey {
            at,
            key: path,
            expected,
        };
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        return ConfigError::WrongType {
            at,
            key: path,
            reason: format!(
                "expected {}, found {}",
                expected_words(expected),
                found_words(found)
            ),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        return ConfigError::Invalid {
            at,
            key: path,
            reason: format!(
                "expected {}, found {}",
                expected_words(expected),
                found_words(found)
            ),
        };
    }
    ConfigError::Invalid {
        at,
        key: path,
        reason: message.to_owned(),
    }
}

fn expected_words(expected: &str) -> String {
    let integer = [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "i128",
    ];
    if integer.contains(&expected) {
        let sign = if expected.starts_with('u') {
            "a non-negative "
        } else {
            "an "
        };
        return format!("{sign}integer");
    }
    match expected {
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.replace("a borrowed string", "a string"),
    }
}

fn found_words(found: &str) -> String {
    let untick = |s: &str| s.trim_matches('`').to_owned();
    if let Some(value) = found.strip_prefix("integer ") {
        format!("the integer {}", untick(value))
    } else if let Some(value) = found.strip_prefix("floating point ") {
        format!("the float {}", untick(value))
    } else if let Some(value) = found.strip_prefix("boolean ") {
        format!("the boolean {}", untick(value))
    } else if found.starts_with("string ") {
        format!("a {found}")
    } else {
        match found {
            "sequence" => "an array".to_owned(),
            "map" => "a table".to_owned(),
            other => other.to_owned(),
        }
    }
}
