//! The JSON the payments API reads and writes. Requests refuse unknown
//! fields, so a misspelt field is an error rather than silently ignored.
//!
//! Every type derives `ToSchema`, so the server's OpenAPI document is made
//! from these definitions and cannot describe fields that are not here.

use facepay_money::Currency;
use facepay_store::fraud::{Block, ClaimState, FlaggedTerminal, Held};
use facepay_store::loyalty::{
    Choice, Coupon, CouponHeld, PointsHeld, PointsReport, Program, StampsHeld,
};
use facepay_store::parties::{PaymentMethod, StoreRow, TerminalContext, TerminalStatus};
use facepay_store::payments::{DailyReportRow, Event, Payment, PaymentState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::Failure;
use crate::face::FaceTimings;

/// A text column read as the view's enum, by the enum's own serde names.
/// A value the store holds but the view does not name is a bug: answered
/// as an internal error, never passed on as free text.
fn stored<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        tracing::error!(what, text, "a stored value the API does not name");
        Failure::internal()
    })
}

/// A 0 or 1 column read as a flag.
fn flag(what: &str, value: i64) -> Result<bool, Failure> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => {
            tracing::error!(what, other, "a stored flag that is neither 0 nor 1");
            Err(Failure::internal())
        }
    }
}

/// One camera frame: a JPEG or PNG, base64 (standard alphabet, padded).
/// The pattern is the decoder's: canonical padding and trailing bits.
#[derive(ToSchema)]
#[schema(
    pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
    content_encoding = "base64",
    content_media_type = "image/jpeg"
)]
pub struct Frame(pub String);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// International format: 8 to 15 digits with an optional leading '+'.
    #[schema(pattern = r"^\+?[0-9]{8,15}$")]
    pub phone: String,
    /// 4 to 12 digits.
    #[schema(pattern = r"^[0-9]{4,12}$")]
    pub pin: String,
    /// The selfie burst, 1 to 8 frames (each at most 8 MiB decoded).
    #[schema(value_type = Vec<Frame>, min_items = 1, max_items = 8)]
    pub frames: Vec<String>,
    pub card: CardInput,
}

/// A new face for an account that has none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaceRequest {
    /// The selfie burst, 1 to 8 frames (each at most 8 MiB decoded).
    #[schema(value_type = Vec<Frame>, min_items = 1, max_items = 8)]
    pub frames: Vec<String>,
}

/// The answer to an acquirer's webhook delivery.
#[derive(Serialize, ToSchema)]
pub struct EventReceipt {
    /// The acquirer's id of the event.
    pub event_id: String,
    /// `voided` (the acquirer released a hold facepay still counted: the
    /// payment is voided), `duplicate` (handled before), `unknown_payment`
    /// or `noted` (nothing to change).
    #[schema(value_type = String, example = "noted")]
    pub outcome: &'static str,
}

/// The card to pay with; sealed at rest, never echoed back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// 12 to 19 digits passing the Luhn check; spaces and dashes between
    /// them are dropped.
    #[schema(pattern = r"^[0-9 -]{12,40}$")]
    pub number: String,
    #[schema(minimum = 1, maximum = 12)]
    pub expiry_month: u8,
    /// The year in four digits; a card past its month is refused.
    #[schema(minimum = 2000, maximum = 2099)]
    pub expiry_year: u16,
    /// The card security code (CVC): 3 digits, 4 on Amex. Used once, to
    /// verify the card with its issuer before the account is made (nothing
    /// is charged), and never stored; a wrong code is refused with
    /// `incorrect_security_code` and nothing is enrolled.
    #[schema(
        pattern = r"^[0-9]{3,4}$",
        min_length = 3,
        max_length = 4,
        example = "737"
    )]
    pub security_code: String,
}

impl Drop for CardInput {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.number.zeroize();
        self.security_code.zeroize();
    }
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
    pub payment_method: PaymentMethodView,
    /// The liveness decision on the selfie burst.
    pub liveness: Liveness,
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
    /// Decimal string in major units: "4500" won, "12.34" dollars; more
    /// than zero, with no more decimals than the currency has.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", max_length = 32)]
    pub amount: String,
    /// ISO 4217 code; must be the store's currency.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    /// The burst, 1 to 8 frames in capture order (each at most 8 MiB
    /// decoded).
    #[schema(value_type = Vec<Frame>, min_items = 1, max_items = 8)]
    pub frames: Vec<String>,
    #[serde(default)]
    pub capture: CaptureMode,
    /// The last four digits of the payer's phone, when the till asks for
    /// them first: only users with those digits are searched.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}$")]
    pub phone_last4: Option<String>,
}

/// Exactly one factor, one of those the payment's `step_up.methods` lists,
/// such as `{"pin": "1234"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// The last 4 digits of the payer's phone number.
    pub phone_last4: Option<String>,
    /// The payer's whole phone number, as enrolled.
    pub phone: Option<String>,
    /// The payer's PIN.
    pub pin: Option<String>,
    /// The payer's IC card, tapped on the terminal's reader in answer to
    /// `step_up.card_challenge`.
    pub card_tap: Option<CardTapRequest>,
}

/// Written by hand: "exactly one field" is a `oneOf` of one-field objects,
/// which the derive does not write (and utoipa 5.5 writes `min_properties`
/// as `maxProperties`). `step_up_request_schema_follows_serde` holds the
/// schema and the type together.
impl utoipa::PartialSchema for StepUpRequest {
    fn schema() -> RefOr<Schema> {
        let text = |pattern: &str, description: &str| -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .description(Some(description))
                .into()
        };
        let one = |name: &str, schema: RefOr<Schema>| {
            ObjectBuilder::new()
                .property(name, schema)
                .required(name)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some(
                "Exactly one factor, one of those the payment's `step_up.methods` lists.",
            ))
            .item(one(
                "phone_last4",
                text(
                    r"^[0-9]{4}$",
                    "The last 4 digits of the payer's phone number.",
                ),
            ))
            .item(one(
                "phone",
                text(
                    r"^\+?[0-9]{8,15}$",
                    "The payer's whole phone number, as enrolled: 8 to 15 digits with an \
                     optional leading '+' (`+82...` or national).",
                ),
            ))
            .item(one(
                "pin",
                text(r"^[0-9]{4,12}$", "The payer's PIN, 4 to 12 digits."),
            ))
            .item(one("card_tap", CardTapRequest::schema()))
            .into()
    }
}

impl ToSchema for StepUpRequest {}

/// What the card answered to the challenge.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardTapRequest {
    /// The card's application transaction counter (tag 9F36).
    #[schema(minimum = 0, maximum = 65535)]
    pub atc: u16,
    /// The ARQC (tag 9F26), 16 hex digits.
    #[schema(pattern = r"^[0-9A-Fa-f]{16}$")]
    pub arqc: String,
    /// The application interchange profile (tag 82), 4 hex digits.
    #[schema(pattern = r"^[0-9A-Fa-f]{4}$")]
    pub aip: String,
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Decimal string in major units, more than zero, with no more
    /// decimals than the payment's currency has; absent means all that is
    /// left.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", max_length = 32)]
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
    /// The accepted fields of the step-up request, weakest first.
    pub methods: Vec<StepUpMethod>,
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

/// A field of the step-up request that can confirm the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepUpMethod {
    PhoneLast4,
    Phone,
    Pin,
    CardTap,
}

impl StepUpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PhoneLast4 => "phone_last4",
            Self::Phone => "phone",
            Self::Pin => "pin",
            Self::CardTap => "card_tap",
        }
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStateView {
    Created,
    RequiresStepUp,
    Authorised,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
    Declined,
    Failed,
}

impl From<PaymentState> for PaymentStateView {
    fn from(s: PaymentState) -> Self {
        match s {
            PaymentState::Created => Self::Created,
            PaymentState::RequiresStepUp => Self::RequiresStepUp,
            PaymentState::Authorised => Self::Authorised,
            PaymentState::Captured => Self::Captured,
            PaymentState::PartiallyRefunded => Self::PartiallyRefunded,
            PaymentState::Refunded => Self::Refunded,
            PaymentState::Voided => Self::Voided,
            PaymentState::Declined => Self::Declined,
            PaymentState::Failed => Self::Failed,
        }
    }
}

impl PaymentStateView {
    fn of(text: &str) -> Result<Self, Failure> {
        PaymentState::parse(text).map(Self::from).ok_or_else(|| {
            tracing::error!(text, "a payment state the store does not name");
            Failure::internal()
        })
    }
}

/// A liveness decision on a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Live,
    Spoof,
    /// Not enough evidence either way.
    Inconclusive,
}

impl Liveness {
    /// As stored with a payment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Spoof => "spoof",
            Self::Inconclusive => "inconclusive",
        }
    }
}

impl From<facepay_face::liveness::LivenessDecision> for Liveness {
    fn from(d: facepay_face::liveness::LivenessDecision) -> Self {
        use facepay_face::liveness::LivenessDecision;
        match d {
            LivenessDecision::Live => Self::Live,
            LivenessDecision::Spoof => Self::Spoof,
            LivenessDecision::Inconclusive => Self::Inconclusive,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    pub state: PaymentStateView,
    /// Why the payment reached its state, such as `candidates_close` or an
    /// issuer's decline code.
    pub reason: String,
    /// Decimal string in major units.
    pub amount: String,
    /// The same amount in minor units (cents; won have none).
    pub amount_minor: i64,
    pub currency: String,
    pub capture_mode: CaptureMode,
    pub authorised_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub fee_minor: i64,
    pub store_id: String,
    pub terminal_id: String,
    /// Cosine similarity of the best gallery match.
    pub match_score: Option<f64>,
    pub liveness: Option<Liveness>,
    /// Unix time in milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl PaymentView {
    pub fn of(p: &Payment) -> Result<Self, Failure> {
        let amount = Currency::from_code(&p.currency)
            .map(|c| c.format(p.amount_minor))
            .unwrap_or_else(|_| p.amount_minor.to_string());
        Ok(Self {
            id: p.id.clone(),
            state: PaymentStateView::from(p.state()?),
            reason: p.reason.clone(),
            amount,
            amount_minor: p.amount_minor,
            currency: p.currency.clone(),
            capture_mode: stored("capture mode", &p.capture_mode)?,
            authorised_minor: p.authorised_minor,
            captured_minor: p.captured_minor,
            refunded_minor: p.refunded_minor,
            fee_minor: p.fee_minor,
            store_id: p.store_id.clone(),
            terminal_id: p.terminal_id.clone(),
            match_score: p.match_score,
            liveness: p
                .liveness
                .as_deref()
                .map(|l| stored("liveness", l))
                .transpose()?,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
            step_up: None,
            receipt: None,
        })
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

/// A user account's standing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    /// Blocked until its face is enrolled again (an accepted claim).
    Suspended,
    Deleted,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub phone: Option<String>,
    pub status: UserStatus,
    pub created_at_ms: i64,
    pub has_face: bool,
    pub payment_methods: Vec<PaymentMethodView>,
    /// The most recent payments.
    pub payments: Vec<PaymentView>,
    /// Points held at each merchant.
    pub points: Vec<PointsHeldView>,
    /// Stamp cards.
    pub stamps: Vec<StampsHeldView>,
    /// Coupons granted (stamp card rewards) with uses left.
    pub coupons: Vec<CouponHeldView>,
    /// How the user chose to pay at each merchant (a coupon to use first,
    /// points or not).
    pub choices: Vec<ChoiceView>,
}

/// The parts of a user's account the user page shows, read from the store.
pub struct UserRows<'a> {
    pub user: &'a facepay_store::parties::User,
    /// The user's phone number, opened from its seal.
    pub phone: Option<String>,
    pub has_face: bool,
    pub methods: &'a [PaymentMethod],
    /// Now, in Unix milliseconds, for which cards expire soon.
    pub now_ms: i64,
    pub payments: &'a [Payment],
    pub points: &'a [PointsHeld],
    pub stamps: &'a [StampsHeld],
    pub coupons: &'a [CouponHeld],
    pub choices: &'a [Choice],
}

impl UserView {
    pub fn of(rows: &UserRows<'_>) -> Result<Self, Failure> {
        Ok(Self {
            user_id: rows.user.id.clone(),
            phone: rows.phone.clone(),
            status: stored("user status", &rows.user.status)?,
            created_at_ms: rows.user.created_at_ms,
            has_face: rows.has_face,
            payment_methods: rows
                .methods
                .iter()
                .map(|m| PaymentMethodView::of(m, rows.now_ms))
                .collect::<Result<_, _>>()?,
            payments: rows
                .payments
                .iter()
                .map(PaymentView::of)
                .collect::<Result<_, _>>()?,
            points: rows.points.iter().map(PointsHeldView::from).collect(),
            stamps: rows.stamps.iter().map(StampsHeldView::from).collect(),
            coupons: rows
                .coupons
                .iter()
                .map(CouponHeldView::of)
                .collect::<Result<_, _>>()?,
            choices: rows
                .choices
                .iter()
                .map(ChoiceView::of)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A card network.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Unknown,
}

/// Whether a card on file can pay.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    Deleted,
}

/// A card on file: its public details only; the number is split between
/// the card vault and the core, and never shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PaymentMethod)]
pub struct PaymentMethodView {
    pub id: String,
    pub brand: CardBrand,
    #[schema(pattern = r"^[0-9]{4}$")]
    pub last4: String,
    pub expiry_month: i64,
    pub expiry_year: i64,
    /// A keyed hash of the number from the card vault: the same card has
    /// the same fingerprint; the number cannot be found from it. Null once
    /// deleted.
    pub fingerprint: Option<String>,
    pub status: CardStatus,
    /// The card face payments use; a user's first card is the default.
    pub is_default: bool,
    /// The card expires this month or next (or has expired): time to add
    /// its replacement in the app.
    pub expires_soon: bool,
}

/// A card expiring within this many months after the current one shows
/// as expiring soon: this month's and next month's.
const EXPIRY_NOTICE_MONTHS: i64 = 1;

impl PaymentMethodView {
    /// `now_ms` (Unix milliseconds) tells which cards expire soon.
    pub fn of(m: &PaymentMethod, now_ms: i64) -> Result<Self, Failure> {
        let (year, month, _day) = facepay_connector::card::utc_date(now_ms);
        let months_now = i64::from(year) * 12 + i64::from(month);
        let months_expiry = m.expiry_year * 12 + m.expiry_month;
        Ok(Self {
            id: m.id.clone(),
            brand: stored("card brand", &m.brand)?,
            last4: m.last4.clone(),
            expiry_month: m.expiry_month,
            expiry_year: m.expiry_year,
            fingerprint: m.fingerprint.clone(),
            status: stored("card status", &m.status)?,
            is_default: m.is_default == 1,
            expires_soon: months_expiry - months_now <= EXPIRY_NOTICE_MONTHS,
        })
    }
}

/// A card to add to the caller's wallet.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCardRequest {
    pub card: CardInput,
    /// Pay with this card from now on. A user's only card is the default
    /// whatever this says.
    #[serde(default)]
    pub make_default: bool,
}

/// The card that takes the place of one on file (a renewed or a new card).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceCardRequest {
    pub card: CardInput,
}

/// The caller's active cards, the default first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardList {
    pub cards: Vec<PaymentMethodView>,
}

/// A card removed: both shares of its number are destroyed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardRemoved {
    pub id: String,
    pub removed: bool,
    /// The caller's cards left; none means face payments are refused
    /// (`no_payment_method`) until a card is added.
    pub cards_left: i64,
}

/// One move of a payment's state machine.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PaymentEvent)]
pub struct PaymentEventView {
    /// Null for the payment's first event.
    pub from_state: Option<PaymentStateView>,
    pub to_state: PaymentStateView,
    pub reason: String,
    /// Unix time in milliseconds.
    pub at_ms: i64,
}

impl PaymentEventView {
    pub fn of(e: &Event) -> Result<Self, Failure> {
        Ok(Self {
            from_state: e
                .from_state
                .as_deref()
                .map(PaymentStateView::of)
                .transpose()?,
            to_state: PaymentStateView::of(&e.to_state)?,
            reason: e.reason.clone(),
            at_ms: e.at_ms,
        })
    }
}

/// The answer of `GET /v1/merchant/payments/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    pub payment: PaymentView,
    /// Oldest first.
    pub events: Vec<PaymentEventView>,
}

impl PaymentDetail {
    pub fn of(payment: &Payment, events: &[Event]) -> Result<Self, Failure> {
        Ok(Self {
            payment: PaymentView::of(payment)?,
            events: events
                .iter()
                .map(PaymentEventView::of)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Store)]
pub struct StoreView {
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

impl From<&StoreRow> for StoreView {
    fn from(s: &StoreRow) -> Self {
        Self {
            id: s.id.clone(),
            merchant_id: s.merchant_id.clone(),
            name: s.name.clone(),
            country: s.country.clone(),
            city: s.city.clone(),
            currency: s.currency.clone(),
            latitude_e6: s.latitude_e6,
            longitude_e6: s.longitude_e6,
        }
    }
}

/// One store and currency on one UTC day, from the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DailyReportRow)]
pub struct DailyReportRowView {
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

impl From<&DailyReportRow> for DailyReportRowView {
    fn from(r: &DailyReportRow) -> Self {
        Self {
            store_id: r.store_id.clone(),
            currency: r.currency.clone(),
            count: r.count,
            gross_minor: r.gross_minor,
            refunds_minor: r.refunds_minor,
            fees_minor: r.fees_minor,
            net_minor: r.net_minor,
        }
    }
}

/// The answer of `GET /v1/merchant/reports/daily`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyReport {
    pub merchant_id: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub stores: Vec<StoreView>,
    pub rows: Vec<DailyReportRowView>,
}

/// Whether a merchant's terminal may take payments.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerminalState {
    Active,
    Suspended,
    /// For good (`POST /v1/operator/terminals/{id}/retire`).
    Retired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalView {
    pub terminal_id: String,
    pub store_id: String,
    /// The store's name.
    pub store: String,
    pub status: TerminalState,
    /// Why the fraud checks flagged it, until an operator clears it.
    pub flag_reason: Option<String>,
    pub last_payment_at_ms: Option<i64>,
}

impl TerminalView {
    pub fn of(t: &TerminalStatus) -> Result<Self, Failure> {
        Ok(Self {
            terminal_id: t.terminal_id.clone(),
            store_id: t.store_id.clone(),
            store: t.store.clone(),
            status: stored("terminal status", &t.status)?,
            flag_reason: t.flag_reason.clone(),
            last_payment_at_ms: t.last_payment_at_ms,
        })
    }
}

/// The answer of `GET /v1/merchant/terminals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalList {
    pub terminals: Vec<TerminalView>,
}

/// The answer of `DELETE /v1/users/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDeleted {
    pub user_id: String,
    /// Always `true`.
    pub deleted: bool,
}

/// The answer of `DELETE /v1/users/me/face`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceDeleted {
    pub user_id: String,
    /// Always `true`.
    pub face_deleted: bool,
}

/// The answer of `PUT /v1/users/me/face`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceEnrolled {
    pub user_id: String,
    /// Always `true`.
    pub face_enrolled: bool,
}

/// Points a user holds at a merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointsHeldView {
    pub merchant_id: String,
    /// The merchant's name.
    pub merchant: String,
    pub points: i64,
}

impl From<&PointsHeld> for PointsHeldView {
    fn from(p: &PointsHeld) -> Self {
        Self {
            merchant_id: p.merchant_id.clone(),
            merchant: p.merchant.clone(),
            points: p.points,
        }
    }
}

/// A user's stamp card.
#[derive(Debug, Serialize, ToSchema)]
pub struct StampsHeldView {
    pub program_id: String,
    pub merchant_id: String,
    pub stamps: i64,
    /// A reward every this many stamps.
    pub stamps_per_reward: i64,
}

impl From<&StampsHeld> for StampsHeldView {
    fn from(s: &StampsHeld) -> Self {
        Self {
            program_id: s.program_id.clone(),
            merchant_id: s.merchant_id.clone(),
            stamps: s.stamps,
            stamps_per_reward: s.stamps_per_reward,
        }
    }
}

/// How a coupon takes off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponKind {
    /// `value` in minor units.
    Fixed,
    /// `value` in basis points.
    Percent,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Percent => "percent",
        }
    }
}

/// A coupon granted to a user, with uses left.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponHeldView {
    pub coupon_id: String,
    pub merchant_id: String,
    pub name: String,
    pub kind: CouponKind,
    pub value: i64,
    pub valid_until_ms: i64,
    pub uses_left: i64,
}

impl CouponHeldView {
    pub fn of(c: &CouponHeld) -> Result<Self, Failure> {
        Ok(Self {
            coupon_id: c.coupon_id.clone(),
            merchant_id: c.merchant_id.clone(),
            name: c.name.clone(),
            kind: stored("coupon kind", &c.kind)?,
            value: c.value,
            valid_until_ms: c.valid_until_ms,
            uses_left: c.uses_left,
        })
    }
}

/// How a user pays at a merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChoiceView {
    pub user_id: String,
    pub merchant_id: String,
    /// The coupon to use first when it applies.
    pub coupon_id: Option<String>,
    /// Whether the user's points there pay what they can of each payment.
    pub redeem_points: bool,
    pub updated_at_ms: i64,
}

impl ChoiceView {
    pub fn of(c: &Choice) -> Result<Self, Failure> {
        Ok(Self {
            user_id: c.user_id.clone(),
            merchant_id: c.merchant_id.clone(),
            coupon_id: c.coupon_id.clone(),
            redeem_points: flag("redeem_points", c.redeem_points)?,
            updated_at_ms: c.updated_at_ms,
        })
    }
}

/// What a loyalty program gives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProgramKind {
    Points,
    Stamps,
}

/// Whether a program or a coupon applies to payments now.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyState {
    Active,
    Paused,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramView {
    pub id: String,
    pub merchant_id: String,
    pub kind: ProgramKind,
    pub status: LoyaltyState,
    /// Points: basis points of the amount paid.
    pub points_bps: Option<i64>,
    /// Points: at most this many a payment.
    pub points_cap: Option<i64>,
    /// Stamps: every this many visits earns the reward.
    pub stamps_per_reward: Option<i64>,
    /// Stamps: the coupon granted as the reward.
    pub reward_coupon_id: Option<String>,
    pub created_at_ms: i64,
}

impl ProgramView {
    pub fn of(p: &Program) -> Result<Self, Failure> {
        Ok(Self {
            id: p.id.clone(),
            merchant_id: p.merchant_id.clone(),
            kind: stored("program kind", &p.kind)?,
            status: stored("program status", &p.status)?,
            points_bps: p.points_bps,
            points_cap: p.points_cap,
            stamps_per_reward: p.stamps_per_reward,
            reward_coupon_id: p.reward_coupon_id.clone(),
            created_at_ms: p.created_at_ms,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponView {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub kind: CouponKind,
    pub value: i64,
    pub min_spend_minor: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub per_user_max: i64,
    /// Uses in all; unlimited when null.
    pub total_max: Option<i64>,
    pub used_count: i64,
    pub stackable: bool,
    pub granted_only: bool,
    pub status: LoyaltyState,
    pub created_at_ms: i64,
}

impl CouponView {
    pub fn of(c: &Coupon) -> Result<Self, Failure> {
        Ok(Self {
            id: c.id.clone(),
            merchant_id: c.merchant_id.clone(),
            name: c.name.clone(),
            kind: stored("coupon kind", &c.kind)?,
            value: c.value,
            min_spend_minor: c.min_spend_minor,
            valid_from_ms: c.valid_from_ms,
            valid_until_ms: c.valid_until_ms,
            per_user_max: c.per_user_max,
            total_max: c.total_max,
            used_count: c.used_count,
            stackable: flag("stackable", c.stackable)?,
            granted_only: flag("granted_only", c.granted_only)?,
            status: stored("coupon status", &c.status)?,
            created_at_ms: c.created_at_ms,
        })
    }
}

/// A merchant's points: issued, redeemed, clawed back by refunds, restored
/// to payers, and outstanding (its liability).
#[derive(Debug, Serialize, ToSchema)]
pub struct PointsReportView {
    pub issued: i64,
    pub redeemed: i64,
    pub clawed_back: i64,
    pub restored: i64,
    pub outstanding: i64,
}

impl From<&PointsReport> for PointsReportView {
    fn from(r: &PointsReport) -> Self {
        Self {
            issued: r.issued,
            redeemed: r.redeemed,
            clawed_back: r.clawed_back,
            restored: r.restored,
            outstanding: r.outstanding,
        }
    }
}

/// What a loyalty status change names.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyItem {
    Programs,
    Coupons,
}

impl LoyaltyItem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Programs => "programs",
            Self::Coupons => "coupons",
        }
    }
}

/// A loyalty status change.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyStatus {
    Pause,
    Resume,
}

impl LoyaltyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// The answer of a pause or a resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoyaltyStatusView {
    pub id: String,
    pub status: LoyaltyState,
}

/// Where a fraud claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStateView {
    Opened,
    UnderReview,
    Accepted,
    Rejected,
}

impl From<ClaimState> for ClaimStateView {
    fn from(s: ClaimState) -> Self {
        match s {
            ClaimState::Opened => Self::Opened,
            ClaimState::UnderReview => Self::UnderReview,
            ClaimState::Accepted => Self::Accepted,
            ClaimState::Rejected => Self::Rejected,
        }
    }
}

impl ClaimStateView {
    pub fn of(text: &str) -> Result<Self, Failure> {
        ClaimState::parse(text).map(Self::from).ok_or_else(|| {
            tracing::error!(text, "a claim state the store does not name");
            Failure::internal()
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => ClaimState::Opened.as_str(),
            Self::UnderReview => ClaimState::UnderReview.as_str(),
            Self::Accepted => ClaimState::Accepted.as_str(),
            Self::Rejected => ClaimState::Rejected.as_str(),
        }
    }
}

/// A rule of the risk engine that fired, or a list that matched.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FiredRule {
    pub rule: String,
    pub weight: i64,
    /// Why, in words.
    pub reason: String,
}

/// A payment held for an operator's review.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    pub payment_id: String,
    pub merchant_id: String,
    pub terminal_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The risk engine's score.
    pub score: i64,
    pub fired: Vec<FiredRule>,
    /// When it was assessed, Unix milliseconds.
    pub at_ms: i64,
}

impl HeldView {
    pub fn of(h: &Held) -> Result<Self, Failure> {
        let fired = serde_json::from_str(&h.fired).map_err(|e| {
            tracing::error!(error = %e, payment = %h.payment_id, "stored rules that fired do not parse");
            Failure::internal()
        })?;
        Ok(Self {
            payment_id: h.payment_id.clone(),
            merchant_id: h.merchant_id.clone(),
            terminal_id: h.terminal_id.clone(),
            amount_minor: h.amount_minor,
            currency: h.currency.clone(),
            score: h.score,
            fired,
            at_ms: h.at_ms,
        })
    }
}

/// The answer of `GET /v1/operator/reviews`: oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewQueue {
    pub payments: Vec<HeldView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlaggedTerminalView {
    pub terminal_id: String,
    pub store_id: String,
    pub flagged_at_ms: i64,
    pub flag_reason: String,
}

impl From<&FlaggedTerminal> for FlaggedTerminalView {
    fn from(t: &FlaggedTerminal) -> Self {
        Self {
            terminal_id: t.terminal_id.clone(),
            store_id: t.store_id.clone(),
            flagged_at_ms: t.flagged_at_ms,
            flag_reason: t.flag_reason.clone(),
        }
    }
}

/// The answer of `GET /v1/operator/terminals/flagged`: first flagged first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlaggedTerminals {
    pub terminals: Vec<FlaggedTerminalView>,
}

/// The answer of clearing a terminal's flag.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalFlagCleared {
    pub terminal_id: String,
    /// Always `false`.
    pub flagged: bool,
}

/// What a block entry names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    User,
    /// A card, by its fingerprint.
    Card,
    Terminal,
    Merchant,
    /// ISO 3166-1 alpha-2.
    Country,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Card => "card",
            Self::Terminal => "terminal",
            Self::Merchant => "merchant",
            Self::Country => "country",
        }
    }
}

/// Who added a block entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockSource {
    /// An accepted fraud claim.
    Claim,
    Operator,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockView {
    pub kind: BlockKind,
    pub value: String,
    pub reason: String,
    pub source: BlockSource,
    pub created_at_ms: i64,
    /// Null for a block that stays until removed.
    pub expires_at_ms: Option<i64>,
}

impl BlockView {
    pub fn of(b: &Block) -> Result<Self, Failure> {
        Ok(Self {
            kind: stored("block kind", &b.kind)?,
            value: b.value.clone(),
            reason: b.reason.clone(),
            source: stored("block source", &b.source)?,
            created_at_ms: b.created_at_ms,
            expires_at_ms: b.expires_at_ms,
        })
    }
}

/// The answer of `GET /v1/operator/blocks`: live entries only.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    pub blocks: Vec<BlockView>,
}

/// The answer of removing a block.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockRemoved {
    pub kind: BlockKind,
    pub value: String,
    /// Always `true`.
    pub removed: bool,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn step_up_request_schema_follows_serde() {
        let schema = serde_json::to_value(StepUpRequest::schema()).unwrap();
        let variants = schema["oneOf"].as_array().unwrap();
        let names: Vec<&str> = variants
            .iter()
            .map(|v| {
                assert_eq!(v["additionalProperties"], serde_json::json!(false));
                assert_eq!(v["required"].as_array().unwrap().len(), 1);
                v["required"][0].as_str().unwrap()
            })
            .collect();
        assert_eq!(names, ["phone_last4", "phone", "pin", "card_tap"]);
        let given = |text: &str| {
            let r: StepUpRequest = serde_json::from_str(text).unwrap();
            [
                r.phone_last4.is_some(),
                r.phone.is_some(),
                r.pin.is_some(),
                r.card_tap.is_some(),
            ]
        };
        assert_eq!(given(r#"{"pin":"1234"}"#), [false, false, true, false]);
        assert_eq!(
            given(r#"{"card_tap":{"atc":1,"arqc":"00","aip":"00"}}"#),
            [false, false, false, true]
        );
        assert!(serde_json::from_str::<StepUpRequest>(r#"{"other":"1"}"#).is_err());
    }
}
