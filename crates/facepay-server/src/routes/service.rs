//! Health, metrics, these docs, and the face engine's demo endpoint.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use facepay_face::detect::Detection;
use facepay_face::geometry::Point;
use facepay_face::quality::QualityReason;
use facepay_face::{FaceAnalysis, QualityPolicy};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{AnalysisTurn, ApiError, BodyKind, ErrorResponse};
use crate::{observe, openapi};

const INDEX_HTML: &str = include_str!("../index.html");
const DOCS_HTML: &str = include_str!("../docs.html");

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(health))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(document))
        .routes(routes!(docs))
        .routes(routes!(analyze))
        .routes(routes!(deployment))
}

/// The header every answer carries when the server runs a simulated part.
pub const SIMULATED_HEADER: &str = "facepay-simulated";

/// What this deployment runs that is not real.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deployment {
    /// Each simulated outside party, such as `issuer: simulated_issuer`
    /// or `hub network: kr.wallet.sim`; empty when every part is real.
    pub simulated: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/v1/deployment",
    tag = "service",
    summary = "What this deployment simulates",
    description = "The outside parties this server reaches only as simulators, as its configuration names them. The pages show them in a banner; every answer also carries them in the `Facepay-Simulated` header.",
    responses((status = 200, description = "The simulated parts.", body = Deployment)),
)]
pub async fn deployment(State(s): State<Shared>) -> axum::Json<Deployment> {
    axum::Json(Deployment {
        simulated: s.simulated.clone(),
    })
}

/// Adds the `Facepay-Simulated` header to every answer of a server that
/// runs a simulated part, so that no client mistakes a simulated approval
/// for a real one.
pub async fn mark_simulated(
    State(s): State<Shared>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if !s.simulated.is_empty()
        && let Ok(value) = header::HeaderValue::from_str(&s.simulated.join("; "))
    {
        response.headers_mut().insert(SIMULATED_HEADER, value);
    }
    response
}

#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    summary = "Face engine demo page",
    description = "A page to try the face engine on a photo.",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "Liveness probe",
    description = "Answers as long as the process serves.",
    responses((status = 200, description = "`ok`.", content_type = "text/plain", body = String)),
)]
pub async fn health() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    summary = "Readiness probe",
    description = "Checks that the database answers.",
    responses(
        (status = 200, description = "`ok`.", content_type = "text/plain", body = String),
        (status = 503, description = "The database is unreachable.", content_type = "text/plain", body = String),
    ),
)]
pub async fn healthz(State(s): State<Shared>) -> Response {
    match s.services.store().pool().acquire().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Prometheus metrics",
    description = "Request counts and latencies by route and status, and payment stage latencies.",
    responses(
        (status = 200, description = "The Prometheus text exposition format.", content_type = "text/plain", body = String),
        (status = 503, description = "The metrics recorder could not be installed.", content_type = "text/plain", body = String),
    ),
)]
pub async fn metrics() -> Response {
    observe::metrics().await
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    summary = "This document",
    description = "The OpenAPI 3.1 description of this API.",
    responses((status = 200, description = "The document.", content_type = "application/json", body = Object)),
)]
pub async fn document() -> Response {
    match openapi::json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "service",
    summary = "API documentation page",
    description = "This document, readable in a browser; works offline.",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

/// One analysed photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisView {
    width: u32,
    height: u32,
    faces: Vec<DetectionView>,
    /// The largest face, which is the one that enrols or pays.
    chosen: Option<ChosenView>,
    /// Named reasons the photo cannot be used; empty when it can.
    rejections: Vec<QualityReasonView>,
    timings: TimingsView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionView {
    bbox: BoxView,
    /// Right eye, left eye, nose tip, right and left mouth corner.
    #[schema(min_items = 5, max_items = 5)]
    landmarks: Vec<PointView>,
    score: f32,
}

/// In pixels of the decoded image.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoxView {
    x: f32,
    y: f32,
    width: f32,
    height: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointView {
    x: f32,
    y: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChosenView {
    detection: DetectionView,
    quality: QualityView,
    /// Present only when the quality gate passed.
    template: Option<TemplateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityView {
    passed: bool,
    reasons: Vec<QualityReasonView>,
    eye_distance_px: f32,
    detection_score: f32,
    pose: PoseView,
    sharpness: f32,
    brightness: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoseView {
    yaw_degrees: f32,
    pitch_degrees: f32,
    roll_degrees: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    model: ModelView,
    /// The L2-normalised embedding.
    vector: Vec<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    name: String,
    /// The first 16 hex digits of the SHA-256 of the model file.
    version: String,
}

/// Microseconds per stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingsView {
    decode_us: u64,
    detect_us: u64,
    align_us: u64,
    quality_us: u64,
    embed_us: u64,
}

/// Why a photo cannot be used.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualityReasonView {
    NoFace,
    MultipleFaces,
    FaceTooSmall,
    LowDetectionScore,
    ExtremePose,
    TooBlurry,
    TooDark,
    TooBright,
}

impl From<QualityReason> for QualityReasonView {
    fn from(r: QualityReason) -> Self {
        match r {
            QualityReason::NoFace => Self::NoFace,
            QualityReason::MultipleFaces => Self::MultipleFaces,
            QualityReason::FaceTooSmall => Self::FaceTooSmall,
            QualityReason::LowDetectionScore => Self::LowDetectionScore,
            QualityReason::ExtremePose => Self::ExtremePose,
            QualityReason::TooBlurry => Self::TooBlurry,
            QualityReason::TooDark => Self::TooDark,
            QualityReason::TooBright => Self::TooBright,
        }
    }
}

fn point(p: &Point) -> PointView {
    PointView { x: p.x, y: p.y }
}

fn detection(d: &Detection) -> DetectionView {
    DetectionView {
        bbox: BoxView {
            x: d.bbox.x,
            y: d.bbox.y,
            width: d.bbox.width,
            height: d.bbox.height,
        },
        landmarks: d.landmarks.iter().map(point).collect(),
        score: d.score,
    }
}

impl From<&FaceAnalysis> for AnalysisView {
    fn from(a: &FaceAnalysis) -> Self {
        let chosen = a.chosen.as_ref().map(|c| ChosenView {
            detection: detection(&c.detection),
            quality: QualityView {
                passed: c.quality.passed,
                reasons: c.quality.reasons.iter().map(|r| (*r).into()).collect(),
                eye_distance_px: c.quality.eye_distance_px,
                detection_score: c.quality.detection_score,
                pose: PoseView {
                    yaw_degrees: c.quality.pose.yaw_degrees,
                    pitch_degrees: c.quality.pose.pitch_degrees,
                    roll_degrees: c.quality.pose.roll_degrees,
                },
                sharpness: c.quality.sharpness,
                brightness: c.quality.brightness,
            },
            template: c.template.as_ref().map(|t| TemplateView {
                model: ModelView {
                    name: t.model.name.clone(),
                    version: t.model.version.clone(),
                },
                vector: t.vector.clone(),
            }),
        });
        Self {
            width: a.width,
            height: a.height,
            faces: a.faces.iter().map(detection).collect(),
            chosen,
            rejections: a.rejections.iter().map(|r| (*r).into()).collect(),
            timings: TimingsView {
                decode_us: a.timings.decode_us,
                detect_us: a.timings.detect_us,
                align_us: a.timings.align_us,
                quality_us: a.timings.quality_us,
                embed_us: a.timings.embed_us,
            },
        }
    }
}

/// The photo's bytes, at most `[server] image_bytes_max`, as JPEG or PNG.
async fn photo(request: Request) -> Result<Bytes, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("image/jpeg") && !essence.eq_ignore_ascii_case("image/png") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the photo as image/jpeg or image/png, not `{content_type}`"),
        ));
    }
    let body = crate::edge::read_body(request, BodyKind::Photo).await?;
    Ok(body.bytes)
}

#[utoipa::path(
    post,
    path = "/api/v1/face/analyze",
    tag = "service",
    summary = "Analyse a photo",
    description = "Finds the faces, checks the largest one against the payment quality gate and embeds it. The photo is analysed in memory and never stored.",
    request_body(
        description = "The photo: JPEG or PNG, at most 8 MB and 25 megapixels.",
        content(
            (Vec<u8> = "image/jpeg"),
            (Vec<u8> = "image/png"),
        ),
    ),
    responses(
        (status = 200, description = "The analysis.", body = AnalysisView),
        (status = 400, description = "`body_unreadable`.", body = ErrorResponse),
        (status = 413, description = "`image_too_large`.", body = ErrorResponse),
        (status = 415, description = "Not `image/jpeg` or `image/png`.", body = ErrorResponse),
        (status = 422, description = "The image does not decode, is too large in pixels, or is degenerate.", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: this client address sent more photo analyses and enrolments than the server takes from one address; the photo was not read. Retry after `Retry-After` seconds.", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before the next try."))),
        (status = 503, description = "`face_work_busy`: too many analyses wait; or `shutting_down`.", body = ErrorResponse),
    ),
)]
pub async fn analyze(
    State(s): State<Shared>,
    _turn: AnalysisTurn,
    request: Request,
) -> Result<Response, ApiError> {
    let bytes = photo(request).await?;
    let analysis = s
        .services
        .identity
        .on_enrolment_lane(move |engine| engine.analyze(&bytes, &QualityPolicy::payment()))
        .await??;
    Ok(axum::Json(AnalysisView::from(&analysis)).into_response())
}
