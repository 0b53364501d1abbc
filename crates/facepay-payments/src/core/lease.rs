//! One request at a time changes a payment, on every server. The lock in
//! this process (`Core::payment_lock`) orders its own requests without a
//! round trip; the lease in the store (`facepay_store::leases`) orders
//! them across servers, which the issuer needs: a refund, capture or void
//! reaches it before its record is checked, so two made from one state
//! would both move money and only one be recorded.

use std::future::Future;
use std::time::Duration;

use facepay_store::{Store, ids, leases};

use super::Core;
use crate::error::Failure;

/// How long a request waits for a lease another server holds, in polls
/// of `LEASE_POLL_MS`: 7 s, past the longest issuer call the connector's
/// timeout allows (6 s).
const LEASE_POLLS_MAX: u32 = 350;
const LEASE_POLL_MS: u64 = 20;
/// How long a lease lasts if its holder dies: past the longest issuer
/// call and the record after it, so a live holder keeps it to the end.
const LEASE_MS: i64 = 30_000;

/// Whether a request waits for a lease held elsewhere: a request does, a
/// sweep skips the payment until its next round.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    ForHolder,
    No,
}

impl Core {
    /// Runs `work` holding the lease on `payment_id`; `work` should read
    /// the payment itself, as the lease makes that read current. Busy
    /// (409 `payment_busy`) when another server kept the lease through
    /// the wait.
    pub(crate) async fn leased<T, Fut>(
        &self,
        payment_id: &str,
        wait: Wait,
        work: Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let _local = self.payment_lock(payment_id).lock().await;
        let lease = self.take_lease(payment_id, wait).await?;
        let result = work.await;
        lease.give_back().await;
        result
    }

    async fn take_lease(&self, payment_id: &str, wait: Wait) -> Result<Lease, Failure> {
        let holder = ids::random_hex(16)?;
        let polls = if wait == Wait::ForHolder {
            LEASE_POLLS_MAX
        } else {
            1
        };
        for poll in 0..polls {
            if poll > 0 {
                tokio::time::sleep(Duration::from_millis(LEASE_POLL_MS)).await;
            }
            let now_ms = self.now_ms();
            let until_ms = now_ms + LEASE_MS;
            if leases::take(
                &mut *self.conn().await?,
                payment_id,
                &holder,
                now_ms,
                until_ms,
            )
            .await?
            {
                return Ok(Lease {
                    store: self.store.clone(),
                    payment_id: payment_id.to_owned(),
                    holder: Some(holder),
                });
            }
        }
        Err(Failure::conflict(
            "payment_busy",
            "another request is changing this payment; retry shortly with the same idempotency key",
        ))
    }
}

/// A lease held. Given back when its work ends, or, if the request is
/// dropped first (its client went away), by a task spawned on drop.
struct Lease {
    store: Store,
    payment_id: String,
    holder: Option<String>,
}

impl Lease {
    async fn give_back(mut self) {
        if let Some(holder) = self.holder.take() {
            give_back(&self.store, &self.payment_id, &holder).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(holder) = self.holder.take() else {
            return;
        };
        let (store, payment_id) = (self.store.clone(), std::mem::take(&mut self.payment_id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { give_back(&store, &payment_id, &holder).await });
        }
    }
}

/// A lease not given back ends by itself after `LEASE_MS`.
async fn give_back(store: &Store, payment_id: &str, holder: &str) {
    let given = match store.acquire().await {
        Ok(mut conn) => leases::give_back(&mut conn, payment_id, holder).await,
        Err(e) => Err(e),
    };
    if let Err(e) = given {
        tracing::warn!(error = %e, payment_id, "payment lease not given back; it ends by itself");
    }
}
