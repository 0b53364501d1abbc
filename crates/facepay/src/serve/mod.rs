//! `facepay serve`: the HTTP server and its pages.
//!
//! HTTP lives here and nowhere below: the crates this calls know nothing
//! about requests. Inference is CPU-bound, so it runs on blocking threads,
//! at most `INFERENCE_CONCURRENCY_MAX` at a time; further requests wait.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use facepay_face::decode::IMAGE_BYTES_MAX;
use facepay_face::{EngineError, FaceEngine, QualityPolicy};
use serde::Serialize;
use tokio::sync::Semaphore;

const INFERENCE_CONCURRENCY_MAX: usize = 2;
const INDEX_HTML: &str = include_str!("index.html");

pub struct AppState {
    engine: FaceEngine,
    inference_slots: Semaphore,
}

pub fn router(engine: FaceEngine) -> Router {
    let state = Arc::new(AppState {
        engine,
        inference_slots: Semaphore::new(INFERENCE_CONCURRENCY_MAX),
    });
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/health", get(|| async { "ok" }))
        .route("/api/v1/face/analyze", post(analyze))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such page or endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(IMAGE_BYTES_MAX))
        .with_state(state)
}

pub async fn serve(engine: FaceEngine, address: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!("facepay listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
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
mod tests;
