//! `FACEPAY_<SECTION>__<KEY>` variables: each sets one key over the file.
//! A value is taken as TOML (`2`, `true`, `["10.0.0.1"]`) when it is one
//! of the kind the key wants, else as a string (`127.0.0.1:9000`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, Location, Origins, from_serde};

const PREFIX: &str = "FACEPAY_";
const SEPARATOR: &str = "__";
/// More overrides than this is a mistake (a whole environment copied in).
pub const OVERRIDES_MAX: usize = 256;
/// Longest value of one override.
pub const OVERRIDE_BYTES_MAX: usize = 64 * 1024;

pub(crate) struct Override<'e> {
    pub variable: &'e str,
    /// `connector.hyperswitch.timeout_ms`.
    pub key: String,
    segments: Vec<String>,
    text: &'e str,
}

/// The variables that are configuration: `FACEPAY_` and a `__` after it.
/// Others (`FACEPAY_MODELS_DIR`) are not and are left alone.
pub(crate) fn collect(env: &BTreeMap<String, String>) -> Result<Vec<Override<'_>>, ConfigError> {
    let mut overrides = Vec::new();
    for (variable, text) in env {
        let Some(rest) = variable.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains(SEPARATOR) {
            continue;
        }
        let segments: Vec<String> = rest.split(SEPARATOR).map(str::to_ascii_lowercase).collect();
        let key = segments.join(".");
        let at = Location::Env {
            variable: variable.clone(),
        };
        let well_formed = segments
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !well_formed {
            return Err(ConfigError::UnknownKey {
                at,
                key,
                expected: "a variable is FACEPAY_<SECTION>__<KEY>, such as FACEPAY_STORE__URL"
                    .to_owned(),
            });
        }
        if text.len() > OVERRIDE_BYTES_MAX {
            return Err(ConfigError::Invalid {
                at,
                key,
                reason: format!("the value is over {OVERRIDE_BYTES_MAX} bytes"),
            });
        }
        if overrides.len() == OVERRIDES_MAX {
            return Err(ConfigError::Invalid {
                at,
                key,
                reason: format!("more than {OVERRIDES_MAX} FACEPAY_ variables set keys"),
            });
        }
        overrides.push(Override {
            variable,
            key,
            segments,
            text,
        });
    }
    Ok(overrides)
}

/// Sets every override over `file` and deserializes the result. A value
/// that parsed as TOML of the wrong kind for its key is taken as a string
/// and the whole is read again: at most once per override.
pub(crate) fn deserialize<'a, T: serde::de::DeserializeOwned>(
    file: &Spanned<DeTable<'a>>,
    overrides: &'a [Override<'a>],
    origins: &mut Origins,
) -> Result<T, ConfigError> {
    for o in overrides {
        origins.set_by_env(&o.key, o.variable);
    }
    let mut as_string = vec![false; overrides.len()];
    for _ in 0..=overrides.len() {
        let mut table = file.clone();
        for (o, &plain) in overrides.iter().zip(&as_string) {
            set(table.get_mut(), o, value_of(o.text, plain))?;
        }
        let deserializer = toml::de::Deserializer::from(table);
        let error = match serde_path_to_error::deserialize(deserializer) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let wrong_kind = error.inner().message().starts_with("invalid type: ");
        let path = error.path().to_string();
        let retry = overrides.iter().position(|o| o.key == path).filter(|&i| {
            wrong_kind && !as_string[i] && !value_of(overrides[i].text, false).is_str()
        });
        match retry {
            Some(i) => as_string[i] = true,
            None => return Err(from_serde(&error, origins)),
        }
    }
    unreachable!("each retry takes one more override as a string")
}

fn value_of(text: &str, as_string: bool) -> DeValue<'_> {
    if !as_string && let Ok(value) = DeValue::parse(text) {
        return value.into_inner();
    }
    DeValue::String(Cow::Borrowed(text))
}

/// Sets `o`'s key in `table`, making the tables on its way.
fn set<'a>(
    table: &mut DeTable<'a>,
    o: &Override<'a>,
    value: DeValue<'a>,
) -> Result<(), ConfigError> {
    let at = || Location::Env {
        variable: o.variable.to_owned(),
    };
    let Some((last, parents)) = o.segments.split_last() else {
        return Err(ConfigError::UnknownKey {
            at: at(),
            key: String::new(),
            expected: "the variable names no key".to_owned(),
        });
    };
    let mut table = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(Spanned::new(0..0, Cow::Owned(segment.clone())))
            .or_insert_with(|| Spanned::new(0..0, DeValue::Table(DeTable::new())));
        table = match entry.get_mut() {
            DeValue::Table(inner) => inner,
            _ => {
                return Err(ConfigError::Invalid {
                    at: at(),
                    key: o.segments[..=depth].join("."),
                    reason: format!(
                        "is not a table, so {} cannot set a key inside it",
                        o.variable
                    ),
                });
            }
        };
    }
    table.insert(
        Spanned::new(0..0, Cow::Owned(last.clone())),
        Spanned::new(0..0, value),
    );
    Ok(())
}
