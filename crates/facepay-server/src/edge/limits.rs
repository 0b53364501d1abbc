//! Limits on each request, from `[server]`: how many are answered at once
//! (`requests_in_flight_max`; more wait their turn), how long one may take,
//! its body included (`request_timeout_ms`: 408 while the body is still
//! arriving, 503 after), and how large each route's body may be, enforced
//! before a byte of it is read. Bodies of camera frames also draw on a
//! budget of bytes held at once, one for terminal payments and one for the
//! face work that needs no credential (enrolments, the public analysis),
//! so that many unfinished bodies cannot take the memory no credential has
//! yet earned, and a flood of the second kind leaves payments theirs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use crate::routes::Shared;

/// Largest body of a command without camera frames.
pub const COMMAND_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest body of a terminal payment: a burst of camera frames as a kiosk
/// takes them (eight 1080p JPEGs in base64 fit). Kept well under the
/// enrolment's limit because the body must be read before its signature
/// can be checked.
pub const PAYMENT_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes of terminal payment bodies held at once, all requests together:
/// sixteen of the largest, or over a hundred of a kiosk's usual size.
pub const PAYMENT_BODIES_BYTES_MAX: usize = 16 * PAYMENT_BODY_BYTES_MAX;
/// Bodies of face work without a credential (enrolments, photos) held at
/// once, each counted at its own limit: a few read at a time, the rest
/// wait their turn within the request timeout.
pub const PUBLIC_FACE_BODIES_MAX: usize = 4;
// Each budget holds at least one body at its limit, so none waits forever.
const _: () = assert!(PAYMENT_BODIES_BYTES_MAX >= PAYMENT_BODY_BYTES_MAX);
const _: () = assert!(PUBLIC_FACE_BODIES_MAX > 0);
/// The budget's unit: a permit is a kibibyte.
const BUDGET_UNIT_BYTES: usize = 1024;

/// Which limit a route's body is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A command without frames.
    Command,
    /// An enrolment's burst of frames (`json_body_bytes_max`).
    Burst,
    /// A terminal payment's burst: the smaller of `json_body_bytes_max` and
    /// `PAYMENT_BODY_BYTES_MAX`, drawn from the shared budget.
    PaymentBurst,
    /// One photo (`image_bytes_max`).
    Photo,
}

impl BodyKind {
    /// The code of a body over its limit.
    pub fn too_large_code(self) -> &'static str {
        match self {
            Self::Photo => "image_too_large",
            Self::Command | Self::Burst | Self::PaymentBurst => "body_too_large",
        }
    }
}

/// The request limits, built once from the configuration.
pub struct RequestLimits {
    in_flight: Semaphore,
    request_timeout: Duration,
    json_body_bytes_max: usize,
    image_bytes_max: usize,
    payment_bodies: Arc<Semaphore>,
    public_face_bodies: Arc<Semaphore>,
}

impl RequestLimits {
    pub fn of(server: &facepay_config::Server) -> Self {
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let in_flight = bytes(server.requests_in_flight_max).min(Semaphore::MAX_PERMITS);
        assert!(in_flight > 0);
        let json_body_bytes_max = bytes(server.json_body_bytes_max);
        let image_bytes_max = bytes(server.image_bytes_max);
        let public_face_bytes = json_body_bytes_max.max(image_bytes_max);
        Self {
            in_flight: Semaphore::new(in_flight),
            request_timeout: Duration::from_millis(server.request_timeout_ms),
            json_body_bytes_max,
            image_bytes_max,
            payment_bodies: Arc::new(Semaphore::new(units(PAYMENT_BODIES_BYTES_MAX))),
            public_face_bodies: Arc::new(Semaphore::new(units(
                public_face_bytes.saturating_mul(PUBLIC_FACE_BODIES_MAX),
            ))),
        }
    }

    /// The limit of a body of `kind`.
    pub fn bytes_max(&self, kind: BodyKind) -> usize {
        match kind {
            BodyKind::Command => COMMAND_BODY_BYTES_MAX.min(self.json_body_bytes_max),
            BodyKind::Burst => self.json_body_bytes_max,
            BodyKind::PaymentBurst => PAYMENT_BODY_BYTES_MAX.min(self.json_body_bytes_max),
            BodyKind::Photo => self.image_bytes_max,
        }
    }

    /// A place for `bytes` in the budget of bodies of `kind`, waited for;
    /// a command draws on none. A body never takes more than its whole
    /// budget, which holds at least one body at its limit.
    pub(super) async fn reserve(
        &self,
        kind: BodyKind,
        bytes: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let budget = match kind {
            BodyKind::Command => return None,
            BodyKind::PaymentBurst => &self.payment_bodies,
            BodyKind::Burst | BodyKind::Photo => &self.public_face_bodies,
        };
        let wanted = units(bytes.min(self.bytes_max(kind)));
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        Arc::clone(budget).acquire_many_owned(wanted).await.ok()
    }
}

/// Budget units that hold `bytes`, at least one.
fn units(bytes: usize) -> usize {
    bytes.div_ceil(BUDGET_UNIT_BYTES).max(1)
}

/// Set once the request's body has been read whole, so a timeout can tell
/// a client still sending (408) from a server still working (503).
#[derive(Clone, Default)]
pub struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    pub fn done(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The limits of every request: a place among those in flight, then the
/// handler, all within the request timeout.
pub async fn limit_request(State(s): State<Shared>, mut request: Request, next: Next) -> Response {
    let limits = Arc::clone(&s.limits);
    let body_read = BodyRead::default();
    if request.body().is_end_stream() {
        body_read.done();
    }
    request.extensions_mut().insert(body_read.clone());
    request.extensions_mut().insert(Arc::clone(&limits));
    let work = async {
        let Ok(_place) = limits.in_flight.acquire().await else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is stopping",
            )
            .into_response();
        };
        next.run(request).await
    };
    match tokio::time::timeout(limits.request_timeout, work).await {
        Ok(response) => response,
        Err(_) => timed_out(&limits, body_read.is_done()),
    }
}

fn timed_out(limits: &RequestLimits, body_read: bool) -> Response {
    let ms = limits.request_timeout.as_millis();
    let mut response = if body_read {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request took longer than {ms} ms; retry with the same idempotency key"),
        )
    } else {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request, its body included, did not arrive within {ms} ms"),
        )
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
