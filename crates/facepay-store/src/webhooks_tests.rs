//! The outbox and the delivery lease, on SQLite and (when configured)
//! PostgreSQL.

use crate::webhooks::{self, Endpoint, NewEvent, Outcome, Redelivery};
use crate::{Store, testing};

const LEASE_MS: i64 = 30_000;

async fn merchant(store: &Store, id: &str) {
    sqlx::query(
        "INSERT INTO merchants (id, name, fee_bps, status, created_at_ms) \
         VALUES ($1, 'Cafe', 250, 'active', 1)",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
}

fn endpoint(id: &str, merchant_id: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        merchant_id: merchant_id.into(),
        url: format!("https://shop.example/{id}"),
        status: webhooks::ENABLED.into(),
        disabled_reason: None,
        secret_key_id: format!("dek_{id}"),
        secret_nonce: vec![1; 12],
        secret_ciphertext: vec![2; 48],
        failing_since_ms: None,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn event<'a>(id: &'a str, merchant_id: &'a str, event_type: &'a str) -> NewEvent<'a> {
    NewEvent {
        id,
        merchant_id,
        event_type,
        resource_id: "pay_1",
        payload: r#"{"id":"x"}"#,
        created_at_ms: 100,
    }
}

async fn count(conn: &mut crate::Connection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_is_queued_for_each_subscribed_enabled_endpoint_and_only_with_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        merchant(&store, "m1").await;
        merchant(&store, "m2").await;
        let mut conn = store.acquire().await.unwrap();
        // Nobody listens yet: nothing is kept.
        let queued = webhooks::append_event(&mut conn, &event("evt_0", "m1", "payment.captured"))
            .await
            .unwrap();
        assert_eq!((queued, count(&mut conn, "webhook_events").await), (0, 0));
        for (id, merchant_id, types) in [
            ("we_a", "m1", &["payment.captured", "payment.refunded"][..]),
            ("we_b", "m1", &["payment.captured"][..]),
            ("we_c", "m1", &["claim.opened"][..]),
            ("we_d", "m2", &["payment.captured"][..]),
        ] {
            let inserted =
                webhooks::insert_endpoint(&mut conn, &endpoint(id, merchant_id), types, 3)
                    .await
                    .unwrap();
            assert!(inserted, "{backend}: {id}");
        }
        // The merchant's bound holds.
        let fourth = webhooks::insert_endpoint(&mut conn, &endpoint("we_e", "m1"), &[], 3)
            .await
            .unwrap();
        assert!(!fourth, "{backend}");
        assert!(
            webhooks::disable(&mut conn, "we_b", "paused", 5)
                .await
                .unwrap()
        );

        let queued = webhooks::append_event(&mut conn, &event("evt_1", "m1", "payment.captured"))
            .await
            .unwrap();
        assert_eq!(
            queued, 1,
            "{backend}: we_a only (we_b disabled, we_c, we_d not)"
        );
        drop(conn);

        // Rolled back with the change it reports: no event, no delivery.
        let mut tx = store.begin().await.unwrap();
        let queued = webhooks::append_event(&mut tx, &event("evt_2", "m1", "payment.refunded"))
            .await
            .unwrap();
        assert_eq!(queued, 1);
        tx.rollback().await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        assert!(
            webhooks::events_about(&mut conn, "pay_1")
                .await
                .unwrap()
                .iter()
                .all(|e| e.id == "evt_1")
        );
        assert_eq!(count(&mut conn, "webhook_deliveries").await, 1, "{backend}");
        assert_eq!(
            webhooks::event_types(&mut conn, "we_a").await.unwrap(),
            ["payment.captured", "payment.refunded"]
        );
        // Two at once, one subscribed: one kept, one delivery, for it.
        let both = [
            event("evt_3", "m1", "payment.approved"),
            event("evt_4", "m1", "payment.captured"),
        ];
        let queued = webhooks::append_events(&mut conn, &both).await.unwrap();
        assert_eq!(queued, 1, "{backend}");
        assert_eq!(count(&mut conn, "webhook_events").await, 2, "{backend}");
        assert_eq!(count(&mut conn, "webhook_deliveries").await, 2, "{backend}");
    }
}

#[tokio::test]
async fn a_leased_delivery_is_held_by_one_worker_until_its_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        merchant(&store, "m1").await;
        let mut conn = store.acquire().await.unwrap();
        webhooks::insert_endpoint(&mut conn, &endpoint("we_a", "m1"), &["payment.voided"], 8)
            .await
            .unwrap();
        webhooks::append_event(&mut conn, &event("evt_1", "m1", "payment.voided"))
            .await
            .unwrap();
        // Not due before the event's time.
        assert!(
            webhooks::claim_due(&mut conn, 99, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .is_empty()
        );
        let first = webhooks::claim_due(&mut conn, 100, LEASE_MS, 10)
            .await
            .unwrap();
        let due = &first.due;
        assert_eq!(due.len(), 1, "{backend}");
        assert_eq!((due[0].event_id.as_str(), due[0].attempts), ("evt_1", 0));
        assert_eq!(due[0].payload, r#"{"id":"x"}"#);
        // Another worker finds nothing while the lease holds.
        assert!(
            webhooks::claim_due(&mut conn, 100 + LEASE_MS - 1, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .is_empty()
        );
        assert_eq!(
            webhooks::redeliver(&mut conn, "we_a", "evt_1", 200)
                .await
                .unwrap(),
            Redelivery::InFlight
        );
        // The first worker died: after its lease another takes over, and
        // the first one's late result no longer moves the delivery.
        let second = webhooks::claim_due(&mut conn, 100 + LEASE_MS + 1, LEASE_MS, 10)
            .await
            .unwrap();
        assert_eq!(second.due.len(), 1, "{backend}");
        let attempt = |attempt, at_ms| webhooks::AttemptRow {
            event_id: "evt_1".into(),
            endpoint_id: "we_a".into(),
            attempt,
            status_code: Some(500),
            latency_ms: 3,
            error: Some("HTTP 500".into()),
            at_ms,
        };
        let late = webhooks::record_attempt(
            &mut conn,
            &first.owner,
            &attempt(1, 40_000),
            Outcome::Delivered,
        )
        .await
        .unwrap();
        assert!(!late, "{backend}");
        let held = webhooks::record_attempt(
            &mut conn,
            &second.owner,
            &attempt(1, 40_000),
            Outcome::RetryAt(100_000),
        )
        .await
        .unwrap();
        assert!(held, "{backend}");
        let rows = webhooks::deliveries(&mut conn, "we_a", 10).await.unwrap();
        assert_eq!(
            (
                rows[0].state.as_str(),
                rows[0].attempts,
                rows[0].next_attempt_at_ms
            ),
            ("pending", 1, 100_000)
        );
        assert!(
            webhooks::claim_due(&mut conn, 99_999, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .is_empty()
        );
        assert_eq!(
            webhooks::claim_due(&mut conn, 100_000, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .len(),
            1
        );
        assert_eq!(
            webhooks::attempts(&mut conn, "we_a", "evt_1", 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }
}

#[tokio::test]
async fn concurrent_workers_never_lease_the_same_delivery() {
    const EVENTS: usize = 60;
    const WORKERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        merchant(&store, "m1").await;
        let mut conn = store.acquire().await.unwrap();
        webhooks::insert_endpoint(&mut conn, &endpoint("we_a", "m1"), &["payment.failed"], 8)
            .await
            .unwrap();
        let ids: Vec<String> = (0..EVENTS).map(|i| format!("evt_{i:03}")).collect();
        for id in &ids {
            webhooks::append_event(&mut conn, &event(id, "m1", "payment.failed"))
                .await
                .unwrap();
        }
        drop(conn);
        let workers = (0..WORKERS).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let mut conn = store.acquire().await.unwrap();
                    let due = webhooks::claim_due(&mut conn, 1_000, LEASE_MS, 7)
                        .await
                        .unwrap();
                    if due.due.is_empty() {
                        return taken;
                    }
                    taken.extend(due.due.into_iter().map(|d| d.event_id));
                }
            })
        });
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        all.sort();
        assert_eq!(all, ids, "{backend}: each delivery leased exactly once");
    }
}

#[tokio::test]
async fn failures_disable_enable_redeliver_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        merchant(&store, "m1").await;
        let mut conn = store.acquire().await.unwrap();
        webhooks::insert_endpoint(&mut conn, &endpoint("we_a", "m1"), &["claim.opened"], 8)
            .await
            .unwrap();
        assert_eq!(
            webhooks::endpoint_failed(&mut conn, "we_a", 10)
                .await
                .unwrap(),
            10
        );
        assert_eq!(
            webhooks::endpoint_failed(&mut conn, "we_a", 20)
                .await
                .unwrap(),
            10
        );
        webhooks::endpoint_succeeded(&mut conn, "we_a")
            .await
            .unwrap();
        assert_eq!(
            webhooks::endpoint_failed(&mut conn, "we_a", 30)
                .await
                .unwrap(),
            30
        );

        webhooks::append_event(&mut conn, &event("evt_1", "m1", "claim.opened"))
            .await
            .unwrap();
        let lease = webhooks::claim_due(&mut conn, 100, LEASE_MS, 10)
            .await
            .unwrap();
        let gave_up = webhooks::AttemptRow {
            event_id: "evt_1".into(),
            endpoint_id: "we_a".into(),
            attempt: lease.due[0].attempts + 1,
            status_code: None,
            latency_ms: 10_000,
            error: Some("timed out".into()),
            at_ms: 150,
        };
        webhooks::record_attempt(&mut conn, &lease.owner, &gave_up, Outcome::GaveUp)
            .await
            .unwrap();
        assert!(
            webhooks::claim_due(&mut conn, 10_000, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .is_empty()
        );
        // A disabled endpoint's deliveries wait; enabling makes them due.
        assert_eq!(
            webhooks::redeliver(&mut conn, "we_a", "evt_1", 200)
                .await
                .unwrap(),
            Redelivery::Queued
        );
        assert!(
            webhooks::disable(&mut conn, "we_a", "failing", 300)
                .await
                .unwrap()
        );
        assert!(
            !webhooks::disable(&mut conn, "we_a", "again", 301)
                .await
                .unwrap()
        );
        assert!(
            webhooks::claim_due(&mut conn, 400, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .is_empty()
        );
        webhooks::enable(&mut conn, "we_a", 500).await.unwrap();
        let e = webhooks::endpoint(&mut conn, "m1", "we_a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((e.status.as_str(), e.failing_since_ms), ("enabled", None));
        assert!(
            webhooks::endpoint(&mut conn, "m2", "we_a")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            webhooks::claim_due(&mut conn, 500, LEASE_MS, 10)
                .await
                .unwrap()
                .due
                .len(),
            1
        );
        assert_eq!(
            webhooks::redeliver(&mut conn, "we_a", "evt_9", 600)
                .await
                .unwrap(),
            Redelivery::NotFound
        );

        // Purged once old, unless an attempt holds it.
        assert_eq!(
            webhooks::purge(&mut conn, 1_000, 600, 100).await.unwrap(),
            1,
            "{backend}: the attempt only"
        );
        assert_eq!(
            webhooks::purge(&mut conn, 1_000, 600 + LEASE_MS, 100)
                .await
                .unwrap(),
            2
        );
        assert_eq!(count(&mut conn, "webhook_events").await, 0);
        webhooks::delete_endpoint(&mut conn, "we_a").await.unwrap();
        assert_eq!(count(&mut conn, "webhook_subscriptions").await, 0);
        assert!(
            webhooks::endpoints(&mut conn, "m1")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
