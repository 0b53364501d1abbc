//! A [`Connector`] for Hyperswitch (juspay/hyperswitch), the open-source
//! payment switch, through its payments API (v1).
//!
//! - `authorise` creates and confirms a payment in one call (`POST /payments`,
//!   `confirm: true`) with the card in `payment_method_data.card`, our
//!   reference as the merchant-chosen `payment_id` (see [`object_id`]) and
//!   `capture_method` `manual` or `automatic` from the request.
//!   `requires_capture` and `succeeded` are authorisations (the Hyperswitch
//!   `payment_id` is the `issuer_ref`), `failed` is a decline.
//! - `capture` is `POST /payments/{id}/capture` with `amount_to_capture`;
//!   Hyperswitch's `manual` capture takes one capture per payment.
//! - `void` is `POST /payments/{id}/cancel`.
//! - `refund` is `POST /refunds` with our reference as `refund_id`.
//! - `verify_card` is a zero-amount payment that puts the card on file
//!   (`payment_type: setup_mandate`, `setup_future_usage: off_session`,
//!   the cardholder's consent); its `network_transaction_id` is the
//!   stored credential, and `authorise` on a card without its security
//!   code names it in `recurring_details`, `off_session: true`. See
//!   [`credentials`].
//!
//! # Unknown outcomes
//!
//! Every request waits `timeout_ms` at most. A timeout, a broken connection
//! or a 5xx may come after the request acted, so the answer is never
//! guessed: the payment (or refund) is retrieved by its id
//! (`GET /payments/{id}?force_sync=true`, `GET /refunds/{id}`). What
//! Hyperswitch says there is the outcome; "not found" means the request did
//! not land, and it is sent again with the same id (Hyperswitch refuses a
//! second object with one id, so a late first copy cannot make two). Only
//! when Hyperswitch cannot say does the call answer
//! [`ConnectorError::Timeout`], and the caller retries with the same
//! reference. One trait call makes [`REQUESTS_PER_CALL_MAX`] requests at
//! most, [`RETRY_DELAY_MS`] apart.
//!
//! # What it does not do
//!
//! Hyperswitch refuses a raw card without a 3 or 4 digit `card_cvc`, and
//! facepay keeps no security code for a card on file, so a card on file
//! pays only on the stored credential of its verification; one without
//! ([`StoredCredential`](crate::StoredCredential) of this connector) is
//! refused with [`ConnectorError::NeedsVerification`] before anything is
//! sent. A card tap's cryptogram has no place in the API and is refused
//! rather than dropped. Hyperswitch does not pass the
//! issuer's approval code back; [`Authorisation::approval_code`] carries the
//! processor's transaction id (`connector_transaction_id`) instead.
//! Webhooks: see [`webhook`].

mod api;
mod client;
mod config;
mod credentials;
mod payments;
mod refunds;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::{
    Authorisation, AuthoriseRequest, BoxFuture, Connector, ConnectorError, Reversal,
    StoredCredential, VerifyRequest,
};

pub use api::{OBJECT_ID_BYTES_MAX, PaymentStatus, RefundStatus, is_object_id, object_id};
pub use client::RESPONSE_BYTES_MAX;
pub use config::{
    BASE_URL_BYTES_MAX, ConfigError, HyperswitchConfig, SECRET_BYTES_MAX, TIMEOUT_MS_DEFAULT,
    TIMEOUT_MS_MAX, TIMEOUT_MS_MIN,
};

use client::{Client, Decoded, Method, Reply};

/// Requests one trait call may make, retrievals included. With
/// [`TIMEOUT_MS_MAX`] this keeps a call under the vault channel's 30 s.
pub const REQUESTS_PER_CALL_MAX: u32 = 4;
/// The pause before a request is sent again or a processing payment is
/// retrieved again.
pub const RETRY_DELAY_MS: u64 = 200;

/// The connector's stable name, recorded with each payment.
pub const CONNECTOR_NAME: &str = "hyperswitch";

/// Hyperswitch behind the [`Connector`] trait. Cheap to share: wrap it in an
/// `Arc` once.
pub struct HyperswitchConnector {
    client: Arc<Client>,
    profile_id: Option<String>,
}

impl HyperswitchConnector {
    /// Checks the configuration; see [`HyperswitchConfig::check`].
    pub fn new(config: &HyperswitchConfig) -> Result<Self, ConfigError> {
        config.check()?;
        Ok(HyperswitchConnector {
            client: Arc::new(Client::new(config)),
            profile_id: config.profile_id.clone(),
        })
    }

    /// One request, counted against the call's budget.
    async fn send(
        &self,
        budget: &mut Budget,
        method: Method,
        path: String,
        body: Option<zeroize::Zeroizing<Vec<u8>>>,
    ) -> Reply {
        if !budget.take() {
            return Reply::Unknown(format!("gave up after {REQUESTS_PER_CALL_MAX} requests"));
        }
        self.client.exchange(method, path, body).await
    }

    /// Reads an object back by its path. Retries what could not answer while
    /// the budget lasts.
    async fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        budget: &mut Budget,
        path: &str,
    ) -> Lookup<T> {
        let mut last_reason = String::from("no request was left to ask");
        while budget.left() > 0 {
            let reply = self.send(budget, Method::Get, path.to_owned(), None).await;
            match client::decode::<T>(reply) {
                Decoded::Answer(found) => return Lookup::Found(found),
                Decoded::Refused { status, code, .. }
                    if status == 404 || code == api::CODE_NOT_FOUND =>
                {
                    return Lookup::NotFound;
                }
                Decoded::Refused { code, message, .. } => {
                    return Lookup::Unanswered(format!("{code}: {message}"));
                }
                Decoded::Unknown(reason) => last_reason = reason,
            }
            pause().await;
        }
        Lookup::Unanswered(last_reason)
    }
}

impl Connector for HyperswitchConnector {
    fn name(&self) -> &'static str {
        CONNECTOR_NAME
    }

    fn verify_card(
        &self,
        request: VerifyRequest,
    ) -> BoxFuture<'_, Result<StoredCredential, ConnectorError>> {
        Box::pin(self.verify_now(request))
    }

    fn authorise(
        &self,
        request: AuthoriseRequest,
    ) -> BoxFuture<'_, Result<Authorisation, ConnectorError>> {
        Box::pin(self.authorise_now(request))
    }

    /// Hyperswitch takes no reference for a capture; a retry is recognised
    /// by the amount already captured.
    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        _reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        Box::pin(async move { self.capture_now(&issuer_ref, amount_minor).await })
    }

    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        Box::pin(async move { self.void_now(&issuer_ref).await })
    }

    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let issuer_ref = issuer_ref.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { self.refund_now(&issuer_ref, amount_minor, &reference).await })
    }

    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>> {
        let reference = reference.to_owned();
        Box::pin(async move { self.reverse_now(&reference).await })
    }
}

/// Where one request of a retried exchange leaves the call.
enum Step<T> {
    Done(T),
    /// The request did not land; send it again.
    Again,
    Fail(ConnectorError),
}

/// What reading an object back found.
enum Lookup<T> {
    Found(T),
    /// Hyperswitch has no such object: the request that would have made it
    /// did not land.
    NotFound,
    /// Hyperswitch could not be asked, or would not say.
    Unanswered(String),
}

/// The requests left to one trait call.
struct Budget {
    requests_left: u32,
}

impl Budget {
    fn new() -> Self {
        Budget {
            requests_left: REQUESTS_PER_CALL_MAX,
        }
    }

    fn take(&mut self) -> bool {
        if self.requests_left == 0 {
            return false;
        }
        self.requests_left -= 1;
        true
    }

    fn left(&self) -> u32 {
        self.requests_left
    }
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(RETRY_DELAY_MS)).await;
}

fn rejected(reason: String) -> ConnectorError {
    ConnectorError::Rejected(reason)
}

/// An id we put in a URL path must be one Hyperswitch could have made.
fn checked_id(issuer_ref: &str) -> Result<&str, ConnectorError> {
    if is_object_id(issuer_ref) {
        return Ok(issuer_ref);
    }
    Err(rejected(format!(
        "{issuer_ref:?} is not a Hyperswitch payment id"
    )))
}

/// A small JSON body, wiped when dropped like the card-bearing one.
fn json_body<T: serde::Serialize>(body: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, ConnectorError> {
    serde_json::to_vec(body)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| rejected(format!("the request could not be written: {e}")))
}

fn check_amount(amount_minor: i64) -> Result<(), ConnectorError> {
    if amount_minor <= 0 {
        return Err(rejected(format!(
            "the amount must be positive, not {amount_minor}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out() {
        let mut budget = Budget::new();
        for _ in 0..REQUESTS_PER_CALL_MAX {
            assert!(budget.take());
        }
        assert!(!budget.take());
        assert_eq!(budget.left(), 0);
    }

    #[test]
    fn worst_case_call_fits_the_vault_channel() {
        let worst_ms = u64::from(REQUESTS_PER_CALL_MAX) * (TIMEOUT_MS_MAX + RETRY_DELAY_MS);
        assert!(worst_ms < 30_000, "{worst_ms} ms");
    }

    #[test]
    fn paths_take_only_ids() {
        assert!(checked_id("pay_abc-123").is_ok());
        for bad in ["", "../admin", "pay?x=1", "pay/1", "pay 1"] {
            assert!(checked_id(bad).is_err(), "{bad:?}");
        }
    }
}
