//! Loyalty: the merchant's programs and coupons, and how a user pays with
//! their own coupons and points.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::api::{
    ChoiceView, CouponView, LoyaltyItem, LoyaltyStatus, LoyaltyStatusView, ProgramView,
};
use facepay_payments::loyalty::{ChoiceRequest, CouponRequest, LoyaltyView, ProgramRequest};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, ApiPath, Command, ErrorResponse, IdempotencyKey, MerchantKey, UserToken,
    answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(view))
        .routes(routes!(create_program))
        .routes(routes!(create_coupon))
        .routes(routes!(set_status))
        .routes(routes!(choose))
}

impl Command for ProgramRequest {}

impl Command for CouponRequest {}

impl Command for ChoiceRequest {}

#[utoipa::path(
    get,
    path = "/v1/merchant/loyalty",
    tag = "merchant",
    summary = "Loyalty programs, coupons and points",
    description = "The merchant's points programs and stamp cards, its coupons with their uses, and its points issued, redeemed and outstanding (a liability in its own unit).",
    responses(
        (status = 200, description = "The merchant's loyalty.", body = LoyaltyView),
    ),
    security(("merchant_key" = [])),
)]
pub async fn view(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.loyalty.loyalty(&m).await?))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/programs",
    tag = "merchant",
    summary = "Create a points program or a stamp card",
    description = "Points: a share of each captured amount (basis points, rounded down, capped per payment), credited in the capture's transaction and taken back in proportion by refunds. Stamps: one per captured payment; every Nth grants the reward coupon.",
    params(IdempotencyKey),
    request_body = ProgramRequest,
    responses(
        (status = 201, description = "The program.", body = ProgramView),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`loyalty_invalid`: the reward is not one of this merchant's granted-only coupons, or the merchant has as many programs as it may.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create_program(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    key: IdempotencyKey,
    body: ApiJson<ProgramRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services
            .loyalty
            .create_program(&m, &key.0, &body.bytes)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/coupons",
    tag = "merchant",
    summary = "Create a coupon",
    description = "Fixed or percentage discount, minimum spend, validity window, uses per user and in all, stackable or not; granted-only coupons go to the users a stamp card rewards.",
    params(IdempotencyKey),
    request_body = CouponRequest,
    responses(
        (status = 201, description = "The coupon.", body = CouponView),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`loyalty_invalid`: `valid_from_ms` is not before `valid_until_ms`, or the merchant has as many coupons as it may.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create_coupon(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    key: IdempotencyKey,
    body: ApiJson<CouponRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services
            .loyalty
            .create_coupon(&m, &key.0, &body.bytes)
            .await?,
    ))
}

/// A program or a coupon of the caller's, and what to do with it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StatusPath {
    #[param(inline)]
    what: LoyaltyItem,
    /// Its id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
    #[param(inline)]
    action: LoyaltyStatus,
}

#[utoipa::path(
    post,
    path = "/v1/merchant/loyalty/{what}/{id}/{action}",
    tag = "merchant",
    summary = "Pause or resume a program or a coupon",
    params(StatusPath),
    responses(
        (status = 200, description = "Its new status.", body = LoyaltyStatusView),
        (status = 404, description = "No such program or coupon of this merchant's.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn set_status(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<StatusPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .loyalty
        .set_loyalty_status(&m, path.what.as_str(), &path.id, path.action.as_str())
        .await?;
    Ok(answer(reply))
}

/// A merchant the caller pays at.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MerchantPath {
    /// The merchant.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    merchant_id: String,
}

#[utoipa::path(
    put,
    path = "/v1/users/me/loyalty/{merchant_id}",
    tag = "users",
    summary = "Choose how to pay at a merchant",
    description = "A coupon of the merchant's to use first when it applies (otherwise the best one applies by itself), and whether the caller's points there pay what they can of each payment (one point, one minor unit). Coupons and points leave at least one minor unit for the card. A card-tap step-up charges the whole amount.",
    params(MerchantPath),
    request_body = ChoiceRequest,
    responses(
        (status = 200, description = "The choice, as stored.", body = ChoiceView),
        (status = 404, description = "No such merchant.", body = ErrorResponse),
        (status = 422, description = "`coupon_unknown`: not one of this merchant's coupons.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn choose(
    State(s): State<Shared>,
    user: UserToken,
    ApiPath(path): ApiPath<MerchantPath>,
    body: ApiJson<ChoiceRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .loyalty
        .choose_loyalty(&user.token, &path.merchant_id, &body.bytes)
        .await?;
    Ok(answer(reply))
}
