//! The facepay server: the HTTP edge, the composition root (`root`) and the
//! background jobs, with its pages.
//!
//! HTTP lives here and nowhere below: the crates this calls know nothing
//! about requests. Inference is CPU-bound, so it runs on blocking threads,
//! on the payments' slots or on the slots of face work for callers who are
//! not terminals; further requests wait. Connections are served by
//! `listen`, which bounds how many and how long each may stay silent.

mod edge;
pub mod jobs;
mod listen;
mod observe;
mod openapi;
pub mod root;
mod routes;
pub mod seed;
mod stop;
mod web;

pub use stop::stop_requested;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::edge::{FaceWorkLimiter, RequestLimits};
use crate::root::App;
use axum::Router;
use facepay_hub::service::Hub;
use facepay_payments::Services;

pub struct AppState {
    /// `[server]`'s limits on each request.
    limits: Arc<RequestLimits>,
    /// The per-address buckets of face work without a credential.
    face_work: FaceWorkLimiter,
    services: Arc<Services>,
    hub: Arc<Hub>,
    /// The outside parties this server reaches only as simulators, as its
    /// configuration names them: shown on every answer and every page.
    simulated: Vec<String>,
    /// What Hyperswitch signs its webhooks with, when it is the connector.
    hyperswitch_webhook_secret: Option<String>,
}

impl AppState {
    /// The time as the services' clock tells it.
    fn now_ms(&self) -> i64 {
        self.services.clock().now_ms()
    }
}

pub fn router(app: &App) -> Router {
    let state = Arc::new(AppState {
        limits: Arc::new(RequestLimits::of(&app.config.server)),
        face_work: FaceWorkLimiter::of(&app.config),
        services: Arc::clone(&app.services),
        hub: Arc::clone(&app.hub),
        simulated: app.simulated_parts(),
        hyperswitch_webhook_secret: match &app.config.connector {
            facepay_config::Connector::Hyperswitch(h) => Some(h.webhook_secret.expose().to_owned()),
            facepay_config::Connector::SimulatedIssuer(_) => None,
        },
    });
    let (api, _) = routes::api().split_for_parts();
    api.merge(web::routes())
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            edge::limit_request,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            routes::service::mark_simulated,
        ))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// Serves `app`'s router on `listener` as `serve` does, with the
/// connection limits of its `[server]` and each request's peer address,
/// until `shutdown` completes; no background jobs. For benchmarks that
/// measure the server as it runs.
pub fn serve_on(
    app: &App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let limits = listen::ConnectionLimits::of(&app.config.server);
    listen::serve(listener, router(app), limits, shutdown)
}

pub async fn serve(app: App, address: SocketAddr) -> anyhow::Result<()> {
    observe::install();
    let listener = tokio::net::TcpListener::bind(address).await?;
    // Listening for the stop signals before saying it serves.
    let stop = stop::first_of_two_stops();
    tracing::info!(
        gallery = app.services.identity.gallery_len(),
        restored = app.services.identity.gallery_restored(),
        store = app.services.store().backend().name(),
        "facepay listening on http://{}",
        listener.local_addr()?
    );
    let root = format!("http://{}", listener.local_addr()?);
    println!(
        "facepay is serving:\n  terminal   {root}/terminal\n  app        {root}/app\n  \
         dashboard  {root}/dashboard\n  operator   {root}/operator\n  API docs   {root}/docs"
    );
    let jobs = jobs::start(&app);
    serve_on(&app, listener, stop).await;
    jobs.stop().await;
    // The next start reads this instead of opening every template.
    if let Err(e) = app.services.identity.write_snapshot_if_due().await {
        tracing::warn!(error = %e, "gallery snapshot not written at shutdown");
    }
    app.services.store().close().await;
    Ok(())
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod edge_tests;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod fraud_tests;
#[cfg(test)]
mod hub_tests;
#[cfg(test)]
mod idempotency_tests;
#[cfg(test)]
mod import_tests;
#[cfg(test)]
mod isolation_tests;
#[cfg(test)]
mod loyalty_tests;
#[cfg(test)]
mod nodes_tests;
#[cfg(test)]
mod onboarding_tests;
#[cfg(test)]
mod phones_tests;
#[cfg(test)]
mod reversal_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wallet_tests;
#[cfg(test)]
mod webhook_tests;
