//! The payments API over HTTP: extract headers and body, call the payments
//! service, turn its answer or failure into a response. No decisions here.
//!
//! Each handler carries its `utoipa::path` description, next to the code it
//! describes; `openapi.rs` gathers them into the served document.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facepay_payments::api::{
    AmountRequest, DailyReport, EnrolRequest, EnrolResponse, ErrorBody, FaceDeleted, PayRequest,
    PaymentDetail, PaymentFailure, PaymentPage, PaymentView, StepUpRequest, UserDeleted, UserView,
};
use facepay_payments::merchant::ListQuery;
use facepay_payments::signing::{
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, SignedHeaders,
};
use facepay_payments::{Failure, Reply};
use facepay_store::parties::Merchant;

use super::AppState;
use super::openapi::ErrorResponse;

type Shared = State<Arc<AppState>>;
pub(super) type Body = Result<Bytes, BytesRejection>;

pub fn respond(result: Result<Reply, Failure>) -> Response {
    match result {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            let mut response = (status, reply.body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(t) = reply.timings
                && let Ok(value) = HeaderValue::from_str(&server_timing(&t))
            {
                headers.insert("server-timing", value);
            }
            response
        }
        Err(failure) => failure_response(&failure),
    }
}

/// The W3C `Server-Timing` header: each stage's duration in milliseconds.
fn server_timing(t: &facepay_payments::api::PayTimings) -> String {
    let parts: Vec<String> = t
        .stages()
        .iter()
        .map(|(name, us)| format!("{name};dur={:.3}", *us as f64 / 1e3))
        .collect();
    parts.join(", ")
}

pub fn failure_response(f: &Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorResponse {
        error: ErrorBody {
            code: f.code,
            message: &f.message,
        },
    };
    (status, axum::Json(body)).into_response()
}

fn body_of(body: Body) -> Result<Bytes, Failure> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::new(
                413,
                "body_too_large",
                format!(
                    "the request body is over {} bytes",
                    super::JSON_BODY_BYTES_MAX
                ),
            )
        } else {
            Failure::bad_request("body_unreadable", rejection.body_text())
        }
    })
}

/// A JSON body, checked for its content type. An empty body is allowed where
/// `optional`, for commands whose every field has a default.
pub(super) fn json_body(headers: &HeaderMap, body: Body, optional: bool) -> Result<Bytes, Failure> {
    let body = body_of(body)?;
    if optional && body.is_empty() {
        return Ok(body);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence != "application/json" {
        return Err(Failure::new(
            415,
            "unsupported_media_type",
            format!("send JSON with Content-Type: application/json, not `{content_type}`"),
        ));
    }
    Ok(body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> &str {
    header(headers, "idempotency-key").unwrap_or("")
}

pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, Failure> {
    header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::unauthorised(
                "authorization_missing",
                "send Authorization: Bearer <token or API key>",
            )
        })
}

fn signed_headers(headers: &HeaderMap) -> Result<SignedHeaders, Failure> {
    let missing = || {
        Failure::unauthorised(
            "signature_missing",
            "terminal requests carry the x-facepay-terminal, -timestamp, -nonce and -signature headers",
        )
    };
    Ok(SignedHeaders {
        terminal_id: header(headers, HEADER_TERMINAL)
            .ok_or_else(missing)?
            .to_owned(),
        timestamp_ms: header(headers, HEADER_TIMESTAMP)
            .and_then(|t| t.parse().ok())
            .ok_or_else(missing)?,
        nonce: header(headers, HEADER_NONCE)
            .ok_or_else(missing)?
            .to_owned(),
        signature: header(headers, HEADER_SIGNATURE)
            .ok_or_else(missing)?
            .to_owned(),
    })
}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    summary = "Enrol a face and a card",
    description = "Checks the selfie burst (quality and liveness) and the card, then stores the face template and the sealed card. The answer's token is shown once.",
    params(
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    request_body = EnrolRequest,
    responses(
        (status = 201, description = "Enrolled.", body = EnrolResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 409, description = "Idempotency conflict, or the phone number is already enrolled.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 422, description = "A frame, the face, liveness, the phone, the PIN or the card was refused; `code` says which.", body = ErrorResponse),
    ),
)]
pub async fn enrol(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            s.services
                .identity
                .enrol(idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/users/me",
    tag = "users",
    summary = "The caller's account",
    description = "The user's cards on file and most recent payments.",
    responses(
        (status = 200, description = "The account.", body = UserView),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn me(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.services.identity.me(bearer(&headers)?).await }.await)
}

#[utoipa::path(
    delete,
    path = "/v1/users/me",
    tag = "users",
    summary = "Delete the caller's account",
    description = "Erases the face template and the card data; the face stops paying at once. Past payments stay in the merchants' books, detached from any identity.",
    responses(
        (status = 200, description = "Deleted.", body = UserDeleted),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn delete_me(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.services.identity.delete_me(bearer(&headers)?).await }.await)
}

#[utoipa::path(
    delete,
    path = "/v1/users/me/face",
    tag = "users",
    summary = "Delete the caller's face only",
    description = "Erases the face template (its data key first, so no copy of it opens again); the face stops paying at once. The account, its cards and its payments stay.",
    responses(
        (status = 200, description = "The face is deleted.", body = FaceDeleted),
        (status = 401, description = "`authorization_missing` or `token_invalid`.", body = ErrorResponse),
        (status = 404, description = "`face_not_enrolled`.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn delete_my_face(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.services.identity.delete_my_face(bearer(&headers)?).await }.await)
}

#[utoipa::path(
    post,
    path = "/v1/terminal/payments",
    tag = "terminal",
    summary = "Pay by face",
    description = "Identifies the payer from the burst and authorises (and, for automatic capture, captures) the amount on their card. A weak or ambiguous match answers 202 with state `requires_step_up`: confirm with the step-up endpoint.",
    params(
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    request_body = PayRequest,
    responses(
        (status = 201, description = "Approved: state `captured`, or `authorised` for manual capture, with a receipt.", body = PaymentView),
        (status = 200, description = "The payment that an earlier request with this key committed but could not answer.", body = PaymentView),
        (status = 202, description = "State `requires_step_up`: the payer must confirm; `step_up` says how.", body = PaymentView),
        (status = 402, description = "Declined by the issuer, or `risk_declined` by the fraud checks.", body = PaymentFailure),
        (status = 502, description = "Failed: the issuer refused the request.", body = PaymentFailure),
        (status = 504, description = "Failed: the issuer did not answer in time.", body = PaymentFailure),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 401, description = "`unknown_terminal`, or the signature is missing, expired, replayed (`nonce_reused`) or does not verify.", body = ErrorResponse),
        (status = 403, description = "`terminal_suspended` or `merchant_suspended`.", body = ErrorResponse),
        (status = 409, description = "`idempotency_key_reused` (same key, other body) or `idempotency_in_progress`.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 422, description = "Bad amount or currency, unusable frames, not live, or `face_not_recognised`.", body = ErrorResponse),
        (status = 429, description = "`terminal_throttled`: too many refused attempts at this terminal lately.", body = ErrorResponse),
    ),
    security(("terminal_id" = [], "terminal_timestamp" = [], "terminal_nonce" = [], "terminal_signature" = [])),
)]
pub async fn pay(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            let signed = signed_headers(&headers)?;
            let path = "/v1/terminal/payments";
            let ctx = s
                .services
                .payments
                .authenticate_terminal(&signed, "POST", path, &body)
                .await?;
            s.services
                .payments
                .pay(&ctx, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/terminal/payments/{id}/step-up",
    tag = "terminal",
    summary = "Confirm a payer",
    description = "Confirms the payer of a `requires_step_up` payment with one of the factors `step_up.methods` lists (phone digits, the whole phone number, the PIN, or a tap of the IC card answering `step_up.card_challenge`), then settles it like a payment.",
    params(
        ("id" = String, Path, description = "The payment id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    request_body = StepUpRequest,
    responses(
        (status = 201, description = "Confirmed and approved.", body = PaymentView),
        (status = 402, description = "Declined by the issuer, or `step_up_failed`: no attempts left.", body = PaymentFailure),
        (status = 422, description = "`step_up_mismatch`: the factor did not confirm the payer; `payment.step_up` has the attempts left. Also `step_up_invalid` (Error body) when the request has not exactly one valid factor.", body = PaymentFailure),
        (status = 502, description = "Failed: the issuer refused the request.", body = PaymentFailure),
        (status = 504, description = "Failed: the issuer did not answer in time.", body = PaymentFailure),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 401, description = "`unknown_terminal`, or the signature is missing, expired, replayed (`nonce_reused`) or does not verify.", body = ErrorResponse),
        (status = 403, description = "`terminal_suspended` or `merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "`payment_not_awaiting_step_up`, or an idempotency conflict.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 423, description = "`factor_locked`: too many wrong answers of this factor lately; use another.", body = ErrorResponse),
    ),
    security(("terminal_id" = [], "terminal_timestamp" = [], "terminal_nonce" = [], "terminal_signature" = [])),
)]
pub async fn step_up(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            let signed = signed_headers(&headers)?;
            let path = format!("/v1/terminal/payments/{id}/step-up");
            let ctx = s
                .services
                .payments
                .authenticate_terminal(&signed, "POST", &path, &body)
                .await?;
            s.services
                .payments
                .step_up(&ctx, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

pub(super) async fn merchant(s: &AppState, headers: &HeaderMap) -> Result<Merchant, Failure> {
    s.services
        .merchant
        .authenticate_merchant(bearer(headers)?)
        .await
}

#[utoipa::path(
    get,
    path = "/v1/merchant/payments",
    tag = "merchant",
    summary = "List payments",
    description = "The merchant's payments, newest first, a page at a time.",
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "A page of payments.", body = PaymentPage),
        (status = 400, description = "`query_invalid`: an unknown or malformed query parameter.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 422, description = "`limit_invalid`, `state_invalid` or `cursor_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn list_payments(
    State(s): Shared,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let Query(query) =
                query.map_err(|e| Failure::bad_request("query_invalid", e.body_text()))?;
            s.services.merchant.list_payments(&m, &query).await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/merchant/payments/{id}",
    tag = "merchant",
    summary = "One payment and its history",
    description = "The payment and every state change it went through.",
    params(
        ("id" = String, Path, description = "The payment id."),
    ),
    responses(
        (status = 200, description = "The payment.", body = PaymentDetail),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn get_payment(State(s): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            s.services.merchant.get_payment(&m, &id).await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/capture",
    tag = "merchant",
    summary = "Capture an authorisation",
    description = "Captures all or part of a manual-capture authorisation before its hold expires. The body may be empty: then everything authorised is captured.",
    params(
        ("id" = String, Path, description = "The payment id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    request_body(content = Option<AmountRequest>, description = "Optional; without `amount`, all that is authorised.", content_type = "application/json"),
    responses(
        (status = 200, description = "Captured.", body = PaymentView),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "The payment is not `authorised`, or an idempotency conflict.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 422, description = "Bad amount, or more than authorised.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the capture.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn capture(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let body = json_body(&headers, body, true)?;
            s.services
                .merchant
                .capture(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/void",
    tag = "merchant",
    summary = "Void an authorisation",
    description = "Releases a manual-capture authorisation that will not be captured. The body may be empty.",
    params(
        ("id" = String, Path, description = "The payment id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    responses(
        (status = 200, description = "Voided.", body = PaymentView),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "The payment is not `authorised`, or an idempotency conflict.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the void.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn void(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let body = json_body(&headers, body, true)?;
            s.services
                .merchant
                .void(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/refunds",
    tag = "merchant",
    summary = "Refund a payment",
    description = "Refunds all or part of what was captured; several partial refunds may follow one another. The body may be empty: then all that is left is refunded.",
    params(
        ("id" = String, Path, description = "The payment id."),
        ("Idempotency-Key" = String, Header, description = "A fresh random string per new request, resent unchanged on a retry; see Idempotency in the overview."),
    ),
    request_body(content = Option<AmountRequest>, description = "Optional; without `amount`, all that is left.", content_type = "application/json"),
    responses(
        (status = 200, description = "Refunded: state `refunded` or `partially_refunded`.", body = PaymentView),
        (status = 400, description = "Missing or invalid Idempotency-Key, unreadable body or malformed JSON.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "`payment_not_refundable`, or an idempotency conflict.", body = ErrorResponse),
        (status = 413, description = "The body is over the limit.", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`.", body = ErrorResponse),
        (status = 422, description = "Bad amount, or `refund_exceeds_captured`.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the refund.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn refund(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let body = json_body(&headers, body, true)?;
            s.services
                .merchant
                .refund(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The UTC day, `YYYY-MM-DD`.
    #[param(example = "2025-01-31")]
    date: String,
}

#[utoipa::path(
    get,
    path = "/v1/merchant/reports/daily",
    tag = "merchant",
    summary = "Daily report",
    description = "Per store and currency, for one UTC day: payments captured (gross, fees) and refunds made, from the ledger.",
    params(
        ReportQuery,
    ),
    responses(
        (status = 200, description = "The report.", body = DailyReport),
        (status = 400, description = "`query_invalid`: `date` is missing.", body = ErrorResponse),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
        (status = 422, description = "`date_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn daily_report(
    State(s): Shared,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            let Query(q) = query.map_err(|e| {
                Failure::bad_request(
                    "query_invalid",
                    format!("{}; pass ?date=YYYY-MM-DD", e.body_text()),
                )
            })?;
            s.services.merchant.daily_report(&m, &q.date).await
        }
        .await,
    )
}

#[utoipa::path(
    get,
    path = "/v1/merchant/terminals",
    tag = "merchant",
    summary = "Terminals",
    description = "Each of the merchant's terminals with its store, status (`active` or `suspended`), a fraud flag if an operator has not cleared it, and the time of its last payment.",
    responses(
        (status = 200, description = "`{\"terminals\": [...]}`."),
        (status = 401, description = "`authorization_missing` or `api_key_invalid`.", body = ErrorResponse),
        (status = 403, description = "`merchant_suspended`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn terminals(State(s): Shared, headers: HeaderMap) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            s.services.merchant.terminals(&m).await
        }
        .await,
    )
}
