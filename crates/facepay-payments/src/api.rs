//! The JSON the payments API reads and writes. Requests refuse unknown
//! fields, so a misspelt field is an error rather than silently ignored.
//!
//! Every type derives `ToSchema`, so the server's OpenAPI document is made
//! from these definitions and cannot describe fields that are not here.

use facepay_money::Currency;
use facepay_store::parties::{PaymentMethod, TerminalContext};
use facepay_store::payments::Payment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::face::FaceTimings;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// International format, digits with an optional leading '+'.
    pub phone: String,
    /// 4 to 12 digits.
    pub pin: String,
    /// Base64 JPEG or PNG frames of the selfie burst.
    pub frames: Vec<String>,
    pub card: CardInput,
}

/// A new face for an account that has none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaceRequest {
    /// Base64 JPEG or PNG frames of the selfie burst.
    pub frames: Vec<String>,
}

/// The card to pay with; sealed at rest, never echoed back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    pub number: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardInput { .. }")
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolResponse {
    pub user_id: String,
    /// The bearer token for the user's own endpoints; shown once.
    pub token: String,
    #[schema(value_type = PaymentMethodSchema)]
    pub payment_method: PaymentMethod,
    /// The liveness decision on the selfie burst, such as `live`.
    pub liveness: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Authorise and capture at once: the usual till payment.
    #[default]
    Automatic,
    /// Authorise only; the merchant captures (fully or partly) or voids
    /// before the hold expires.
    Manual,
}

impl CaptureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Automatic => "automatic",
            CaptureMode::Manual => "manual",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// Decimal string in major units: "4500" won, "12.34" dollars.
    pub amount: String,
    /// ISO 4217 code; must be the store's currency.
    pub currency: String,
    /// Base64 JPEG or PNG frames of the burst, in capture order.
    pub frames: Vec<String>,
    #[serde(default)]
    pub capture: CaptureMode,
    /// The last four digits of the payer's phone, when the till asks for
    /// them first: only users with those digits are searched.
    #[serde(default)]
    pub phone_last4: Option<String>,
}

/// Exactly one factor, one of those the payment's `step_up.methods` lists.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// The last 4 digits of the payer's phone number.
    pub phone_last4: Option<String>,
    /// The payer's whole phone number, as enrolled (`+82...` or national).
    pub phone: Option<String>,
    /// The payer's PIN, 4 to 12 digits.
    pub pin: Option<String>,
    /// The payer's IC card, tapped on the terminal's reader in answer to
    /// `step_up.card_challenge`.
    pub card_tap: Option<CardTapRequest>,
}

/// What the card answered to the challenge.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardTapRequest {
    /// The card's application transaction counter (tag 9F36).
    pub atc: u16,
    /// The ARQC (tag 9F26), 16 hex digits.
    pub arqc: String,
    /// The application interchange profile (tag 82), 4 hex digits.
    pub aip: String,
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Decimal string in major units; absent means all that is left.
    pub amount: Option<String>,
}

/// The stages of a payment, as `Server-Timing` and the metrics name them.
pub const PAY_STAGES: [&str; 8] = [
    "decode",
    "face",
    "liveness",
    "identify",
    "risk",
    "vault",
    "connector",
    "ledger",
];

/// Microseconds per stage, measured by the server on this request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PayTimings {
    pub decode_us: u64,
    pub face_us: u64,
    pub liveness_us: u64,
    pub identify_us: u64,
    /// Reading the payer's history and running the risk rules.
    pub risk_us: u64,
    /// Fetching the card's data key, unwrapping it and opening the card.
    pub vault_us: u64,
    pub connector_us: u64,
    pub ledger_us: u64,
}

impl PayTimings {
    /// Each stage with its name ([`PAY_STAGES`]), in pipeline order.
    pub fn stages(&self) -> [(&'static str, u64); PAY_STAGES.len()] {
        let us = [
            self.decode_us,
            self.face_us,
            self.liveness_us,
            self.identify_us,
            self.risk_us,
            self.vault_us,
            self.connector_us,
            self.ledger_us,
        ];
        std::array::from_fn(|i| (PAY_STAGES[i], us[i]))
    }

    pub fn with_face(face: FaceTimings) -> Self {
        Self {
            decode_us: face.decode_us,
            face_us: face.face_us,
            liveness_us: face.liveness_us,
            ..Self::default()
        }
    }
}

/// What the terminal prints or shows the payer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub merchant: String,
    pub store: String,
    pub city: String,
    pub amount: String,
    pub currency: String,
    /// Brand and masked number, such as `visa ****4242`.
    pub card: Option<String>,
    /// The masked phone number of the payer.
    pub payer: Option<String>,
    /// The discount from coupons and points, and the points and stamps
    /// this payment earned, when the merchant has any of them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loyalty: Option<LoyaltyReceipt>,
}

/// What loyalty did for a payment, for the receipt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LoyaltyReceipt {
    /// What coupons and points took off the amount; the card paid the
    /// rest (`authorised_minor`).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub discount_minor: i64,
    /// The coupons used, by name.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub coupons: Vec<String>,
    /// Points that paid part of the amount (one point, one minor unit).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub points_redeemed: i64,
    pub points_earned: i64,
    /// The payer's points at this merchant after this payment.
    pub points_balance: i64,
    /// Stamps on the payer's card, if the merchant has a stamp card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamps: Option<i64>,
    /// Coupons this visit earned (a full stamp card), by name.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rewards: Vec<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// How the payer can confirm a weak or ambiguous match, or a payment the
/// risk engine wants confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepUp {
    /// The accepted fields of the step-up request, weakest first, out of
    /// `phone_last4`, `phone`, `pin`, `card_tap`.
    pub methods: Vec<String>,
    pub attempts_left: i64,
    /// What the card must sign for a `card_tap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_challenge: Option<CardChallenge>,
}

/// The transaction data a tapped card signs (EMV tags in brackets); the
/// terminal's reader passes it to the card and the card's answer back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CardChallenge {
    /// [9F37] 8 hex digits, chosen by the server for this payment.
    pub unpredictable_number: String,
    /// [9F02] the payment's amount in minor units.
    pub amount_minor: i64,
    /// [5F2A] ISO 4217 numeric.
    pub currency_numeric: u16,
    /// [9F1A] ISO 3166 numeric of the store's country.
    pub country_numeric: u16,
    /// [9A] YYMMDD.
    pub date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    /// One of `created`, `requires_step_up`, `authorised`, `captured`,
    /// `partially_refunded`, `refunded`, `voided`, `declined`, `failed`.
    pub state: String,
    /// Why the payment reached its state, such as `candidates_close` or an
    /// issuer's decline code.
    pub reason: String,
    /// Decimal string in major units.
    pub amount: String,
    /// The same amount in minor units (cents; won have none).
    pub amount_minor: i64,
    pub currency: String,
    /// `automatic` or `manual`.
    pub capture_mode: String,
    pub authorised_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub fee_minor: i64,
    pub store_id: String,
    pub terminal_id: String,
    /// Cosine similarity of the best gallery match.
    pub match_score: Option<f64>,
    pub liveness: Option<String>,
    /// Unix time in milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl PaymentView {
    pub fn of(p: &Payment) -> Self {
        let amount = Currency::from_code(&p.currency)
            .map(|c| c.format(p.amount_minor))
            .unwrap_or_else(|_| p.amount_minor.to_string());
        Self {
            id: p.id.clone(),
            state: p.state.clone(),
            reason: p.reason.clone(),
            amount,
            amount_minor: p.amount_minor,
            currency: p.currency.clone(),
            capture_mode: p.capture_mode.clone(),
            authorised_minor: p.authorised_minor,
            captured_minor: p.captured_minor,
            refunded_minor: p.refunded_minor,
            fee_minor: p.fee_minor,
            store_id: p.store_id.clone(),
            terminal_id: p.terminal_id.clone(),
            match_score: p.match_score,
            liveness: p.liveness.clone(),
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
            step_up: None,
            receipt: None,
        }
    }

    pub fn with_receipt(
        mut self,
        ctx: &TerminalContext,
        method: Option<&PaymentMethod>,
        phone_last4: Option<&str>,
    ) -> Self {
        self.receipt = Some(Receipt {
            merchant: ctx.merchant.name.clone(),
            store: ctx.store.name.clone(),
            city: ctx.store.city.clone(),
            amount: self.amount.clone(),
            currency: self.currency.clone(),
            card: method.map(|m| format!("{} ****{}", m.brand, m.last4)),
            payer: phone_last4.map(|d| format!("***-****-{d}")),
            loyalty: None,
        });
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable and machine-readable, such as `card_declined`.
    pub code: &'a str,
    /// For people; may change between versions.
    pub message: &'a str,
}

/// A declined or failed payment: the error and the payment it left.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentFailure<'a> {
    pub error: ErrorBody<'a>,
    pub payment: PaymentView,
}

/// Newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    pub payments: Vec<PaymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub phone: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
    pub has_face: bool,
    #[schema(value_type = Vec<PaymentMethodSchema>)]
    pub payment_methods: Vec<PaymentMethod>,
    /// The most recent payments.
    pub payments: Vec<PaymentView>,
    /// Points held at each merchant.
    #[schema(value_type = Vec<Object>)]
    pub points: Vec<facepay_store::loyalty::PointsHeld>,
    /// Stamp cards.
    #[schema(value_type = Vec<Object>)]
    pub stamps: Vec<facepay_store::loyalty::StampsHeld>,
    /// Coupons granted (stamp card rewards) with uses left.
    #[schema(value_type = Vec<Object>)]
    pub coupons: Vec<facepay_store::loyalty::CouponHeld>,
    /// How the user chose to pay at each merchant (a coupon to use first,
    /// points or not).
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<facepay_store::loyalty::Choice>,
}

// The store crate knows nothing of the API, so its rows carry no schemas.
// These describe how they serialise; the server's OpenAPI test serialises
// real rows and compares their fields with these, so they cannot drift.

/// A card on file: its public details only; the number is split between
/// the card vault and the core, and never shown.
#[derive(ToSchema)]
#[schema(as = PaymentMethod)]
pub struct PaymentMethodSchema {
    pub id: String,
    /// `visa`, `mastercard`, `amex` or `unknown`.
    pub brand: String,
    pub last4: String,
    pub expiry_month: i64,
    pub expiry_year: i64,
    /// A keyed hash of the number from the card vault: the same card has
    /// the same fingerprint; the number cannot be found from it. Null once
    /// deleted.
    pub fingerprint: Option<String>,
    /// `active` or `deleted`.
    pub status: String,
}

/// One move of a payment's state machine.
#[derive(ToSchema)]
#[schema(as = PaymentEvent)]
pub struct PaymentEventSchema {
    /// Null for the payment's first event.
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
    /// Unix time in milliseconds.
    pub at_ms: i64,
}

#[derive(ToSchema)]
#[schema(as = Store)]
pub struct StoreSchema {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub city: String,
    pub currency: String,
    /// Degrees times 10^6.
    pub latitude_e6: i64,
    /// Degrees times 10^6.
    pub longitude_e6: i64,
}

/// One store and currency on one UTC day, from the ledger.
#[derive(ToSchema)]
#[schema(as = DailyReportRow)]
pub struct DailyReportRowSchema {
    pub store_id: String,
    pub currency: String,
    /// Payments captured that day.
    pub count: i64,
    pub gross_minor: i64,
    /// Refunds made that day, whichever day their payment was.
    pub refunds_minor: i64,
    pub fees_minor: i64,
    /// Gross less refunds and fees.
    pub net_minor: i64,
}

/// The answer of `GET /v1/merchant/payments/{id}`.
#[derive(ToSchema)]
pub struct PaymentDetail {
    pub payment: PaymentView,
    /// Oldest first.
    pub events: Vec<PaymentEventSchema>,
}

/// The answer of `GET /v1/merchant/reports/daily`.
#[derive(ToSchema)]
pub struct DailyReport {
    pub merchant_id: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub stores: Vec<StoreSchema>,
    pub rows: Vec<DailyReportRowSchema>,
}

/// The answer of `DELETE /v1/users/me`.
#[derive(ToSchema)]
pub struct UserDeleted {
    pub user_id: String,
    /// Always `true`.
    pub deleted: bool,
}

/// The answer of `DELETE /v1/users/me/face`.
#[derive(Serialize, ToSchema)]
pub struct FaceDeleted {
    pub user_id: String,
    /// Always `true`.
    pub face_deleted: bool,
}
