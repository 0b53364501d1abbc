//! The operator's side, with an operator key: fraud claims, the review
//! queue, flagged terminals and the run-time blocklist.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::api::{
    BlockKind, BlockList, BlockRemoved, BlockView, ClaimStateView, FlaggedTerminals, PaymentView,
    ReviewQueue, TerminalFlagCleared,
};
use facepay_payments::claims::{BlockRequest, ClaimDecision, ClaimList, ClaimView};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, ApiPath, ApiQuery, Command, ErrorResponse, IdempotencyKey, OperatorKey,
    answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_claims))
        .routes(routes!(decide_claim))
        .routes(routes!(recover_claim))
        .routes(routes!(review_queue))
        .routes(routes!(settle_review))
        .routes(routes!(flagged_terminals))
        .routes(routes!(clear_terminal_flag))
        .routes(routes!(list_blocks, add_block))
        .routes(routes!(remove_block))
}

impl Command for ClaimDecision {}

impl Command for BlockRequest {}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimsQuery {
    /// Only claims in this state; all when absent.
    #[param(inline)]
    state: Option<ClaimStateView>,
}

#[utoipa::path(
    get,
    path = "/v1/operator/claims",
    tag = "operator",
    summary = "Fraud claims",
    params(ClaimsQuery),
    responses(
        (status = 200, description = "Oldest first.", body = ClaimList),
        (status = 400, description = "`query_invalid`: an unknown parameter or state; `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_claims(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiQuery(query): ApiQuery<ClaimsQuery>,
) -> Result<Response, ApiError> {
    let state = query.state.map(ClaimStateView::as_str);
    Ok(answer(s.services.claims.list_claims(&op, state).await?))
}

/// A claim.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClaimPath {
    /// The claim id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

#[utoipa::path(
    post,
    path = "/v1/operator/claims/{id}",
    tag = "operator",
    summary = "Review, accept or reject a claim",
    description = "Accepting pays the user back at once from the platform's compensation account (or releases an uncaptured hold), suspends their face until they enrol it again, and blocks the account meanwhile; a terminal with two accepted claims in 30 days is blocked for a week.",
    params(ClaimPath, IdempotencyKey),
    request_body = ClaimDecision,
    responses(
        (status = 200, description = "The claim after the decision.", body = ClaimView),
        (status = 404, description = "No such claim.", body = ErrorResponse),
        (status = 409, description = "`claim_state`: not a move the claim can make; `payment_busy`: another request is changing the payment, retry with the same key; or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`text_invalid`: the note is blank or too long.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the refund or the void.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn decide_claim(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<ClaimPath>,
    key: IdempotencyKey,
    body: ApiJson<ClaimDecision>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .claims
        .decide_claim(&op, &path.id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/claims/{id}/recover",
    tag = "operator",
    summary = "Recover a compensation from the merchant",
    params(ClaimPath, IdempotencyKey),
    responses(
        (status = 200, description = "The claim, fully recovered.", body = ClaimView),
        (status = 404, description = "No such claim.", body = ErrorResponse),
        (status = 409, description = "`nothing_to_recover`, or an idempotency conflict.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn recover_claim(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<ClaimPath>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services
            .claims
            .recover_claim(&op, &path.id, &key.0)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/operator/reviews",
    tag = "operator",
    summary = "The review queue",
    description = "Payments the risk engine sent to review: authorised, their capture held until released or cancelled.",
    responses(
        (status = 200, description = "Oldest first, with the score and the rules that fired.", body = ReviewQueue),
    ),
    security(("operator_key" = [])),
)]
pub async fn review_queue(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.claims.review_queue(&op).await?))
}

/// What to do with a payment held for review.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    /// Capture it.
    Release,
    /// Void it.
    Cancel,
}

/// A payment held for review.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReviewPath {
    /// The payment id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
    #[param(inline)]
    action: ReviewAction,
}

#[utoipa::path(
    post,
    path = "/v1/operator/reviews/{id}/{action}",
    tag = "operator",
    summary = "Release or cancel a held payment",
    params(ReviewPath, IdempotencyKey),
    responses(
        (status = 200, description = "Captured or voided.", body = PaymentView),
        (status = 404, description = "No payment held for review by that id.", body = ErrorResponse),
        (status = 409, description = "`payment_not_authorised`: already released or cancelled; `payment_busy`: another request is changing the payment, retry with the same key; or an idempotency conflict.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the capture or the void.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn settle_review(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<ReviewPath>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    let release = matches!(path.action, ReviewAction::Release);
    let reply = s
        .services
        .claims
        .settle_review(&op, &path.id, release, &key.0)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    get,
    path = "/v1/operator/terminals/flagged",
    tag = "operator",
    summary = "Terminals flagged for too many refused attempts",
    responses(
        (status = 200, description = "First flagged first.", body = FlaggedTerminals),
    ),
    security(("operator_key" = [])),
)]
pub async fn flagged_terminals(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.claims.flagged_terminals(&op).await?))
}

/// A terminal.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TerminalPath {
    /// The terminal id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub(crate) id: String,
}

#[utoipa::path(
    post,
    path = "/v1/operator/terminals/{id}/clear-flag",
    tag = "operator",
    summary = "Clear a terminal's flag",
    description = "Once an operator has looked at it; a new burst of refused attempts flags it again.",
    params(TerminalPath),
    responses(
        (status = 200, description = "Cleared.", body = TerminalFlagCleared),
        (status = 404, description = "No such terminal.", body = ErrorResponse),
        (status = 409, description = "`terminal_not_flagged`: the terminal is not flagged.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn clear_terminal_flag(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<TerminalPath>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.claims.clear_terminal_flag(&op, &path.id).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/operator/blocks",
    tag = "operator",
    summary = "The run-time blocklist",
    description = "Entries added by accepted claims and by operators, on top of the rules file's lists; live entries only.",
    responses(
        (status = 200, description = "The entries.", body = BlockList),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_blocks(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.claims.list_blocks(&op).await?))
}

#[utoipa::path(
    post,
    path = "/v1/operator/blocks",
    tag = "operator",
    summary = "Block a user, card, terminal, merchant or country",
    request_body = BlockRequest,
    responses(
        (status = 201, description = "The entry, added or renewed.", body = BlockView),
        (status = 422, description = "`text_invalid`: the value or the reason is blank or too long.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn add_block(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    body: ApiJson<BlockRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.claims.add_block(&op, &body.bytes).await?))
}

/// A block entry.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BlockPath {
    #[param(inline)]
    kind: BlockKind,
    /// The blocked id, fingerprint or country code.
    #[param(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$", max_length = 1000)]
    value: String,
}

#[utoipa::path(
    delete,
    path = "/v1/operator/blocks/{kind}/{value}",
    tag = "operator",
    summary = "Remove a block",
    params(BlockPath),
    responses(
        (status = 200, description = "Removed.", body = BlockRemoved),
        (status = 404, description = "No such entry.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn remove_block(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<BlockPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .claims
        .remove_block(&op, path.kind, &path.value)
        .await?;
    Ok(answer(reply))
}
