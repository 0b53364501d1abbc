//! Everything a running facepay needs, built once from the command line:
//! the store, the face engine, the liveness checker, the card vault (in
//! this process, or another one's address) with its connector (the issuer
//! simulator; a real acquirer would implement the same trait), and the
//! services on top.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use facepay_connector::{SimulatedIssuer, SimulatorConfig};
use facepay_face::FaceEngine;
use facepay_face::liveness::{LivenessChecker, LivenessConfig};
use facepay_hub::demo::Members;
use facepay_hub::service::Hub;
use facepay_hub::simulator::Failure;
use facepay_models::ModelStore;
use facepay_money::Currency;
use facepay_payments::hub_member::{FACEPAY_MEMBER_ID, HubMember};
use facepay_payments::{Config, FileKeyProvider, LivenessMode, Parts, Services};
use facepay_store::{Clock, Store, SystemClock};
use facepay_template_transform::TransformKeys;
use facepay_vault::channel::ChannelKey;
use facepay_vault::{KeyPart, LocalVault, RemoteVault, Vault};

use facepay_face::{Backend, EngineConfig};

/// Options shared by every command that runs the engine.
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Inference runtime: `ort` (ONNX Runtime, the default) or `tract`.
    #[arg(long, env = "FACEPAY_BACKEND", default_value = "ort")]
    pub backend: Backend,
    /// Threads inside one inference (ONNX Runtime only).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl EngineArgs {
    pub fn load(&self, store: &ModelStore) -> anyhow::Result<FaceEngine> {
        self.load_with(store, self.backend)
    }

    pub fn load_with(&self, store: &ModelStore, backend: Backend) -> anyhow::Result<FaceEngine> {
        let config = EngineConfig {
            backend,
            threads_intra: self.threads,
            ..EngineConfig::default()
        };
        Ok(FaceEngine::load(store, config)?)
    }
}

#[derive(clap::Args, Clone)]
pub struct AppArgs {
    /// Where the embedded database and the data key live.
    #[arg(long, env = "FACEPAY_DATA_DIR", default_value = ".facepay/data")]
    pub data_dir: PathBuf,
    /// `postgres://...` for PostgreSQL; the embedded SQLite file in the data
    /// directory when absent.
    #[arg(long, env = "FACEPAY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// `strict`: only a burst judged live pays. `lenient`: a burst without
    /// evidence either way (one still photo) pays too, a spoof never does;
    /// for demonstrations with still photos.
    #[arg(long, env = "FACEPAY_LIVENESS", default_value = "strict", value_parser = parse_liveness)]
    pub liveness: LivenessMode,
    /// Latency the issuer simulator adds to every call.
    #[arg(long, default_value_t = 0)]
    pub issuer_latency_ms: u64,
    /// How long a claimed idempotency key stays locked to its request.
    #[arg(long, default_value_t = 30_000)]
    pub idempotency_lease_ms: i64,
    /// A file for the gallery snapshot (sealed under a data key of its own,
    /// destroyed by any face deletion): a restart reads it instead of
    /// opening every template in the store. None when absent.
    #[arg(long, env = "FACEPAY_GALLERY_SNAPSHOT")]
    pub gallery_snapshot: Option<PathBuf>,
    /// The risk rules (TOML, as `crates/facepay-risk/src/default_rules.toml`);
    /// `serve` reloads the file when it changes. The built-in rules when
    /// absent.
    #[arg(long, env = "FACEPAY_RISK_RULES")]
    pub risk_rules: Option<PathBuf>,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Where the card vault is and how it opens.
#[derive(clap::Args, Clone)]
pub struct VaultArgs {
    /// A card vault in another process (`facepay vault serve`); the vault
    /// runs in this process when absent.
    #[arg(long, env = "FACEPAY_VAULT_URL")]
    pub vault_url: Option<String>,
    /// The secret shared with the vault process (64 hex digits).
    #[arg(long, env = "FACEPAY_VAULT_CHANNEL_SECRET_FILE")]
    pub vault_channel_secret: Option<PathBuf>,
    /// The in-process vault's directory: its own SQLite store and, in the
    /// embedded default, its custodians' key parts. `<data-dir>/vault` when
    /// absent.
    #[arg(long, env = "FACEPAY_VAULT_DIR")]
    pub vault_dir: Option<PathBuf>,
    /// `postgres://...` for the in-process vault's own database (never the
    /// core's).
    #[arg(long, env = "FACEPAY_VAULT_DATABASE_URL")]
    pub vault_database_url: Option<String>,
    /// The two custodians' key part files; with neither given (nor the
    /// FACEPAY_VAULT_KEY_PART_1/_2 variables), the embedded default keeps
    /// both in the vault directory, which is for development only.
    #[arg(long = "vault-key-part", num_args = 1)]
    pub vault_key_parts: Vec<PathBuf>,
}

const PART_ENV: [&str; 2] = ["FACEPAY_VAULT_KEY_PART_1", "FACEPAY_VAULT_KEY_PART_2"];

impl VaultArgs {
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.vault_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("vault"))
    }

    pub fn channel_secret(&self, data_dir: &Path) -> PathBuf {
        self.vault_channel_secret
            .clone()
            .unwrap_or_else(|| self.dir(data_dir).join("channel.secret"))
    }

    pub async fn open_store(&self, data_dir: &Path) -> anyhow::Result<Store> {
        let url = match &self.vault_database_url {
            Some(url) => url.clone(),
            None => Store::vault_sqlite_url(&self.dir(data_dir))?,
        };
        Store::open_vault(&url)
            .await
            .context("opening the card vault's store")
    }

    /// The custodians' parts: from files, from the environment, or (the
    /// embedded default, when `embedded` allows it) both from the vault
    /// directory, made on first use. Fewer than two: the vault waits for
    /// the others.
    pub fn key_parts(&self, data_dir: &Path, embedded: bool) -> anyhow::Result<Vec<KeyPart>> {
        if !self.vault_key_parts.is_empty() {
            anyhow::ensure!(
                self.vault_key_parts.len() <= 2,
                "give at most two --vault-key-part files"
            );
            return self
                .vault_key_parts
                .iter()
                .map(|p| KeyPart::read_file(p).map_err(Into::into))
                .collect();
        }
        let from_env: Vec<KeyPart> = PART_ENV
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .map(|hex| KeyPart::from_hex(&hex))
            .collect::<Result<_, _>>()?;
        if !from_env.is_empty() || !embedded {
            return Ok(from_env);
        }
        embedded_parts(&self.dir(data_dir))
    }

    /// The vault this process pays through.
    pub async fn open(
        &self,
        data_dir: &Path,
        issuer: SimulatorConfig,
    ) -> anyhow::Result<Arc<dyn Vault>> {
        if let Some(url) = &self.vault_url {
            let key = ChannelKey::read_file(&self.channel_secret(data_dir))?;
            return Ok(Arc::new(RemoteVault::new(url, key)));
        }
        let store = self.open_store(data_dir).await?;
        let vault = Arc::new(LocalVault::new(
            store,
            Arc::new(SimulatedIssuer::new(issuer)),
        ));
        unlock(&vault, self.key_parts(data_dir, true)?).await?;
        Ok(vault)
    }
}

/// Where the deployment's template transform secrets live.
pub fn transforms_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("transforms")
}

/// The embedded default's two parts, both in `vault_dir`: dual control in
/// form only, so that development needs no custodians. Production passes
/// each part from its own custodian (`--vault-key-part` or the environment).
pub fn embedded_parts(vault_dir: &Path) -> anyhow::Result<Vec<KeyPart>> {
    let paths = [1, 2].map(|n| vault_dir.join(format!("custodian-{n}.part")));
    if paths.iter().all(|p| !p.exists()) {
        for path in &paths {
            KeyPart::create_file(path)?;
        }
    }
    paths
        .iter()
        .map(|p| KeyPart::read_file(p).map_err(Into::into))
        .collect()
}

/// Unlocks with two parts; with fewer the vault stays locked and says so.
pub async fn unlock(vault: &LocalVault, parts: Vec<KeyPart>) -> anyhow::Result<()> {
    match <[KeyPart; 2]>::try_from(parts) {
        Ok([a, b]) => Ok(vault.unlock(&a, &b).await?),
        Err(parts) => {
            for part in parts {
                vault.give_part(part).await?;
            }
            tracing::warn!("the card vault is locked: it waits for the custodians' key parts");
            Ok(())
        }
    }
}

fn parse_liveness(text: &str) -> Result<LivenessMode, String> {
    match text {
        "strict" => Ok(LivenessMode::Strict),
        "lenient" => Ok(LivenessMode::Lenient),
        other => Err(format!("{other:?}: use strict or lenient")),
    }
}

pub struct App {
    pub services: Arc<Services>,
    pub engine: Arc<FaceEngine>,
    /// The cross-border hub on the same store. Its members are facepay
    /// itself (`FACEPAY_MEMBER_ID`: users pay abroad with their card, its
    /// merchants are paid from abroad) and simulators of other countries'
    /// networks (`facepay_hub::demo`): no real foreign network is reached.
    pub hub: Arc<Hub>,
    /// The risk rules file to follow, if one was given.
    pub risk_rules: Option<PathBuf>,
}

impl AppArgs {
    pub fn database_url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => Ok(Store::sqlite_url(&self.data_dir)?),
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let url = self.database_url()?;
        Store::open(&url)
            .await
            .with_context(|| format!("opening the {} store", url.split(':').next().unwrap_or("")))
    }

    pub async fn build(&self, models: &ModelStore) -> anyhow::Result<App> {
        let risk_rules = match &self.risk_rules {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the risk rules {}", path.display()))?;
                facepay_risk::RiskEngine::from_toml(&text)
                    .with_context(|| format!("the risk rules {}", path.display()))?;
                Some(text)
            }
            None => None,
        };
        let store = self.open_store().await?;
        let engine = Arc::new(self.engine.load(models)?);
        let config = Config {
            liveness: self.liveness,
            idempotency_lease_ms: self.idempotency_lease_ms,
            gallery_snapshot: self.gallery_snapshot.clone(),
            risk_rules,
            ..Config::default()
        };
        let issuer = SimulatorConfig {
            latency_ms: self.issuer_latency_ms,
            ..SimulatorConfig::default()
        };
        let vault = self.vault.open(&self.data_dir, issuer).await?;
        let clock = Arc::new(SystemClock);
        let mut app = App::assemble(store, vault, engine, clock, &self.data_dir, config).await?;
        app.risk_rules = self.risk_rules.clone();
        Ok(app)
    }
}

impl App {
    /// The service on `store`, paying through `vault`, with the keys of
    /// `data_dir`, at the time `clock` tells.
    pub async fn assemble(
        store: Store,
        vault: Arc<dyn Vault>,
        engine: Arc<FaceEngine>,
        clock: Arc<dyn Clock>,
        data_dir: &Path,
        config: Config,
    ) -> anyhow::Result<App> {
        let liveness = Arc::new(LivenessChecker::new(LivenessConfig::default(), None));
        let keys = Arc::new(FileKeyProvider::open(&data_dir.join("keys"))?);
        let transforms = Arc::new(TransformKeys::open(&transforms_dir(data_dir))?);
        let parts = Parts {
            store,
            engine: Arc::clone(&engine),
            liveness,
            vault,
            keys,
            transforms,
            clock: Arc::clone(&clock),
        };
        let services = Services::start(parts, config)
            .await
            .map_err(|f| anyhow::anyhow!("starting the services: {f}"))?;
        let services = Arc::new(services);
        let mut hub =
            Members::simulated(Failure::None).hub(services.store().clone(), clock.now_ms())?;
        hub.add_network(Arc::new(HubMember::new(
            Arc::clone(&services.core),
            FACEPAY_MEMBER_ID,
            Currency::KRW,
        )));
        Ok(App {
            services,
            engine,
            hub: Arc::new(hub),
            risk_rules: None,
        })
    }
}

/// The service on `store` with the embedded vault beside it (SQLite or a
/// PostgreSQL schema of its own), for tests and benchmarks.
pub async fn embedded_app(
    store: Store,
    engine: Arc<FaceEngine>,
    clock: Arc<dyn Clock>,
    dir: &Path,
    config: Config,
) -> anyhow::Result<App> {
    let vault_dir = dir.join("vault");
    let vault_store = facepay_store::testing::vault_beside(&store, &vault_dir).await?;
    let vault = Arc::new(LocalVault::new(
        vault_store,
        Arc::new(SimulatedIssuer::new(SimulatorConfig::default())),
    ));
    unlock(&vault, embedded_parts(&vault_dir)?).await?;
    App::assemble(store, vault, engine, clock, dir, config).await
}
