//! The cross-border hub over HTTP. Member networks call it with their own
//! key: a payer's network asks for a quote on a merchant's QR code and
//! pays it, or asks for a cash code; an ATM's network presents the code and
//! confirms the dispense. Operators close and settle windows.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facepay_hub::NetworkError;
use facepay_hub::iso20022;
use facepay_hub::report::Report;
use facepay_hub::service::HubError;
use facepay_payments::hub_member::FACEPAY_MEMBER_ID;
use facepay_payments::{Failure, check_idempotency_key, parse_json};
use facepay_store::StoreError;
use facepay_store::hub::{Quote, Transfer, Window};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::api::{Body, bearer, failure_response, idempotency_key, json_body};
use super::openapi::ErrorResponse;

type Shared = State<Arc<AppState>>;

fn failure(e: HubError) -> Failure {
    let status = match &e {
        HubError::KeyInvalid => 401,
        HubError::UnknownNetwork(_)
        | HubError::UnknownQuote
        | HubError::UnknownTransfer
        | HubError::CodeUnknown => 404,
        HubError::Network(NetworkError::UnknownAccount) => 404,
        HubError::Network(NetworkError::Funds) => 402,
        HubError::QuoteExpired | HubError::CodeExpired => 410,
        HubError::QuoteUsed
        | HubError::CodeUsed
        | HubError::KeyReused
        | HubError::NotReserved(_)
        | HubError::NoOpenWindow
        | HubError::WindowNotClosed
        | HubError::Network(NetworkError::Closed) => 409,
        HubError::Network(NetworkError::Timeout) => 504,
        HubError::Network(NetworkError::Limit | NetworkError::Decimals) => 422,
        HubError::Network(_) => 502,
        HubError::UnknownWindow => 404,
        HubError::Store(s) if s.is_busy() => 503,
        HubError::Store(StoreError::Refused(_)) => 503,
        HubError::Store(StoreError::Duplicate(_)) => 409,
        HubError::Store(s) => {
            tracing::error!(error = %s, "hub store failed");
            return Failure::internal();
        }
        _ => 422,
    };
    Failure::new(status, e.code(), e.to_string())
}

fn answer<T: Serialize>(result: Result<(StatusCode, T), Failure>) -> Response {
    match result {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(f) => failure_response(&f),
    }
}

/// The member network calling, by its key.
async fn member(s: &AppState, headers: &HeaderMap) -> Result<String, Failure> {
    s.hub.authenticate(bearer(headers)?).await.map_err(failure)
}

async fn operator(s: &AppState, headers: &HeaderMap) -> Result<(), Failure> {
    s.services
        .claims
        .authenticate_operator(bearer(headers)?)
        .await
        .map(|_| ())
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
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    id: String,
    /// `qr` or `atm`.
    kind: &'static str,
    /// `pending` (under way, or waiting for a network's answer: the sweep
    /// finishes it), `reserved` (cash waiting for the dispense),
    /// `dispensed`, `committed`, `reversed` or `payer_commit_pending` (the
    /// payee was paid; the payer's capture follows).
    state: &'static str,
    /// Why it was reversed: the failing network's error code.
    reason: Option<String>,
    /// ISO 20022 status: ACCC, ACSP, PDNG or RJCT.
    iso20022_status: &'static str,
    window_id: Option<String>,
    quote: QuoteView,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<Transfer> for TransferView {
    fn from(t: Transfer) -> Self {
        Self {
            kind: t.kind.as_str(),
            state: t.state.as_str(),
            iso20022_status: iso20022::status_code(t.state),
            id: t.id,
            reason: t.reason,
            window_id: t.window_id,
            quote: t.quote.into(),
            created_at_ms: t.created_at_ms,
            updated_at_ms: t.updated_at_ms,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct QuoteRequest {
    /// The payer's account in the calling network.
    payer_account: String,
    /// The merchant's EMVCo QR payload, as scanned.
    qr: String,
    /// For a static code: the amount in the code's currency, major units.
    amount: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/hub/quotes",
    tag = "hub",
    summary = "Quote a payment to a merchant's QR code",
    description = "The calling network's payer pays the merchant a QR code names, in another member network. The quote fixes what the payer pays (fee included) for what the merchant receives, until `expires_at_ms`.",
    request_body = QuoteRequest,
    responses(
        (status = 201, description = "The quote.", body = QuoteView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`network_unknown_account`: no such payer or merchant.", body = ErrorResponse),
        (status = 409, description = "`network_closed`: a network is closed at this hour.", body = ErrorResponse),
        (status = 422, description = "A `qr_*` code for a bad payload, `hub_no_member_network`, `hub_bad_amount`, `network_limit`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn quote(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            let request: QuoteRequest = parse_json(&body)?;
            let scanned = Scanned {
                qr: request.qr,
                amount: request.amount,
            };
            quote_for(&s, (&network, &request.payer_account), scanned).await
        }
        .await,
    )
}

async fn quote_for(
    s: &AppState,
    (network, payer_account): (&str, &str),
    scanned: Scanned,
) -> Result<(StatusCode, QuoteView), Failure> {
    let quote = s
        .hub
        .quote_qr(
            network,
            payer_account,
            &scanned.qr,
            scanned.amount.as_deref(),
            s.now_ms(),
        )
        .await
        .map_err(failure)?;
    Ok((StatusCode::CREATED, QuoteView::from(quote)))
}

/// Pays `quote_id` for `requester` if `owns` says the quote is theirs.
async fn pay_for(
    s: &AppState,
    headers: &HeaderMap,
    requester: &str,
    body: Body,
    owns: impl Fn(&Quote) -> bool,
) -> Result<(StatusCode, TransferView), Failure> {
    let key = idempotency_key(headers);
    check_idempotency_key(key)?;
    let body = json_body(headers, body, false)?;
    let request: TransferRequest = parse_json(&body)?;
    let quote = s
        .hub
        .quote_by_id(&request.quote_id)
        .await
        .map_err(failure)?;
    if !owns(&quote) {
        return Err(failure(HubError::UnknownQuote));
    }
    let t = s
        .hub
        .pay(requester, key, &quote.id, s.now_ms())
        .await
        .map_err(failure)?;
    Ok((StatusCode::CREATED, TransferView::from(t)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferRequest {
    quote_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/hub/transfers",
    tag = "hub",
    summary = "Pay a quote",
    description = "Runs the transfer in two phases across both networks: the payer's money held, the merchant paid, the hold taken; a failure on either side reverses both (`state: reversed`, `reason` names the failure). The same Idempotency-Key with the same quote answers the same transfer; a quote pays once.",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new payment, resent unchanged on a retry.")),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "The transfer: `committed`, `reversed` with its reason, or still `pending` or `payer_commit_pending` (ask again with GET).", body = TransferView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_quote`.", body = ErrorResponse),
        (status = 409, description = "`hub_quote_used` or `idempotency_key_reused`.", body = ErrorResponse),
        (status = 410, description = "`hub_quote_expired`: ask for a new quote.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn pay(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            pay_for(&s, &headers, &network, body, |q| q.payer_network == network).await
        }
        .await,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Scanned {
    /// The merchant's EMVCo QR payload, as scanned.
    qr: String,
    /// For a static code: the amount in the code's currency, major units.
    amount: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/users/me/hub/quotes",
    tag = "users",
    summary = "Quote paying a foreign merchant's QR code with my card",
    description = "The caller pays a merchant of another member network from the card on file, in the won facepay settles in. The quote fixes what the card pays (fee included) for what the merchant receives, until `expires_at_ms`.",
    request_body = Scanned,
    responses(
        (status = 201, description = "The quote.", body = QuoteView),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 404, description = "`network_unknown_account`: no such merchant.", body = ErrorResponse),
        (status = 422, description = "A `qr_*` code, `hub_no_member_network`, `hub_bad_amount`, `network_limit`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn my_quote(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let user = s.services.identity.user_by_token(bearer(&headers)?).await?;
            let body = json_body(&headers, body, false)?;
            let scanned: Scanned = parse_json(&body)?;
            quote_for(&s, (FACEPAY_MEMBER_ID, &user.id), scanned).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/users/me/hub/transfers",
    tag = "users",
    summary = "Pay my quote",
    description = "Authorises the caller's card for the quote, pays the merchant through its network, then captures; a decline or a failure on either side reverses both (`state: reversed`, `reason`). The same Idempotency-Key with the same quote answers the same transfer.",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new payment, resent unchanged on a retry.")),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "The transfer: `committed`, or `reversed` with its reason.", body = TransferView),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_quote`: no such quote of the caller's.", body = ErrorResponse),
        (status = 409, description = "`hub_quote_used` or `idempotency_key_reused`.", body = ErrorResponse),
        (status = 410, description = "`hub_quote_expired`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn my_pay(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let user = s.services.identity.user_by_token(bearer(&headers)?).await?;
            let requester = format!("user:{}", user.id);
            pay_for(&s, &headers, &requester, body, |q| {
                q.payer_network == FACEPAY_MEMBER_ID && q.payer_account == user.id
            })
            .await
        }
        .await,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferQuery {
    /// `json` (the default), `pacs.008` or `pacs.002`.
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/hub/transfers/{id}",
    tag = "hub",
    summary = "A transfer, as JSON or as ISO 20022",
    description = "For the payer's or the payee's network. `format=pacs.008` gives the credit transfer, `format=pacs.002` its status report, as XML.",
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "`json`, `pacs.008` or `pacs.002`.")),
    responses(
        (status = 200, description = "The transfer.", body = TransferView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
        (status = 422, description = "`format_unknown`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn get_transfer(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TransferQuery>,
) -> Response {
    let found = async {
        let network = member(&s, &headers).await?;
        let t = s.hub.transfer(&id).await.map_err(failure)?;
        if t.quote.payer_network != network && t.quote.payee_network != network {
            return Err(failure(HubError::UnknownTransfer));
        }
        Ok(t)
    }
    .await;
    let t = match found {
        Ok(t) => t,
        Err(f) => return failure_response(&f),
    };
    let xml = match query.format.as_deref() {
        None | Some("json") => return answer(Ok((StatusCode::OK, TransferView::from(t)))),
        Some("pacs.008") => iso20022::pacs008(&t),
        Some("pacs.002") => iso20022::pacs002(&t),
        Some(_) => {
            return failure_response(&Failure::unprocessable(
                "format_unknown",
                "format is json, pacs.008 or pacs.002",
            ));
        }
    };
    let mut response = (StatusCode::OK, xml).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CashCodeRequest {
    payer_account: String,
    /// The network whose ATMs will pay the cash.
    atm_network: String,
    /// The cash, in the ATM network's minor units.
    amount_minor: i64,
}

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
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_network` or `network_unknown_account`.", body = ErrorResponse),
        (status = 422, description = "`network_limit`, `network_decimals`, `fx_no_rate`, ...", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn cash_code(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            let request: CashCodeRequest = parse_json(&body)?;
            let cash = s
                .hub
                .issue_cash_code(
                    (&network, &request.payer_account),
                    &request.atm_network,
                    request.amount_minor,
                    s.now_ms(),
                )
                .await
                .map_err(failure)?;
            Ok((
                StatusCode::CREATED,
                CashCodeView {
                    code: cash.code,
                    quote: cash.quote.into(),
                },
            ))
        }
        .await,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WithdrawalRequest {
    code: String,
    amount_minor: i64,
}

#[utoipa::path(
    post,
    path = "/v1/hub/withdrawals",
    tag = "hub",
    summary = "An ATM presents a cash code",
    description = "Uses the code once and holds the money on both sides. Dispense only on `state: reserved`, then confirm. A withdrawal not confirmed within two minutes is reversed.",
    request_body = WithdrawalRequest,
    responses(
        (status = 201, description = "The withdrawal: `reserved`, or `reversed` with its reason.", body = TransferView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`atm_code_unknown`.", body = ErrorResponse),
        (status = 409, description = "`atm_code_used`.", body = ErrorResponse),
        (status = 410, description = "`atm_code_expired`.", body = ErrorResponse),
        (status = 422, description = "`atm_code_mismatch`: another network or amount.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn withdraw(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            let request: WithdrawalRequest = parse_json(&body)?;
            let t = s
                .hub
                .withdraw_cash(&network, &request.code, request.amount_minor, s.now_ms())
                .await
                .map_err(failure)?;
            Ok((StatusCode::CREATED, TransferView::from(t)))
        }
        .await,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// Whether the cash came out.
    dispensed: bool,
}

#[utoipa::path(
    post,
    path = "/v1/hub/withdrawals/{id}/confirm",
    tag = "hub",
    summary = "The ATM says whether it dispensed",
    description = "Dispensed: the withdrawal commits on both sides. Not dispensed: it reverses on both.",
    params(("id" = String, Path)),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "The withdrawal, `committed` or `reversed`.", body = TransferView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
        (status = 409, description = "`hub_transfer_not_reserved`: confirmed or reversed already.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn confirm(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            let request: ConfirmRequest = parse_json(&body)?;
            let t = s
                .hub
                .confirm_cash(&network, &id, request.dispensed, s.now_ms())
                .await
                .map_err(failure)?;
            Ok((StatusCode::OK, TransferView::from(t)))
        }
        .await,
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    id: String,
    /// `open`, `closed` or `settled`.
    state: String,
    transfer_count: i64,
    opened_at_ms: i64,
    closed_at_ms: Option<i64>,
    settled_at_ms: Option<i64>,
}

impl From<Window> for WindowView {
    fn from(w: Window) -> Self {
        Self {
            id: w.id,
            state: w.state,
            transfer_count: w.transfer_count,
            opened_at_ms: w.opened_at_ms,
            closed_at_ms: w.closed_at_ms,
            settled_at_ms: w.settled_at_ms,
        }
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

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        Self {
            window: r.window.into(),
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
            transfers: r.transfers.into_iter().map(TransferView::from).collect(),
        }
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
        (status = 401, description = "`operator_key_invalid`.", body = ErrorResponse),
        (status = 409, description = "`hub_no_open_window`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn close_window(State(s): Shared, headers: HeaderMap) -> Response {
    answer(
        async {
            operator(&s, &headers).await?;
            let window = s.hub.close_window(s.now_ms()).await.map_err(failure)?;
            Ok((StatusCode::OK, WindowView::from(window)))
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/hub/windows/{id}",
    tag = "hub",
    summary = "A closed window's report",
    description = "Net positions per participant and currency (each currency sums to zero), the payers' cost next to a card's, and the window's transfers.",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The report.", body = ReportView),
        (status = 401, description = "`operator_key_invalid`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`: no such window, or still open.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn report(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    answer(
        async {
            operator(&s, &headers).await?;
            let report = s.hub.report(&id, None).await.map_err(failure)?;
            Ok((StatusCode::OK, ReportView::from(report)))
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/hub/windows/{id}/settle",
    tag = "hub",
    summary = "Mark a closed window settled",
    description = "Once the settlement bank has moved every net position.",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Settled."),
        (status = 401, description = "`operator_key_invalid`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn settle_window(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let settled = async {
        operator(&s, &headers).await?;
        s.hub.settle_window(&id, s.now_ms()).await.map_err(failure)
    }
    .await;
    match settled {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => failure_response(&f),
    }
}

#[utoipa::path(
    get,
    path = "/v1/hub/windows/{id}/mine",
    tag = "hub",
    summary = "My network's part of a closed window",
    description = "The calling network's net positions in the window (what it pays or is paid at settlement), the transfers it took part in, and their cost next to a card's.",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The member's report.", body = ReportView),
        (status = 401, description = "`hub_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "`hub_unknown_window`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn my_report(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    answer(
        async {
            let network = member(&s, &headers).await?;
            let report = s.hub.report(&id, Some(&network)).await.map_err(failure)?;
            Ok((StatusCode::OK, ReportView::from(report)))
        }
        .await,
    )
}
