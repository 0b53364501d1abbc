//! The merchant's webhook endpoints, with its API key: register, list,
//! change and delete them, and see and repeat their deliveries.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::webhooks::{
    DeliveryList, DeliveryView, EndpointCreated, EndpointDeleted, EndpointList, EndpointRequest,
    EndpointUpdate, EndpointView,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{ApiError, ApiJson, ApiPath, Command, ErrorResponse, MerchantKey, answer};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(update, delete))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

impl Command for EndpointRequest {}

impl Command for EndpointUpdate {
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

/// One of the caller's endpoints.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointPath {
    /// The endpoint id (`we_…`).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

/// One event's delivery to one of the caller's endpoints.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// The endpoint id (`we_…`).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
    /// The event id (`evt_…`).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    event_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/merchant/webhooks",
    tag = "webhooks",
    summary = "Register a webhook endpoint",
    description = "Deliveries of the chosen event types are POSTed to `url`, signed with the secret this answer shows once (see the `Facepay-Signature` header in docs/webhooks.md). A repeated request makes a second endpoint, which the list shows and DELETE removes.",
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "The endpoint and its signing secret, shown this once.", body = EndpointCreated),
        (status = 409, description = "`webhook_endpoints_max`: the merchant has as many endpoints as it may.", body = ErrorResponse),
        (status = 422, description = "`webhook_url_invalid`, `webhook_url_not_http` (not http or https), `webhook_url_not_allowed` (an address this server's `webhooks.destinations` forbids), `webhook_event_unknown` or `webhook_events_invalid` (none, or one named twice).", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    body: ApiJson<EndpointRequest>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.webhooks.create(&m, &body.bytes).await?))
}

#[utoipa::path(
    get,
    path = "/v1/merchant/webhooks",
    tag = "webhooks",
    summary = "Webhook endpoints",
    description = "The merchant's endpoints, oldest first, without their secrets: each enabled or not, and if not why (the merchant's choice, or the server's after a day of failed deliveries).",
    responses(
        (status = 200, description = "The endpoints.", body = EndpointList),
    ),
    security(("merchant_key" = [])),
)]
pub async fn list(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.webhooks.list(&m).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/merchant/webhooks/{id}",
    tag = "webhooks",
    summary = "Change a webhook endpoint",
    description = "Enables or disables it, or changes its event types; what the body leaves out stays. Enabling makes the deliveries waiting for it due at once, with a new retry window.",
    params(EndpointPath),
    request_body(content = Option<EndpointUpdate>, description = "What to change.", content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as it now is.", body = EndpointView),
        (status = 404, description = "No such endpoint of the caller's.", body = ErrorResponse),
        (status = 422, description = "`webhook_event_unknown` or `webhook_events_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn update(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<EndpointPath>,
    body: ApiJson<EndpointUpdate>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .webhooks
        .update(&m, &path.id, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    delete,
    path = "/v1/merchant/webhooks/{id}",
    tag = "webhooks",
    summary = "Delete a webhook endpoint",
    description = "The endpoint, the deliveries waiting for it and their log go; its secret is destroyed.",
    params(EndpointPath),
    responses(
        (status = 200, description = "Deleted.", body = EndpointDeleted),
        (status = 404, description = "No such endpoint of the caller's.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn delete(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<EndpointPath>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.webhooks.delete(&m, &path.id).await?))
}

#[utoipa::path(
    get,
    path = "/v1/merchant/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "Deliveries of a webhook endpoint",
    description = "The latest deliveries, newest first, each with its state and its latest attempts (status code, latency, error).",
    params(EndpointPath),
    responses(
        (status = 200, description = "The deliveries.", body = DeliveryList),
        (status = 404, description = "No such endpoint of the caller's.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn deliveries(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<EndpointPath>,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.webhooks.deliveries(&m, &path.id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/webhooks/{id}/deliveries/{event_id}/redeliver",
    tag = "webhooks",
    summary = "Deliver an event again",
    description = "Makes the event's delivery to this endpoint due at once, delivered, failed or waiting, with a new retry window. The receiver may see the event again: it deduplicates by the event id.",
    params(DeliveryPath),
    responses(
        (status = 202, description = "Due now.", body = DeliveryView),
        (status = 404, description = "No such endpoint of the caller's, or no delivery of this event to it.", body = ErrorResponse),
        (status = 409, description = "`delivery_in_flight`: an attempt is under way; `webhook_endpoint_disabled`: enable the endpoint first.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn redeliver(
    State(s): State<Shared>,
    MerchantKey(m): MerchantKey,
    ApiPath(path): ApiPath<DeliveryPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .webhooks
        .redeliver(&m, &path.id, &path.event_id)
        .await?;
    Ok(answer(reply))
}
