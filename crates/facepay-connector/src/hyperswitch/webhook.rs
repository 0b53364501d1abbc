//! Webhooks Hyperswitch sends about payments and refunds.
//!
//! Hyperswitch signs each delivery with HMAC-SHA512 of the body, keyed
//! with the business profile's `payment_response_hash_key`, and sends the
//! digest in hex as the `x-webhook-signature-512` header. The body is an
//! `OutgoingWebhook`: `merchant_id`, `event_id`, `event_type`, `content`
//! (`{"type": "payment_details" | "refund_details" | ..., "object": ...}`)
//! and `timestamp`. Sources: the Hyperswitch docs page "Webhooks"
//! (juspay/hyperswitch-docs,
//! `explore-hyperswitch/payment-flows-and-management/quickstart/connectors/webhooks.md`),
//! the `OutgoingWebhook` schema of `api-reference/v1/openapi_spec_v1.json`,
//! and the router's `core/webhooks/types.rs`, which signs the exact JSON
//! text it sends, so the signature is checked over the raw bytes before
//! anything is parsed.
//!
//! # Duplicates
//!
//! A delivery that got no 2xx is retried for about 24 hours, so the same
//! event can arrive more than once. [`WebhookEvent::id`] identifies the
//! event; the caller (the HTTP server) keeps the ids it has handled
//! durably, for at least 24 hours, and acknowledges a repeat without acting
//! on it again. This crate has no storage, so it does not dedupe.
//!
//! # Order
//!
//! Deliveries can come in any order, and the event only says what changed:
//! the caller treats it as a hint and reads the payment's state back
//! (retrieve) before it acts.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha512;

use super::api::{PaymentStatus, RefundStatus};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature-512";
/// A delivery holds one `PaymentsResponse`; anything larger is refused
/// before its signature is computed.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Event ids are short (`evt_` and 32 hex digits); the caller stores them.
pub const EVENT_ID_BYTES_MAX: usize = 255;
/// HMAC-SHA512 is 64 bytes, 128 hex digits.
const SIGNATURE_HEX_DIGITS: usize = 128;

/// One verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Hyperswitch's `event_id`: the same for every delivery of one event.
    pub id: String,
    /// As Hyperswitch names it: `payment_succeeded`, `payment_failed`,
    /// `payment_processing`, `payment_cancelled`, `payment_authorized`,
    /// `payment_captured`, `refund_succeeded`, `refund_failed`, ...
    pub event_type: String,
    pub merchant_id: String,
    pub object: WebhookObject,
}

/// What the event is about, with its state when it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookObject {
    Payment {
        payment_id: String,
        status: PaymentStatus,
    },
    Refund {
        refund_id: String,
        payment_id: String,
        status: RefundStatus,
    },
    /// Disputes, mandates, payouts and the like, which facepay does not
    /// act on; `kind` is the content's `type`.
    Other { kind: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook secret is configured, so no webhook can be trusted")]
    SecretMissing,
    #[error("the body is larger than {BODY_BYTES_MAX} bytes")]
    BodyTooLarge,
    #[error("the {SIGNATURE_HEADER} header is missing")]
    SignatureMissing,
    #[error("the {SIGNATURE_HEADER} header is not {SIGNATURE_HEX_DIGITS} hex digits")]
    SignatureMalformed,
    #[error("the signature does not match the body")]
    SignatureInvalid,
    #[error("the body is not a Hyperswitch webhook: {0}")]
    BodyInvalid(String),
}

impl WebhookError {
    /// A stable machine code; the server answers every one of them with a
    /// 4xx, so Hyperswitch retries while someone fixes the configuration.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::SecretMissing => "webhook_secret_missing",
            WebhookError::BodyTooLarge => "webhook_body_too_large",
            WebhookError::SignatureMissing => "webhook_signature_missing",
            WebhookError::SignatureMalformed => "webhook_signature_malformed",
            WebhookError::SignatureInvalid => "webhook_signature_invalid",
            WebhookError::BodyInvalid(_) => "webhook_body_invalid",
        }
    }
}

/// Checks the signature over the raw body, then reads the event. Pure: no
/// clock, no I/O, no state.
///
/// `signature` is the value of the [`SIGNATURE_HEADER`] header, if any;
/// `secret` is the profile's `payment_response_hash_key`.
pub fn verify_and_parse(
    signature: Option<&str>,
    body: &[u8],
    secret: &str,
) -> Result<WebhookEvent, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::SecretMissing);
    }
    if body.len() > BODY_BYTES_MAX {
        return Err(WebhookError::BodyTooLarge);
    }
    let signature = signature
        .map(str::trim)
        .filter(|signature| !signature.is_empty())
        .ok_or(WebhookError::SignatureMissing)?;
    if signature.len() != SIGNATURE_HEX_DIGITS {
        return Err(WebhookError::SignatureMalformed);
    }
    let expected = hex::decode(signature).map_err(|_| WebhookError::SignatureMalformed)?;
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::SecretMissing)?;
    mac.update(body);
    // Compares in constant time, so timing tells nothing about the digest.
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::SignatureInvalid)?;
    parse(body)
}

/// The hex signature Hyperswitch would send for `body`.
pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = match Hmac::<Sha512>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Deserialize)]
struct Delivery {
    merchant_id: String,
    event_id: String,
    event_type: String,
    content: Content,
}

#[derive(Deserialize)]
struct Content {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct PaymentObject {
    payment_id: String,
    status: PaymentStatus,
}

#[derive(Deserialize)]
struct RefundObject {
    refund_id: String,
    payment_id: String,
    status: RefundStatus,
}

fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let invalid = |e: serde_json::Error| WebhookError::BodyInvalid(e.to_string());
    let delivery: Delivery = serde_json::from_slice(body).map_err(invalid)?;
    if delivery.event_id.is_empty() || delivery.event_id.len() > EVENT_ID_BYTES_MAX {
        return Err(WebhookError::BodyInvalid(format!(
            "event_id must be 1 to {EVENT_ID_BYTES_MAX} bytes long"
        )));
    }
    let object = match delivery.content.kind.as_str() {
        "payment_details" => {
            let payment: PaymentObject =
                serde_json::from_value(delivery.content.object).map_err(invalid)?;
            WebhookObject::Payment {
                payment_id: payment.payment_id,
                status: payment.status,
            }
        }
        "refund_details" => {
            let refund: RefundObject =
                serde_json::from_value(delivery.content.object).map_err(invalid)?;
            WebhookObject::Refund {
                refund_id: refund.refund_id,
                payment_id: refund.payment_id,
                status: refund.status,
            }
        }
        _ => WebhookObject::Other {
            kind: delivery.content.kind,
        },
    };
    Ok(WebhookEvent {
        id: delivery.event_id,
        event_type: delivery.event_type,
        merchant_id: delivery.merchant_id,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_hmac_sha512() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"what do ya want for nothing?", "Jefe"),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn errors_have_stable_codes() {
        let cases = [
            (WebhookError::SecretMissing, "webhook_secret_missing"),
            (WebhookError::BodyTooLarge, "webhook_body_too_large"),
            (WebhookError::SignatureMissing, "webhook_signature_missing"),
            (
                WebhookError::SignatureMalformed,
                "webhook_signature_malformed",
            ),
            (WebhookError::SignatureInvalid, "webhook_signature_invalid"),
            (
                WebhookError::BodyInvalid("x".into()),
                "webhook_body_invalid",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn refuses_before_parsing() {
        let body = br#"{"not": "checked"}"#;
        let good = sign(body, "key");
        assert_eq!(
            verify_and_parse(Some(&good), body, ""),
            Err(WebhookError::SecretMissing)
        );
        assert_eq!(
            verify_and_parse(None, body, "key"),
            Err(WebhookError::SignatureMissing)
        );
        assert_eq!(
            verify_and_parse(Some("  "), body, "key"),
            Err(WebhookError::SignatureMissing)
        );
        assert_eq!(
            verify_and_parse(Some("abc"), body, "key"),
            Err(WebhookError::SignatureMalformed)
        );
        let not_hex = "z".repeat(SIGNATURE_HEX_DIGITS);
        assert_eq!(
            verify_and_parse(Some(&not_hex), body, "key"),
            Err(WebhookError::SignatureMalformed)
        );
        assert_eq!(
            verify_and_parse(Some(&sign(body, "other")), body, "key"),
            Err(WebhookError::SignatureInvalid)
        );
        let huge = vec![b' '; BODY_BYTES_MAX + 1];
        assert_eq!(
            verify_and_parse(Some(&sign(&huge, "key")), &huge, "key"),
            Err(WebhookError::BodyTooLarge)
        );
        // Signed but not a webhook: refused after the signature passed.
        let parsed = verify_and_parse(Some(&good.to_uppercase()), body, "key");
        assert!(
            matches!(parsed, Err(WebhookError::BodyInvalid(_))),
            "{parsed:?}"
        );
    }
}
