//! The merchant's back office, with its API key: payments, captures, voids,
//! refunds, the daily report and the terminals.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use facepay_payments::api::{
    AmountRequest, DailyReport, PaymentDetail, PaymentPage, PaymentView, TerminalList,
};
use facepay_payments::merchant::ListQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, ApiPath, ApiQuery, Command, ErrorResponse, IdempotencyKey, MerchantKey,
    answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_payments))
        .routes(routes!(get_payment))
        .routes(routes!(capture))
        .routes(routes!(void))
        .routes(routes!(refund))
        .routes(routes!(daily_report))
        .routes(routes!(terminals))
}

impl Command for AmountRequest {
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

/// A payment of the caller's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PaymentPath {
    /// The payment id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

#[utoipa::path(
    get,
    path = "/v1/merchant/payments",
    tag = "merchant",
    summary = "List payments",
    description = "The merchant's payments, newest first, a page at a time.",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of payments.", body = PaymentPage),
        (status = 400, description = "`query_invalid`: an unknown or malformed query parameter; `text_invalid`.", body = ErrorResponse),
        (status = 422, description = "`limit_invalid`, `state_invalid` or `cursor_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn list_payments(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.merchant.list_payments(&m, &query).await?))
}

#[utoipa::path(
    get,
    path = "/v1/merchant/payments/{id}",
    tag = "merchant",
    summary = "One payment and its history",
    description = "The payment and every state change it went through.",
    params(PaymentPath),
    responses(
        (status = 200, description = "The payment.", body = PaymentDetail),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn get_payment(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<PaymentPath>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.merchant.get_payment(&m, &path.id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/capture",
    tag = "merchant",
    summary = "Capture an authorisation",
    description = "Captures all or part of a manual-capture authorisation before its hold expires. The body may be empty: then everything authorised is captured.",
    params(PaymentPath, IdempotencyKey),
    request_body(content = Option<AmountRequest>, description = "Optional; without `amount`, all that is authorised.", content_type = "application/json"),
    responses(
        (status = 200, description = "Captured.", body = PaymentView),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "The payment is not `authorised`, `payment_held_for_review`, `payment_busy`: another request is changing the payment, retry with the same key, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "More decimals than the payment's currency has, or `capture_exceeds_authorised`.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the capture.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn capture(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<PaymentPath>,
    key: IdempotencyKey,
    body: ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .merchant
        .capture(&m, &path.id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/void",
    tag = "merchant",
    summary = "Void an authorisation",
    description = "Releases a manual-capture authorisation that will not be captured. The body may be empty.",
    params(PaymentPath, IdempotencyKey),
    request_body(content = Option<VoidRequest>, description = "Optional and empty: `{}`.", content_type = "application/json"),
    responses(
        (status = 200, description = "Voided.", body = PaymentView),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "The payment is not `authorised`, `payment_busy`: another request is changing the payment, retry with the same key, or an idempotency conflict.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the void.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn void(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<PaymentPath>,
    key: IdempotencyKey,
    body: ApiJson<VoidRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .merchant
        .void(&m, &path.id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

/// A void takes nothing but may be sent `{}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {}

impl Command for VoidRequest {
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

#[utoipa::path(
    post,
    path = "/v1/merchant/payments/{id}/refunds",
    tag = "merchant",
    summary = "Refund a payment",
    description = "Refunds all or part of what was captured; several partial refunds may follow one another. The body may be empty: then all that is left is refunded.",
    params(PaymentPath, IdempotencyKey),
    request_body(content = Option<AmountRequest>, description = "Optional; without `amount`, all that is left.", content_type = "application/json"),
    responses(
        (status = 200, description = "Refunded: state `refunded` or `partially_refunded`.", body = PaymentView),
        (status = 404, description = "No such payment for this caller.", body = ErrorResponse),
        (status = 409, description = "`payment_not_refundable`, `payment_busy`: another request is changing the payment, retry with the same key, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "More decimals than the payment's currency has, or `refund_exceeds_captured`.", body = ErrorResponse),
        (status = 502, description = "The issuer refused the refund.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn refund(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<PaymentPath>,
    key: IdempotencyKey,
    body: ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .merchant
        .refund(&m, &path.id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The UTC day, `YYYY-MM-DD`.
    #[param(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2025-01-31")]
    date: String,
}

/// Whether `text` is a real day of the Gregorian calendar from year 1, as
/// `YYYY-MM-DD`: what the schema's `format: date` promises.
fn is_calendar_date(text: &str) -> bool {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    if year.len() != 4
        || month.len() != 2
        || day.len() != 2
        || !digits(year)
        || !digits(month)
        || !digits(day)
    {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) =
        (year.parse::<i32>(), month.parse::<u8>(), day.parse::<u8>())
    else {
        return false;
    };
    let Ok(month) = time::Month::try_from(month) else {
        return false;
    };
    year >= 1 && time::Date::from_calendar_date(year, month, day).is_ok()
}

#[utoipa::path(
    get,
    path = "/v1/merchant/reports/daily",
    tag = "merchant",
    summary = "Daily report",
    description = "Per store and currency, for one UTC day: payments captured (gross, fees) and refunds made, from the ledger.",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report.", body = DailyReport),
        (status = 400, description = "`query_invalid`: `date` is missing or another parameter is there; `text_invalid`.", body = ErrorResponse),
        (status = 422, description = "`date_invalid`: not a day of the calendar as `YYYY-MM-DD`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn daily_report(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    if !is_calendar_date(&query.date) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "date_invalid",
            "the date must be a day of the calendar as YYYY-MM-DD",
        ));
    }
    Ok(answer(
        s.services.merchant.daily_report(&m, &query.date).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/merchant/terminals",
    tag = "merchant",
    summary = "Terminals",
    description = "Each of the merchant's terminals with its store, status, a fraud flag if an operator has not cleared it, and the time of its last payment.",
    responses(
        (status = 200, description = "The terminals.", body = TerminalList),
    ),
    security(("merchant_key" = [])),
)]
pub async fn terminals(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.merchant.terminals(&m).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_date_is_a_day_of_the_calendar() {
        for good in ["2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31"] {
            assert!(super::is_calendar_date(good), "{good}");
        }
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-04-31",
            "0000-01-01",
            "26-1-1",
            "2026-1-01",
            "__main__",
            "",
            "2026-01-3a",
        ] {
            assert!(!super::is_calendar_date(bad), "{bad}");
        }
    }
}
