//! `ApiError`: the one way a failure leaves the server, as
//! `{"error": {"code": "...", "message": "..."}}` with its status. Each
//! error of the crates below maps here by an exhaustive `match`, so a new
//! variant does not compile until it has a status; internal errors are
//! logged with their context and answered without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facepay_face::EngineError;
use facepay_fx::FxError;
use facepay_hub::NetworkError;
use facepay_hub::service::HubError;
use facepay_payments::api::{ErrorBody, PayTimings};
use facepay_payments::{Failure, Reply};
use facepay_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse<'a> {
    pub error: ErrorBody<'a>,
}

/// An error answer: a status, a stable machine code and a message for
/// people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Whether the answer closes the connection (`Connection: close`): a
    /// body refused unread must not be taken for the next request.
    closes: bool,
    /// Seconds the client should wait before it tries again
    /// (`Retry-After`), when the server can tell.
    retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        assert!(
            status.is_client_error() || status.is_server_error(),
            "an error answers 4xx or 5xx, not {status}"
        );
        Self {
            status,
            code,
            message: message.into(),
            closes: false,
            retry_after_s: None,
        }
    }

    /// The same error, answered with `Connection: close`.
    pub fn closing(mut self) -> Self {
        self.closes = true;
        self
    }

    /// The same error, telling the client to wait `seconds` before it
    /// tries again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A failure on our side: logged with its context, answered without it.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::from(Failure::internal())
    }

    #[cfg(test)]
    pub fn code(&self) -> &'static str {
        self.code
    }

    #[cfg(test)]
    pub fn retry_after_s(&self) -> Option<u64> {
        self.retry_after_s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.closes {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The answer of the fallback: no route has this path.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page or endpoint",
    )
}

/// The answer when the path exists but not with this method; the router
/// adds the `Allow` header listing the methods it has.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method; see the Allow header",
    )
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match StatusCode::from_u16(f.status) {
            Ok(status) if status.is_client_error() || status.is_server_error() => {
                Self::new(status, f.code, f.message)
            }
            _ => Self::internal("a failure carried a status that is not an error", &f),
        }
    }
}

/// The payments core's answer, which is already JSON text: sent as it is,
/// so an idempotent replay is byte for byte the first answer.
pub fn answer(reply: Reply) -> Response {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return ApiError::internal("a reply carried no valid status", &reply.status)
            .into_response();
    };
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(timings) = reply.timings
        && let Ok(value) = HeaderValue::from_str(&server_timing(&timings))
    {
        headers.insert("server-timing", value);
    }
    response
}

/// The W3C `Server-Timing` header: each stage's duration in milliseconds.
fn server_timing(t: &PayTimings) -> String {
    let parts: Vec<String> = t
        .stages()
        .iter()
        .map(|(name, us)| format!("{name};dur={:.3}", *us as f64 / 1e3))
        .collect();
    parts.join(", ")
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::Decode(_) | EngineError::Degenerate => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
            EngineError::Models(_) | EngineError::Runtime(_) => {
                tracing::error!(%error, "face engine failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error.code(),
                    "the face engine failed; try again",
                )
            }
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let status = match &e {
            HubError::KeyInvalid => StatusCode::UNAUTHORIZED,
            HubError::RateLimited { retry_after_ms } => {
                let seconds = u64::try_from(*retry_after_ms).unwrap_or(0).div_ceil(1000);
                return Self::new(StatusCode::TOO_MANY_REQUESTS, e.code(), e.to_string())
                    .retry_after(seconds.max(1));
            }
            HubError::UnknownNetwork(_)
            | HubError::UnknownMember(_)
            | HubError::UnknownQuote
            | HubError::UnknownTransfer
            | HubError::CodeUnknown
            | HubError::UnknownWindow => StatusCode::NOT_FOUND,
            HubError::QuoteExpired | HubError::CodeExpired => StatusCode::GONE,
            HubError::QuoteUsed
            | HubError::CodeUsed
            | HubError::KeyReused
            | HubError::NotReserved(_)
            | HubError::NoOpenWindow
            | HubError::WindowNotClosed
            | HubError::MemberCap { .. }
            | HubError::MemberFunds { .. }
            | HubError::NotHeld(_)
            | HubError::NoSettlementBank => StatusCode::CONFLICT,
            HubError::Qr(_)
            | HubError::NoMemberNetwork
            | HubError::CurrencyMismatch
            | HubError::BadAmount(_)
            | HubError::CodeMismatch
            | HubError::BadMember(_)
            | HubError::TooLong(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HubError::Network(n) => network_status(n),
            HubError::Fx(f) => fx_status(f),
            HubError::Store(s) => return store_error(s, "hub store failed"),
        };
        Self::new(status, e.code(), e.to_string())
    }
}

fn network_status(e: &NetworkError) -> StatusCode {
    match e {
        NetworkError::UnknownAccount => StatusCode::NOT_FOUND,
        NetworkError::Funds => StatusCode::PAYMENT_REQUIRED,
        NetworkError::Closed => StatusCode::CONFLICT,
        NetworkError::Limit | NetworkError::Decimals => StatusCode::UNPROCESSABLE_ENTITY,
        NetworkError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        NetworkError::UnknownTransfer | NetworkError::Settled(_) | NetworkError::Refused(_) => {
            StatusCode::BAD_GATEWAY
        }
    }
}

fn fx_status(e: &FxError) -> StatusCode {
    match e {
        FxError::NoRate(_) | FxError::BadRate | FxError::BadAmount => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// A store error seen outside the payments core (which maps its own).
fn store_error(e: &StoreError, context: &str) -> ApiError {
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the server is busy; retry with the same idempotency key",
        )
    };
    match e {
        StoreError::Duplicate(what) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{what} already exists or changed meanwhile; retry"),
        ),
        // A write the store's rules refused raced another; a retry decides.
        StoreError::Refused(_) => busy(),
        StoreError::Database(_) if e.is_busy() => busy(),
        StoreError::Random(_) => {
            tracing::error!(error = %e, "{context}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                facepay_payments::RANDOM_UNAVAILABLE,
                facepay_payments::RANDOM_UNAVAILABLE_MESSAGE,
            )
        }
        StoreError::Database(_)
        | StoreError::Migrate(_)
        | StoreError::UnsupportedUrl(_)
        | StoreError::NotFound(_)
        | StoreError::Corrupt(_) => ApiError::internal(context, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_errors_answer_their_status_and_code() {
        let cases = [
            (HubError::KeyInvalid, 401, "hub_key_invalid"),
            (HubError::UnknownQuote, 404, "hub_unknown_quote"),
            (HubError::QuoteExpired, 410, "hub_quote_expired"),
            (HubError::KeyReused, 409, "idempotency_key_reused"),
            (HubError::TooLong("qr"), 422, "hub_input_too_long"),
            (
                HubError::Network(NetworkError::Funds),
                402,
                "network_insufficient_funds",
            ),
            (
                HubError::Network(NetworkError::Timeout),
                504,
                "network_timeout",
            ),
            (
                HubError::Fx(FxError::NoRate("KRW/IDR".into())),
                422,
                "fx_no_rate",
            ),
            (
                HubError::Store(StoreError::Duplicate("transfer")),
                409,
                "conflict",
            ),
            (
                HubError::Store(StoreError::Corrupt("x".into())),
                500,
                "internal",
            ),
            (
                HubError::Store(StoreError::Random(getrandom::Error::UNSUPPORTED)),
                503,
                "random_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            let e = ApiError::from(error);
            assert_eq!((e.status.as_u16(), e.code), (status, code));
        }
        let members = [
            (
                HubError::UnknownMember("x".into()),
                404,
                "hub_unknown_member",
            ),
            (HubError::BadMember("x".into()), 422, "hub_bad_member"),
            (
                HubError::MemberCap {
                    network: "x".into(),
                    currency: "KRW".into(),
                    exposure_minor: 2,
                    limit_minor: 1,
                },
                409,
                "hub_member_cap",
            ),
            (
                HubError::MemberFunds {
                    currency: "KRW".into(),
                    free_minor: 0,
                },
                409,
                "hub_member_funds",
            ),
            (HubError::NotHeld("committed"), 409, "hub_transfer_not_held"),
            (HubError::NoSettlementBank, 409, "hub_no_settlement_bank"),
        ];
        for (error, status, code) in members {
            let e = ApiError::from(error);
            assert_eq!((e.status.as_u16(), e.code), (status, code));
        }
        let limited = ApiError::from(HubError::RateLimited {
            retry_after_ms: 1_500,
        });
        assert_eq!(
            (limited.status.as_u16(), limited.code),
            (429, "hub_rate_limited")
        );
        assert_eq!(limited.retry_after_s(), Some(2));
    }

    #[test]
    fn an_internal_error_does_not_leak_its_cause() {
        let e = ApiError::from(HubError::Store(StoreError::Corrupt("secret detail".into())));
        assert!(!e.message.contains("secret detail"), "{}", e.message);
    }

    #[test]
    fn a_failure_keeps_its_status_and_code() {
        let e = ApiError::from(Failure::conflict("claim_exists", "already"));
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "claim_exists"));
        let odd = ApiError::from(Failure::new(200, "odd", "not an error"));
        assert_eq!(odd.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
