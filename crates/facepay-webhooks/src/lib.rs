//! Merchant webhooks on the wire: what an event is called, how a delivery
//! is signed (`Facepay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`), which addresses a delivery may reach, when a failed
//! delivery is tried again, and one signed POST.
//!
//! This crate knows nothing of payments, merchants or the store: the
//! payments core writes events to its outbox and hands each due delivery
//! here to be sent; what came of it goes back to the store there.
//!
//! **Invariant:** a delivery reaches only an address the configured
//! [`Destinations`] allow, checked on the addresses the host resolves to
//! when it is sent (not only when the URL was registered), and follows no
//! redirect.

mod destination;
mod schedule;
mod send;
mod signature;

use serde::{Deserialize, Serialize};

pub use destination::{Destinations, URL_LEN_MAX, UrlError, check_url};
pub use schedule::{
    ATTEMPTS_MAX, Next, RETRY_DELAY_MAX_MS, RETRY_FACTOR, RETRY_JITTER_PERCENT, after_failure,
    nominal_delay_ms, retry_delay_ms,
};
pub use send::{Attempt, RESPONSE_BYTES_MAX, Sender, SenderConfig};
pub use signature::{
    HEADER_EVENT_ID, HEADER_SIGNATURE, SECRET_PREFIX, SignatureError, TOLERANCE_S, new_secret,
    sign, verify,
};

/// What a merchant can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// The issuer authorised the payment (captured or not yet).
    #[serde(rename = "payment.approved")]
    PaymentApproved,
    /// The payment was declined (by the issuer, the fraud checks or a
    /// step-up nobody gave) or failed.
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.captured")]
    PaymentCaptured,
    #[serde(rename = "payment.voided")]
    PaymentVoided,
    /// All or part of what was captured was refunded.
    #[serde(rename = "payment.refunded")]
    PaymentRefunded,
    /// Authorised, its capture held until an operator releases it.
    #[serde(rename = "payment.held_for_review")]
    PaymentHeldForReview,
    /// The payer disputed the payment.
    #[serde(rename = "claim.opened")]
    ClaimOpened,
    /// An operator accepted or rejected the dispute.
    #[serde(rename = "claim.decided")]
    ClaimDecided,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::PaymentApproved,
        EventType::PaymentFailed,
        EventType::PaymentCaptured,
        EventType::PaymentVoided,
        EventType::PaymentRefunded,
        EventType::PaymentHeldForReview,
        EventType::ClaimOpened,
        EventType::ClaimDecided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentApproved => "payment.approved",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentCaptured => "payment.captured",
            EventType::PaymentVoided => "payment.voided",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::PaymentHeldForReview => "payment.held_for_review",
            EventType::ClaimOpened => "claim.opened",
            EventType::ClaimDecided => "claim.decided",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn event_types_read_back_as_written_and_serde_agrees() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
        assert_eq!(EventType::parse("payment.Approved"), None);
        assert_eq!(EventType::parse(""), None);
    }
}
