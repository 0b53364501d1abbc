//! Helpers for the records several services write: payment ids derived
//! from idempotency keys, a payment's first row, its ledger reference and
//! fee, and the commit that maps a store error into a failure.

use facepay_money::basis_points_of;
use facepay_store::ledger::PaymentRef;
use facepay_store::payments::{self, Payment, PaymentState};
use sha2::{Digest, Sha256};

use crate::error::Failure;

/// The reason of a payment authorised with its capture held for review.
pub(crate) const HELD_FOR_REVIEW: &str = "held_for_review";
/// The reason of a payment whose issuer did not answer, nor its reversal:
/// unfinished until a retry or the sweep has the reversal answered.
pub(crate) const REVERSAL_PENDING: &str = "reversal_pending";

impl super::Core {
    /// Reverses whatever authorisation an unfinished payment may have out
    /// (one that names its connector was, or was about to be, sent), and
    /// returns the reason it ends with. An issuer that does not answer is
    /// an error: the payment must stay unfinished until one does.
    pub(crate) async fn reverse_unfinished(&self, payment: &Payment) -> Result<String, Failure> {
        let Some(connector) = payment.connector.as_deref() else {
            return Ok("interrupted".into());
        };
        if connector != self.connector.name() {
            // Configured away since: the old connector cannot be asked,
            // and its holds lapse at their issuers' expiry.
            tracing::error!(payment = %payment.id, connector, "an interrupted payment's connector is no longer configured; its authorisation cannot be reversed");
            return Ok("interrupted:connector_gone".into());
        }
        match self.connector.reverse(&payment.id).await {
            Ok(reversal) => Ok(format!("interrupted:{}", reversal.as_str())),
            Err(e) => {
                tracing::warn!(payment = %payment.id, error = %e, "an interrupted payment's reversal failed");
                Err(Failure::new(
                    504,
                    e.code(),
                    "the card issuer did not answer the reversal of an interrupted payment; it is retried",
                ))
            }
        }
    }
}

/// An id derived from its scope and idempotency key: a retry after a crash
/// computes the same id, so the issuer (which deduplicates on it) and the
/// database (whose key it is) see one payment, never two.
pub(crate) fn derived_id(prefix: &str, scope: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{scope}\n{key}").as_bytes());
    format!("{prefix}_{}", &hex::encode(digest)[..32])
}

/// The payment as it is in the database: `stored`, or `payment` inserted
/// now as just received, so that its first move is recorded like any other.
pub(crate) async fn stored_or_created(
    tx: &mut facepay_store::Connection,
    stored: Option<&Payment>,
    payment: &Payment,
) -> Result<Payment, Failure> {
    if let Some(p) = stored {
        return Ok(p.clone());
    }
    let created = created(payment);
    payments::insert(tx, &created).await?;
    Ok(created)
}

/// `payment` as its row is first written: created, just received.
pub(crate) fn created(payment: &Payment) -> Payment {
    let mut created = payment.clone();
    created.state = PaymentState::Created.as_str().to_owned();
    created.reason = "received".into();
    created
}

pub(crate) fn money_of(p: &Payment) -> PaymentRef<'_> {
    PaymentRef {
        payment_id: &p.id,
        merchant_id: &p.merchant_id,
        currency: &p.currency,
    }
}

pub(crate) fn fee(fee_bps: i64, amount_minor: i64) -> i64 {
    basis_points_of(
        amount_minor,
        u32::try_from(fee_bps).unwrap_or(0).min(10_000),
    )
}

pub(crate) async fn commit(tx: facepay_store::Transaction) -> Result<(), Failure> {
    tx.commit()
        .await
        .map_err(|e| Failure::from(facepay_store::StoreError::from(e)))
}
