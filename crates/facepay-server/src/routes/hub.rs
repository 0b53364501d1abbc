//! The cross-border hub over HTTP. Member networks call it with their own
//! key: a payer's network asks for a quote on a merchant's QR code and
//! pays it, or asks for a cash code; an ATM's network presents the code and
//! confirms the dispense. Operators close and settle windows; facepay's own
//! users pay abroad from their card on file.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facepay_hub::iso20022;
use facepay_hub::report::Report;
use facepay_hub::service::{HubError, KEY_BYTES_MAX, PAYLOAD_BYTES_MAX, ScannedQr};
use facepay_payments::hub_member::FACEPAY_MEMBER_ID;
use facepay_store::hub::{self as records, Quote, Transfer, Window};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, ApiPath, ApiQuery, Command, ErrorResponse, IdempotencyKey, MemberKey,
    OperatorKey, UserToken,
};

/// A transfer's idempotency key, as long as the hub keeps them.
pub(super) type TransferKey = IdempotencyKey<KEY_BYTES_MAX>;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(quote))
        .routes(routes!(pay_quote))
        .routes(routes!(my_quote))
        .routes(routes!(my_pay))
        .routes(routes!(get_transfer))
        .routes(routes!(cash_code))
        .routes(routes!(withdraw))
        .routes(routes!(confirm))
        .routes(routes!(close_window))
        .routes(routes!(report))
        .routes(routes!(my_report))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    id: String,
    provider: String,
    payer_network: String,
    payer_account: String,
    payee_network: String,
    payee_account: String,
    payee_name: String,
    /// What the payer pays in all, fee included, in minor units.
    source_minor: i64,
    source_currency: String,
    fee_minor: i64,
    /// What the payee receives, in minor units.
    destination_minor: i64,
    destination_currency: String,
    /// Destination major units per source major unit, times 10^9.
    customer_rate: String,
    mid_rate: String,
    reference: Option<String>,
    expires_at_ms: i64,
    /// In the answer to a quote for a QR code: what the code says.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ScannedCodeView>,
}

/// A scanned code as the payer should see it before paying.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScannedCodeView {
    /// The scheme its templates name: `qris`, `vietqr`, `promptpay`,
    /// `thaiqr`, `duitnow`, `paynow`, `sgqr`, `khqr`, `pix`, or `emvco` for
    /// any other code.
    scheme: &'static str,
    /// The merchant name in the code, or the scheme's account data when it
    /// has none (PromptPay's proxy, VietQR's bank and account).
    display_name: String,
    /// What the scheme allows that EMVCo's base rules do not, such as a
    /// merchant name left out.
    warnings: Vec<QrWarningView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QrWarningView {
    /// `qr_field_omitted`, `qr_format_indicator`, `qr_amount_elsewhere`,
    /// `qr_unexpected_country` or `qr_unexpected_currency`.
    code: &'static str,
    /// The code's root field it is about.
    field: u8,
    message: String,
}

impl QuoteView {
    fn scanned(q: Quote, scanned: &ScannedQr) -> Self {
        let mut view = Self::from(q);
        view.code = Some(ScannedCodeView {
            scheme: scanned.scheme.id(),
            display_name: scanned.display_name.clone(),
            warnings: scanned
                .warnings
                .iter()
                .map(|w| QrWarningView {
                    code: w.code(),
                    field: w.field(),
                    message: w.to_string(),
                })
                .collect(),
        });
        view
    }
}

impl From<Quote> for QuoteView {
    fn from(q: Quote) -> Self {
        Self {
            id: q.id,
            provider: q.provider,
            payer_network: q.payer_network,
            payer_account: q.payer_account,
            payee_network: q.payee_network,
            payee_account: q.payee_account,
            payee_name: q.payee_name,
            source_minor: q.source_minor,
            source_currency: q.source_currency,
            fee_minor: q.fee_minor,
            destination_minor: q.destination_minor,
            destination_currency: q.destination_currency,
            customer_rate: q.customer_rate,
            mid_rate: q.mid_rate,
            reference: q.reference,
            expires_at_ms: q.expires_at_ms,
            code: None,
        }
    }
}

/// What a transfer is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// A payment to a merchant's QR code.
    Qr,
    /// Cash at an ATM.
    Atm,
}

impl From<records::Kind> for TransferKind {
    fn from(k: records::Kind) -> Self {
        match k {
            records::Kind::Qr => Self::Qr,
            records::Kind::Atm => Self::Atm,
        }
    }
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Under way, or waiting for a network's answer: the sweep finishes it.
    Pending,
    /// Screening matched a party: held, nothing reserved, until an
    /// operator releases or refuses it.
    Held,
    /// Cash waiting for the dispense.
    Reserved,
    Dispensed,
    Committed,
    Reversed,
    /// The payee was paid; the payer's capture follows.
    PayerCommitPending,
}

impl From<records::State> for TransferState {
    fn from(s: records::State) -> Self {
        match s {
            records::State::Pending => Self::Pending,
            records::State::Held => Self::Held,
            records::State::Reserved => Self::Reserved,
            records::State::Dispensed => Self::Dispensed,
            records::State::Committed => Self::Committed,
            records::State::Reversed => Self::Reversed,
            records::State::PayerCommitPending => Self::PayerCommitPending,
        }
    }
}

/// The transfer's ISO 20022 status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Iso20022Status {
    /// Settlement completed.
    Accc,
    /// Accepted, settlement in process.
    Acsp,
    /// Pending.
    Pdng,
    /// Rejected.
    Rjct,
}

impl Iso20022Status {
    fn of(state: records::State) -> Result<Self, ApiError> {
        match iso20022::status_code(state) {
            "ACCC" => Ok(Self::Accc),
            "ACSP" => Ok(Self::Acsp),
            "PDNG" => Ok(Self::Pdng),
            "RJCT" => Ok(Self::Rjct),
            other => Err(ApiError::internal(
                "an ISO 20022 status not in the view",
                &other,
            )),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    id: String,
    kind: TransferKind,
    state: TransferState,
    /// Why it was reversed: the failing network's error code.
    reason: Option<String>,
    iso20022_status: Iso20022Status,
    window_id: Option<String>,
    quote: QuoteView,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<Transfer> for TransferView {
    type Error = ApiError;

    fn try_from(t: Transfer) -> Result<Self, ApiError> {
        Ok(Self {
            kind: t.kind.into(),
            state: t.state.into(),
            iso20022_status: Iso20022Status::of(t.state)?,
            id: t.id,
            reason: t.reason,
            window_id: t.window_id,
            quote: t.quote.into(),
            created_at_ms: t.created_at_ms,
            updated_at_ms: t.updated_at_ms,
        })
    }
}

pub(super) fn created<T: Serialize>(view: T) -> Response {
    (StatusCode::CREATED, axum::Json(view)).into_response()
}

pub(super) fn ok<T: Serialize>(view: T) -> Response {
    (StatusCode::OK, axum::Json(view)).into_response()
}

// The schemas' bound on a QR payload (`max_length`) is the hub's.
const _: () = assert!(PAYLOAD_BYTES_MAX == 2953);

/// A member network's payer asks to pay a merchant's code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The payer's account in the calling network.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 512)]
    payer_account: String,
    /// The merchant's EMVCo QR payload, as scanned.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 2953)]
    qr: String,
    /// For a static code: the amount in the code's currency, major units.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", max_length = 32)]
    amount: Option<String>,
}

impl Command for QuoteRequest {}

#[utoipa::path(
    post,
    path = "/v1/hub/quotes",
    tag = "hub",
    summary = "Quote a payment to a merchant's QR code",
    description = "The calling network's payer pays the merchant a QR code names, in another member network. The quote fixes what the payer pays (fee included) for what the merchant receives, until `expires_at_ms`.",
    request_body = QuoteRequest,
    responses(
        (status = 201, description = "The quote.", body = QuoteView),
        (status = 404, description = "`network_unknown_account`: no such payer or merchant.", body = ErrorResponse),
        (status = 409, description = "`network_closed`: a network is closed at this hour.", body = ErrorResponse),
        (status = 422, description = "A `qr_*` code for a bad payload, `hub_no_member_network`, `hub_bad_amount`, `network_limit`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn quote(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    body: ApiJson<QuoteRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let (q, scanned) = s
        .hub
        .quote_scanned(
            &network,
            &r.payer_account,
            &r.qr,
            r.amount.as_deref(),
            s.now_ms(),
        )
        .await?;
    Ok(created(QuoteView::scanned(q, &scanned)))
}

/// Pays `quote_id` for `requester` if `owns` says the quote is theirs.
async fn pay_for(
    s: &Shared,
    requester: &str,
    key: &str,
    quote_id: &str,
    owns: impl Fn(&Quote) -> bool,
) -> Result<Response, ApiError> {
    let quote = s.hub.quote_by_id(quote_id).await?;
    if !owns(&quote) {
        return Err(HubError::UnknownQuote.into());
    }
    let t = s.hub.pay(requester, key, &quote.id, s.now_ms()).await?;
    Ok(created(TransferView::try_from(t)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    quote_id: String,
}

impl Command for TransferRequest {}

#[utoipa::path(
    post,
    path = "/v1/hub/transfers",
    tag = "hub",
    summary = "Pay a quote",
    description = "Runs the transfer in two phases across both networks: the payer's money held, the merchant paid, the hold taken; a failure on either side reverses both (`state: reversed`, `reason` names the failure). The same Idempotency-Key with the same quote answers the same transfer; a quote pays once.",
    params(TransferKey),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "The transfer: `committed`, `reversed` with its reason, or still `pending` or `payer_commit_pending` (ask again with GET).", body = TransferView),
        (status = 404, description = "`hub_unknown_quote`.", body = ErrorResponse),
        (status = 409, description = "`hub_quote_used` or `idempotency_key_reused`.", body = ErrorResponse),
        (status = 410, description = "`hub_quote_expired`: ask for a new quote.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn pay_quote(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    key: TransferKey,
    body: ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    pay_for(&s, &network, &key.0, &body.value.quote_id, |q| {
        q.payer_network == network
    })
    .await
}

/// A merchant's code scanned by facepay's own payer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scanned {
    /// The merchant's EMVCo QR payload, as scanned.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 2953)]
    qr: String,
    /// For a static code: the amount in the code's currency, major units.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", max_length = 32)]
    amount: Option<String>,
}

impl Command for Scanned {}

#[utoipa::path(
    post,
    path = "/v1/users/me/hub/quotes",
    tag = "users",
    summary = "Quote paying a foreign merchant's QR code with my card",
    description = "The caller pays a merchant of another member network from the card on file, in the won facepay settles in. The quote fixes what the card pays (fee included) for what the merchant receives, until `expires_at_ms`.",
    request_body = Scanned,
    responses(
        (status = 201, description = "The quote.", body = QuoteView),
        (status = 404, description = "`network_unknown_account`: no such merchant.", body = ErrorResponse),
        (status = 409, description = "`network_closed`: a network is closed at this hour.", body = ErrorResponse),
        (status = 422, description = "A `qr_*` code, `hub_no_member_network`, `hub_bad_amount`, `network_limit`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn my_quote(
    State(s): State<Shared>,
    user: UserToken,
    body: ApiJson<Scanned>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let payer = (FACEPAY_MEMBER_ID, user.user.id.as_str());
    let (q, scanned) = s
        .hub
        .quote_scanned(payer.0, payer.1, &r.qr, r.amount.as_deref(), s.now_ms())
        .await?;
    Ok(created(QuoteView::scanned(q, &scanned)))
}

#[utoipa::path(
    post,
    path = "/v1/users/me/hub/transfers",
    tag = "users",
    summary = "Pay my quote",
    description = "Authorises the caller's card for the quote, pays the merchant through its network, then captures; a decline or a failure on either side reverses both (`state: reversed`, `reason`). The same Idempotency-Key with the same quote answers the same transfer.",
    params(TransferKey),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "The transfer: `committed`, or `reversed` with its reason.", body = TransferView),
        (status = 404, description = "`hub_unknown_quote`: no such quote of the caller's.", body = ErrorResponse),
        (status = 409, description = "`hub_quote_used` or `idempotency_key_reused`.", body = ErrorResponse),
        (status = 410, description = "`hub_quote_expired`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn my_pay(
    State(s): State<Shared>,
    user: UserToken,
    key: TransferKey,
    body: ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let requester = format!("user:{}", user.user.id);
    pay_for(&s, &requester, &key.0, &body.value.quote_id, |q| {
        q.payer_network == FACEPAY_MEMBER_ID && q.payer_account == user.user.id
    })
    .await
}

/// A hub record by its id.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub(super) id: String,
}

/// How a transfer is written out.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub enum TransferFormat {
    /// This API's JSON.
    #[default]
    #[serde(rename = "json")]
    Json,
    /// The ISO 20022 credit transfer, as XML.
    #[serde(rename = "pacs.008")]
    Pacs008,
    /// The ISO 20022 status report, as XML.
    #[serde(rename = "pacs.002")]
    Pacs002,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferQuery {
    /// `json` when absent.
    #[param(inline)]
    format: Option<TransferFormat>,
}

#[utoipa::path(
    get,
    path = "/v1/hub/transfers/{id}",
    tag = "hub",
    summary = "A transfer, as JSON or as ISO 20022",
    description = "For the payer's or the payee's network. `format=pacs.008` gives the credit transfer, `format=pacs.002` its status report, as XML.",
    params(IdPath, TransferQuery),
    responses(
        (status = 200, description = "The transfer.", content(
            (TransferView = "application/json"),
            (String = "application/xml"),
        )),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn get_transfer(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    ApiPath(path): ApiPath<IdPath>,
    ApiQuery(query): ApiQuery<TransferQuery>,
) -> Result<Response, ApiError> {
    let t = s.hub.transfer(&path.id).await?;
    if t.quote.payer_network != network && t.quote.payee_network != network {
        return Err(HubError::UnknownTransfer.into());
    }
    let xml = match query.format.unwrap_or_default() {
        TransferFormat::Json => return Ok(ok(TransferView::try_from(t)?)),
        TransferFormat::Pacs008 => iso20022::pacs008(&t),
        TransferFormat::Pacs002 => iso20022::pacs002(&t),
    };
    let mut response = (StatusCode::OK, xml).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashCodeRequest {
    #[schema(pattern = r"^[^\u0000]*$", max_length = 512)]
    payer_account: String,
    /// The network whose ATMs will pay the cash.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 128)]
    atm_network: String,
    /// The cash, in the ATM network's minor units.
    #[schema(minimum = 1)]
    amount_minor: i64,
}

impl Command for CashCodeRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct CashCodeView {
    /// Shown once, to the payer: eight digits to key in at the ATM.
    code: String,
    quote: QuoteView,
}

#[utoipa::path(
    post,
    path = "/v1/hub/cash-codes",
    tag = "hub",
    summary = "A one-time code for cash at a foreign ATM",
    description = "Bound to the amount and the ATM network, good once until the quote expires. Nothing is held until an ATM presents it.",
    request_body = CashCodeRequest,
    responses(
        (status = 201, description = "The code and its quote.", body = CashCodeView),
        (status = 404, description = "`hub_unknown_network` or `network_unknown_account`.", body = ErrorResponse),
        (status = 409, description = "`network_closed`: a network is closed at this hour.", body = ErrorResponse),
        (status = 422, description = "`network_limit`, `network_decimals`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn cash_code(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    body: ApiJson<CashCodeRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let cash = s
        .hub
        .issue_cash_code(
            (&network, &r.payer_account),
            &r.atm_network,
            r.amount_minor,
            s.now_ms(),
        )
        .await?;
    Ok(created(CashCodeView {
        code: cash.code,
        quote: cash.quote.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    /// The code the payer keyed in.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 128)]
    code: String,
    /// The cash, in the ATM network's minor units.
    amount_minor: i64,
}

impl Command for WithdrawalRequest {}

#[utoipa::path(
    post,
    path = "/v1/hub/withdrawals",
    tag = "hub",
    summary = "An ATM presents a cash code",
    description = "Uses the code once and holds the money on both sides. Dispense only on `state: reserved`, then confirm. A withdrawal not confirmed within two minutes is reversed.",
    request_body = WithdrawalRequest,
    responses(
        (status = 201, description = "The withdrawal: `reserved`, or `reversed` with its reason.", body = TransferView),
        (status = 404, description = "`atm_code_unknown`.", body = ErrorResponse),
        (status = 409, description = "`atm_code_used`.", body = ErrorResponse),
        (status = 410, description = "`atm_code_expired`.", body = ErrorResponse),
        (status = 422, description = "`atm_code_mismatch`: another network or amount.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn withdraw(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    body: ApiJson<WithdrawalRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let t = s
        .hub
        .withdraw_cash(&network, &r.code, r.amount_minor, s.now_ms())
        .await?;
    Ok(created(TransferView::try_from(t)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// Whether the cash came out.
    dispensed: bool,
}

impl Command for ConfirmRequest {}

#[utoipa::path(
    post,
    path = "/v1/hub/withdrawals/{id}/confirm",
    tag = "hub",
    summary = "The ATM says whether it dispensed",
    description = "Dispensed: the withdrawal commits on both sides. Not dispensed: it reverses on both.",
    params(IdPath),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "The withdrawal, `committed` or `reversed`.", body = TransferView),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
        (status = 409, description = "`hub_transfer_not_reserved`: confirmed or reversed already.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn confirm(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    ApiPath(path): ApiPath<IdPath>,
    body: ApiJson<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let t = s
        .hub
        .confirm_cash(&network, &path.id, body.value.dispensed, s.now_ms())
        .await?;
    Ok(ok(TransferView::try_from(t)?))
}

/// Where a settlement window stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    Open,
    Closed,
    Settled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    id: String,
    state: WindowState,
    transfer_count: i64,
    opened_at_ms: i64,
    closed_at_ms: Option<i64>,
    settled_at_ms: Option<i64>,
}

impl TryFrom<Window> for WindowView {
    type Error = ApiError;

    fn try_from(w: Window) -> Result<Self, ApiError> {
        let state = match w.state.as_str() {
            "open" => WindowState::Open,
            "closed" => WindowState::Closed,
            "settled" => WindowState::Settled,
            other => return Err(ApiError::internal("a window in an unknown state", &other)),
        };
        Ok(Self {
            id: w.id,
            state,
            transfer_count: w.transfer_count,
            opened_at_ms: w.opened_at_ms,
            closed_at_ms: w.closed_at_ms,
            settled_at_ms: w.settled_at_ms,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PositionView {
    /// A network's id, `fx:<provider>`, or `hub fees`.
    participant: String,
    currency: String,
    /// Positive: pays the hub at settlement. Negative: is paid.
    net_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostView {
    /// The currency payers paid in.
    currency: String,
    principal_at_mid_minor: i64,
    /// What the hub's spread and fees cost those payers over the mid rate.
    hub_minor: i64,
    /// What a card brand's ~1% and an issuer's FX markup would have cost.
    card_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    window: WindowView,
    positions: Vec<PositionView>,
    costs: Vec<CostView>,
    transfers: Vec<TransferView>,
}

impl TryFrom<Report> for ReportView {
    type Error = ApiError;

    fn try_from(r: Report) -> Result<Self, ApiError> {
        Ok(Self {
            window: r.window.try_into()?,
            positions: r
                .positions
                .into_iter()
                .map(|p| PositionView {
                    participant: p.participant,
                    currency: p.currency,
                    net_minor: p.net_minor,
                })
                .collect(),
            costs: r
                .costs
                .into_iter()
                .map(|(currency, c)| CostView {
                    currency,
                    principal_at_mid_minor: c.principal_at_mid_minor,
                    hub_minor: c.hub_minor,
                    card_minor: c.card_minor,
                })
                .collect(),
            transfers: r
                .transfers
                .into_iter()
                .map(TransferView::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/hub/windows/close",
    tag = "hub",
    summary = "Close the open settlement window",
    description = "Records each participant's net position per currency from the ledger; the next transfer opens a new window.",
    responses(
        (status = 200, description = "The closed window.", body = WindowView),
        (status = 409, description = "`hub_no_open_window`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn close_window(State(s): State<Shared>, _: OperatorKey) -> Result<Response, ApiError> {
    let window = s.hub.close_window(s.now_ms()).await?;
    Ok(ok(WindowView::try_from(window)?))
}

#[utoipa::path(
    get,
    path = "/v1/hub/windows/{id}",
    tag = "hub",
    summary = "A closed window's report",
    description = "Net positions per participant and currency (each currency sums to zero), the payers' cost next to a card's, and the window's transfers.",
    params(IdPath),
    responses(
        (status = 200, description = "The report.", body = ReportView),
        (status = 404, description = "`hub_unknown_window`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`: the window is still open.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn report(
    State(s): State<Shared>,
    _: OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let report = s.hub.report(&path.id, None).await?;
    Ok(ok(ReportView::try_from(report)?))
}

#[utoipa::path(
    get,
    path = "/v1/hub/windows/{id}/mine",
    tag = "hub",
    summary = "My network's part of a closed window",
    description = "The calling network's net positions in the window (what it pays or is paid at settlement), the transfers it took part in, and their cost next to a card's.",
    params(IdPath),
    responses(
        (status = 200, description = "The member's report.", body = ReportView),
        (status = 404, description = "`hub_unknown_window`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn my_report(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let report = s.hub.report(&path.id, Some(&network)).await?;
    Ok(ok(ReportView::try_from(report)?))
}
