//! The server's background jobs: the sweep (expired authorisations,
//! abandoned payments, old idempotency keys and webhook deliveries, the
//! hub's unfinished transfers, fresh rates from the configured FX
//! sources), the webhook delivery worker, the gallery follower and its
//! snapshot writer, and the risk rules reload.

use std::sync::Arc;
use std::time::Duration;

use facepay_payments::{Payments, Webhooks};

use crate::root::{App, fx_rates};

/// How often the risk rules file is looked at for changes.
const RISK_RULES_POLL: Duration = Duration::from_secs(5);
/// How often expired authorisations are voided and old keys purged.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Expired authorisations voided per sweep.
const SWEEP_BATCH: i64 = 500;

/// The running jobs, stopped before the store closes: a job that went on
/// would fail on the closed pool and log it as a store failure. Dropped,
/// it stops them at once.
pub struct Jobs(tokio::task::JoinSet<()>);

/// Starts every job on the current runtime.
#[must_use = "the jobs stop when the handle is dropped"]
pub fn start(app: &App) -> Jobs {
    let mut jobs = tokio::task::JoinSet::new();
    if let Some(path) = app.config.risk.rules_file.clone() {
        let payments = Arc::clone(&app.services.payments);
        jobs.spawn(follow_risk_rules(payments, path));
    }
    // Enrolments and deletions made through other servers on this store.
    jobs.spawn(Arc::clone(&app.services.identity).follow());
    jobs.spawn(Arc::clone(&app.services.identity).keep_snapshot());
    let poll = Duration::from_millis(app.config.webhooks.poll_interval_ms);
    jobs.spawn(deliver_webhooks(Arc::clone(&app.services.webhooks), poll));
    jobs.spawn(sweep(
        Arc::clone(&app.services),
        Arc::clone(&app.hub),
        Arc::clone(&app.config),
    ));
    Jobs(jobs)
}

impl Jobs {
    /// Cancels every job at its next await and waits until each has
    /// ended. A job cut short loses nothing: its transaction rolls back;
    /// an expired authorisation it was voiding is listed again by the next
    /// sweep of any server, and voided again (the issuer's void may be
    /// repeated); a webhook delivery it had leased is sent by the next
    /// pass once the lease runs out.
    pub async fn stop(mut self) {
        self.0.abort_all();
        while let Some(ended) = self.0.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(error = %e, "a background job had panicked");
            }
        }
    }
}

async fn sweep(
    services: Arc<facepay_payments::Services>,
    hub: Arc<facepay_hub::service::Hub>,
    config: Arc<facepay_config::Config>,
) {
    let merchant = &services.merchant;
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        if let Err(e) = merchant.expire_authorisations(SWEEP_BATCH).await {
            tracing::warn!(error = %e, "sweep of expired authorisations failed");
        }
        if let Err(e) = merchant.close_abandoned(SWEEP_BATCH).await {
            tracing::warn!(error = %e, "sweep of abandoned payments failed");
        }
        if let Err(e) = merchant.purge().await {
            tracing::warn!(error = %e, "purge of old idempotency keys failed");
        }
        if let Err(e) = services.webhooks.purge().await {
            tracing::warn!(error = %e, "purge of old webhook deliveries failed");
        }
        let now = services.clock().now_ms();
        if let Err(e) = hub.sweep(now).await {
            tracing::warn!(error = %e, "sweep of the hub's transfers failed");
        }
        // Each FX source posts its rates again before they run out.
        for rate in fx_rates(&config, now) {
            if let Err(e) = hub.post_rate(rate) {
                tracing::warn!(error = %e, "a posted rate was refused");
            }
        }
    }
}

/// Sends due webhook deliveries: pass after pass while each finds a full
/// batch, else after `poll` (the outbox is in the store, shared by every
/// server, so a change committed elsewhere is found by polling).
async fn deliver_webhooks(webhooks: Arc<Webhooks>, poll: Duration) {
    loop {
        match webhooks.deliver_due().await {
            Ok(leased) if leased >= webhooks.batch_max() => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook delivery pass failed"),
        }
        tokio::time::sleep(poll).await;
    }
}

/// Reloads the risk rules when their file changes; a file that does not
/// parse or make sense is reported and the rules in force stay.
async fn follow_risk_rules(payments: Arc<Payments>, path: std::path::PathBuf) {
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    let mut interval = tokio::time::interval(RISK_RULES_POLL);
    loop {
        interval.tick().await;
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let reloaded = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| payments.reload_risk_rules(&text).map_err(|e| e.to_string()));
        match reloaded {
            Ok(()) => tracing::info!(path = %path.display(), "risk rules reloaded"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "risk rules not reloaded; the old ones stay")
            }
        }
    }
}
