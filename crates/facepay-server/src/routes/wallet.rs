//! The payer's wallet: cards added, replaced, removed and chosen as the
//! default, without enrolling the face again.

use axum::extract::State;
use axum::response::Response;
use facepay_payments::api::{
    AddCardRequest, CardList, CardRemoved, PaymentMethodView, ReplaceCardRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use crate::edge::{
    ApiError, ApiJson, ApiPath, Command, ErrorResponse, IdempotencyKey, UserToken, answer,
};

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(my_cards, add_card))
        .routes(routes!(remove_card))
        .routes(routes!(replace_card))
        .routes(routes!(set_default_card))
}

impl Command for AddCardRequest {}

impl Command for ReplaceCardRequest {}

/// A card of the caller's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CardPath {
    /// The card's id (`pm_...`).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    id: String,
}

#[utoipa::path(
    get,
    path = "/v1/users/me/cards",
    tag = "users",
    summary = "The caller's cards",
    description = "The active cards, the default (the one face payments use) first; `expires_soon` marks a card that expires this month or next.",
    responses(
        (status = 200, description = "The cards.", body = CardList),
    ),
    security(("user_token" = [])),
)]
pub async fn my_cards(State(s): State<Shared>, user: UserToken) -> Result<Response, ApiError> {
    Ok(answer(s.services.identity.my_cards(&user.token).await?))
}

#[utoipa::path(
    post,
    path = "/v1/users/me/cards",
    tag = "users",
    summary = "Add a card",
    description = "Verifies the card once with its issuer by its security code (nothing is charged, the code is never stored) and keeps it split like enrolment's card: one share in the card vault, the other sealed in the core. It becomes the default if `make_default` is set or it is the caller's only card.",
    params(IdempotencyKey),
    request_body = AddCardRequest,
    responses(
        (status = 201, description = "The card, added.", body = PaymentMethodView),
        (status = 402, description = "The issuer declined the card's verification: `incorrect_security_code`, `expired_card`, `invalid_card` or `do_not_honour`. Nothing was added.", body = ErrorResponse),
        (status = 409, description = "`card_already_added`, `cards_limit` (a wallet holds at most 10 cards), or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "The card's number, expiry or security code was refused; `code` says which.", body = ErrorResponse),
        (status = 502, description = "`card_verification_failed`: the issuer could not verify the card. Nothing was added.", body = ErrorResponse),
        (status = 503, description = "`vault_locked` or `vault_unavailable`: the card vault cannot take the card now.", body = ErrorResponse),
        (status = 504, description = "`issuer_timeout`: retry with the same Idempotency-Key.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn add_card(
    State(s): State<Shared>,
    user: UserToken,
    key: IdempotencyKey,
    body: ApiJson<AddCardRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .identity
        .add_card(&user.token, &key.0, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/users/me/cards/{id}/replace",
    tag = "users",
    summary = "Replace a card",
    description = "A new card (verified and split as when added) takes the place of card `id` in one step, its default included. The old card's shares are destroyed in the core and in the vault: it cannot be joined again.",
    params(CardPath, IdempotencyKey),
    request_body = ReplaceCardRequest,
    responses(
        (status = 201, description = "The new card.", body = PaymentMethodView),
        (status = 402, description = "The issuer declined the new card's verification; the old card stays.", body = ErrorResponse),
        (status = 404, description = "`card_not_found`: the caller holds no such card.", body = ErrorResponse),
        (status = 409, description = "`card_already_added` (another card of the wallet), or an idempotency conflict.", body = ErrorResponse),
        (status = 422, description = "The new card's number, expiry or security code was refused; `code` says which.", body = ErrorResponse),
        (status = 502, description = "`card_verification_failed`; the old card stays.", body = ErrorResponse),
        (status = 503, description = "`vault_locked` or `vault_unavailable`.", body = ErrorResponse),
        (status = 504, description = "`issuer_timeout`: retry with the same Idempotency-Key.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn replace_card(
    State(s): State<Shared>,
    user: UserToken,
    ApiPath(path): ApiPath<CardPath>,
    key: IdempotencyKey,
    body: ApiJson<ReplaceCardRequest>,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .identity
        .replace_card(&user.token, &key.0, &path.id, &body.bytes)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    post,
    path = "/v1/users/me/cards/{id}/default",
    tag = "users",
    summary = "Pay with this card",
    description = "Card `id` becomes the one face payments use.",
    params(CardPath, IdempotencyKey),
    responses(
        (status = 200, description = "The card, now the default.", body = PaymentMethodView),
        (status = 404, description = "`card_not_found`: the caller holds no such card.", body = ErrorResponse),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn set_default_card(
    State(s): State<Shared>,
    user: UserToken,
    ApiPath(path): ApiPath<CardPath>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .identity
        .set_default_card(&user.token, &key.0, &path.id)
        .await?;
    Ok(answer(reply))
}

#[utoipa::path(
    delete,
    path = "/v1/users/me/cards/{id}",
    tag = "users",
    summary = "Remove a card",
    description = "Destroys both shares of the card's number (the core's with its data key, then the vault's). If it was the default, the oldest card left becomes the default; with no card left, face payments are refused with `no_payment_method` until one is added.",
    params(CardPath, IdempotencyKey),
    responses(
        (status = 200, description = "Removed.", body = CardRemoved),
        (status = 404, description = "`card_not_found`: the caller holds no such card.", body = ErrorResponse),
        (status = 409, description = "An idempotency conflict.", body = ErrorResponse),
    ),
    security(("user_token" = [])),
)]
pub async fn remove_card(
    State(s): State<Shared>,
    user: UserToken,
    ApiPath(path): ApiPath<CardPath>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    let reply = s
        .services
        .identity
        .remove_card(&user.token, &key.0, &path.id)
        .await?;
    Ok(answer(reply))
}
