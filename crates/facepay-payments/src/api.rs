//! The JSON the payments API reads and writes. Requests refuse unknown
//! fields, so a misspelt field is an error rather than silently ignored.

use facepay_money::Currency;
use facepay_store::parties::{PaymentMethod, TerminalContext};
use facepay_store::payments::Payment;
use serde::{Deserialize, Serialize};

use crate::face::FaceTimings;

#[derive(Debug, Deserialize)]
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

#[derive(Deserialize)]
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

#[derive(Debug, Serialize)]
pub struct EnrolResponse {
    pub user_id: String,
    /// The bearer token for the user's own endpoints; shown once.
    pub token: String,
    pub payment_method: PaymentMethod,
    pub liveness: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// Decimal string in major units: "4500" won, "12.34" dollars.
    pub amount: String,
    pub currency: String,
    /// Base64 JPEG or PNG frames of the burst, in capture order.
    pub frames: Vec<String>,
    #[serde(default)]
    pub capture: CaptureMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    pub phone_last4: Option<String>,
    pub pin: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Decimal string in major units; absent means all that is left.
    pub amount: Option<String>,
}

/// Microseconds per stage, measured by the server on this request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayTimings {
    pub decode_us: u64,
    pub face_us: u64,
    pub liveness_us: u64,
    pub identify_us: u64,
    pub connector_us: u64,
    pub ledger_us: u64,
}

impl PayTimings {
    pub fn with_face(face: FaceTimings) -> Self {
        Self {
            decode_us: face.decode_us,
            face_us: face.face_us,
            liveness_us: face.liveness_us,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub merchant: String,
    pub store: String,
    pub city: String,
    pub amount: String,
    pub currency: String,
    pub card: Option<String>,
    pub payer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepUp {
    pub methods: Vec<String>,
    pub attempts_left: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentView {
    pub id: String,
    pub state: String,
    pub reason: String,
    pub amount: String,
    pub amount_minor: i64,
    pub currency: String,
    pub capture_mode: String,
    pub authorised_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub fee_minor: i64,
    pub store_id: String,
    pub terminal_id: String,
    pub match_score: Option<f64>,
    pub liveness: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<PayTimings>,
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
            timings: None,
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
        });
        self
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// A declined or failed payment: the error and the payment it left.
#[derive(Debug, Serialize)]
pub struct PaymentFailure<'a> {
    pub error: ErrorBody<'a>,
    pub payment: PaymentView,
}

#[derive(Debug, Serialize)]
pub struct PaymentPage {
    pub payments: Vec<PaymentView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UserView {
    pub user_id: String,
    pub phone: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
    pub has_face: bool,
    pub payment_methods: Vec<PaymentMethod>,
    pub payments: Vec<PaymentView>,
}
