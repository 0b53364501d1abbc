//! What the webhook routes take and answer.

use facepay_store::webhooks::{AttemptRow, DeliveryRow, Endpoint};
use facepay_webhooks::EventType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Failure;

/// `POST /v1/merchant/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Where deliveries are POSTed: `http://` or `https://`, printable
    /// ASCII (a name in another script in punycode), without credentials
    /// or a fragment, on an address the server's `webhooks.destinations`
    /// allows.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[!-~]+$",
        example = "https://shop.example/facepay/hooks"
    )]
    pub url: String,
    /// The event types to deliver, each once.
    #[schema(value_type = std::collections::BTreeSet<EventType>, min_items = 1, max_items = 8)]
    pub events: Vec<String>,
}

/// `PATCH /v1/merchant/webhooks/{id}`: what to change; the rest stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    /// `false` stops deliveries; `true` resumes them, with what waits
    /// due at once and a new retry window (also after the server disabled
    /// the endpoint for failing).
    pub enabled: Option<bool>,
    /// The event types to deliver from now on.
    #[schema(value_type = Option<std::collections::BTreeSet<EventType>>, min_items = 1, max_items = 8)]
    pub events: Option<Vec<String>>,
}

/// An endpoint, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub enabled: bool,
    /// Why deliveries are stopped: the merchant's choice, or the server's
    /// after every delivery failed for a day (with the last error).
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (Unix ms); absent while they
    /// succeed.
    pub failing_since_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl EndpointView {
    pub(crate) fn of(e: &Endpoint, events: &[String]) -> Result<Self, Failure> {
        let events = events
            .iter()
            .map(|t| {
                EventType::parse(t).ok_or_else(|| {
                    tracing::error!(event_type = %t, "unknown stored webhook event type");
                    Failure::internal()
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: e.id.clone(),
            url: e.url.clone(),
            events,
            enabled: e.status == facepay_store::webhooks::ENABLED,
            disabled_reason: e.disabled_reason.clone(),
            failing_since_ms: e.failing_since_ms,
            created_at_ms: e.created_at_ms,
            updated_at_ms: e.updated_at_ms,
        })
    }
}

/// A new endpoint and its signing secret, shown this once: keep it to
/// check each delivery's `Facepay-Signature`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    pub endpoint: EndpointView,
    #[schema(example = "whsec_5f0c…")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointDeleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt, or under way.
    Pending,
    /// A 2xx answered it.
    Delivered,
    /// Every attempt of its retry window failed.
    Failed,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// Why it did not deliver; absent when it did.
    pub error: Option<String>,
    pub at_ms: i64,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            at_ms: a.at_ms,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub event_id: String,
    pub event_type: EventType,
    pub state: DeliveryState,
    /// An attempt is under way now.
    pub in_flight: bool,
    pub attempts: i64,
    /// When a pending delivery is tried next (Unix ms).
    pub next_attempt_at_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// The latest attempts, newest first.
    pub log: Vec<AttemptView>,
}

impl DeliveryView {
    pub(crate) fn of(d: DeliveryRow, log: Vec<AttemptRow>, now_ms: i64) -> Result<Self, Failure> {
        let state = match d.state.as_str() {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            other => {
                tracing::error!(state = other, "unknown stored delivery state");
                return Err(Failure::internal());
            }
        };
        let pending = matches!(state, DeliveryState::Pending);
        Ok(Self {
            event_type: EventType::parse(&d.event_type).ok_or_else(Failure::internal)?,
            event_id: d.event_id,
            state,
            in_flight: d.lease_until_ms > now_ms,
            attempts: d.attempts,
            next_attempt_at_ms: pending.then_some(d.next_attempt_at_ms),
            delivered_at_ms: d.delivered_at_ms,
            created_at_ms: d.created_at_ms,
            log: log.into_iter().map(AttemptView::from).collect(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
}
