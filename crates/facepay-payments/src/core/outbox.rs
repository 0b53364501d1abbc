//! The webhook outbox: a change a merchant can subscribe to writes its
//! event in the transaction that makes the change
//! (`facepay_store::webhooks::append_event`), so the event exists if and
//! only if the change committed. Every service moves a payment through
//! [`transition`], never `payments::transition` alone.

use facepay_store::fraud::Claim;
use facepay_store::payments::{self, Payment, PaymentState};
use facepay_store::webhooks::{self, NewEvent};
use facepay_webhooks::EventType;
use serde::Serialize;
use utoipa::ToSchema;

use super::records::HELD_FOR_REVIEW;
use crate::api::{ClaimStateView, PaymentView};
use crate::error::Failure;

/// What a delivery's body holds: the same for every endpoint and every
/// attempt, as it was when the change committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEvent {
    /// `evt_…`: receivers deduplicate by it.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change committed, Unix time in milliseconds.
    pub created_at_ms: i64,
    pub merchant_id: String,
    pub data: EventData,
}

/// The object the event is about, as the merchant's API shows it: no
/// card number, phone number or face template is ever in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventData {
    /// For `payment.*` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// For `claim.*` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimEventView>,
}

/// A payer's dispute as its merchant sees it: its state and the money,
/// without the payer's own words or the operators' notes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaimEventView {
    pub id: String,
    pub payment_id: String,
    pub state: ClaimStateView,
    /// Paid back to the payer by the platform.
    pub compensated_minor: i64,
    /// Recovered from the merchant so far.
    pub recovered_minor: i64,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
}

impl ClaimEventView {
    fn of(c: &Claim) -> Result<Self, Failure> {
        Ok(Self {
            id: c.id.clone(),
            payment_id: c.payment_id.clone(),
            state: ClaimStateView::of(&c.state)?,
            compensated_minor: c.compensated_minor,
            recovered_minor: c.recovered_minor,
            opened_at_ms: c.opened_at_ms,
            updated_at_ms: c.updated_at_ms,
        })
    }
}

/// Moves a payment (`payments::transition_announced`) and writes the event the
/// move is, if it is one, in the caller's transaction.
pub(crate) async fn transition(
    tx: &mut facepay_store::Connection,
    before: &Payment,
    after: &Payment,
) -> Result<(), Failure> {
    let events: Vec<Payload> = Payload::of_move(before, after)?.into_iter().collect();
    payments::transition_announced(tx, before, after, &new_events(&events)).await?;
    Ok(())
}

/// A move committed on its own, without `BEGIN` and `COMMIT` on
/// PostgreSQL (`payments::transition_committed`): only a move within one
/// state, which no merchant subscribes to and so has no event to write
/// with it.
pub(crate) async fn transition_committed(
    store: &facepay_store::Store,
    before: &Payment,
    after: &Payment,
) -> Result<(), Failure> {
    assert!(
        payment_event(before, after)?.is_none(),
        "a move with an event is written in the event's transaction"
    );
    payments::transition_committed(store, before, after).await?;
    Ok(())
}

/// Two moves in one write, `before` to `via` to `after`
/// (`payments::transition_via`), with the event each move is.
pub(crate) async fn transition_via(
    tx: &mut facepay_store::Connection,
    before: &Payment,
    via: &Payment,
    after: &Payment,
) -> Result<(), Failure> {
    let events = [
        Payload::of_move(before, via)?,
        Payload::of_move(via, after)?,
    ];
    let events: Vec<Payload> = events.into_iter().flatten().collect();
    payments::transition_via(tx, before, via, after, &new_events(&events)).await?;
    Ok(())
}

/// Writes a claim's event, in the caller's transaction.
pub(crate) async fn claim_event(
    tx: &mut facepay_store::Connection,
    event_type: EventType,
    merchant_id: &str,
    claim: &Claim,
) -> Result<(), Failure> {
    let data = EventData {
        payment: None,
        claim: Some(ClaimEventView::of(claim)?),
    };
    let at_ms = claim.updated_at_ms;
    let event = Payload::new(event_type, merchant_id, &claim.id, data, at_ms)?;
    append_all(tx, &[event]).await
}

/// The event a payment's move is: a refund whenever more was refunded,
/// otherwise by the state it reaches.
fn payment_event(before: &Payment, after: &Payment) -> Result<Option<EventType>, Failure> {
    if after.refunded_minor > before.refunded_minor {
        return Ok(Some(EventType::PaymentRefunded));
    }
    let to = after.state()?;
    if before.state()? == to {
        return Ok(None);
    }
    Ok(match to {
        PaymentState::Authorised if after.reason == HELD_FOR_REVIEW => {
            Some(EventType::PaymentHeldForReview)
        }
        PaymentState::Authorised => Some(EventType::PaymentApproved),
        PaymentState::Captured => Some(EventType::PaymentCaptured),
        PaymentState::Declined | PaymentState::Failed => Some(EventType::PaymentFailed),
        PaymentState::Voided => Some(EventType::PaymentVoided),
        PaymentState::PartiallyRefunded | PaymentState::Refunded => {
            Some(EventType::PaymentRefunded)
        }
        PaymentState::Created | PaymentState::RequiresStepUp => None,
    })
}

/// An event ready to be written: its body serialised once.
struct Payload {
    event_type: EventType,
    id: String,
    merchant_id: String,
    resource_id: String,
    body: String,
    at_ms: i64,
}

impl Payload {
    fn new(
        event_type: EventType,
        merchant_id: &str,
        resource_id: &str,
        data: EventData,
        at_ms: i64,
    ) -> Result<Self, Failure> {
        let event = WebhookEvent {
            id: facepay_store::ids::new("evt")?,
            event_type,
            created_at_ms: at_ms,
            merchant_id: merchant_id.to_owned(),
            data,
        };
        let body = serde_json::to_string(&event).map_err(|e| {
            tracing::error!(error = %e, "webhook event serialisation");
            Failure::internal()
        })?;
        Ok(Self {
            event_type,
            id: event.id,
            merchant_id: event.merchant_id,
            resource_id: resource_id.to_owned(),
            body,
            at_ms,
        })
    }

    /// The event a payment's move is, if it is one.
    fn of_move(before: &Payment, after: &Payment) -> Result<Option<Self>, Failure> {
        let Some(event_type) = payment_event(before, after)? else {
            return Ok(None);
        };
        let data = EventData {
            payment: Some(PaymentView::of(after)?),
            claim: None,
        };
        let (merchant_id, at_ms) = (&after.merchant_id, after.updated_at_ms);
        Self::new(event_type, merchant_id, &after.id, data, at_ms).map(Some)
    }
}

async fn append_all(tx: &mut facepay_store::Connection, events: &[Payload]) -> Result<(), Failure> {
    webhooks::append_events(tx, &new_events(events)).await?;
    Ok(())
}

fn new_events(events: &[Payload]) -> Vec<NewEvent<'_>> {
    events
        .iter()
        .map(|e| NewEvent {
            id: &e.id,
            merchant_id: &e.merchant_id,
            event_type: e.event_type.as_str(),
            resource_id: &e.resource_id,
            payload: &e.body,
            created_at_ms: e.at_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(state: PaymentState, reason: &str, refunded_minor: i64) -> Payment {
        Payment {
            id: "pay_1".into(),
            terminal_id: "t".into(),
            store_id: "s".into(),
            merchant_id: "m".into(),
            idempotency_key: "k".into(),
            user_id: None,
            payment_method_id: None,
            amount_minor: 100,
            currency: "KRW".into(),
            capture_mode: "automatic".into(),
            authorised_minor: 100,
            captured_minor: 100,
            refunded_minor,
            fee_minor: 0,
            state: state.as_str().into(),
            reason: reason.into(),
            connector: None,
            issuer_ref: None,
            match_score: None,
            candidates: None,
            step_up_attempts: 0,
            liveness: None,
            expires_at_ms: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    /// A merchant with one endpoint for every event, and `p` stored as
    /// just received.
    async fn seeded(store: &facepay_store::Store, p: &Payment) {
        use facepay_store::parties::{self, Merchant, StoreRow};
        let mut tx = store.begin().await.unwrap();
        let merchant = Merchant {
            id: p.merchant_id.clone(),
            name: "Cafe".into(),
            fee_bps: 250,
            status: "active".into(),
        };
        parties::insert_merchant(&mut tx, &merchant, 1)
            .await
            .unwrap();
        let shop = StoreRow {
            id: p.store_id.clone(),
            merchant_id: p.merchant_id.clone(),
            name: "Gangnam".into(),
            country: "KR".into(),
            city: "Seoul".into(),
            currency: "KRW".into(),
            latitude_e6: 0,
            longitude_e6: 0,
        };
        parties::insert_store(&mut tx, &shop, 1).await.unwrap();
        parties::insert_terminal(&mut tx, &p.terminal_id, &p.store_id, &[7; 32], 1)
            .await
            .unwrap();
        payments::insert(&mut tx, p).await.unwrap();
        let endpoint = webhooks::Endpoint {
            id: "we_1".into(),
            merchant_id: p.merchant_id.clone(),
            url: "https://shop.example/hooks".into(),
            status: webhooks::ENABLED.into(),
            disabled_reason: None,
            secret_key_id: "dek_x".into(),
            secret_nonce: vec![0; 12],
            secret_ciphertext: vec![0; 48],
            failing_since_ms: None,
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        webhooks::insert_endpoint(&mut tx, &endpoint, &all, 16)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// The event is the move's: rolled back with it, committed with it,
    /// and a failed payment's is never an approval.
    #[tokio::test]
    async fn an_event_exists_exactly_when_its_move_commits() {
        let dir = tempfile::tempdir().unwrap();
        for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
            let backend = store.backend().name();
            let created = payment(PaymentState::Created, "received", 0);
            seeded(&store, &created).await;
            let approved = payment(PaymentState::Authorised, "approved:1", 0);
            let mut tx = store.begin().await.unwrap();
            transition(&mut tx, &created, &approved).await.unwrap();
            tx.rollback().await.unwrap();
            let mut conn = store.acquire().await.unwrap();
            let events = webhooks::events_about(&mut conn, "pay_1").await.unwrap();
            assert!(events.is_empty(), "{backend}: {events:?}");
            drop(conn);

            let declined = payment(PaymentState::Declined, "insufficient_funds", 0);
            let mut tx = store.begin().await.unwrap();
            transition(&mut tx, &created, &declined).await.unwrap();
            tx.commit().await.unwrap();
            let mut conn = store.acquire().await.unwrap();
            let events = webhooks::events_about(&mut conn, "pay_1").await.unwrap();
            let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(types, ["payment.failed"], "{backend}");
            let body: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
            assert_eq!(body["id"], events[0].id.as_str());
            assert_eq!(body["type"], "payment.failed");
            assert_eq!(body["merchant_id"], "m");
            assert_eq!(body["data"]["payment"]["state"], "declined");
            assert_eq!(body["data"]["payment"]["reason"], "insufficient_funds");
            assert!(body["data"].get("claim").is_none(), "{body}");
        }
    }

    #[test]
    fn each_move_a_merchant_hears_of_is_one_event_type() {
        use PaymentState::*;
        let event = |from: (PaymentState, i64), to: (PaymentState, &str, i64)| {
            payment_event(&payment(from.0, "", from.1), &payment(to.0, to.1, to.2)).unwrap()
        };
        let approved = Some(EventType::PaymentApproved);
        assert_eq!(event((Created, 0), (Authorised, "approved:1", 0)), approved);
        assert_eq!(
            event((RequiresStepUp, 0), (Authorised, "approved:1", 0)),
            approved
        );
        assert_eq!(
            event((Created, 0), (Authorised, HELD_FOR_REVIEW, 0)),
            Some(EventType::PaymentHeldForReview)
        );
        assert_eq!(
            event((Authorised, 0), (Captured, "captured", 0)),
            Some(EventType::PaymentCaptured)
        );
        for failed in [Declined, Failed] {
            assert_eq!(
                event((Created, 0), (failed, "x", 0)),
                Some(EventType::PaymentFailed)
            );
        }
        assert_eq!(
            event((Authorised, 0), (Voided, "voided", 0)),
            Some(EventType::PaymentVoided)
        );
        let refunded = Some(EventType::PaymentRefunded);
        assert_eq!(event((Captured, 0), (PartiallyRefunded, "r", 10)), refunded);
        // A second partial refund stays in its state and is still one.
        assert_eq!(
            event((PartiallyRefunded, 10), (PartiallyRefunded, "r", 20)),
            refunded
        );
        assert_eq!(
            event((PartiallyRefunded, 20), (Refunded, "r", 100)),
            refunded
        );
        // Nothing a merchant subscribes to: a step-up asked, a touch, a
        // capture that failed and left the hold.
        assert_eq!(event((Created, 0), (RequiresStepUp, "match_weak", 0)), None);
        assert_eq!(event((Created, 0), (Created, "received", 0)), None);
        assert_eq!(
            event((Authorised, 0), (Authorised, "capture_failed:x", 0)),
            None
        );
    }
}
