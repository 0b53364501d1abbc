//! What acquirers send facepay: Hyperswitch's webhooks.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use facepay_connector::hyperswitch::webhook::{self, SIGNATURE_HEADER, WebhookError};
use facepay_payments::api::EventReceipt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{ApiError, ErrorResponse, answer};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(hyperswitch_webhook))
}

#[utoipa::path(
    post,
    path = "/v1/connectors/hyperswitch/webhooks",
    tag = "connectors",
    summary = "Hyperswitch webhooks",
    description = "An event Hyperswitch sends about a payment or refund, signed with HMAC-SHA512 of the raw body under the business profile's `payment_response_hash_key` (hex, in `x-webhook-signature-512`). The signature is checked before anything is read. An event is acted on once: a repeat (Hyperswitch retries until it gets a 2xx) is acknowledged as `duplicate`. A payment Hyperswitch cancelled while facepay holds it authorised is voided after reading it back from Hyperswitch; other events only inform. Answered 404 when the server's connector is not Hyperswitch.",
    request_body(content = String, content_type = "application/json", description = "Hyperswitch's `OutgoingWebhook`, as it signed it."),
    params(("x-webhook-signature-512" = String, Header, description = "HMAC-SHA512 of the body, 128 hex digits.")),
    responses(
        (status = 200, description = "Handled, or handled before (`duplicate`).", body = EventReceipt),
        (status = 400, description = "`webhook_signature_missing`, `webhook_signature_malformed` or `webhook_body_invalid`.", body = ErrorResponse),
        (status = 401, description = "`webhook_signature_invalid`: the body is not what Hyperswitch signed.", body = ErrorResponse),
        (status = 404, description = "`connector_not_configured`: this server does not use Hyperswitch.", body = ErrorResponse),
        (status = 413, description = "`webhook_body_too_large`.", body = ErrorResponse),
        (status = 502, description = "The void Hyperswitch's cancellation calls for failed; Hyperswitch delivers the event again.", body = ErrorResponse),
        (status = 504, description = "Hyperswitch did not answer the read-back; it delivers the event again.", body = ErrorResponse),
    ),
    security(()),
)]
pub async fn hyperswitch_webhook(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A delivery without its signature is refused as such on any server.
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| refused(WebhookError::SignatureMissing))?;
    let Some(secret) = s.hyperswitch_webhook_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "connector_not_configured",
            "this server does not use Hyperswitch",
        ));
    };
    let event = webhook::verify_and_parse(Some(signature), &body, secret).map_err(refused)?;
    Ok(answer(s.services.merchant.hyperswitch_event(&event).await?))
}

/// Every refusal is a 4xx, so Hyperswitch retries while the configuration
/// is put right; a missing secret cannot happen here (the configuration
/// requires one).
fn refused(e: WebhookError) -> ApiError {
    let status = match e {
        WebhookError::SignatureInvalid => StatusCode::UNAUTHORIZED,
        WebhookError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        WebhookError::SecretMissing => StatusCode::NOT_FOUND,
        WebhookError::SignatureMissing
        | WebhookError::SignatureMalformed
        | WebhookError::BodyInvalid(_) => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}
