//! Payments at a till, signed by the terminal.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::api::{PayRequest, PaymentFailure, PaymentView, StepUpRequest};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiPath, BodyKind, Command, ErrorResponse, IdempotencyKey, SignedTerminal, answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(pay))
        .routes(routes!(step_up))
}

impl Command for PayRequest {
    const BODY: BodyKind = BodyKind::PaymentBurst;
}

impl Command for StepUpRequest {}

#[utoipa::path(
    post,
    path = "/v1/terminal/payments",
    tag = "terminal",
    summary = "Pay by face",
    description = "Identifies the payer from the burst and authorises (and, for automatic capture, captures) the amount on their card. A weak or ambiguous match answers 202 with state `requires_step_up`: confirm with the step-up endpoint.",
    params(IdempotencyKey),
    request_body = PayRequest,
    responses(
        (status = 201, description = "Approved: state `captured`, or `authorised` for manual capture, with a receipt.", body = PaymentView),
        (status = 200, description = "The payment that an earlier request with this key committed but could not answer.", body = PaymentView),
        (status = 202, description = "State `requires_step_up`: the payer must confirm; `step_up` says how.", body = PaymentView),
        (status = 400, description = "`frame_not_base64`, or a missing or invalid Idempotency-Key, or a body that is not the expected JSON.", body = ErrorResponse),
        (status = 401, description = "`unknown_terminal`, or the signature is missing, expired, replayed (`nonce_reused`) or does not verify.", body = ErrorResponse),
        (status = 402, description = "Declined by the issuer, `card_needs_verification` (the card on file was never verified with its security code: its holder adds it again; nothing was sent to the issuer), or `risk_declined` by the fraud checks.", body = PaymentFailure),
        (status = 403, description = "`terminal_suspended` or `merchant_suspended`.", body = ErrorResponse),
        (status = 409, description = "`idempotency_key_reused` (same key, other body) or `idempotency_in_progress`.", body = ErrorResponse),
        (status = 413, description = "The body, or a frame, is over its limit.", body = ErrorResponse),
        (status = 422, description = "Bad amount or currency, unusable frames, not live, or `face_not_recognised`.", body = ErrorResponse),
        (status = 429, description = "`terminal_throttled`: too many refused attempts at this terminal lately.", body = ErrorResponse),
        (status = 502, description = "Failed: the issuer refused the request.", body = PaymentFailure),
        (status = 504, description = "Failed: the issuer did not answer in time.", body = PaymentFailure),
    ),
    security(("terminal_id" = [], "terminal_timestamp" = [], "terminal_nonce" = [], "terminal_signature" = [])),
)]
pub async fn pay(
    State(s): State<Shared>,
    key: IdempotencyKey,
    signed: SignedTerminal<PayRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .payments
        .pay(&signed.terminal, &key.0, &signed.body.bytes)
        .await?;
    Ok(answer(reply))
}

/// The payment a step-up confirms.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PaymentPath {
    /// The payment id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

#[utoipa::path(
    post,
    path = "/v1/terminal/payments/{id}/step-up",
    tag = "terminal",
    summary = "Confirm a payer",
    description = "Confirms the payer of a `requires_step_up` payment with one of the factors `step_up.methods` lists (phone digits, the whole phone number, the PIN, or a tap of the IC card answering `step_up.card_challenge`), then settles it like a payment.",
    params(PaymentPath, IdempotencyKey),
    request_body = StepUpRequest,
    responses(
        (status = 201, description = "Confirmed and approved.", body = PaymentView),
        (status = 401, description = "`unknown_terminal`, or the signature is missing, expired, replayed (`nonce_reused`) or does not verify.", body = ErrorResponse),
        (status = 402, description = "Declined by the issuer, or `step_up_failed`: no attempts left.", body = PaymentFailure),
        (status = 403, description = "`terminal_suspended` or `merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "`payment_not_awaiting_step_up`; `step_up_method_not_accepted`: the payment asks for another factor (see `step_up.methods`); `payment_busy`: another request is changing the payment, retry with the same key; or an idempotency conflict.", body = ErrorResponse),
        (status = 400, description = "`step_up_invalid`: not exactly one factor in its shape; or a missing or invalid Idempotency-Key, or a body that is not the expected JSON.", body = ErrorResponse),
        (status = 422, description = "`step_up_mismatch`: the factor did not confirm the payer; `payment.step_up` has the attempts left.", body = PaymentFailure),
        (status = 423, description = "`factor_locked`: too many wrong answers of this factor lately; use another.", body = ErrorResponse),
        (status = 502, description = "Failed: the issuer refused the request.", body = PaymentFailure),
        (status = 504, description = "Failed: the issuer did not answer in time.", body = PaymentFailure),
    ),
    security(("terminal_id" = [], "terminal_timestamp" = [], "terminal_nonce" = [], "terminal_signature" = [])),
)]
pub async fn step_up(
    State(s): State<Shared>,
    ApiPath(path): ApiPath<PaymentPath>,
    key: IdempotencyKey,
    signed: SignedTerminal<StepUpRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .payments
        .step_up(&signed.terminal, &path.id, &key.0, &signed.body.bytes)
        .await?;
    Ok(answer(reply))
}
