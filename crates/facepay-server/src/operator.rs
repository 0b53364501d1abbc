//! Fraud claims over HTTP: the user's side (open a claim, list mine, enrol
//! a face again after a suspension) and the operator's (claims, the review
//! queue, flagged terminals, the blocklist), with an operator key.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use facepay_payments::Failure;
use facepay_payments::api::{FaceRequest, PaymentView};
use facepay_payments::claims::{
    BlockRequest, ClaimDecision, ClaimList, ClaimRequest, ClaimView, Operator,
};
use serde::Deserialize;

use super::AppState;
use super::api::{Body, bearer, idempotency_key, json_body, respond};
use super::openapi::ErrorResponse;

type Shared = State<Arc<AppState>>;

async fn operator(s: &AppState, headers: &HeaderMap) -> Result<Operator, Failure> {
    s.services
        .claims
        .authenticate_operator(bearer(headers)?)
        .await
}

#[utoipa::path(
    put,
    path = "/v1/users/me/face",
    tag = "users",
    summary = "Enrol the caller's face again",
    description = "For an account without a face: deleted by the user, or suspended after an accepted fraud claim (this lifts the claim's block on the account). The same quality, liveness and one-face-one-account checks as enrolment.",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry.")),
    request_body = FaceRequest,
    responses(
        (status = 201, description = "The face is enrolled."),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 409, description = "`face_already_enrolled`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "Unusable frames or not live; `code` says which.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn enrol_my_face(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            let token = bearer(&headers)?;
            s.services
                .identity
                .enrol_my_face(token, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/users/me/claims",
    tag = "users",
    summary = "Dispute a payment",
    description = "\"That was not me\": opens a fraud claim on one of the caller's payments that took money (authorised or captured).",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry.")),
    request_body = ClaimRequest,
    responses(
        (status = 201, description = "The claim, `opened`.", body = ClaimView),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such payment of the caller's.", body = ErrorResponse),
        (status = 409, description = "`claim_exists`, `payment_not_claimable`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`text_invalid`: the reason is empty or too long.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn open_claim(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            let token = bearer(&headers)?;
            s.services
                .claims
                .open_claim(token, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/users/me/claims",
    tag = "users",
    summary = "The caller's claims",
    responses(
        (status = 200, description = "Oldest first.", body = ClaimList),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn my_claims(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.services.claims.my_claims(bearer(&headers)?).await }.await)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClaimsQuery {
    /// `opened`, `under_review`, `accepted` or `rejected`.
    state: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/operator/claims",
    tag = "operator",
    summary = "Fraud claims",
    params(ClaimsQuery),
    responses(
        (status = 200, description = "Oldest first.", body = ClaimList),
        (status = 400, description = "`state_invalid` or `query_invalid`.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_claims(
    State(s): Shared,
    headers: HeaderMap,
    query: Result<Query<ClaimsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            let Query(query) =
                query.map_err(|e| Failure::bad_request("query_invalid", e.body_text()))?;
            s.services
                .claims
                .list_claims(&op, query.state.as_deref())
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/operator/claims/{id}",
    tag = "operator",
    summary = "Review, accept or reject a claim",
    description = "Accepting pays the user back at once from the platform's compensation account (or releases an uncaptured hold), suspends their face until they enrol it again, and blocks the account meanwhile; a terminal with two accepted claims in 30 days is blocked for a week.",
    params(
        ("id" = String, Path, description = "The claim id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry."),
    ),
    request_body = ClaimDecision,
    responses(
        (status = 200, description = "The claim after the decision.", body = ClaimView),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such claim.", body = ErrorResponse),
        (status = 409, description = "`claim_state`: not a move the claim can make; or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`action_invalid` or `text_invalid`.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the refund or the void.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn decide_claim(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            s.services
                .claims
                .decide_claim(&op, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/operator/claims/{id}/recover",
    tag = "operator",
    summary = "Recover a compensation from the merchant",
    params(
        ("id" = String, Path, description = "The claim id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry."),
    ),
    responses(
        (status = 200, description = "The claim, fully recovered.", body = ClaimView),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such claim.", body = ErrorResponse),
        (status = 409, description = "`nothing_to_recover`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn recover_claim(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services
                .claims
                .recover_claim(&op, &id, idempotency_key(&headers))
                .await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/operator/reviews",
    tag = "operator",
    summary = "The review queue",
    description = "Payments the risk engine sent to review: authorised, their capture held until released or cancelled.",
    responses(
        (status = 200, description = "Oldest first: `{payments: [...]}` with the score and the rules that fired."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn review_queue(State(s): Shared, headers: HeaderMap) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services.claims.review_queue(&op).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/operator/reviews/{id}/{action}",
    tag = "operator",
    summary = "Release or cancel a held payment",
    params(
        ("id" = String, Path, description = "The payment id."),
        ("action" = String, Path, description = "`release` (capture it) or `cancel` (void it)."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry."),
    ),
    responses(
        (status = 200, description = "Captured or voided.", body = PaymentView),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "No payment held for review by that id, or no such action.", body = ErrorResponse),
        (status = 409, description = "`payment_not_authorised`: already released or cancelled.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn settle_review(
    State(s): Shared,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            let release = match action.as_str() {
                "release" => true,
                "cancel" => false,
                _ => return Err(Failure::not_found("action")),
            };
            s.services
                .claims
                .settle_review(&op, &id, release, idempotency_key(&headers))
                .await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/operator/terminals/flagged",
    tag = "operator",
    summary = "Terminals flagged for too many refused attempts",
    responses(
        (status = 200, description = "`{terminals: [...]}`, first flagged first."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn flagged_terminals(State(s): Shared, headers: HeaderMap) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services.claims.flagged_terminals(&op).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/operator/terminals/{id}/clear-flag",
    tag = "operator",
    summary = "Clear a terminal's flag",
    description = "Once an operator has looked at it; a new burst of refused attempts flags it again.",
    params(("id" = String, Path, description = "The terminal id.")),
    responses(
        (status = 200, description = "Cleared."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "The terminal is not flagged.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn clear_terminal_flag(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services.claims.clear_terminal_flag(&op, &id).await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/operator/blocks",
    tag = "operator",
    summary = "The run-time blocklist",
    description = "Entries added by accepted claims and by operators, on top of the rules file's lists.",
    responses(
        (status = 200, description = "`{blocks: [...]}`, live entries only."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_blocks(State(s): Shared, headers: HeaderMap) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services.claims.list_blocks(&op).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/operator/blocks",
    tag = "operator",
    summary = "Block a user, card, terminal, merchant or country",
    request_body = BlockRequest,
    responses(
        (status = 201, description = "The entry, added or renewed."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 422, description = "`block_kind_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn add_block(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            s.services.claims.add_block(&op, &body).await
        }
        .await,
    )
}

#[utoipa::path(
    delete,
    path = "/v1/operator/blocks/{kind}/{value}",
    tag = "operator",
    summary = "Remove a block",
    params(
        ("kind" = String, Path, description = "`user`, `card`, `terminal`, `merchant` or `country`."),
        ("value" = String, Path, description = "The blocked id, fingerprint or country code."),
    ),
    responses(
        (status = 200, description = "Removed."),
        (status = 401, description = "`authorization_missing` or `operator_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such entry.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn remove_block(
    State(s): Shared,
    Path((kind, value)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let op = operator(&s, &headers).await?;
            s.services.claims.remove_block(&op, &kind, &value).await
        }
        .await,
    )
}
