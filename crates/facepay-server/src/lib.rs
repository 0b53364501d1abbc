//! The facepay server: the HTTP edge, the composition root (`root`) and the
//! background jobs, with its pages.
//!
//! HTTP lives here and nowhere below: the crates this calls know nothing
//! about requests. Inference is CPU-bound, so it runs on blocking threads,
//! at most `INFERENCE_CONCURRENCY_MAX` at a time; further requests wait.

mod api;
mod hub;
mod jobs;
mod loyalty;
mod observe;
mod openapi;
mod operator;
pub mod root;
pub mod seed;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use facepay_face::decode::IMAGE_BYTES_MAX;
use facepay_face::{EngineError, FaceEngine, QualityPolicy};
use facepay_hub::service::Hub;
use facepay_payments::Services;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::root::App;

const INFERENCE_CONCURRENCY_MAX: usize = 2;
/// Largest JSON body: a burst of a few camera frames in base64.
pub const JSON_BODY_BYTES_MAX: usize = 24 * 1024 * 1024;
const INDEX_HTML: &str = include_str!("index.html");

pub struct AppState {
    engine: Arc<FaceEngine>,
    inference_slots: Semaphore,
    services: Arc<Services>,
    hub: Arc<Hub>,
}

impl AppState {
    /// The time as the services' clock tells it.
    fn now_ms(&self) -> i64 {
        self.services.clock().now_ms()
    }
}

pub fn router(app: &App) -> Router {
    let state = Arc::new(AppState {
        engine: Arc::clone(&app.engine),
        inference_slots: Semaphore::new(INFERENCE_CONCURRENCY_MAX),
        services: Arc::clone(&app.services),
        hub: Arc::clone(&app.hub),
    });
    let face = Router::new()
        .route("/api/v1/face/analyze", post(analyze))
        .layer(DefaultBodyLimit::max(IMAGE_BYTES_MAX));
    let payments = Router::new()
        .route("/v1/users", post(api::enrol))
        .route("/v1/users/me", get(api::me).delete(api::delete_me))
        .route(
            "/v1/users/me/face",
            delete(api::delete_my_face).put(operator::enrol_my_face),
        )
        .route("/v1/users/me/loyalty/{merchant_id}", put(loyalty::choose))
        .route(
            "/v1/users/me/claims",
            get(operator::my_claims).post(operator::open_claim),
        )
        .route("/v1/operator/claims", get(operator::list_claims))
        .route("/v1/operator/claims/{id}", post(operator::decide_claim))
        .route(
            "/v1/operator/claims/{id}/recover",
            post(operator::recover_claim),
        )
        .route("/v1/operator/reviews", get(operator::review_queue))
        .route(
            "/v1/operator/reviews/{id}/{action}",
            post(operator::settle_review),
        )
        .route(
            "/v1/operator/terminals/flagged",
            get(operator::flagged_terminals),
        )
        .route(
            "/v1/operator/terminals/{id}/clear-flag",
            post(operator::clear_terminal_flag),
        )
        .route(
            "/v1/operator/blocks",
            get(operator::list_blocks).post(operator::add_block),
        )
        .route(
            "/v1/operator/blocks/{kind}/{value}",
            delete(operator::remove_block),
        )
        .route("/v1/users/me/hub/quotes", post(hub::my_quote))
        .route("/v1/users/me/hub/transfers", post(hub::my_pay))
        .route("/v1/hub/quotes", post(hub::quote))
        .route("/v1/hub/transfers", post(hub::pay))
        .route("/v1/hub/transfers/{id}", get(hub::get_transfer))
        .route("/v1/hub/cash-codes", post(hub::cash_code))
        .route("/v1/hub/withdrawals", post(hub::withdraw))
        .route("/v1/hub/withdrawals/{id}/confirm", post(hub::confirm))
        .route("/v1/hub/windows/close", post(hub::close_window))
        .route("/v1/hub/windows/{id}", get(hub::report))
        .route("/v1/hub/windows/{id}/settle", post(hub::settle_window))
        .route("/v1/hub/windows/{id}/mine", get(hub::my_report))
        .route("/v1/terminal/payments", post(api::pay))
        .route("/v1/terminal/payments/{id}/step-up", post(api::step_up))
        .route("/v1/merchant/payments", get(api::list_payments))
        .route("/v1/merchant/payments/{id}", get(api::get_payment))
        .route("/v1/merchant/payments/{id}/capture", post(api::capture))
        .route("/v1/merchant/payments/{id}/void", post(api::void))
        .route("/v1/merchant/payments/{id}/refunds", post(api::refund))
        .route("/v1/merchant/reports/daily", get(api::daily_report))
        .route("/v1/merchant/terminals", get(api::terminals))
        .route("/v1/merchant/loyalty", get(loyalty::view))
        .route(
            "/v1/merchant/loyalty/programs",
            post(loyalty::create_program),
        )
        .route("/v1/merchant/loyalty/coupons", post(loyalty::create_coupon))
        .route(
            "/v1/merchant/loyalty/{what}/{id}/{action}",
            post(loyalty::set_status),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX));
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .merge(web::routes())
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(observe::metrics))
        .route("/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::docs))
        .merge(face)
        .merge(payments)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such page or endpoint",
            )
        })
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.services.store().pool().acquire().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

pub async fn serve(app: App, address: SocketAddr) -> anyhow::Result<()> {
    observe::install();
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(
        gallery = app.services.identity.gallery_len(),
        restored = app.services.identity.gallery_restored(),
        store = app.services.store().backend().name(),
        "facepay listening on http://{}",
        listener.local_addr()?
    );
    let root = format!("http://{}", listener.local_addr()?);
    println!(
        "facepay is serving:\n  terminal   {root}/terminal\n  app        {root}/app\n  \
         dashboard  {root}/dashboard\n  API docs   {root}/docs"
    );
    jobs::start(&app);
    axum::serve(listener, router(&app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The next start reads this instead of opening every template.
    if let Err(e) = app.services.identity.write_snapshot().await {
        tracing::warn!(error = %e, "gallery snapshot not written at shutdown");
    }
    app.services.store().close().await;
    Ok(())
}

/// Every error the API returns: a stable machine code and a message for people.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::Decode(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
            EngineError::Degenerate => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
            EngineError::Models(_) | EngineError::Runtime(_) => {
                tracing::error!(%error, "face engine failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error.code(),
                    "the face engine failed; try again",
                )
            }
        }
    }
}

async fn analyze(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                format!("the photo is over the limit of {IMAGE_BYTES_MAX} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                rejection.body_text(),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(content_type, "image/jpeg" | "image/png") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the photo as image/jpeg or image/png, not `{content_type}`"),
        ));
    }
    let _slot = state.inference_slots.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is stopping",
        )
    })?;
    let worker = state.clone();
    let analysis = tokio::task::spawn_blocking(move || {
        worker.engine.analyze(&body, &QualityPolicy::payment())
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the analysis was interrupted",
        )
    })??;
    Ok(axum::Json(analysis).into_response())
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod fraud_tests;
#[cfg(test)]
mod hub_tests;
#[cfg(test)]
mod loyalty_tests;
#[cfg(test)]
mod tests;
