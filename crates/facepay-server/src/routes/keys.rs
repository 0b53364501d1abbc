//! API keys and operators: a merchant's admin key manages the merchant's
//! keys; an admin operator makes a merchant's first keys, adds operators
//! with their role and manages operator keys. A secret is shown once.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::access::{
    KeyList, KeyView, Manager, MerchantKeyRequest, NewKeyView, NewOperator, OperatorKeyRequest,
    OperatorList, OperatorRequest, RotateRequest, Rotation,
};
use facepay_store::access::KeyKind;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use super::onboarding::MerchantPath;
use crate::edge::{
    ApiError, ApiJson, ApiPath, Command, ErrorResponse, IdempotencyKey, MerchantCaller,
    OperatorKey, answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_my_keys, create_my_key))
        .routes(routes!(rotate_my_key))
        .routes(routes!(revoke_my_key))
        .routes(routes!(list_merchant_keys, create_merchant_key))
        .routes(routes!(revoke_merchant_key))
        .routes(routes!(list_operators, create_operator))
        .routes(routes!(list_operator_keys, create_operator_key))
        .routes(routes!(rotate_operator_key))
        .routes(routes!(revoke_operator_key))
}

impl Command for MerchantKeyRequest {}

impl Command for OperatorKeyRequest {}

impl Command for OperatorRequest {}

impl Command for RotateRequest {
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

/// A key.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

#[utoipa::path(
    get,
    path = "/v1/merchant/keys",
    tag = "keys",
    summary = "The merchant's API keys",
    description = "Every key, oldest first, without secrets. Needs an `admin` key.",
    responses((status = 200, description = "The keys.", body = KeyList)),
    security(("merchant_key" = [])),
)]
pub async fn list_my_keys(
    State(s): State<Shared>,
    MerchantCaller(m): MerchantCaller,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .list_keys(KeyKind::Merchant, Some(&m.merchant.id))
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/keys",
    tag = "keys",
    summary = "Make an API key",
    description = "A key with a scope: `read` (payments, reports, terminals, loyalty), `refund_capture` (also captures, voids and refunds) or `admin` (everything, keys included). Its secret is in this answer only. Needs an `admin` key.",
    params(IdempotencyKey),
    request_body = MerchantKeyRequest,
    responses(
        (status = 201, description = "The key and its secret, shown once.", body = NewKeyView),
        (status = 409, description = "`too_many_keys`, `key_revoked` (a replay of a key revoked since), or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`expiry_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn create_my_key(
    State(s): State<Shared>,
    MerchantCaller(m): MerchantCaller,
    key: IdempotencyKey,
    body: ApiJson<MerchantKeyRequest>,
) -> Result<Response, ApiError> {
    let merchant_id = m.merchant.id.clone();
    let reply = s
        .services
        .access
        .create_merchant_key(Manager::Merchant(&m), &merchant_id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/keys/{id}/rotate",
    tag = "keys",
    summary = "Rotate an API key",
    description = "A new key with the same scope and label; the old one keeps working for the overlap (a day unless `overlap_s` says otherwise), then expires. Needs an `admin` key.",
    params(KeyPath, IdempotencyKey),
    request_body(content = Option<RotateRequest>, description = "Optional.", content_type = "application/json"),
    responses(
        (status = 201, description = "The new key and its secret, shown once, and the old key's end.", body = Rotation),
        (status = 404, description = "No such key of this merchant.", body = ErrorResponse),
        (status = 409, description = "`key_not_rotatable`: revoked, expired or rotated already; `too_many_keys`: the owner holds more live keys than the limit already; `key_revoked`; or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`overlap_invalid`.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn rotate_my_key(
    State(s): State<Shared>,
    MerchantCaller(m): MerchantCaller,
    ApiPath(path): ApiPath<KeyPath>,
    key: IdempotencyKey,
    body: ApiJson<RotateRequest>,
) -> Result<Response, ApiError> {
    let merchant_id = m.merchant.id.clone();
    let reply = s
        .services
        .access
        .rotate_key(
            Manager::Merchant(&m),
            KeyKind::Merchant,
            Some(&merchant_id),
            &path.id,
            &key.0,
            &body.bytes,
        )
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/merchant/keys/{id}/revoke",
    tag = "keys",
    summary = "Revoke an API key",
    description = "At once: the key is refused from now on (401 `key_revoked`). A key cannot revoke itself. Needs an `admin` key.",
    params(KeyPath),
    responses(
        (status = 200, description = "The key, revoked.", body = KeyView),
        (status = 404, description = "No such key of this merchant.", body = ErrorResponse),
        (status = 409, description = "`key_in_use`: the key this request came with.", body = ErrorResponse),
    ),
    security(("merchant_key" = [])),
)]
pub async fn revoke_my_key(
    State(s): State<Shared>,
    MerchantCaller(m): MerchantCaller,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Response, ApiError> {
    let merchant_id = m.merchant.id.clone();
    let reply = s
        .services
        .access
        .revoke_key(
            Manager::Merchant(&m),
            KeyKind::Merchant,
            Some(&merchant_id),
            &path.id,
        )
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    get,
    path = "/v1/operator/merchants/{id}/keys",
    tag = "keys",
    summary = "A merchant's API keys",
    params(MerchantPath),
    responses(
        (status = 200, description = "The keys, without secrets.", body = KeyList),
        (status = 404, description = "`unknown_merchant`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn list_merchant_keys(
    State(s): State<Shared>,
    OperatorKey(_): OperatorKey,
    ApiPath(path): ApiPath<MerchantPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .list_keys(KeyKind::Merchant, Some(&path.id))
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/merchants/{id}/keys",
    tag = "keys",
    summary = "Make an API key for a merchant",
    description = "How a new merchant gets its first key. The secret is in this answer only.",
    params(MerchantPath, IdempotencyKey),
    request_body = MerchantKeyRequest,
    responses(
        (status = 201, description = "The key and its secret, shown once.", body = NewKeyView),
        (status = 404, description = "No such merchant.", body = ErrorResponse),
        (status = 409, description = "`merchant_closed`, `too_many_keys`, `key_revoked`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`expiry_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_merchant_key(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<MerchantPath>,
    key: IdempotencyKey,
    body: ApiJson<MerchantKeyRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .create_merchant_key(Manager::Operator(&op), &path.id, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

/// A merchant's key.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MerchantKeyPath {
    /// The merchant id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
    /// The key id.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    key_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/operator/merchants/{id}/keys/{key_id}/revoke",
    tag = "keys",
    summary = "Revoke a merchant's API key",
    params(MerchantKeyPath),
    responses(
        (status = 200, description = "The key, revoked.", body = KeyView),
        (status = 404, description = "No such key of this merchant.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn revoke_merchant_key(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<MerchantKeyPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .revoke_key(
            Manager::Operator(&op),
            KeyKind::Merchant,
            Some(&path.id),
            &path.key_id,
        )
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    get,
    path = "/v1/operator/operators",
    tag = "keys",
    summary = "Operators and their roles",
    responses((status = 200, description = "By name.", body = OperatorList)),
    security(("operator_key" = [])),
)]
pub async fn list_operators(
    State(s): State<Shared>,
    OperatorKey(_): OperatorKey,
) -> Result<Response, ApiError> {
    Ok(answer(s.services.access.list_operators().await?))
}

#[utoipa::path(
    post,
    path = "/v1/operator/operators",
    tag = "keys",
    summary = "Add an operator",
    description = "An operator with a role: `support` (reads only), `risk` (also claims, reviews, the blocklist and terminal flags) or `admin` (everything: onboarding, operators, keys, hub windows); and their first key, whose secret is in this answer only.",
    params(IdempotencyKey),
    request_body = OperatorRequest,
    responses(
        (status = 201, description = "The operator and their key, shown once.", body = NewOperator),
        (status = 409, description = "`operator_exists`, `key_revoked`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`operator_name_invalid` or `expiry_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_operator(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    key: IdempotencyKey,
    body: ApiJson<OperatorRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .create_operator(&op, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    get,
    path = "/v1/operator/keys",
    tag = "keys",
    summary = "Operators' keys",
    description = "Every operator's keys, oldest first, without secrets; `scope` is the operator's role.",
    responses((status = 200, description = "The keys.", body = KeyList)),
    security(("operator_key" = [])),
)]
pub async fn list_operator_keys(
    State(s): State<Shared>,
    OperatorKey(_): OperatorKey,
) -> Result<Response, ApiError> {
    Ok(answer(
        s.services.access.list_keys(KeyKind::Operator, None).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/operator/keys",
    tag = "keys",
    summary = "Make a key for an operator",
    params(IdempotencyKey),
    request_body = OperatorKeyRequest,
    responses(
        (status = 201, description = "The key and its secret, shown once.", body = NewKeyView),
        (status = 404, description = "No such operator.", body = ErrorResponse),
        (status = 409, description = "`too_many_keys`, `key_revoked`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`operator_name_invalid`, `expiry_invalid` or `text_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn create_operator_key(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    key: IdempotencyKey,
    body: ApiJson<OperatorKeyRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .create_operator_key(&op, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/keys/{id}/rotate",
    tag = "keys",
    summary = "Rotate an operator's key",
    description = "A new key for the same operator; the old one keeps working for the overlap (a day unless `overlap_s` says otherwise), then expires.",
    params(KeyPath, IdempotencyKey),
    request_body(content = Option<RotateRequest>, description = "Optional.", content_type = "application/json"),
    responses(
        (status = 201, description = "The new key and its secret, shown once, and the old key's end.", body = Rotation),
        (status = 404, description = "No such key.", body = ErrorResponse),
        (status = 409, description = "`key_not_rotatable`, `too_many_keys`, `key_revoked`, or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "`overlap_invalid`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn rotate_operator_key(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<KeyPath>,
    key: IdempotencyKey,
    body: ApiJson<RotateRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .rotate_key(
            Manager::Operator(&op),
            KeyKind::Operator,
            None,
            &path.id,
            &key.0,
            &body.bytes,
        )
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/operator/keys/{id}/revoke",
    tag = "keys",
    summary = "Revoke an operator's key",
    description = "At once. A key cannot revoke itself.",
    params(KeyPath),
    responses(
        (status = 200, description = "The key, revoked.", body = KeyView),
        (status = 404, description = "No such key.", body = ErrorResponse),
        (status = 409, description = "`key_in_use`: the key this request came with.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn revoke_operator_key(
    State(s): State<Shared>,
    OperatorKey(op): OperatorKey,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .access
        .revoke_key(Manager::Operator(&op), KeyKind::Operator, None, &path.id)
        .await?;
    Ok(answer(reply))
}
