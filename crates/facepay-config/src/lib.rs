//! facepay's configuration: one TOML file (`facepay serve --config
//! facepay.toml`) that names every part of a deployment, with
//! `FACEPAY_<SECTION>__<KEY>` environment variables over it.
//!
//! This crate describes, loads and checks; it starts nothing. Its only
//! I/O is reading the file and the secret files, and looking at the other
//! files it names. Every default is what facepay did before the file
//! existed, except that nothing defaults to a simulator: a configuration
//! names its connector, and names every simulated network and FX source.
//!
//! Relative paths are relative to the working directory, as the command
//! line's were.

mod checks;
mod error;
mod overrides;
mod resolve;
mod secret;
mod sections;
mod summary;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Deserializer};
use toml::de::DeTable;

pub use checks::SIMULATED_NETWORK_SUFFIX;
pub use error::{ConfigError, Location};
pub use ipnet::IpNet;
pub use overrides::{OVERRIDE_BYTES_MAX, OVERRIDES_MAX};
pub use resolve::{
    Connector, ConnectorKind, EmbeddedVault, Hyperswitch, KeyParts, KeyProvider, KeyProviderKind,
    Keys, RemoteVault, Vault, VaultMode,
};
pub use secret::{SECRET_BYTES_MAX, Secret, SecretSource};
pub use sections::{
    Backend, Country, Face, FixedRate, Fx, FxSource, FxSourceKind, Gallery, GalleryKind, Hnsw, Hub,
    IMAGE_BYTES_MAX, Ivf, JSON_BODY_BYTES_DEFAULT, Limits, Liveness, Network, NetworkKind,
    Prefilter, Rate, Retention, Risk, RiskPreset, Server, SettlementBankKind, SimulatedIssuer,
    Store, StoreKind, Tls, WebhookDestinations, Webhooks,
};
pub use summary::Summary;

use crate::checks::Checker;
use crate::error::{Origins, line_of};
use crate::resolve::ConfigFile;

/// The demo's configuration: the simulated issuer, simulated networks of
/// Korea, Indonesia, Vietnam and Thailand, the simulated FX rates and
/// lenient liveness.
pub const DEMO: &str = include_str!("demo.toml");
/// A configuration file larger than this is not one.
pub const CONFIG_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub store: Store,
    pub keys: Keys,
    pub vault: Vault,
    pub face: Face,
    pub gallery: Gallery,
    pub connector: Connector,
    pub hub: Hub,
    pub fx: Fx,
    pub risk: Risk,
    pub retention: Retention,
    pub limits: Limits,
    pub webhooks: Webhooks,
}

impl Config {
    /// Reads the file at `path` (the defaults when `None`), sets the
    /// `FACEPAY_<SECTION>__<KEY>` variables of `env` over it, reads every
    /// secret and checks every value and named file.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::from_toml(&read_config(path)?, Some(path), env),
            None => Config::from_toml("", None, env),
        }
    }

    /// As `load`, from text; `name` is the file errors point at.
    pub fn from_toml(
        text: &str,
        name: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let table = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
            at: match name {
                Some(path) => Location::File {
                    path: path.to_path_buf(),
                    line: e.span().map(|span| line_of(text, span.start)),
                },
                None => Location::Default,
            },
            reason: e.message().to_owned(),
        })?;
        let mut origins = Origins::new(name.map(Path::to_path_buf), text, table.get_ref());
        let overrides = overrides::collect(&env)?;
        let file: ConfigFile = overrides::deserialize(&table, &overrides, &mut origins)?;
        file.resolve(&Checker {
            origins: &origins,
            env: &env,
        })
    }

    /// The demo's configuration ([`DEMO`]) with `env` over it.
    pub fn demo(env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        Config::from_toml(DEMO, Some(Path::new("demo.toml")), env)
    }

    /// Every simulated outside party this configuration runs, for the
    /// server and its pages to show: `["issuer: simulated_issuer", "hub
    /// network: kr.wallet.sim", "fx: simulated"]`.
    pub fn simulated_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if let Connector::SimulatedIssuer(_) = self.connector {
            parts.push(format!("issuer: {}", ConnectorKind::SimulatedIssuer));
        }
        if self.hub.enabled {
            for network in &self.hub.networks {
                if network.kind == NetworkKind::Simulated {
                    parts.push(format!("hub network: {}", network.id));
                }
            }
            if let Some(bank) = self.hub.settlement_bank {
                parts.push(format!("hub settlement bank: {bank}"));
            }
            for source in &self.fx.sources {
                if source.kind == FxSourceKind::Simulated {
                    parts.push(format!("fx: {}", source.kind));
                }
            }
        }
        parts
    }

    pub fn summary(&self) -> Summary {
        summary::of(self)
    }
}

/// Loads the file at `path` with the process's environment over it and
/// checks everything, secrets and files included: what `facepay config
/// check FILE` prints.
pub fn check(path: &Path) -> Result<Summary, ConfigError> {
    let env = std::env::vars_os().map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    });
    Config::load(Some(path), env).map(|config| config.summary())
}

fn read_config(path: &Path) -> Result<String, ConfigError> {
    let unreadable = |reason: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => unreadable("the file does not exist".to_owned()),
        _ => unreadable(format!("cannot read the file: {e}")),
    })?;
    let mut bytes = Vec::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > CONFIG_BYTES_MAX {
        return Err(unreadable(format!("over {CONFIG_BYTES_MAX} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".to_owned()))
}

/// A database address, `sqlite:PATH` or `postgres://...`, as
/// facepay-store opens it. `Debug` and `Display` hide its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> StoreKind {
        if self.0.starts_with("sqlite:") {
            StoreKind::Sqlite
        } else {
            StoreKind::Postgres
        }
    }

    pub fn has_password(&self) -> bool {
        url::Url::parse(&self.0).is_ok_and(|url| url.password().is_some())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                // Only fails for URLs that cannot hold a password at all.
                let _ = url.set_password(Some("**"));
                f.write_str(url.as_str())
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if known.iter().any(|prefix| text.starts_with(prefix)) {
            Ok(DatabaseUrl(text))
        } else {
            Err(serde::de::Error::custom(
                "must start with sqlite: or postgres://",
            ))
        }
    }
}
