//! One request at a time changes a payment, on every server. The lock in
//! this process (`Core::payment_lock`) orders its own requests without a
//! round trip; the lease in the store (`facepay_store::leases`) orders
//! them across servers, which the issuer needs: a refund, capture or void
//! reaches it before its record is checked, so two made from one state
//! would both move money and only one be recorded.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use facepay_store::{ids, leases};
use tokio::sync::MutexGuard;

use super::Core;
use crate::error::Failure;

/// How long a request waits for a lease another server holds, in polls
/// of `LEASE_POLL_MS`: 7 s, about one issuer call. A change that takes
/// longer (a slow issuer retried) answers `payment_busy` to the others.
const LEASE_POLLS_MAX: u32 = 350;
const LEASE_POLL_MS: u64 = 20;
/// A lease lasts this long past its last renewal, so a holder that died
/// frees its payment within it.
pub const LEASE_MS: i64 = 30_000;
/// A live holder renews its lease this often, however long its issuer
/// calls take (the connector may retry one for 25 s).
pub const LEASE_RENEW_MS: u64 = 10_000;
const _: () = assert!((LEASE_RENEW_MS as i64) * 2 < LEASE_MS);

/// The code of a refusal for a lease another request kept through the
/// wait.
pub(crate) const PAYMENT_BUSY: &str = "payment_busy";

/// Whether a request waits for a lease held elsewhere: a request does, a
/// sweep skips the payment until its next round.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    ForHolder,
    No,
}

/// A lease held, with its holder's token.
struct Lease {
    payment_id: String,
    holder: String,
}

impl Core {
    /// Runs `work` holding the lease on `payment_id`; `work` should read
    /// the payment itself, as the lease makes that read current. Busy
    /// (409 `payment_busy`) when another server kept the lease through
    /// the wait.
    ///
    /// A request cut short (its client gone, its time up) leaves its
    /// lease to run out rather than giving it back: its issuer call may
    /// have been made and not yet recorded.
    pub(crate) async fn leased<T, Fut>(
        &self,
        payment_id: &str,
        wait: Wait,
        work: Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let (_local, lease) = self.take_lease(payment_id, wait).await?;
        let result = tokio::select! {
            biased;
            result = work => result,
            never = self.renew(&lease) => match never {},
        };
        self.give_back(lease).await;
        result
    }

    /// The process lock, then the lease. The process lock is one of a
    /// few shared by all payments, so it is let go between polls: other
    /// payments' requests on this server go on while this one waits.
    async fn take_lease(
        &self,
        payment_id: &str,
        wait: Wait,
    ) -> Result<(MutexGuard<'_, ()>, Lease), Failure> {
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
            let local = self.payment_lock(payment_id).lock().await;
            let now_ms = self.now_ms();
            let until_ms = now_ms + LEASE_MS;
            let mut conn = self.conn().await?;
            if leases::take(&mut conn, payment_id, &holder, now_ms, until_ms).await? {
                let lease = Lease {
                    payment_id: payment_id.to_owned(),
                    holder,
                };
                return Ok((local, lease));
            }
        }
        Err(Failure::conflict(
            PAYMENT_BUSY,
            "another request is changing this payment; retry shortly with the same idempotency key",
        ))
    }

    /// Renews `lease` every `LEASE_RENEW_MS` until its work ends (this
    /// future is then dropped). A renewal that fails is retried at the
    /// next; a lease found taken over is logged, as only a holder stalled
    /// past `LEASE_MS` loses it.
    async fn renew(&self, lease: &Lease) -> Infallible {
        loop {
            tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS)).await;
            let until_ms = self.now_ms() + LEASE_MS;
            let renewed = match self.store.acquire().await {
                Ok(mut conn) => {
                    leases::renew(&mut conn, &lease.payment_id, &lease.holder, until_ms).await
                }
                Err(e) => Err(e),
            };
            match renewed {
                Ok(true) => {}
                Ok(false) => tracing::error!(
                    payment_id = lease.payment_id,
                    "payment lease lost while its request ran"
                ),
                Err(e) => tracing::warn!(error = %e, "payment lease not renewed; retried"),
            }
        }
    }

    /// A lease not given back ends by itself after `LEASE_MS`.
    async fn give_back(&self, lease: Lease) {
        let given = match self.store.acquire().await {
            Ok(mut conn) => leases::give_back(&mut conn, &lease.payment_id, &lease.holder).await,
            Err(e) => Err(e),
        };
        if let Err(e) = given {
            tracing::warn!(error = %e, payment_id = lease.payment_id, "payment lease not given back; it ends by itself");
        }
    }
}
