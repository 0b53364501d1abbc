//! Everything a running facepay needs, built once from the command line:
//! the store, the face engine, the liveness checker, the card connector
//! (the issuer simulator; a real acquirer would implement the same trait)
//! and the payments service on top.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use facepay_connector::{SimulatedIssuer, SimulatorConfig};
use facepay_face::FaceEngine;
use facepay_face::liveness::{LivenessChecker, LivenessConfig};
use facepay_models::ModelStore;
use facepay_payments::{Config, FileKeyProvider, LivenessMode, Payments};
use facepay_store::Store;

use crate::EngineArgs;

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
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn parse_liveness(text: &str) -> Result<LivenessMode, String> {
    match text {
        "strict" => Ok(LivenessMode::Strict),
        "lenient" => Ok(LivenessMode::Lenient),
        other => Err(format!("{other:?}: use strict or lenient")),
    }
}

pub struct App {
    pub payments: Arc<Payments>,
    pub engine: Arc<FaceEngine>,
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
        let store = self.open_store().await?;
        let engine = Arc::new(self.engine.load(models)?);
        let config = Config {
            liveness: self.liveness,
            idempotency_lease_ms: self.idempotency_lease_ms,
            ..Config::default()
        };
        let issuer = SimulatorConfig {
            latency_ms: self.issuer_latency_ms,
            ..SimulatorConfig::default()
        };
        App::assemble(store, engine, &self.data_dir, config, issuer).await
    }
}

impl App {
    /// The service on `store` with the issuer simulator as its connector and
    /// the data key of `data_dir`.
    pub async fn assemble(
        store: Store,
        engine: Arc<FaceEngine>,
        data_dir: &Path,
        config: Config,
        issuer: SimulatorConfig,
    ) -> anyhow::Result<App> {
        let liveness = Arc::new(LivenessChecker::new(LivenessConfig::default(), None));
        let connector = Arc::new(SimulatedIssuer::new(issuer));
        let keys = Arc::new(FileKeyProvider::open(&data_dir.join("keys"))?);
        let payments = Payments::start(
            store,
            Arc::clone(&engine),
            liveness,
            connector,
            keys,
            config,
        )
        .await
        .map_err(|f| anyhow::anyhow!("starting the payments service: {f}"))?;
        Ok(App {
            payments: Arc::new(payments),
            engine,
        })
    }
}
