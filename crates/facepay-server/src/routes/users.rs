//! The payer's own account: enrol, see and delete my data, enrol my face
//! again, dispute a payment.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::api::{
    EnrolRequest, EnrolResponse, FaceDeleted, FaceEnrolled, FaceRequest, UserDeleted, UserView,
};
use facepay_payments::claims::{ClaimList, ClaimRequest, ClaimView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, BodyKind, Command, EnrolmentTurn, ErrorResponse, IdempotencyKey, UserToken,
    answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(enrol))
        .routes(routes!(me, delete_me))
        .routes(routes!(delete_my_face, enrol_my_face))
        .routes(routes!(my_claims, open_claim))
}

impl Command for EnrolRequest {
    const BODY: BodyKind = BodyKind::Burst;
}

impl Command for FaceRequest {
    const BODY: BodyKind = BodyKind::Burst;
}

impl Command for ClaimRequest {}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    summary = "Enrol a face and a card",
    description = "Checks the selfie burst (quality and liveness) and the card, verifies the card once with its issuer by its security code (a zero-amount verification: nothing is charged, and the code is never stored), then stores the face template and the sealed card with the issuer's stored credential, which later payments use instead of the code. A card the issuer does not verify enrols nothing. The answer's token is shown once.",
    params(IdempotencyKey),
    request_body = EnrolRequest,
    responses(
        (status = 201, description = "Enrolled.", body = EnrolResponse),
        (status = 400, description = "`frame_not_base64`, or a missing or invalid Idempotency-Key, or a body that is not the expected JSON.", body = ErrorResponse),
        (status = 402, description = "The issuer declined the card's verification: `incorrect_security_code`, `expired_card`, `invalid_card` or `do_not_honour`. Nothing was enrolled.", body = ErrorResponse),
        (status = 409, description = "Idempotency conflict, or the phone number or the face is already enrolled.", body = ErrorResponse),
        (status = 413, description = "The body, or a frame, is over its limit.", body = ErrorResponse),
        (status = 422, description = "A frame, the face, liveness, the phone, the PIN or the card (number, expiry, a security code that is not 3 or 4 digits: `card_security_code_invalid`) was refused; `code` says which.", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: this client address sent more enrolments and photo analyses than the server takes from one address; nothing was read or done. Retry after `Retry-After` seconds.", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before the next try."))),
        (status = 502, description = "`card_verification_failed`: the issuer could not verify the card. Nothing was enrolled; try again later.", body = ErrorResponse),
        (status = 503, description = "`face_work_busy`: too many enrolments and analyses wait, retry shortly; or `vault_locked` or `vault_unavailable`: the card vault cannot take the card now.", body = ErrorResponse),
        (status = 504, description = "`issuer_timeout`: the issuer did not answer the card's verification. Nothing was enrolled; retry with the same Idempotency-Key.", body = ErrorResponse),
    ),
)]
pub async fn enrol(
    State(s): State<Shared>,
    _turn: EnrolmentTurn,
    key: IdempotencyKey,
    body: ApiJson<EnrolRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.identity.enrol(&key.0, &body.bytes).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/users/me",
    tag = "users",
    summary = "The caller's account",
    description = "The user's cards on file, most recent payments, points, stamps, coupons and choices.",
    responses(
        (status = 200, description = "The account.", body = UserView),
    ),
    security(("user_token" = [])),
)]
pub async fn me(State(s): State<Shared>, user: UserToken) -> Result<Response, ApiError> {
    Ok(answer(s.services.identity.me(&user.token).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/users/me",
    tag = "users",
    summary = "Delete the caller's account",
    description = "Erases the face template and the card data; the face stops paying at once. Past payments stay in the merchants' books, detached from any identity.",
    responses(
        (status = 200, description = "Deleted.", body = UserDeleted),
    ),
    security(("user_token" = [])),
)]
pub async fn delete_me(State(s): State<Shared>, user: UserToken) -> Result<Response, ApiError> {
    Ok(answer(s.services.identity.delete_me(&user.token).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/users/me/face",
    tag = "users",
    summary = "Delete the caller's face only",
    description = "Erases the face template (its data key first, so no copy of it opens again); the face stops paying at once. The account, its cards and its payments stay.",
    responses(
        (status = 200, description = "The face is deleted.", body = FaceDeleted),
        (status = 404, description = "`face_not_enrolled`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn delete_my_face(
    State(s): State<Shared>,
    user: UserToken,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.identity.delete_my_face(&user.token).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/v1/users/me/face",
    tag = "users",
    summary = "Enrol the caller's face again",
    description = "For an account without a face: deleted by the user, or suspended after an accepted fraud claim (this lifts the claim's block on the account). The same quality, liveness and one-face-one-account checks as enrolment.",
    params(IdempotencyKey),
    request_body = FaceRequest,
    responses(
        (status = 201, description = "The face is enrolled.", body = FaceEnrolled),
        (status = 400, description = "`frame_not_base64`, or a missing or invalid Idempotency-Key, or a body that is not the expected JSON.", body = ErrorResponse),
        (status = 409, description = "`face_already_enrolled`, or an idempotency conflict.", body = ErrorResponse),
        (status = 413, description = "The body, or a frame, is over its limit.", body = ErrorResponse),
        (status = 422, description = "Unusable frames or not live; `code` says which.", body = ErrorResponse),
        (status = 503, description = "`face_work_busy`: too many enrolments and analyses wait; retry shortly.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn enrol_my_face(
    State(s): State<Shared>,
    user: UserToken,
    key: IdempotencyKey,
    body: ApiJson<FaceRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .identity
        .enrol_my_face(&user.token, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/users/me/claims",
    tag = "users",
    summary = "Dispute a payment",
    description = "\"That was not me\": opens a fraud claim on one of the caller's payments that took money (authorised or captured).",
    params(IdempotencyKey),
    request_body = ClaimRequest,
    responses(
        (status = 201, description = "The claim, `opened`.", body = ClaimView),
        (status = 404, description = "No such payment of the caller's.", body = ErrorResponse),
        (status = 409, description = "`claim_exists`, `payment_not_claimable`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`text_invalid`: the reason is blank or too long.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn open_claim(
    State(s): State<Shared>,
    user: UserToken,
    key: IdempotencyKey,
    body: ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .claims
        .open_claim(&user.token, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    get,
    path = "/v1/users/me/claims",
    tag = "users",
    summary = "The caller's claims",
    responses(
        (status = 200, description = "Oldest first.", body = ClaimList),
    ),
    security(("user_token" = [])),
)]
pub async fn my_claims(State(s): State<Shared>, user: UserToken) -> Result<Response, ApiError> {
    Ok(answer(s.services.claims.my_claims(&user.token).await?))
}
