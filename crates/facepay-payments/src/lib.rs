//! The payments core: enrol a face and a card, identify the payer at a
//! terminal, authorise and capture with the card connector, refund, report.
//!
//! Every write is idempotent. A request claims its `Idempotency-Key` first,
//! does its work, and commits its effect (payment rows, ledger transfers)
//! and its answer in one database transaction; a retry gets that answer.
//! Requests refused before any effect give the key back.
//!
//! This crate knows nothing of HTTP beyond status numbers: bodies come in as
//! bytes and answers go out as JSON text, so the stored answer of an
//! idempotent request is byte-for-byte what the first caller saw.

pub mod api;
mod cards;
pub mod claims;
pub mod error;
pub mod face;
mod follow;
pub mod hub_member;
mod identify;
pub mod keys;
pub mod loyalty;
pub mod merchant;
mod pay;
mod risk;
pub mod signing;
pub mod snapshot;
mod tap;
mod templates;
mod users;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_connector::Connector;
use facepay_face::FaceEngine;
use facepay_face::liveness::LivenessChecker;
use facepay_gallery::{Gallery, GalleryConfig};
use facepay_store::parties::TerminalContext;
use facepay_store::{Clock, Store, idempotency};
use facepay_template_transform::TransformKeys;
use facepay_vault::Vault;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};

pub use error::Failure;
pub use face::LivenessMode;
pub use facepay_gallery::{DecisionPolicy, IndexKind};
pub use keys::{Envelope, FileKeyProvider, KeyProvider};
pub use risk::Matched;
pub use templates::reissue_templates;

/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// Completed idempotency keys are kept at least this long.
pub const IDEMPOTENCY_RETENTION_MS: i64 = 48 * 3_600_000;
/// Start-up logs its progress every this many templates.
const GALLERY_PROGRESS_EVERY: i64 = 100_000;
/// Templates read from the store per query at start-up: the gallery is
/// built a batch at a time, never holding every ciphertext at once.
const GALLERY_LOAD_BATCH: i64 = 10_000;
/// Per-payment locks: operations on one payment run one at a time in this
/// process, so two refunds cannot both reach the issuer.
const PAYMENT_LOCKS: usize = 64;

#[derive(Debug, Clone)]
pub struct Config {
    pub decision: DecisionPolicy,
    pub liveness: LivenessMode,
    /// How long a manual-capture authorisation holds before it is voided.
    pub authorisation_hold_ms: i64,
    /// A payment its request left unfinished (a step-up never answered, a
    /// request stopped midway) this long is ended by the sweep.
    pub abandoned_after_ms: i64,
    /// How long a claimed idempotency key stays locked to its request; after
    /// that a retry may take over (the first request's process died).
    pub idempotency_lease_ms: i64,
    pub step_up_attempts_max: i64,
    /// Face analyses running at once; more wait their turn.
    pub inference_concurrency: usize,
    /// How a search over the whole gallery runs.
    pub gallery_kind: IndexKind,
    /// Threads one gallery scan is spread over.
    pub gallery_threads: usize,
    /// Where the gallery snapshot lives, if restarts should use one.
    pub gallery_snapshot: Option<std::path::PathBuf>,
    /// The risk rules (TOML); facepay-risk's defaults when absent.
    pub risk_rules: Option<String>,
    /// Refused attempts (no match, spoof) at one terminal in ten minutes
    /// before it is throttled and flagged for an operator.
    pub terminal_attempts_max: i64,
    /// Wrong answers of one factor (PIN, phone digits) in a day before it
    /// locks.
    pub factor_failures_max: i64,
    /// How long a locked factor stays locked after the last wrong answer.
    pub factor_lock_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            decision: DecisionPolicy::default(),
            liveness: LivenessMode::Strict,
            authorisation_hold_ms: 7 * 24 * 3_600_000,
            abandoned_after_ms: 15 * 60_000,
            idempotency_lease_ms: 30_000,
            step_up_attempts_max: 3,
            inference_concurrency: 2,
            gallery_kind: IndexKind::Exact,
            gallery_threads: 1,
            gallery_snapshot: None,
            risk_rules: None,
            terminal_attempts_max: 20,
            factor_failures_max: 5,
            factor_lock_ms: 15 * 60_000,
        }
    }
}

/// An answer: HTTP status and JSON body, plus the time each stage took when
/// this request did the work (a replay did none). The timings stay out of
/// the body so that a replay answers byte for byte as the first time did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub timings: Option<api::PayTimings>,
}

impl Reply {
    pub fn json(status: u16, value: &impl Serialize) -> Result<Self, Failure> {
        let body = serde_json::to_string(value).map_err(|e| {
            tracing::error!(error = %e, "response serialisation");
            Failure::internal()
        })?;
        Ok(Self {
            status,
            body,
            timings: None,
        })
    }
}

pub struct Payments {
    store: Store,
    /// Where every part of the service reads the time.
    clock: Arc<dyn Clock>,
    engine: Arc<FaceEngine>,
    liveness: Arc<LivenessChecker>,
    /// Holds the other share of every card and is the only way to the
    /// issuer for an authorisation.
    vault: Arc<dyn Vault>,
    /// The issuer for calls that need no card; the vault's.
    connector: Arc<dyn Connector>,
    gallery: Gallery,
    risk: facepay_risk::RiskEngine,
    /// The last change-log entry applied to the gallery.
    changes_seen: Mutex<i64>,
    /// Whether start-up read the gallery from its snapshot file.
    gallery_restored: AtomicBool,
    /// The key of this server's last snapshot; held while one is written.
    snapshot_key: Mutex<Option<String>>,
    /// Probes of payments awaiting a step-up.
    probes: identify::Probes,
    envelope: Envelope,
    transforms: Arc<TransformKeys>,
    /// The transform of the gallery's space: current when this started.
    transform_id: String,
    config: Config,
    inference: Semaphore,
    payment_locks: Vec<Mutex<()>>,
    enrol_lock: Mutex<()>,
}

/// The key a request claimed, to be completed in the request's transaction.
pub(crate) struct Claimed {
    scope: String,
    key: String,
}

impl Claimed {
    pub(crate) async fn complete(
        &self,
        conn: &mut facepay_store::Connection,
        reply: &Reply,
    ) -> Result<(), Failure> {
        idempotency::complete(conn, &self.scope, &self.key, reply.status, &reply.body).await?;
        Ok(())
    }
}

/// What the services are built from: the outside parts they run on.
pub struct Parts {
    pub store: Store,
    pub engine: Arc<FaceEngine>,
    pub liveness: Arc<LivenessChecker>,
    /// Holds the other share of every card and is the only way to the
    /// issuer.
    pub vault: Arc<dyn Vault>,
    /// The key-encryption keys that wrap every data key.
    pub keys: Arc<dyn KeyProvider>,
    pub transforms: Arc<TransformKeys>,
    /// Where every part of the services reads the time.
    pub clock: Arc<dyn Clock>,
}

impl Payments {
    /// Builds the service and loads the gallery from the store.
    pub async fn start(parts: Parts, config: Config) -> Result<Self, Failure> {
        let Parts {
            store,
            engine,
            liveness,
            vault,
            keys,
            transforms,
            clock,
        } = parts;
        assert!(config.inference_concurrency > 0);
        let gallery = Gallery::new(GalleryConfig {
            kind: config.gallery_kind,
            threads: config.gallery_threads,
            ..GalleryConfig::new(facepay_face::embed::EMBEDDING_DIMENSIONS)
        })?;
        let rules = config
            .risk_rules
            .as_deref()
            .unwrap_or(facepay_risk::DEFAULT_RULES);
        let risk = facepay_risk::RiskEngine::from_toml(rules).map_err(|e| {
            tracing::error!(error = %e, "risk rules");
            Failure::internal()
        })?;
        let service = Self {
            risk,
            transform_id: transforms.current_id()?,
            transforms,
            store,
            clock,
            engine,
            liveness,
            connector: vault.connector(),
            vault,
            gallery,
            changes_seen: Mutex::new(0),
            gallery_restored: AtomicBool::new(false),
            snapshot_key: Mutex::new(None),
            probes: identify::Probes::default(),
            envelope: Envelope::new(keys),
            inference: Semaphore::new(config.inference_concurrency),
            config,
            payment_locks: (0..PAYMENT_LOCKS).map(|_| Mutex::new(())).collect(),
            enrol_lock: Mutex::new(()),
        };
        service.load_gallery().await?;
        service.move_cards_to_vault().await?;
        Ok(service)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock every part of the service reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A connection from the pool, for reads and single-statement writes.
    pub(crate) async fn conn(&self) -> Result<facepay_store::PooledConnection, Failure> {
        Ok(self.store.acquire().await?)
    }

    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// Whether start-up read the gallery from its snapshot file rather
    /// than from the store.
    pub fn gallery_restored(&self) -> bool {
        self.gallery_restored.load(Ordering::Relaxed)
    }

    /// The data key a record's `key_id` names (`None` for legacy records).
    pub(crate) async fn data_key(
        &self,
        conn: &mut facepay_store::Connection,
        key_id: &str,
    ) -> Result<Option<facepay_store::keys::DataKeyRow>, Failure> {
        if !key_id.starts_with("dek_") {
            return Ok(None);
        }
        Ok(Some(
            facepay_store::keys::get(conn, key_id)
                .await?
                .ok_or_else(|| {
                    tracing::error!(key_id, "data key missing");
                    Failure::internal()
                })?,
        ))
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    async fn load_gallery(&self) -> Result<(), Failure> {
        if let Some(rows) = self.restore_snapshot().await? {
            let changes = self.catch_up().await?;
            let mut tx = self.store.begin().await?;
            let count = self.gallery.len().to_string();
            facepay_store::audit::append(
                &mut tx,
                self.clock.now_ms(),
                "server",
                "gallery_restored",
                &count,
            )
            .await?;
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            self.gallery_restored.store(true, Ordering::Relaxed);
            tracing::info!(
                rows,
                changes,
                templates = self.gallery.len(),
                "gallery restored from its snapshot"
            );
            return Ok(());
        }
        let mut conn = self.conn().await?;
        // Read before the templates: a change made while they load is
        // applied again by `catch_up`, which is harmless.
        *self.changes_seen.lock().await = facepay_store::changes::last_seq(&mut conn).await?;
        let total = facepay_store::parties::active_template_count(&mut conn).await?;
        let (mut after, mut loaded, mut reported) = (String::new(), 0i64, 0i64);
        loop {
            let batch =
                facepay_store::parties::active_templates(&mut conn, &after, GALLERY_LOAD_BATCH)
                    .await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = last.template.user_id.clone();
            let mut entries = Vec::with_capacity(batch.len());
            for active in &batch {
                if let Some((vector, partitions)) = self.gallery_entry(active)? {
                    entries.push((active.template.user_id.as_str(), vector, partitions));
                }
            }
            let rows: Vec<(&str, &[f32], &[String])> = entries
                .iter()
                .map(|(id, vector, partitions)| (*id, vector.as_slice(), partitions.as_slice()))
                .collect();
            self.gallery.insert_many(&rows)?;
            loaded += batch.len() as i64;
            if loaded - reported >= GALLERY_PROGRESS_EVERY {
                reported = loaded;
                let percent = loaded * 100 / total.max(1);
                tracing::info!(loaded, total, percent, "loading the gallery");
            }
            if (batch.len() as i64) < GALLERY_LOAD_BATCH {
                break;
            }
        }
        for (user_id, merchant_id) in facepay_store::parties::regulars(&mut conn).await? {
            // A user past the partition limit is still found by a full search.
            let _ = self
                .gallery
                .join_partition(&user_id, &identify::merchant_partition(&merchant_id));
        }
        drop(conn);
        let mut tx = self.store.begin().await?;
        let count = self.gallery.len().to_string();
        facepay_store::audit::append(
            &mut tx,
            self.clock.now_ms(),
            "server",
            "templates_decrypted",
            &count,
        )
        .await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        tracing::info!(templates = self.gallery.len(), "gallery loaded");
        Ok(())
    }

    /// Runs `work` under the idempotency key `key` of `scope`. A replay
    /// returns the stored answer without running anything.
    pub(crate) async fn idempotent<F, Fut>(
        &self,
        scope: String,
        key: &str,
        body: &[u8],
        work: F,
    ) -> Result<Reply, Failure>
    where
        F: FnOnce(Claimed) -> Fut,
        Fut: Future<Output = Result<Reply, Failure>>,
    {
        check_idempotency_key(key)?;
        let hash = hex::encode(Sha256::digest(body));
        let mut conn = self.conn().await?;
        let claim = idempotency::claim(
            &mut conn,
            &scope,
            key,
            &hash,
            self.clock.now_ms(),
            self.config.idempotency_lease_ms,
        )
        .await?;
        drop(conn);
        match claim {
            idempotency::Claim::Claimed => {}
            idempotency::Claim::Replay {
                status_code,
                response,
            } => {
                return Ok(Reply {
                    status: status_code,
                    body: response,
                    timings: None,
                });
            }
            idempotency::Claim::Mismatch => {
                return Err(Failure::conflict(
                    "idempotency_key_reused",
                    "this idempotency key was used with a different request; use a new key for a new request",
                ));
            }
            idempotency::Claim::InProgress => {
                return Err(Failure::conflict(
                    "idempotency_in_progress",
                    "the first request with this idempotency key is still running; retry shortly",
                ));
            }
        }
        let result = work(Claimed {
            scope: scope.clone(),
            key: key.to_owned(),
        })
        .await;
        if result.is_err() {
            // Nothing was committed: give the key back so a corrected
            // request may use it.
            if let Ok(mut conn) = self.store.pool().acquire().await
                && let Err(e) = idempotency::release(&mut conn, &scope, key).await
            {
                tracing::warn!(error = %e, "idempotency key not released; it frees itself when its lease ends");
            }
        }
        result
    }

    fn payment_lock(&self, payment_id: &str) -> &Mutex<()> {
        let digest = Sha256::digest(payment_id.as_bytes());
        &self.payment_locks[usize::from(digest[0]) % PAYMENT_LOCKS]
    }

    /// Runs blocking face work with a bounded number of analyses at once.
    async fn on_inference_thread<T, F>(&self, work: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&FaceEngine, &LivenessChecker) -> Result<T, Failure> + Send + 'static,
    {
        let _permit =
            self.inference.acquire().await.map_err(|_| {
                Failure::unavailable("shutting_down", "the server is shutting down")
            })?;
        let engine = Arc::clone(&self.engine);
        let liveness = Arc::clone(&self.liveness);
        tokio::task::spawn_blocking(move || work(&engine, &liveness))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "face analysis thread");
                Failure::internal()
            })?
    }

    /// Authenticates a signed terminal request and returns its terminal.
    pub async fn authenticate_terminal(
        &self,
        headers: &signing::SignedHeaders,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<TerminalContext, Failure> {
        let sig_failure =
            |e: signing::SignatureError| Failure::unauthorised(e.code(), e.to_string());
        signing::check_nonce(&headers.nonce).map_err(sig_failure)?;
        let mut conn = self.conn().await?;
        let Some(ctx) =
            facepay_store::parties::terminal_context(&mut conn, &headers.terminal_id).await?
        else {
            return Err(Failure::unauthorised(
                "unknown_terminal",
                "this terminal is not registered",
            ));
        };
        let now = self.clock.now_ms();
        signing::verify(&ctx.public_key, headers, method, path, body, now).map_err(sig_failure)?;
        if !idempotency::use_nonce(&mut conn, &ctx.terminal_id, &headers.nonce, now).await? {
            return Err(Failure::unauthorised(
                "nonce_reused",
                "this request was already received (its nonce was used); sign every request anew",
            ));
        }
        if ctx.terminal_status != "active" {
            return Err(Failure::forbidden(
                "terminal_suspended",
                "this terminal is suspended",
            ));
        }
        if ctx.merchant.status != "active" {
            return Err(Failure::forbidden(
                "merchant_suspended",
                "this merchant is suspended",
            ));
        }
        Ok(ctx)
    }

    /// Voids authorisations whose hold ran out. Returns how many.
    pub async fn expire_authorisations(&self, batch: i64) -> Result<usize, Failure> {
        merchant::expire(self, batch).await
    }

    /// Ends payments their requests abandoned, giving back the coupons and
    /// points they held. Returns how many.
    pub async fn close_abandoned(&self, batch: i64) -> Result<usize, Failure> {
        merchant::close_abandoned(self, batch).await
    }

    /// Forgets idempotency keys and nonces past their retention.
    pub async fn purge(&self) -> Result<u64, Failure> {
        let now = self.clock.now_ms();
        let mut conn = self.conn().await?;
        Ok(idempotency::purge(
            &mut conn,
            now - IDEMPOTENCY_RETENTION_MS,
            now - 2 * signing::WINDOW_MS,
        )
        .await?)
    }
}

/// Re-wraps every data key not yet under the current KEK, a batch at a
/// time, while servers keep running; safe to interrupt and run again.
/// Returns how many it re-wrapped.
pub async fn rewrap_data_keys(
    store: &Store,
    envelope: &Envelope,
    clock: &dyn Clock,
    batch: i64,
    mut progress: impl FnMut(usize),
) -> Result<usize, Failure> {
    assert!(batch > 0);
    let mut done = 0;
    loop {
        let current = envelope.provider().current()?;
        let rows = {
            let mut conn = store.acquire().await?;
            facepay_store::keys::not_under(&mut conn, current.id(), batch).await?
        };
        if rows.is_empty() {
            return Ok(done);
        }
        let mut tx = store.begin().await?;
        let mut rewrapped = 0;
        for row in rows {
            let after = envelope.rewrap(&row)?;
            if facepay_store::keys::rewrap(&mut tx, &row, &after).await? {
                rewrapped += 1;
            }
        }
        let subject = format!("{rewrapped} data keys to {}", current.id());
        facepay_store::audit::append(
            &mut tx,
            clock.now_ms(),
            "operator",
            "data_keys_rewrapped",
            &subject,
        )
        .await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        done += rewrapped;
        progress(done);
    }
}

pub fn check_idempotency_key(key: &str) -> Result<(), Failure> {
    if key.is_empty() {
        return Err(Failure::bad_request(
            "idempotency_key_missing",
            "every write needs an Idempotency-Key header (a fresh random string per new request)",
        ));
    }
    if key.len() > IDEMPOTENCY_KEY_LEN_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::bad_request(
            "idempotency_key_invalid",
            format!(
                "the Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters"
            ),
        ));
    }
    Ok(())
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "json_invalid_field"
        } else {
            "json_malformed"
        };
        Failure::bad_request(
            code,
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

pub(crate) fn decode_frames(frames: &[String]) -> Result<Vec<Vec<u8>>, Failure> {
    if frames.is_empty() || frames.len() > face::FRAMES_MAX {
        return Err(Failure::unprocessable(
            "frames_count",
            format!("send 1 to {} frames", face::FRAMES_MAX),
        ));
    }
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.len() > facepay_face::decode::IMAGE_BYTES_MAX / 3 * 4 + 4 {
                return Err(Failure::new(
                    413,
                    "image_too_large",
                    format!(
                        "frame {i} is over {} bytes",
                        facepay_face::decode::IMAGE_BYTES_MAX
                    ),
                ));
            }
            BASE64.decode(f).map_err(|_| {
                Failure::bad_request("frame_not_base64", format!("frame {i} is not valid base64"))
            })
        })
        .collect()
}

/// An id derived from its scope and idempotency key: a retry after a crash
/// computes the same id, so the issuer (which deduplicates on it) and the
/// database (whose key it is) see one payment, never two.
pub(crate) fn derived_id(prefix: &str, scope: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{scope}\n{key}").as_bytes());
    format!("{prefix}_{}", &hex::encode(digest)[..32])
}

pub(crate) fn template_aad(user_id: &str, model: &str) -> String {
    format!("template:{user_id}:{model}")
}

/// A card sealed whole, before the vault.
pub(crate) fn card_aad(method_id: &str) -> String {
    format!("card:{method_id}")
}

/// The core's share of a card, bound to its row and to the vault's token.
pub(crate) fn card_share_aad(method_id: &str, token: &str) -> String {
    format!("card-share:{method_id}:{token}")
}

pub(crate) fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Result<Vec<f32>, Failure> {
    if !bytes.len().is_multiple_of(4) {
        tracing::error!("template of {} bytes", bytes.len());
        return Err(Failure::internal());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
