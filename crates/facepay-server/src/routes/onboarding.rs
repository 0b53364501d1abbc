//! Onboarding, with an admin operator's key: merchants (create, suspend,
//! reactivate, close), stores and terminals (create, re-pair, retire),
//! and the terminal's own side: pairing with its one-time code.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::onboarding::views::{
    MerchantAction, MerchantDetail, MerchantList, MerchantRequest, MerchantView, OnboardedTerminal,
    PairRequest, Paired, PairingView, RePairRequest, StoreDetailView, StoreRequest,
    TerminalRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use super::operator::TerminalPath;
use crate::edge::{
    ApiError, ApiJson, ApiPath, ApiQuery, Command, ErrorResponse, IdempotencyKey, OperatorKey,
    answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_merchants, create_merchant))
        .routes(routes!(merchant_detail))
        .routes(routes!(merchant_action))
        .routes(routes!(create_store))
        .routes(routes!(create_terminal))
        .routes(routes!(re_pair_terminal))
        .routes(routes!(retire_terminal))
        .routes(routes!(pair))
}

impl Command for MerchantRequest {}

impl Command for StoreRequest {}

impl Command for TerminalRequest {}

impl Command for PairRequest {}

impl Command for RePairRequest {
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

#[utoipa::path(
    post,
    path = "/v1/operator/merchants",
    tag = "onboarding",
    summary = "Onboard a merchant",
    description = "A merchant with its legal name, fee plan (basis points of every captured amount) and settlement currency, active at once. It takes payments once it has a store and a paired terminal, and calls the API with a key an operator makes for it (`POST /v1/operator/merchants/{id}/keys`).",
    params(IdempotencyKey),
    request_body = MerchantRequest,
    responses(
        (status = 201, description = "Created.", body = MerchantView),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`unknown_currency`, `fee_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_merchant(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    key: IdempotencyKey,
    body: ApiJson<MerchantRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .create_merchant(&op, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MerchantsQuery {
    /// The `next_after` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{0,128}$")]
    after: Option<String>,
    /// Merchants per page, 1 to 200; 50 if absent.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/operator/merchants",
    tag = "onboarding",
    summary = "Merchants",
    description = "In id order, a page at a time.",
    params(MerchantsQuery),
    responses(
        (status = 200, description = "A page of merchants.", body = MerchantList),
        (status = 422, description = "`limit_invalid` or `cursor_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_merchants(
    State(s): State<Shared>,
    OperatorKey(_): OperatorKey,
    ApiQuery(query): ApiQuery<MerchantsQuery>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .list_merchants(query.after.as_deref(), query.limit)
        .await?;
    Ok(answer(reply))
}

/// A merchant.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MerchantPath {
    /// The merchant id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub(crate) id: String,
}

#[utoipa::path(
    get,
    path = "/v1/operator/merchants/{id}",
    tag = "onboarding",
    summary = "A merchant with its stores and terminals",
    params(MerchantPath),
    responses(
        (status = 200, description = "The merchant.", body = MerchantDetail),
        (status = 404, description = "`unknown_merchant`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn merchant_detail(
    State(s): State<Shared>,
    OperatorKey(_): OperatorKey,
    ApiPath(path): ApiPath<MerchantPath>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.onboarding.merchant_detail(&path.id).await?,
    ))
}

/// A merchant and what to do to it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MerchantActionPath {
    /// The merchant id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
    #[param(inline)]
    action: MerchantAction,
}

#[utoipa::path(
    post,
    path = "/v1/operator/merchants/{id}/{action}",
    tag = "onboarding",
    summary = "Suspend, reactivate or close a merchant",
    description = "A suspended merchant's keys and terminals are refused (403 `merchant_suspended`) until it is reactivated; a closed merchant's for good (403 `merchant_closed`). Asking for the state a merchant is in changes nothing.",
    params(MerchantActionPath),
    responses(
        (status = 200, description = "The merchant after the action.", body = MerchantView),
        (status = 404, description = "`unknown_merchant`.", body = ErrorResponse),
        (status = 409, description = "`merchant_closed`: a closed merchant is neither suspended nor reopened.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn merchant_action(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<MerchantActionPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .merchant_action(&op, &path.id, path.action)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/stores",
    tag = "onboarding",
    summary = "Open a store",
    description = "A store of a merchant: its address, coordinates, IANA time zone (checked against the tz database), the currency its payments are in, and its opening hours.",
    params(IdempotencyKey),
    request_body = StoreRequest,
    responses(
        (status = 201, description = "Created.", body = StoreDetailView),
        (status = 404, description = "`unknown_merchant`.", body = ErrorResponse),
        (status = 409, description = "`merchant_closed`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`time_zone_invalid`, `unknown_currency`, `coordinates_invalid`, `country_invalid`, `opening_hours_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_store(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    key: IdempotencyKey,
    body: ApiJson<StoreRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .create_store(&op, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/terminals",
    tag = "onboarding",
    summary = "Add a terminal",
    description = "A terminal in a store, unpaired, with a one-time pairing code shown once: give it to whoever sets the terminal up, who pairs it (`POST /v1/terminals/pair`). The code expires after 10 minutes (or `pairing_code_ttl_s`); re-pair for a new one.",
    params(IdempotencyKey),
    request_body = TerminalRequest,
    responses(
        (status = 201, description = "Created, with its pairing code.", body = PairingView),
        (status = 404, description = "`unknown_store`.", body = ErrorResponse),
        (status = 409, description = "`terminal_name_taken`: the store has a terminal of this name; `merchant_closed`; or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`terminal_name_invalid` or `pairing_code_ttl_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_terminal(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    key: IdempotencyKey,
    body: ApiJson<TerminalRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .create_terminal(&op, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/terminals/{id}/re-pair",
    tag = "onboarding",
    summary = "Re-pair a terminal",
    description = "Retires the terminal's key at once (its requests are refused from now on) and issues a new pairing code, shown once. Safe to retry without an idempotency key: each call issues a code that replaces the last, as a replay of a key's creation does.",
    params(TerminalPath),
    request_body(content = Option<RePairRequest>, description = "Optional.", content_type = "application/json"),
    responses(
        (status = 200, description = "The terminal, unpaired, with its new code.", body = PairingView),
        (status = 404, description = "`unknown_terminal`.", body = ErrorResponse),
        (status = 409, description = "`terminal_retired`.", body = ErrorResponse),
        (status = 422, description = "`pairing_code_ttl_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn re_pair_terminal(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<TerminalPath>,
    body: ApiJson<RePairRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .onboarding
        .re_pair_terminal(&op, &path.id, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/terminals/{id}/retire",
    tag = "onboarding",
    summary = "Retire a terminal",
    description = "For good: its key and pairing code are dropped and its requests refused (403 `terminal_retired`). Retiring a retired terminal changes nothing.",
    params(TerminalPath),
    responses(
        (status = 200, description = "The terminal, retired.", body = OnboardedTerminal),
        (status = 404, description = "`unknown_terminal`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn retire_terminal(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<TerminalPath>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.onboarding.retire_terminal(&op, &path.id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/terminals/pair",
    tag = "terminal",
    summary = "Pair a terminal",
    description = "The terminal sends its id, the pairing code its operator gave, and the Ed25519 public key it just made (its private key never leaves it). From then on it signs its requests with that key. A code pairs once, for 10 minutes at most; 5 wrong codes kill a terminal's code, and all servers together take a bounded number of wrong codes a minute across all terminals.",
    request_body = PairRequest,
    responses(
        (status = 200, description = "Paired.", body = Paired),
        (status = 401, description = "`pairing_code_invalid`: no such terminal, no code, or not its code.", body = ErrorResponse),
        (status = 409, description = "`pairing_code_used`: the code paired once already; `terminal_retired`.", body = ErrorResponse),
        (status = 410, description = "`pairing_code_expired`.", body = ErrorResponse),
        (status = 422, description = "`public_key_invalid`: not a point of the curve.", body = ErrorResponse),
        (status = 429, description = "`pairing_throttled`: too many wrong codes for this terminal, or across all terminals this minute.", body = ErrorResponse),
    ),
)]
pub async fn pair(
    State(s): State<Shared>,
    body: ApiJson<PairRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.onboarding.pair(&body.bytes).await?))
}
