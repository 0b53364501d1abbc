//! The delivery worker: each pass leases the due deliveries it can send
//! at once (`webhooks.concurrency`), sends them concurrently, each within
//! `webhooks.timeout_ms`, and records each outcome: delivered, tried
//! again later (`facepay_webhooks::after_failure`), or given up at the
//! end of its retry window. An endpoint whose deliveries all failed for
//! `webhooks.disable_after_ms` is disabled, with the reason.
//!
//! A lease outlives any attempt, so a delivery is sent by one worker at a
//! time, on any number of servers; a server that dies mid-attempt leaves
//! its lease to run out, and another worker sends the delivery again:
//! receivers see each event at least once and deduplicate by its id.

use std::sync::Arc;

use facepay_store::audit;
use facepay_store::webhooks::{self as store, AttemptRow, Due, Outcome};
use facepay_webhooks::{Attempt, Next, after_failure};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use super::Webhooks;
use crate::core::commit;
use crate::error::Failure;

/// What a lease adds past the longest attempt, for the writes around it.
const LEASE_MARGIN_MS: i64 = 5_000;
/// Rows of each kind one purge removes at most.
const PURGE_BATCH: i64 = 1_000;
const HOUR_MS: i64 = 3_600_000;

impl Webhooks {
    /// Deliveries one pass leases at most: as many as it sends at once.
    pub fn batch_max(&self) -> usize {
        self.core.config.webhooks.concurrency.max(1)
    }

    /// One pass of the worker. Returns how many deliveries it leased: as
    /// many as it may send at once means more may be due now.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, Failure> {
        let config = &self.core.config.webhooks;
        let timeout_ms = i64::try_from(config.timeout_ms).unwrap_or(i64::MAX / 4);
        let lease_ms = 2 * timeout_ms + LEASE_MARGIN_MS;
        let limit = i64::try_from(self.batch_max()).unwrap_or(1);
        let lease = {
            let mut conn = self.core.conn().await?;
            store::claim_due(&mut conn, self.core.now_ms(), lease_ms, limit).await?
        };
        let leased = lease.due.len();
        let owner: Arc<str> = Arc::from(lease.owner);
        let mut attempts = JoinSet::new();
        for due in lease.due {
            let (webhooks, owner) = (Arc::clone(self), Arc::clone(&owner));
            attempts.spawn(async move { webhooks.attempt(&owner, due).await });
        }
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a delivery's outcome was not recorded; it is sent again when its lease ends")
                }
                Err(e) => tracing::error!(error = %e, "a delivery task failed"),
            }
        }
        Ok(leased)
    }

    /// Sends one leased delivery and records what came of it.
    async fn attempt(&self, owner: &str, due: Due) -> Result<(), Failure> {
        let sent = match self.secret_of(&due).await {
            Ok(secret) => {
                let timestamp_s = self.core.now_ms().div_euclid(1_000);
                let body = Arc::from(due.payload.as_str());
                self.sender
                    .post(
                        due.url.clone(),
                        due.event_id.clone(),
                        body,
                        secret,
                        timestamp_s,
                    )
                    .await
            }
            Err(e) => {
                tracing::error!(endpoint = %due.endpoint_id, error = %e, "webhook secret not opened");
                Attempt {
                    status_code: None,
                    latency_ms: 0,
                    error: Some("the server could not open the endpoint's signing secret".into()),
                }
            }
        };
        let outcome = if sent.delivered() {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!("facepay_webhook_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("facepay_webhook_attempt_seconds").record(sent.latency_ms as f64 / 1e3);
        self.record(owner, &due, &sent).await
    }

    async fn secret_of(&self, due: &Due) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let mut conn = self.core.conn().await?;
        let data_key = self.core.data_key(&mut conn, &due.secret_key_id).await?;
        drop(conn);
        self.open_secret(
            &due.secret_key_id,
            data_key.as_ref(),
            &due.endpoint_id,
            &due.secret_nonce,
            &due.secret_ciphertext,
        )
    }

    /// The attempt in the log and the delivery moved on, in one
    /// transaction, if the lease is still this worker's; then the
    /// endpoint's run of failures ended or extended.
    async fn record(&self, owner: &str, due: &Due, sent: &Attempt) -> Result<(), Failure> {
        let config = &self.core.config.webhooks;
        let at_ms = self.core.now_ms();
        let attempt = due.attempts + 1;
        let outcome = if sent.delivered() {
            Outcome::Delivered
        } else {
            let window_ms = config.retry_window_ms;
            let first_ms = config.retry_delay_first_ms;
            match after_failure(attempt, at_ms, due.retry_from_ms, window_ms, first_ms) {
                Next::RetryAt(next_ms) => Outcome::RetryAt(next_ms),
                Next::GiveUp => Outcome::GaveUp,
            }
        };
        let row = AttemptRow {
            event_id: due.event_id.clone(),
            endpoint_id: due.endpoint_id.clone(),
            attempt,
            status_code: sent.status_code.map(i64::from),
            latency_ms: sent.latency_ms,
            error: sent.error.clone(),
            at_ms,
        };
        let mut tx = self.core.begin().await?;
        let held = store::record_attempt(&mut tx, owner, &row, outcome).await?;
        if held && sent.delivered() {
            store::endpoint_succeeded(&mut tx, &due.endpoint_id).await?;
        } else if held {
            self.note_failure(&mut tx, due, sent, at_ms).await?;
        }
        commit(tx).await
    }

    /// Extends the endpoint's run of failures; one that has lasted
    /// `disable_after_ms` disables the endpoint, with why.
    async fn note_failure(
        &self,
        tx: &mut facepay_store::Connection,
        due: &Due,
        sent: &Attempt,
        at_ms: i64,
    ) -> Result<(), Failure> {
        let disable_after_ms = self.core.config.webhooks.disable_after_ms;
        let since_ms = store::endpoint_failed(tx, &due.endpoint_id, at_ms).await?;
        if at_ms - since_ms < disable_after_ms {
            return Ok(());
        }
        let reason = format!(
            "every delivery failed for {} hours; the last: {}",
            (at_ms - since_ms) / HOUR_MS,
            sent.error.as_deref().unwrap_or("unknown error")
        );
        if store::disable(tx, &due.endpoint_id, &reason, at_ms).await? {
            audit::append(tx, at_ms, "webhooks", "webhook_disabled", &due.endpoint_id).await?;
            tracing::warn!(endpoint = %due.endpoint_id, reason, "webhook endpoint disabled");
        }
        Ok(())
    }

    /// Forgets deliveries and logged attempts past `webhooks.retention_ms`
    /// and the events they leave without deliveries, a bounded batch of
    /// each. Returns how many rows went.
    pub async fn purge(&self) -> Result<u64, Failure> {
        let now = self.core.now_ms();
        let before_ms = now - self.core.config.webhooks.retention_ms;
        let mut conn = self.core.conn().await?;
        Ok(store::purge(&mut conn, before_ms, now, PURGE_BATCH).await?)
    }
}
