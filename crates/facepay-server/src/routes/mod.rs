//! Every route of the API, each registered once with its OpenAPI
//! description (`utoipa_axum::routes!`), one module per resource: the
//! router and `/openapi.json` are made from the same list and cannot drift.

mod connectors;
mod hub;
mod hub_members;
mod keys;
mod loyalty;
mod merchant;
mod onboarding;
mod operator;
pub mod service;
mod terminal;
mod users;
mod wallet;
mod webhooks;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub type Shared = Arc<AppState>;

/// The API's routes with the document that describes them (before
/// `openapi::finish` adds what every route shares).
pub fn api() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(users::routes())
        .merge(wallet::routes())
        .merge(terminal::routes())
        .merge(merchant::routes())
        .merge(loyalty::routes())
        .merge(operator::routes())
        .merge(onboarding::routes())
        .merge(keys::routes())
        .merge(hub::routes())
        .merge(hub_members::routes())
        .merge(service::routes())
        .merge(connectors::routes())
        .merge(webhooks::routes())
}
