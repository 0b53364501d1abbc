//! Request ids, structured request logs and Prometheus metrics. Logs carry
//! the method, the route template and the status: never a body, so never a
//! face, a PIN or a card number.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: a face payment should land between 50 ms and
/// 1 s; the tails show trouble.
const BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide metrics recorder (once; later calls do nothing).
pub fn install() {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS_S)
            .ok()?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        Some(handle)
    });
}

pub async fn metrics() -> Response {
    install();
    match PROMETHEUS.get().and_then(Option::as_ref) {
        Some(handle) => handle.render().into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

/// A request's id in the logs: random, so ids of several servers do not
/// meet. It is no secret, so if the generator fails a counter of this
/// process stands in rather than the request being refused.
fn request_id() -> String {
    static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    facepay_payments::keys::random_bytes::<8>().map_or_else(
        |_| {
            let n = FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("n{n:015x}")
        },
        hex::encode,
    )
}

pub async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = request_id();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", id = %request_id, %method, %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1e3, "answered");
    });
    metrics::histogram!(
        "facepay_http_request_duration_seconds",
        "route" => route,
        "method" => method.to_string(),
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
