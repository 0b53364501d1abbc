//! Merchants' webhooks: the endpoints a merchant registers with its API
//! key (the signing secret sealed like every secret at rest, shown once),
//! and the delivery worker (`deliver.rs`) that sends what the outbox
//! (`core::transition`, `core::claim_event`) holds.

mod deliver;
mod views;

use std::collections::BTreeSet;
use std::sync::Arc;

use facepay_store::parties::Merchant;
use facepay_store::webhooks::{self as store, Endpoint, Redelivery};
use facepay_store::{audit, keys as data_keys};
use facepay_webhooks::{EventType, Sender, SenderConfig};
use zeroize::Zeroizing;

pub use views::{
    AttemptView, DeliveryList, DeliveryState, DeliveryView, EndpointCreated, EndpointDeleted,
    EndpointList, EndpointRequest, EndpointUpdate, EndpointView,
};

use crate::core::{Core, Reply, commit, parse_json};
use crate::error::Failure;

/// Endpoints one merchant may have.
pub const ENDPOINTS_PER_MERCHANT_MAX: i64 = 16;
/// Deliveries one listing shows, newest first.
pub const DELIVERIES_LISTED_MAX: i64 = 20;
/// Attempts shown with each listed delivery, newest first.
pub const ATTEMPTS_LISTED_MAX: i64 = 10;

/// The associated data a secret is sealed with: it opens for its own
/// endpoint only.
fn secret_aad(endpoint_id: &str) -> String {
    format!("webhook_secret:{endpoint_id}")
}

fn actor(m: &Merchant) -> String {
    format!("merchant:{}", m.id)
}

pub struct Webhooks {
    core: Arc<Core>,
    sender: Sender,
}

impl Webhooks {
    pub fn new(core: Arc<Core>) -> Self {
        let config = &core.config.webhooks;
        let sender = Sender::new(SenderConfig {
            destinations: config.destinations,
            timeout_ms: config.timeout_ms,
        });
        Self { core, sender }
    }

    /// `POST /v1/merchant/webhooks`: a new endpoint and its secret, which
    /// is stored sealed and never shown again.
    pub async fn create(&self, m: &Merchant, body: &[u8]) -> Result<Reply, Failure> {
        let request: EndpointRequest = parse_json(body)?;
        let destinations = self.core.config.webhooks.destinations;
        let url = facepay_webhooks::check_url(&request.url, destinations)
            .map_err(|e| Failure::unprocessable(e.code(), e.to_string()))?;
        let events = event_types(&request.events)?;
        let now = self.core.now_ms();
        let id = facepay_store::ids::new("we")?;
        let secret = facepay_webhooks::new_secret().map_err(|e| {
            tracing::error!(error = %e, "random generator failed");
            Failure::random_unavailable()
        })?;
        let sealed = self
            .core
            .envelope
            .seal(secret.as_bytes(), &secret_aad(&id))?;
        let endpoint = Endpoint {
            id: id.clone(),
            merchant_id: m.id.clone(),
            url: url.to_string(),
            status: store::ENABLED.to_owned(),
            disabled_reason: None,
            secret_key_id: sealed.key_id,
            secret_nonce: sealed.nonce,
            secret_ciphertext: sealed.ciphertext,
            failing_since_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let names: Vec<&str> = events.iter().map(|t| t.as_str()).collect();
        let mut tx = self.core.begin().await?;
        data_keys::insert(&mut tx, &sealed.data_key, now).await?;
        if !store::insert_endpoint(&mut tx, &endpoint, &names, ENDPOINTS_PER_MERCHANT_MAX).await? {
            return Err(Failure::conflict(
                "webhook_endpoints_max",
                format!(
                    "a merchant has at most {ENDPOINTS_PER_MERCHANT_MAX} webhook endpoints; \
                     delete one first"
                ),
            ));
        }
        audit::append(&mut tx, now, &actor(m), "webhook_created", &id).await?;
        commit(tx).await?;
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        Reply::json(
            201,
            &EndpointCreated {
                endpoint: EndpointView::of(&endpoint, &names)?,
                secret: secret.as_str().to_owned(),
            },
        )
    }

    /// `GET /v1/merchant/webhooks`.
    pub async fn list(&self, m: &Merchant) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let endpoints = store::endpoints(&mut conn, &m.id).await?;
        let mut views = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            let events = store::event_types(&mut conn, &e.id).await?;
            views.push(EndpointView::of(e, &events)?);
        }
        Reply::json(200, &EndpointList { endpoints: views })
    }

    /// `PATCH /v1/merchant/webhooks/{id}`: enable, disable or change the
    /// event types.
    pub async fn update(&self, m: &Merchant, id: &str, body: &[u8]) -> Result<Reply, Failure> {
        let request: EndpointUpdate = if body.is_empty() {
            EndpointUpdate::default()
        } else {
            // `null` changes nothing, as an empty body does.
            parse_json::<Option<EndpointUpdate>>(body)?.unwrap_or_default()
        };
        let events = request.events.as_deref().map(event_types).transpose()?;
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        store::endpoint(&mut tx, &m.id, id)
            .await?
            .ok_or_else(|| Failure::not_found("webhook endpoint"))?;
        if let Some(events) = &events {
            let names: Vec<&str> = events.iter().map(|t| t.as_str()).collect();
            store::set_event_types(&mut tx, id, &names).await?;
        }
        match request.enabled {
            Some(true) => store::enable(&mut tx, id, now).await?,
            Some(false) => {
                store::disable(&mut tx, id, "disabled by the merchant", now).await?;
            }
            None => {}
        }
        audit::append(&mut tx, now, &actor(m), "webhook_updated", id).await?;
        let endpoint = store::endpoint(&mut tx, &m.id, id)
            .await?
            .ok_or_else(Failure::internal)?;
        let events = store::event_types(&mut tx, id).await?;
        commit(tx).await?;
        Reply::json(200, &EndpointView::of(&endpoint, &events)?)
    }

    /// `DELETE /v1/merchant/webhooks/{id}`: the endpoint, what waits for
    /// it and its log go, and its secret's data key is destroyed.
    pub async fn delete(&self, m: &Merchant, id: &str) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        let endpoint = store::endpoint(&mut tx, &m.id, id)
            .await?
            .ok_or_else(|| Failure::not_found("webhook endpoint"))?;
        store::delete_endpoint(&mut tx, id).await?;
        data_keys::delete(&mut tx, &endpoint.secret_key_id).await?;
        audit::append(&mut tx, now, &actor(m), "webhook_deleted", id).await?;
        commit(tx).await?;
        Reply::json(
            200,
            &EndpointDeleted {
                id: id.to_owned(),
                deleted: true,
            },
        )
    }

    /// `GET /v1/merchant/webhooks/{id}/deliveries`: the latest deliveries
    /// with their latest attempts.
    pub async fn deliveries(&self, m: &Merchant, id: &str) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        store::endpoint(&mut conn, &m.id, id)
            .await?
            .ok_or_else(|| Failure::not_found("webhook endpoint"))?;
        let rows = store::deliveries(&mut conn, id, DELIVERIES_LISTED_MAX).await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let log = store::attempts(&mut conn, id, &row.event_id, ATTEMPTS_LISTED_MAX).await?;
            deliveries.push(DeliveryView::of(row, log, now)?);
        }
        Reply::json(200, &DeliveryList { deliveries })
    }

    /// `POST /v1/merchant/webhooks/{id}/deliveries/{event_id}/redeliver`:
    /// the delivery is due at once, whatever became of it, with a new
    /// retry window.
    pub async fn redeliver(
        &self,
        m: &Merchant,
        id: &str,
        event_id: &str,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        let endpoint = store::endpoint(&mut tx, &m.id, id)
            .await?
            .ok_or_else(|| Failure::not_found("webhook endpoint"))?;
        if store::delivery(&mut tx, id, event_id).await?.is_none() {
            return Err(Failure::not_found("delivery"));
        }
        if endpoint.status != store::ENABLED {
            return Err(Failure::conflict(
                "webhook_endpoint_disabled",
                "this endpoint is disabled; enable it first (PATCH with enabled: true)",
            ));
        }
        match store::redeliver(&mut tx, id, event_id, now).await? {
            Redelivery::Queued => {}
            Redelivery::InFlight => {
                return Err(Failure::conflict(
                    "delivery_in_flight",
                    "an attempt of this delivery is under way; its outcome shows shortly",
                ));
            }
            Redelivery::NotFound => return Err(Failure::not_found("delivery")),
        }
        audit::append(&mut tx, now, &actor(m), "webhook_redelivered", event_id).await?;
        let row = store::delivery(&mut tx, id, event_id)
            .await?
            .ok_or_else(Failure::internal)?;
        let log = store::attempts(&mut tx, id, event_id, ATTEMPTS_LISTED_MAX).await?;
        commit(tx).await?;
        Reply::json(202, &DeliveryView::of(row, log, now)?)
    }

    /// The endpoint's secret, opened from its sealed copy.
    fn open_secret(
        &self,
        key_id: &str,
        data_key: Option<&facepay_store::keys::DataKeyRow>,
        endpoint_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        Ok(self.core.envelope.open(
            key_id,
            data_key,
            nonce,
            ciphertext,
            &secret_aad(endpoint_id),
        )?)
    }
}

/// The event types a request names: one to all of them, each known and
/// named once.
fn event_types(names: &[String]) -> Result<Vec<EventType>, Failure> {
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let t = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            Failure::unprocessable(
                "webhook_event_unknown",
                format!(
                    "no event type {:?}; use {}",
                    name.chars().take(40).collect::<String>(),
                    known.join(", ")
                ),
            )
        })?;
        types.push(t);
    }
    let distinct: BTreeSet<&str> = types.iter().map(|t| t.as_str()).collect();
    if types.is_empty() || distinct.len() != types.len() {
        return Err(Failure::unprocessable(
            "webhook_events_invalid",
            format!("name 1 to {} event types, each once", EventType::ALL.len()),
        ));
    }
    Ok(types)
}
