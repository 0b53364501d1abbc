//! Loyalty over HTTP: the merchant's programs and coupons, and how a user
//! pays with their own coupons and points.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use facepay_payments::loyalty::{ChoiceRequest, CouponRequest, LoyaltyView, ProgramRequest};

use super::AppState;
use super::api::{Body, bearer, idempotency_key, json_body, merchant, respond};
use super::openapi::ErrorResponse;

type Shared = State<Arc<AppState>>;

#[utoipa::path(
    get,
    path = "/v1/merchant/loyalty",
    tag = "merchant",
    summary = "Loyalty programs, coupons and points",
    description = "The merchant's points programs and stamp cards, its coupons with their uses, and its points issued, redeemed and outstanding (a liability in its own unit).",
    responses(
        (status = 200, description = "The merchant's loyalty.", body = LoyaltyView),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn view(State(s): Shared, headers: HeaderMap) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            s.services.loyalty.loyalty(&m).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/programs",
    tag = "merchant",
    summary = "Create a points program or a stamp card",
    description = "Points: a share of each captured amount (basis points, rounded down, capped per payment), credited in the capture's transaction and taken back in proportion by refunds. Stamps: one per captured payment; every Nth grants the reward coupon.",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry.")),
    request_body = ProgramRequest,
    responses(
        (status = 201, description = "The program."),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`loyalty_invalid`: what is wrong with it.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create_program(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            s.services
                .loyalty
                .create_program(&m, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/coupons",
    tag = "merchant",
    summary = "Create a coupon",
    description = "Fixed or percentage discount, minimum spend, validity window, uses per user and in all, stackable or not; granted-only coupons go to the users a stamp card rewards.",
    params(("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry.")),
    request_body = CouponRequest,
    responses(
        (status = 201, description = "The coupon."),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`loyalty_invalid`: what is wrong with it.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create_coupon(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let body = json_body(&headers, body, false)?;
            s.services
                .loyalty
                .create_coupon(&m, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/{what}/{id}/{action}",
    tag = "merchant",
    summary = "Pause or resume a program or a coupon",
    params(
        ("what" = String, Path, description = "`programs` or `coupons`."),
        ("id" = String, Path, description = "Its id."),
        ("action" = String, Path, description = "`pause` or `resume`."),
    ),
    responses(
        (status = 200, description = "Its new status."),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such program, coupon or action of this merchant's.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn set_status(
    State(s): Shared,
    Path((what, id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            s.services
                .loyalty
                .set_loyalty_status(&m, &what, &id, &action)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    put,
    path = "/v1/users/me/loyalty/{merchant_id}",
    tag = "users",
    summary = "Choose how to pay at a merchant",
    description = "A coupon of the merchant's to use first when it applies (otherwise the best one applies by itself), and whether the caller's points there pay what they can of each payment (one point, one minor unit). Coupons and points leave at least one minor unit for the card. A card-tap step-up charges the whole amount.",
    params(("merchant_id" = String, Path, description = "The merchant.")),
    request_body = ChoiceRequest,
    responses(
        (status = 200, description = "The choice, as stored."),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 404, description = "No such merchant.", body = ErrorResponse),
        (status = 422, description = "`coupon_unknown`: not one of this merchant's coupons.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn choose(
    State(s): Shared,
    Path(merchant_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let token = bearer(&headers)?;
            let body = json_body(&headers, body, false)?;
            s.services
                .loyalty
                .choose_loyalty(token, &merchant_id, &body)
                .await
        }
        .await,
    )
}
