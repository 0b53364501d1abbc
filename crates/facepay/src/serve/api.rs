//! The payments API over HTTP: extract headers and body, call the payments
//! service, turn its answer or failure into a response. No decisions here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facepay_payments::merchant::ListQuery;
use facepay_payments::signing::{
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, SignedHeaders,
};
use facepay_payments::{Failure, Reply};
use facepay_store::parties::Merchant;

use super::AppState;

type Shared = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

pub fn respond(result: Result<Reply, Failure>) -> Response {
    match result {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            let mut response = (status, reply.body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(failure) => failure_response(&failure),
    }
}

pub fn failure_response(f: &Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": { "code": f.code, "message": f.message } });
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
fn json_body(headers: &HeaderMap, body: Body, optional: bool) -> Result<Bytes, Failure> {
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

fn idempotency_key(headers: &HeaderMap) -> &str {
    header(headers, "idempotency-key").unwrap_or("")
}

fn bearer(headers: &HeaderMap) -> Result<&str, Failure> {
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

pub async fn enrol(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            s.payments.enrol(idempotency_key(&headers), &body).await
        }
        .await,
    )
}

pub async fn me(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.payments.me(bearer(&headers)?).await }.await)
}

pub async fn delete_me(State(s): Shared, headers: HeaderMap) -> Response {
    respond(async { s.payments.delete_me(bearer(&headers)?).await }.await)
}

pub async fn pay(State(s): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let body = json_body(&headers, body, false)?;
            let signed = signed_headers(&headers)?;
            let path = "/v1/terminal/payments";
            let ctx = s
                .payments
                .authenticate_terminal(&signed, "POST", path, &body)
                .await?;
            s.payments.pay(&ctx, idempotency_key(&headers), &body).await
        }
        .await,
    )
}

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
                .payments
                .authenticate_terminal(&signed, "POST", &path, &body)
                .await?;
            s.payments
                .step_up(&ctx, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

async fn merchant(s: &AppState, headers: &HeaderMap) -> Result<Merchant, Failure> {
    s.payments.authenticate_merchant(bearer(headers)?).await
}

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
            s.payments.list_payments(&m, &query).await
        }
        .await,
    )
}

pub async fn get_payment(State(s): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    respond(
        async {
            let m = merchant(&s, &headers).await?;
            s.payments.get_payment(&m, &id).await
        }
        .await,
    )
}

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
            s.payments
                .capture(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

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
            s.payments
                .void(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

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
            s.payments
                .refund(&m, &id, idempotency_key(&headers), &body)
                .await
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
pub struct ReportQuery {
    date: String,
}

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
            s.payments.daily_report(&m, &q.date).await
        }
        .await,
    )
}
