//! The shared core every service stands on: the store, the envelope of
//! data keys, the clock, the configuration and the card vault, and the
//! primitives each service needs: the idempotency runner, per-payment
//! locks, request input checks, record helpers, phone numbers at rest and
//! the core's side of the vault.
//!
//! Nothing here imports a service module: the services build on the core,
//! never the other way round.

mod cards;
mod input;
mod lease;
mod outbox;
mod phones;
mod records;
mod sealed;

use std::future::Future;
use std::sync::Arc;

use facepay_connector::Connector;
use facepay_gallery::{DecisionPolicy, IndexKind};
use facepay_store::{Clock, Store, idempotency};
use facepay_vault::Vault;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::Failure;
use crate::face::LivenessMode;
use crate::keys::Envelope;

pub(crate) use cards::{CardToVault, stored_credential};
pub use input::{check_idempotency_key, json_value, parse_json};
pub(crate) use input::{decode_frames, normalise_phone};
pub use lease::{LEASE_MS, LEASE_RENEW_MS};
pub(crate) use lease::{PAYMENT_BUSY, Wait};
pub use outbox::{ClaimEventView, EventData, WebhookEvent};
pub(crate) use outbox::{claim_event, transition, transition_committed, transition_via};
pub use phones::PHONE_LOOKUP_KEY_ID;
pub(crate) use phones::{enrolment_scope, hash_phone};
pub(crate) use records::{
    HELD_FOR_REVIEW, REVERSAL_PENDING, commit, created, derived_id, fee, money_of,
    stored_or_created,
};
pub(crate) use sealed::{template_aad, vector_from_bytes, vector_to_bytes};

/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// Completed idempotency keys are kept at least this long.
pub const IDEMPOTENCY_RETENTION_MS: i64 = 48 * 3_600_000;
/// Per-payment locks: operations on one payment run one at a time in this
/// process, before the lease that orders them across servers (`lease`).
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
    /// Payments' face analyses running at once; more wait their turn.
    pub inference_concurrency: usize,
    /// Enrolments' face analyses (and any other face work for a caller
    /// who is not a terminal) running at once, on slots of their own so
    /// that they never take a payment's.
    pub enrolment_inference_concurrency: usize,
    /// Such analyses waiting for a slot at most; one more is refused (503
    /// `face_work_busy`) rather than queued.
    pub enrolment_waiting_max: usize,
    /// How a search over the whole gallery runs.
    pub gallery_kind: IndexKind,
    /// Threads one gallery scan is spread over.
    pub gallery_threads: usize,
    /// Keep each template's floats in the gallery (scores exact to the
    /// float); without them a template takes a fifth of the memory and
    /// scores are the int8 estimate.
    pub gallery_keep_floats: bool,
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
    /// The ISO 4217 code a new card's zero-amount verification names: a
    /// user belongs to no store, so to no store's currency.
    pub card_verification_currency: String,
    pub webhooks: WebhookConfig,
}

/// How merchants' webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Which addresses an endpoint and a delivery may reach.
    pub destinations: facepay_webhooks::Destinations,
    /// One attempt, from resolving the host to the answer, at most.
    pub timeout_ms: u64,
    /// Deliveries under way at once on this server; each pass of the
    /// worker leases at most this many.
    pub concurrency: usize,
    /// The wait after a first failure; each next one is four times longer
    /// (`facepay_webhooks::retry_delay_ms`).
    pub retry_delay_first_ms: i64,
    /// How long after its event (or a redelivery asked by hand) a
    /// delivery is retried.
    pub retry_window_ms: i64,
    /// An endpoint whose deliveries all failed for this long is disabled.
    pub disable_after_ms: i64,
    /// Deliveries and the attempt log are kept this long.
    pub retention_ms: i64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            destinations: facepay_webhooks::Destinations::Public,
            timeout_ms: 10_000,
            concurrency: 8,
            retry_delay_first_ms: 60_000,
            retry_window_ms: 24 * 3_600_000,
            disable_after_ms: 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
        }
    }
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
            enrolment_inference_concurrency: 1,
            enrolment_waiting_max: 16,
            gallery_kind: IndexKind::Exact,
            gallery_threads: 1,
            gallery_keep_floats: true,
            gallery_snapshot: None,
            risk_rules: None,
            terminal_attempts_max: 20,
            factor_failures_max: 5,
            factor_lock_ms: 15 * 60_000,
            card_verification_currency: "USD".into(),
            webhooks: WebhookConfig::default(),
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
    pub timings: Option<crate::api::PayTimings>,
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

/// What an idempotency key is bound to besides its caller (the scope): the
/// operation, the resource it acts on and the request's body. The same key
/// sent for another payment or to another route is refused as reused,
/// never answered with the first request's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) operation: &'static str,
    pub(crate) resource: &'a str,
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    pub(crate) fn new(operation: &'static str, resource: &'a str, body: &'a [u8]) -> Self {
        Self {
            operation,
            resource,
            body,
        }
    }

    /// The operation and the resource length-prefixed, so that no two
    /// requests hash the same input.
    fn hash(&self) -> String {
        let mut digest = Sha256::new();
        for part in [self.operation.as_bytes(), self.resource.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(self.body);
        hex::encode(digest.finalize())
    }
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

/// What every service shares: the store, the data keys' envelope, the
/// clock, the configuration, the card vault and its connector, and the
/// per-payment locks.
pub struct Core {
    pub(crate) store: Store,
    /// Where every service reads the time.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) envelope: Envelope,
    pub(crate) config: Config,
    /// Holds the other share of every card and is the only way to the
    /// issuer for an authorisation.
    pub(crate) vault: Arc<dyn Vault>,
    /// The issuer for calls that need no card; the vault's.
    pub(crate) connector: Arc<dyn Connector>,
    payment_locks: Vec<Mutex<()>>,
    /// The key phone numbers are hashed under, once read (`phones`).
    phone_key: tokio::sync::OnceCell<crate::keys::LookupKey>,
}

impl Core {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        envelope: Envelope,
        vault: Arc<dyn Vault>,
        config: Config,
    ) -> Self {
        Self {
            store,
            clock,
            envelope,
            config,
            connector: vault.connector(),
            vault,
            payment_locks: (0..PAYMENT_LOCKS).map(|_| Mutex::new(())).collect(),
            phone_key: tokio::sync::OnceCell::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A connection from the pool, for reads and single-statement writes.
    pub(crate) async fn conn(&self) -> Result<facepay_store::PooledConnection, Failure> {
        Ok(self.store.acquire().await?)
    }

    pub(crate) async fn begin(&self) -> Result<facepay_store::Transaction, Failure> {
        Ok(self.store.begin().await?)
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

    pub(crate) fn payment_lock(&self, payment_id: &str) -> &Mutex<()> {
        let digest = Sha256::digest(payment_id.as_bytes());
        &self.payment_locks[usize::from(digest[0]) % PAYMENT_LOCKS]
    }

    /// Runs `work` under the idempotency key `key` of `scope`, bound to
    /// `request`. A replay returns the stored answer without running
    /// anything.
    pub(crate) async fn idempotent<F, Fut>(
        &self,
        scope: String,
        key: &str,
        request: Request<'_>,
        work: F,
    ) -> Result<Reply, Failure>
    where
        F: FnOnce(Claimed) -> Fut,
        Fut: Future<Output = Result<Reply, Failure>>,
    {
        self.idempotent_or(
            scope,
            key,
            request,
            work,
            |earlier| async move { Ok(earlier) },
        )
        .await
    }

    /// `idempotent`, with a replay's stored answer passed through `replay`:
    /// for an answer that cannot be stored whole (a secret shown once).
    pub(crate) async fn idempotent_or<F, Fut, R, RFut>(
        &self,
        scope: String,
        key: &str,
        request: Request<'_>,
        work: F,
        replay: R,
    ) -> Result<Reply, Failure>
    where
        F: FnOnce(Claimed) -> Fut,
        Fut: Future<Output = Result<Reply, Failure>>,
        R: FnOnce(Reply) -> RFut,
        RFut: Future<Output = Result<Reply, Failure>>,
    {
        check_idempotency_key(key)?;
        if let Some(earlier) = self.claim(&scope, key, &request.hash()).await? {
            return replay(earlier).await;
        }
        let result = work(Claimed {
            scope: scope.clone(),
            key: key.to_owned(),
        })
        .await;
        if result.is_err() {
            // No answer was stored: give the key back so a corrected
            // request may use it. A payment's row the request left
            // unfinished answers that request with its end (a retry or the
            // sweep ends it).
            if let Ok(mut conn) = self.store.pool().acquire().await
                && let Err(e) = idempotency::release(&mut conn, &scope, key).await
            {
                tracing::warn!(error = %e, "idempotency key not released; it frees itself when its lease ends");
            }
        }
        result
    }

    /// Claims `key` for this request: `None` when claimed, the stored
    /// answer for a replay, an error when the key is taken otherwise.
    async fn claim(&self, scope: &str, key: &str, hash: &str) -> Result<Option<Reply>, Failure> {
        let mut conn = self.conn().await?;
        let claim = idempotency::claim(
            &mut conn,
            scope,
            key,
            hash,
            self.now_ms(),
            self.config.idempotency_lease_ms,
        )
        .await?;
        match claim {
            idempotency::Claim::Claimed => Ok(None),
            idempotency::Claim::Replay {
                status_code,
                response,
            } => Ok(Some(Reply {
                status: status_code,
                body: response,
                timings: None,
            })),
            idempotency::Claim::Mismatch => Err(Failure::conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different request (another body, route or resource); use a new key for a new request",
            )),
            idempotency::Claim::InProgress => Err(Failure::conflict(
                "idempotency_in_progress",
                "the first request with this idempotency key is still running; retry shortly",
            )),
        }
    }
}
