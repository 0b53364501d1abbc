//! The sections whose shape depends on a choice: read flat, as the file
//! has them, then checked and handed out as enums that hold only what the
//! choice uses.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::checks::{self, Checker};
use crate::error::ConfigError;
use crate::secret::{Secret, SecretSource};
use crate::sections::{
    Face, Fx, Gallery, Hub, Limits, Retention, Risk, Server, SimulatedIssuer, Store, Webhooks,
    named_enum,
};
use crate::{Config, DatabaseUrl};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ConfigFile {
    server: Server,
    store: Store,
    keys: KeysFile,
    vault: VaultFile,
    face: Face,
    gallery: Gallery,
    connector: ConnectorFile,
    hub: Hub,
    fx: Fx,
    risk: Risk,
    retention: Retention,
    limits: Limits,
    webhooks: Webhooks,
}

impl ConfigFile {
    /// Checks every section in the file's order and resolves the choices.
    pub(crate) fn resolve(self, cx: &Checker) -> Result<Config, ConfigError> {
        checks::server(&self.server, cx)?;
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(cx.invalid("store.data_dir", "names no directory"));
        }
        if let Some(url) = &self.store.url {
            cx.database_url("store.url", url)?;
        }
        let data_dir = &self.store.data_dir;
        let keys = self.keys.resolve(data_dir);
        let vault = self.vault.resolve(data_dir, cx)?;
        checks::face(&self.face, cx)?;
        checks::gallery(&self.gallery, cx)?;
        let connector = self.connector.resolve(cx)?;
        checks::hub(&self.hub, cx)?;
        checks::fx(&self.fx, cx)?;
        checks::risk(&self.risk, cx)?;
        checks::retention(&self.retention, cx)?;
        checks::limits(&self.limits, cx)?;
        checks::webhooks(&self.webhooks, cx)?;
        Ok(Config {
            server: self.server,
            store: self.store,
            keys,
            vault,
            face: self.face,
            gallery: self.gallery,
            connector,
            hub: self.hub,
            fx: self.fx,
            risk: self.risk,
            retention: self.retention,
            limits: self.limits,
            webhooks: self.webhooks,
        })
    }
}

named_enum! {
    pub enum KeyProviderKind as "key provider" {
        /// Key-encryption keys in files of a directory.
        File = "file",
    }
}

/// Where the key-encryption keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProvider {
    File { dir: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub provider: KeyProvider,
    /// The deployment's template transform secrets.
    pub transforms_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct KeysFile {
    provider: KeyProviderKind,
    dir: Option<PathBuf>,
    transforms_dir: Option<PathBuf>,
}

impl Default for KeysFile {
    fn default() -> Self {
        Self {
            provider: KeyProviderKind::File,
            dir: None,
            transforms_dir: None,
        }
    }
}

impl KeysFile {
    fn resolve(self, data_dir: &Path) -> Keys {
        let provider = match self.provider {
            KeyProviderKind::File => KeyProvider::File {
                dir: self.dir.unwrap_or_else(|| data_dir.join("keys")),
            },
        };
        Keys {
            provider,
            transforms_dir: self
                .transforms_dir
                .unwrap_or_else(|| data_dir.join("transforms")),
        }
    }
}

named_enum! {
    pub enum VaultMode as "vault mode" {
        /// The vault runs in this process, on its own store.
        Embedded = "embedded",
        /// The vault is another process (`facepay vault serve`).
        Remote = "remote",
    }
}

/// The card vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vault {
    Embedded(EmbeddedVault),
    Remote(RemoteVault),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedVault {
    /// Its own SQLite store and, with `KeyParts::Embedded`, both parts.
    pub dir: PathBuf,
    /// Its own database (never the core's); SQLite in `dir` when absent.
    pub database_url: Option<DatabaseUrl>,
    pub key_parts: KeyParts,
}

/// How the vault's master key is put together at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParts {
    /// Both custodians' parts, each from its own file: unlocked at start.
    Files([PathBuf; 2]),
    /// FOR DEVELOPMENT ONLY: both parts kept in the vault directory and
    /// made on first use, so dual control is in form only.
    Embedded,
    /// The vault starts locked and waits for the custodians to give their
    /// parts.
    FromCustodians,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteVault {
    /// The vault process's `http://` or `https://` address.
    pub url: String,
    /// The secret shared with the vault process (64 hex digits).
    pub channel_secret_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct VaultFile {
    mode: VaultMode,
    dir: Option<PathBuf>,
    database_url: Option<DatabaseUrl>,
    custodian_part_files: Vec<PathBuf>,
    embedded_parts: Option<bool>,
    url: Option<String>,
    channel_secret_file: Option<PathBuf>,
}

impl Default for VaultFile {
    fn default() -> Self {
        Self {
            mode: VaultMode::Embedded,
            dir: None,
            database_url: None,
            custodian_part_files: Vec::new(),
            embedded_parts: None,
            url: None,
            channel_secret_file: None,
        }
    }
}

impl VaultFile {
    fn resolve(self, data_dir: &Path, cx: &Checker) -> Result<Vault, ConfigError> {
        match self.mode {
            VaultMode::Remote => self.remote(cx).map(Vault::Remote),
            VaultMode::Embedded => self.embedded(data_dir, cx).map(Vault::Embedded),
        }
    }

    fn remote(self, cx: &Checker) -> Result<RemoteVault, ConfigError> {
        let embedded = VaultMode::Embedded;
        only_for(cx, "vault.dir", self.dir.is_some(), embedded)?;
        only_for(
            cx,
            "vault.database_url",
            self.database_url.is_some(),
            embedded,
        )?;
        let parts_given = !self.custodian_part_files.is_empty();
        only_for(cx, "vault.custodian_part_files", parts_given, embedded)?;
        only_for(
            cx,
            "vault.embedded_parts",
            self.embedded_parts.is_some(),
            embedded,
        )?;
        let url = self.url.ok_or_else(|| {
            cx.missing(
                "vault.url",
                "a remote vault needs the vault process's address",
            )
        })?;
        cx.http_url("vault.url", &url)?;
        let channel_secret_file = self.channel_secret_file.ok_or_else(|| {
            cx.missing(
                "vault.channel_secret_file",
                "a remote vault needs the secret shared with the vault process",
            )
        })?;
        cx.file("vault.channel_secret_file", &channel_secret_file)?;
        Ok(RemoteVault {
            url,
            channel_secret_file,
        })
    }

    fn embedded(self, data_dir: &Path, cx: &Checker) -> Result<EmbeddedVault, ConfigError> {
        let remote = VaultMode::Remote;
        only_for(cx, "vault.url", self.url.is_some(), remote)?;
        let secret_given = self.channel_secret_file.is_some();
        only_for(cx, "vault.channel_secret_file", secret_given, remote)?;
        if let Some(url) = &self.database_url {
            cx.database_url("vault.database_url", url)?;
        }
        Ok(EmbeddedVault {
            key_parts: key_parts(self.custodian_part_files, self.embedded_parts, cx)?,
            dir: self.dir.unwrap_or_else(|| data_dir.join("vault")),
            database_url: self.database_url,
        })
    }
}

/// A key that belongs to the other mode is refused rather than ignored.
fn only_for(cx: &Checker, key: &str, given: bool, mode: VaultMode) -> Result<(), ConfigError> {
    if given {
        return Err(cx.invalid(key, format!("only for mode = \"{mode}\"")));
    }
    Ok(())
}

fn key_parts(
    files: Vec<PathBuf>,
    embedded: Option<bool>,
    cx: &Checker,
) -> Result<KeyParts, ConfigError> {
    let key = "vault.custodian_part_files";
    match (<[PathBuf; 2]>::try_from(files), embedded) {
        (Ok(_), Some(true)) => Err(cx.invalid(
            "vault.embedded_parts",
            "keeps both parts in the vault directory; leave it out with custodian_part_files",
        )),
        (Ok([first, second]), _) => {
            if first == second {
                return Err(cx.invalid(key, "names one file twice; each custodian has their own"));
            }
            cx.file(key, &first)?;
            cx.file(key, &second)?;
            Ok(KeyParts::Files([first, second]))
        }
        (Err(files), _) if !files.is_empty() => Err(cx.invalid(
            key,
            format!(
                "names {} files; give none or both custodians' two",
                files.len()
            ),
        )),
        (Err(_), Some(false)) => Ok(KeyParts::FromCustodians),
        (Err(_), _) => Ok(KeyParts::Embedded),
    }
}

named_enum! {
    pub enum ConnectorKind as "connector" {
        /// A simulated card issuer in this process: no card is charged.
        SimulatedIssuer = "simulated_issuer",
        /// An acquirer reached through a Hyperswitch server.
        Hyperswitch = "hyperswitch",
    }
}

/// The acquirer every card payment goes through.
#[derive(Debug, Clone)]
pub enum Connector {
    SimulatedIssuer(SimulatedIssuer),
    Hyperswitch(Hyperswitch),
}

impl Connector {
    pub fn kind(&self) -> ConnectorKind {
        match self {
            Connector::SimulatedIssuer(_) => ConnectorKind::SimulatedIssuer,
            Connector::Hyperswitch(_) => ConnectorKind::Hyperswitch,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hyperswitch {
    /// The Hyperswitch server's `https://` address (`http://` only on a
    /// loopback host).
    pub base_url: String,
    pub api_key: Secret,
    pub profile_id: Option<String>,
    /// Signs the webhooks Hyperswitch sends.
    pub webhook_secret: Secret,
    pub timeout_ms: u64,
}

// The Hyperswitch bounds are facepay-connector's (`HyperswitchConfig`),
// checked here too so that `config check` finds what start-up would.
const HYPERSWITCH_TIMEOUT_MS_DEFAULT: u64 = 5_000;
const HYPERSWITCH_TIMEOUT_MS_MIN: u64 = 50;
/// The vault's channel waits 30 s for a whole call of several requests.
const HYPERSWITCH_TIMEOUT_MS_MAX: u64 = 6_000;
const PROFILE_ID_LEN_MAX: usize = 64;
const SIMULATED_LATENCY_MS_MAX: u64 = 60_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConnectorFile {
    kind: Option<ConnectorKind>,
    simulated_issuer: Option<SimulatedIssuer>,
    hyperswitch: Option<HyperswitchFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HyperswitchFile {
    base_url: String,
    api_key: SecretSource,
    profile_id: Option<String>,
    webhook_secret: SecretSource,
    #[serde(default = "hyperswitch_timeout_ms")]
    timeout_ms: u64,
}

fn hyperswitch_timeout_ms() -> u64 {
    HYPERSWITCH_TIMEOUT_MS_DEFAULT
}

impl ConnectorFile {
    /// No default: a configuration names the connector, so nothing ever
    /// pays through the simulator unless the file says so.
    fn resolve(self, cx: &Checker) -> Result<Connector, ConfigError> {
        let kind = self.kind.ok_or_else(|| {
            cx.missing(
                "connector.kind",
                "no connector is named; every card payment goes through one: \
                 \"simulated_issuer\" (a simulator: no card is charged) or \"hyperswitch\"",
            )
        })?;
        let stray = |key: &str, given: bool| match given {
            true => Err(cx.invalid(key, format!("given, but connector.kind is \"{kind}\""))),
            false => Ok(()),
        };
        match kind {
            ConnectorKind::SimulatedIssuer => {
                stray("connector.hyperswitch", self.hyperswitch.is_some())?;
                let simulator = self.simulated_issuer.unwrap_or_default();
                let latency_ms = simulator.latency_ms;
                let key = "connector.simulated_issuer.latency_ms";
                cx.range(key, latency_ms, 0..=SIMULATED_LATENCY_MS_MAX)?;
                Ok(Connector::SimulatedIssuer(simulator))
            }
            ConnectorKind::Hyperswitch => {
                stray(
                    "connector.simulated_issuer",
                    self.simulated_issuer.is_some(),
                )?;
                let file = self.hyperswitch.ok_or_else(|| {
                    cx.missing(
                        "connector.hyperswitch",
                        "kind = \"hyperswitch\" needs a [connector.hyperswitch] table",
                    )
                })?;
                file.resolve(cx).map(Connector::Hyperswitch)
            }
        }
    }
}

impl HyperswitchFile {
    fn resolve(self, cx: &Checker) -> Result<Hyperswitch, ConfigError> {
        let key = "connector.hyperswitch.base_url";
        cx.http_url(key, &self.base_url)?;
        if !self.base_url.starts_with("https://") && !checks::is_loopback_url(&self.base_url) {
            return Err(cx.invalid(key, "must be https:// (http:// only on a loopback host): the API key and card numbers travel in it"));
        }
        let id_chars = |id: &str| {
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        };
        if let Some(id) = &self.profile_id
            && !(id_chars(id) && (1..=PROFILE_ID_LEN_MAX).contains(&id.len()))
        {
            return Err(cx.invalid(
                "connector.hyperswitch.profile_id",
                format!("1 to {PROFILE_ID_LEN_MAX} letters, digits, '_' or '-'"),
            ));
        }
        let key = "connector.hyperswitch.timeout_ms";
        let bounds = HYPERSWITCH_TIMEOUT_MS_MIN..=HYPERSWITCH_TIMEOUT_MS_MAX;
        cx.range(key, self.timeout_ms, bounds)?;
        Ok(Hyperswitch {
            base_url: self.base_url,
            api_key: cx.secret("connector.hyperswitch.api_key", self.api_key)?,
            profile_id: self.profile_id,
            webhook_secret: cx
                .secret("connector.hyperswitch.webhook_secret", self.webhook_secret)?,
            timeout_ms: self.timeout_ms,
        })
    }
}
