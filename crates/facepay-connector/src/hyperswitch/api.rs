//! The parts of Hyperswitch's payments API (v1) that facepay sends and reads.
//!
//! Where each shape comes from (juspay/hyperswitch, release 2025.12.01.0):
//! - requests and responses: the OpenAPI document
//!   `api-reference/v1/openapi_spec_v1.json`, `components.schemas`
//!   `PaymentsCreateRequest`, `Card`, `PaymentsCaptureRequest`,
//!   `PaymentsCancelRequest`, `RefundRequest`, `PaymentsResponse`,
//!   `RefundResponse`, `IntentStatus`, `RefundStatus`, `CaptureMethod`, and
//!   its paths (`POST /payments`, `GET /payments/{payment_id}?force_sync`,
//!   `POST /payments/{payment_id}/capture`, `POST /payments/{payment_id}/cancel`,
//!   `POST /refunds`, `GET /refunds/{refund_id}`, header `api-key`);
//! - the error body `{"error": {"type", "code", "message"}}`: the published
//!   error-code table `api-reference/essentials/error_codes.mdx` and
//!   `crates/api_models/src/errors/types.rs`;
//! - what the router enforces beyond the document (ids of 1 to 64 letters,
//!   digits, `_` and `-`; a 3 or 4 digit `card_cvc`; `payment_method` with
//!   `payment_method_data`; unknown fields refused): `common_utils`
//!   `id_type.rs` and `consts.rs`, router `core/payments/helpers.rs`
//!   (`validate_card_data`, `validate_payment_method_fields_present`), and
//!   `deny_unknown_fields` on `PaymentsRequest` and `RefundRequest`;
//! - cards on file: the zero-amount verification (`amount: 0`,
//!   `payment_type: setup_mandate`, `setup_future_usage: off_session`, a
//!   `customer_id` and the `customer_acceptance`) and the merchant-initiated
//!   payment (`off_session: true`, `recurring_details` of type
//!   `network_transaction_id_and_card_details`): the docs pages "Recurring
//!   payments" (juspay/hyperswitch-docs,
//!   `about-hyperswitch/payment-suite-1/payments-cards/recurring-payments.md`),
//!   "Zero Amount Authorization"
//!   (`explore-hyperswitch/payment-flows-and-management/subscriptions/zero-amount-authorization-1.md`)
//!   and "Save a Payment Method"
//!   (`explore-hyperswitch/payment-orchestration/quickstart/tokenization-and-saved-cards/save-a-payment-method.md`);
//!   the shapes `RecurringDetails` and `NetworkTransactionIdAndCardDetails`
//!   (api_models `mandates.rs`), `CustomerAcceptance` (the OpenAPI
//!   document; `additionalProperties: false`), `PaymentsResponse`'s
//!   `network_transaction_id`; a `customer_id` whenever
//!   `setup_future_usage` is set (router `helpers.rs`,
//!   `validate_customer_id_mandatory_cases`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hyperswitch's merchant-chosen ids (payment, refund, profile) are 1 to 64
/// characters long.
pub const OBJECT_ID_BYTES_MAX: usize = 64;
/// Error code of a create whose id is already taken (`DuplicatePayment`,
/// `DuplicateRefundRequest`).
pub(crate) const CODE_DUPLICATE: &str = "HE_01";
/// Error code of an object that does not exist (`PaymentNotFound`,
/// `RefundNotFound`).
pub(crate) const CODE_NOT_FOUND: &str = "HE_02";
/// Connector errors with a meaning of their own (`CE_04` the card data is
/// invalid, `CE_05` the card has expired).
pub(crate) const CODE_CARD_INVALID: &str = "CE_04";
pub(crate) const CODE_CARD_EXPIRED: &str = "CE_05";

/// Prefix of ids derived from a reference that is not a valid id itself.
const DERIVED_ID_PREFIX: &str = "fp_";
/// Hex digits of SHA-256 kept in a derived id: 160 bits, so two references
/// never meet.
const DERIVED_ID_HEX_DIGITS: usize = 40;

/// True when `id` is a valid Hyperswitch merchant-chosen id.
pub fn is_object_id(id: &str) -> bool {
    (1..=OBJECT_ID_BYTES_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The Hyperswitch id for one of our references. facepay's payment and
/// refund ids are valid ids and are used as they are, so a payment can be
/// found in Hyperswitch by its facepay id; any other reference (a claim's
/// `claim_1:refund`) becomes a digest of itself, so the same reference
/// always names the same object and retries stay idempotent.
pub fn object_id(reference: &str) -> String {
    if is_object_id(reference) && !reference.starts_with(DERIVED_ID_PREFIX) {
        return reference.to_owned();
    }
    let digest = hex::encode(Sha256::digest(reference.as_bytes()));
    format!("{DERIVED_ID_PREFIX}{}", &digest[..DERIVED_ID_HEX_DIGITS])
}

/// `POST /payments` with `confirm: true`: create and authorise (or
/// verify) at once. Three shapes: a card with its security code; the
/// zero-amount verification of such a card to keep it on file; a
/// merchant-initiated payment on a card kept on file.
#[derive(Serialize)]
pub(crate) struct PaymentCreate<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub payment_id: &'a str,
    pub confirm: bool,
    /// None for a verification, which captures nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_method: Option<CaptureMethodWire>,
    /// No shopper is at a browser to complete a 3-D Secure challenge.
    pub authentication_type: &'static str,
    /// With `payment_method_data`; a payment on file names its card in
    /// `recurring_details` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method_data: Option<PaymentMethodData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_future_usage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_acceptance: Option<CustomerAcceptance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub off_session: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_details: Option<RecurringDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<&'a str>,
    /// Our reference as it is, also when `payment_id` is a digest of it.
    pub merchant_order_reference_id: &'a str,
}

pub(crate) const AUTHENTICATION_NO_THREE_DS: &str = "no_three_ds";
pub(crate) const PAYMENT_METHOD_CARD: &str = "card";
/// A zero-amount payment that only sets up later ones.
pub(crate) const PAYMENT_TYPE_SETUP_MANDATE: &str = "setup_mandate";
/// Later payments are made without the cardholder.
pub(crate) const FUTURE_USAGE_OFF_SESSION: &str = "off_session";
/// The cardholder agreed in facepay's app, not on a page Hyperswitch
/// serves, so there is no browser to describe (`online` needs one).
pub(crate) const ACCEPTANCE_OFFLINE: &str = "offline";

/// The cardholder's consent to keep the card on file.
#[derive(Serialize)]
pub(crate) struct CustomerAcceptance {
    pub acceptance_type: &'static str,
    /// ISO 8601 in UTC, as `2022-09-10T10:11:12Z`.
    pub accepted_at: String,
}

/// `recurring_details`: adjacently tagged as `{"type": ..., "data": ...}`.
#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub(crate) enum RecurringDetails<'a> {
    NetworkTransactionIdAndCardDetails(CardOnFile<'a>),
}

/// `NetworkTransactionIdAndCardDetails`: the card without its security
/// code, and the network's id of the verification that put it on file.
#[derive(Serialize)]
pub(crate) struct CardOnFile<'a> {
    pub card_number: &'a str,
    pub card_exp_month: String,
    pub card_exp_year: String,
    pub network_transaction_id: &'a str,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CaptureMethodWire {
    Manual,
    Automatic,
}

#[derive(Serialize)]
pub(crate) struct PaymentMethodData<'a> {
    pub card: Card<'a>,
}

/// Hyperswitch's `Card`. The OpenAPI document lists `card_holder_name` as
/// required, but api_models' `Card` has it optional and facepay keeps no
/// holder name, so it is left out.
#[derive(Serialize)]
pub(crate) struct Card<'a> {
    pub card_number: &'a str,
    /// Two digits, "01" to "12".
    pub card_exp_month: String,
    /// Four digits.
    pub card_exp_year: String,
    pub card_cvc: &'a str,
}

/// `POST /payments/{payment_id}/capture`.
#[derive(Serialize)]
pub(crate) struct PaymentCapture {
    pub amount_to_capture: i64,
}

/// `POST /payments/{payment_id}/cancel`.
#[derive(Serialize)]
pub(crate) struct PaymentCancel {
    pub cancellation_reason: &'static str,
}

pub(crate) const CANCELLATION_REASON: &str = "requested_by_merchant";

/// `POST /refunds`.
#[derive(Serialize)]
pub(crate) struct RefundCreate<'a> {
    pub payment_id: &'a str,
    pub refund_id: &'a str,
    pub amount: i64,
    pub refund_type: &'static str,
}

pub(crate) const REFUND_TYPE_INSTANT: &str = "instant";

/// The fields of `PaymentsResponse` facepay reads; the rest are ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Payment {
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub amount_capturable: Option<i64>,
    #[serde(default)]
    pub amount_received: Option<i64>,
    #[serde(default)]
    pub connector_transaction_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub unified_code: Option<String>,
    /// The card network's id of the transaction; after a verification with
    /// `setup_future_usage: off_session`, what payments on file name.
    #[serde(default)]
    pub network_transaction_id: Option<String>,
}

/// The fields of `RefundResponse` facepay reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Refund {
    pub refund_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub status: RefundStatus,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Hyperswitch's `IntentStatus`: where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    Cancelled,
    CancelledPostCapture,
    Processing,
    RequiresCustomerAction,
    RequiresMerchantAction,
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresCapture,
    PartiallyCaptured,
    PartiallyCapturedAndCapturable,
    PartiallyAuthorizedAndRequiresCapture,
    Conflicted,
    Expired,
    /// A status newer than this code; retrieve the payment and treat it as
    /// unknown.
    #[serde(other)]
    Unrecognised,
}

/// Hyperswitch's `RefundStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Succeeded,
    Failed,
    Pending,
    Review,
    #[serde(other)]
    Unrecognised,
}

/// Every error answer: `{"error": {"type": ..., "code": ..., "message": ...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references_are_their_own_ids() {
        let facepay_payment = "pay_0123456789abcdef0123456789abcdef";
        assert_eq!(object_id(facepay_payment), facepay_payment);
        assert_eq!(object_id("ref_1"), "ref_1");
    }

    #[test]
    fn other_references_become_stable_digests() {
        for reference in [
            "claim_1:refund",
            "pay 1",
            "",
            &"x".repeat(OBJECT_ID_BYTES_MAX + 1),
            "fp_looks_derived",
        ] {
            let id = object_id(reference);
            assert!(is_object_id(&id), "{reference:?} -> {id}");
            assert!(id.starts_with(DERIVED_ID_PREFIX), "{id}");
            assert_eq!(id, object_id(reference), "stable");
        }
        assert_ne!(object_id("claim_1:refund"), object_id("claim_2:refund"));
    }

    #[test]
    fn statuses_read_as_documented() {
        let read = |text: &str| serde_json::from_str::<PaymentStatus>(text).ok();
        assert_eq!(
            read("\"requires_capture\""),
            Some(PaymentStatus::RequiresCapture)
        );
        assert_eq!(
            read("\"partially_captured_and_capturable\""),
            Some(PaymentStatus::PartiallyCapturedAndCapturable)
        );
        assert_eq!(
            read("\"a_future_status\""),
            Some(PaymentStatus::Unrecognised)
        );
        let refund = serde_json::from_str::<RefundStatus>("\"review\"").ok();
        assert_eq!(refund, Some(RefundStatus::Review));
    }
}
