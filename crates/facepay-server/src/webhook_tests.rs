//! Merchants' webhooks over HTTP, on SQLite and (when CI gives one)
//! PostgreSQL: endpoints registered with the API key, every kind of event
//! written with its change and delivered, signed, to a real receiver on
//! loopback that fails its first deliveries; an endpoint that fails for a
//! day disabled, shown so, enabled again and redelivered to.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use facepay_face::FaceEngine;
use facepay_payments::{Config, DecisionPolicy, WebhookConfig};
use facepay_store::{Clock, ManualClock, Store, SystemClock};
use facepay_webhooks::{Destinations, EventType, HEADER_EVENT_ID, HEADER_SIGNATURE};
use serde_json::{Value, json};

use crate::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment};
use crate::seed::{self as demo, OperatorFile};

/// Worker passes a test drives at most before it gives up waiting.
const PASSES_MAX: usize = 400;
const ALL_EVENTS: [&str; 8] = [
    "payment.approved",
    "payment.failed",
    "payment.captured",
    "payment.voided",
    "payment.refunded",
    "payment.held_for_review",
    "claim.opened",
    "claim.decided",
];

/// What the receiver was sent, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature: String,
    body: String,
    status: u16,
    /// The app's clock when it arrived, in seconds.
    at_s: i64,
}

/// A merchant's receiver on loopback: answers 500 to its first
/// `fail_first` requests and while `failing` is set, 200 otherwise, and
/// notes whether two deliveries of one event were ever under way at once.
struct Inbox {
    clock: Arc<ManualClock>,
    fail_first: usize,
    failing: AtomicBool,
    requests: AtomicUsize,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlapped: AtomicBool,
}

impl Inbox {
    async fn start(clock: Arc<ManualClock>, fail_first: usize) -> (Arc<Inbox>, String) {
        let inbox = Arc::new(Inbox {
            clock,
            fail_first,
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            overlapped: AtomicBool::new(false),
        });
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(Arc::clone(&inbox));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (inbox, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Event ids answered 200, with how many times each.
    fn accepted(&self) -> BTreeMap<String, usize> {
        let mut accepted = BTreeMap::new();
        for r in self.received().into_iter().filter(|r| r.status == 200) {
            *accepted.entry(r.event_id).or_default() += 1;
        }
        accepted
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let event_id = header(HEADER_EVENT_ID);
    {
        let mut in_flight = inbox.in_flight.lock().unwrap();
        let n = in_flight.entry(event_id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            inbox.overlapped.store(true, Ordering::SeqCst);
        }
    }
    // Long enough for a second delivery of the same event to overlap, if
    // the worker ever sent one.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let n = inbox.requests.fetch_add(1, Ordering::SeqCst);
    let status = if n < inbox.fail_first || inbox.failing.load(Ordering::SeqCst) {
        500
    } else {
        200
    };
    inbox.received.lock().unwrap().push(Received {
        event_id: event_id.clone(),
        signature: header(HEADER_SIGNATURE),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        at_s: inbox.clock.now_ms() / 1000,
    });
    *inbox.in_flight.lock().unwrap().entry(event_id).or_default() -= 1;
    StatusCode::from_u16(status).unwrap()
}

fn config(retry_delay_first_ms: i64) -> Config {
    Config {
        webhooks: WebhookConfig {
            destinations: Destinations::Loopback,
            concurrency: 4,
            retry_delay_first_ms,
            ..WebhookConfig::default()
        },
        ..lenient(DecisionPolicy::default())
    }
}

async fn harness(
    store: &Store,
    engine: &Arc<FaceEngine>,
    dir: &Path,
    retry_delay_first_ms: i64,
) -> (Harness, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let h = Harness::with_clock(
        store.clone(),
        Arc::clone(engine),
        Arc::clone(&clock) as Arc<dyn Clock>,
        dir,
        config(retry_delay_first_ms),
    )
    .await;
    (h, clock)
}

/// When the next pending delivery of an enabled endpoint is due.
async fn next_due(store: &Store) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT CAST(MIN(d.next_attempt_at_ms) AS BIGINT) FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.state = 'pending' AND e.status = 'enabled'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// Runs the worker, moving the clock to each next due delivery, until
/// nothing is due any more.
async fn drive(h: &Harness, clock: &ManualClock, store: &Store) {
    for _ in 0..PASSES_MAX {
        let leased = h.app.services.webhooks.deliver_due().await.unwrap();
        if leased > 0 {
            continue;
        }
        match next_due(store).await {
            Some(at_ms) if at_ms > clock.now_ms() => clock.set(at_ms),
            _ => return,
        }
    }
    panic!("deliveries still due after {PASSES_MAX} passes");
}

/// Every event in the outbox: (id, type, resource, payload), oldest first.
async fn outbox(store: &Store) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT id, event_type, resource_id, payload FROM webhook_events \
         ORDER BY created_at_ms, id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

async fn create_endpoint(h: &Harness, body: Value) -> (u16, Value) {
    h.merchant("POST", "/v1/merchant/webhooks", "-", Some(body))
        .await
}

/// Refusals, each with its code, that register nothing.
async fn refusals(h: &Harness, url: &str, backend: &str) {
    for (body, status, code) in [
        (
            json!({"url": "ftp://127.0.0.1/x", "events": ["payment.approved"]}),
            422,
            "webhook_url_not_http",
        ),
        (
            json!({"url": "not a url", "events": ["payment.approved"]}),
            422,
            "webhook_url_invalid",
        ),
        // Loopback only in tests: a public host is refused.
        (
            json!({"url": "https://shop.example/hooks", "events": ["payment.approved"]}),
            422,
            "webhook_url_not_allowed",
        ),
        (
            json!({"url": url, "events": ["payment.nope"]}),
            422,
            "webhook_event_unknown",
        ),
        (
            json!({"url": url, "events": []}),
            422,
            "webhook_events_invalid",
        ),
        (
            json!({"url": url, "events": ["claim.opened", "claim.opened"]}),
            422,
            "webhook_events_invalid",
        ),
        (json!({"url": url}), 400, "json_invalid_field"),
    ] {
        let (got, answer) = create_endpoint(h, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{backend}: {answer}"
        );
    }
    let (status, list) = h.merchant("GET", "/v1/merchant/webhooks", "-", None).await;
    assert_eq!(
        (status, list["endpoints"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

/// Each kind of event, through the API: returns the payments' ids and
/// the claim's, with the event types each should have produced.
async fn make_every_event(
    h: &Harness,
    data: &Path,
    backend: &str,
) -> Vec<(String, Vec<&'static str>)> {
    let (status, obama, _) = h
        .enrol(
            "we-e1",
            &enrolment(
                "+821012345678",
                "face_recognition/obama.jpg",
                "4242424242424242",
            ),
        )
        .await;
    assert_eq!(status, 201, "{backend}: {obama}");
    let token = obama["token"].as_str().unwrap().to_owned();
    let (status, biden, _) = h
        .enrol(
            "we-e2",
            &enrolment(
                "+821098765432",
                "face_recognition/biden.jpg",
                "4000000000009995",
            ),
        )
        .await;
    assert_eq!(status, 201, "{backend}: {biden}");

    let (status, p1, _) = h
        .pay("we-p1", &payment("face_recognition/obama2.jpg", "4500"))
        .await;
    assert_eq!(
        (status, p1["state"].as_str()),
        (201, Some("captured")),
        "{backend}: {p1}"
    );
    let mut manual = payment("face_recognition/obama3.jpg", "100");
    manual["capture"] = json!("manual");
    let (status, p2, _) = h.pay("we-p2", &manual).await;
    assert_eq!(
        (status, p2["state"].as_str()),
        (201, Some("authorised")),
        "{backend}: {p2}"
    );
    let id = |p: &Value| p["id"].as_str().unwrap().to_owned();
    let (p1_id, p2_id) = (id(&p1), id(&p2));
    let (status, _) = h
        .merchant(
            "POST",
            &format!("/v1/merchant/payments/{p2_id}/void"),
            "we-v",
            None,
        )
        .await;
    assert_eq!(status, 200, "{backend}");
    let (status, p3, _) = h
        .pay("we-p3", &payment("face_recognition/obama3.jpg", "300"))
        .await;
    assert_eq!(status, 201, "{backend}: {p3}");
    let p3_id = id(&p3);
    let refunds = format!("/v1/merchant/payments/{p3_id}/refunds");
    for (key, body) in [("we-r1", Some(json!({"amount": "100"}))), ("we-r2", None)] {
        let (status, refunded) = h.merchant("POST", &refunds, key, body).await;
        assert_eq!(status, 200, "{backend}: {refunded}");
    }
    let (status, p4, _) = h
        .pay("we-p4", &payment("face_recognition/biden.jpg", "200"))
        .await;
    assert_eq!(
        (status, p4["payment"]["state"].as_str()),
        (402, Some("declined")),
        "{backend}: {p4}"
    );
    let claim_id = claim_and_accept(h, data, &token, &p1_id, backend).await;
    vec![
        (
            p1_id,
            vec!["payment.approved", "payment.captured", "payment.refunded"],
        ),
        (p2_id, vec!["payment.approved", "payment.voided"]),
        (
            p3_id,
            vec![
                "payment.approved",
                "payment.captured",
                "payment.refunded",
                "payment.refunded",
            ],
        ),
        (id(&p4["payment"]), vec!["payment.failed"]),
        (claim_id, vec!["claim.opened", "claim.decided"]),
    ]
}

/// The payer disputes `payment_id` and an operator accepts: the claim's
/// two events, and the pay-back's refund.
async fn claim_and_accept(
    h: &Harness,
    data: &Path,
    token: &str,
    payment_id: &str,
    backend: &str,
) -> String {
    let body = json!({"payment_id": payment_id, "reason": "that was not me"});
    let (status, claim) = h
        .with_bearer(token, "POST", "/v1/users/me/claims", "we-c1", Some(body))
        .await;
    assert_eq!(status, 201, "{backend}: {claim}");
    let claim_id = claim["id"].as_str().unwrap().to_owned();
    let operator: OperatorFile =
        serde_json::from_str(&std::fs::read_to_string(demo::operator_file(data)).unwrap()).unwrap();
    let (status, accepted) = h
        .with_bearer(
            &operator.operator_key,
            "POST",
            &format!("/v1/operator/claims/{claim_id}"),
            "we-d1",
            Some(json!({"action": "accept"})),
        )
        .await;
    assert_eq!(status, 200, "{backend}: {accepted}");
    claim_id
}

/// Every delivery the receiver saw is signed as docs/webhooks.md says,
/// carries its event's id and body, and nothing of a card, a phone or a
/// face.
fn check_deliveries(received: &[Received], secret: &str, backend: &str) {
    for r in received {
        let signed =
            facepay_webhooks::verify(secret.as_bytes(), &r.signature, r.body.as_bytes(), r.at_s);
        assert_eq!(signed, Ok(()), "{backend}: {r:?}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], r.event_id.as_str(), "{backend}");
        assert!(EventType::parse(body["type"].as_str().unwrap()).is_some());
        for secret_thing in [
            "4242424242424242",
            "4000000000009995",
            "12345678",
            "98765432",
            "receipt",
            "template",
            "phone",
        ] {
            assert!(
                !r.body.contains(secret_thing),
                "{backend}: {secret_thing} in {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn every_event_is_delivered_signed_once_through_a_failing_receiver() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let (h, clock) = harness(&store, &engine, &data, 1_000).await;
        let (inbox, url) = Inbox::start(Arc::clone(&clock), 3).await;
        refusals(&h, &url, backend).await;
        let (status, created) =
            create_endpoint(&h, json!({"url": url, "events": ALL_EVENTS})).await;
        assert_eq!(status, 201, "{backend}: {created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{created}");
        let endpoint_id = created["endpoint"]["id"].as_str().unwrap().to_owned();

        let expected = make_every_event(&h, &data, backend).await;
        // A replayed payment changes nothing, so it writes no event.
        let before_replay = outbox(&store).await.len();
        let (status, _, _) = h
            .pay("we-p1", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 201);
        assert_eq!(outbox(&store).await.len(), before_replay, "{backend}");

        drive(&h, &clock, &store).await;
        let events = outbox(&store).await;
        for (resource, types) in &expected {
            // Events of one change share their time: compared as sets.
            let mut written: Vec<&str> = events
                .iter()
                .filter(|e| &e.2 == resource)
                .map(|e| e.1.as_str())
                .collect();
            written.sort();
            let mut types = types.clone();
            types.sort();
            assert_eq!(written, types, "{backend}: {resource}");
        }
        let total: usize = expected.iter().map(|(_, t)| t.len()).sum();
        assert_eq!(events.len(), total, "{backend}");

        // Every event delivered, exactly once; the three refused ones
        // tried again; never two deliveries of one event at once.
        let accepted = inbox.accepted();
        let ids: Vec<&String> = events.iter().map(|e| &e.0).collect();
        assert_eq!(accepted.keys().collect::<Vec<_>>(), {
            let mut sorted = ids.clone();
            sorted.sort();
            sorted
        });
        assert!(
            accepted.values().all(|n| *n == 1),
            "{backend}: {accepted:?}"
        );
        let received = inbox.received();
        assert_eq!(received.len(), total + 3, "{backend}");
        assert!(!inbox.overlapped.load(Ordering::SeqCst), "{backend}");
        check_deliveries(&received, &secret, backend);
        for (id, _, _, payload) in &events {
            let delivered = received.iter().find(|r| &r.event_id == id).unwrap();
            assert_eq!(
                &delivered.body, payload,
                "{backend}: the body is the outbox's"
            );
        }

        // The delivery log through the API: the refused first attempts,
        // then the success.
        let path = format!("/v1/merchant/webhooks/{endpoint_id}/deliveries");
        let (status, list) = h.merchant("GET", &path, "-", None).await;
        assert_eq!(status, 200, "{list}");
        let deliveries = list["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), total.min(20));
        assert!(
            deliveries.iter().all(|d| d["state"] == "delivered"),
            "{list}"
        );
        let retried: Vec<&Value> = deliveries.iter().filter(|d| d["attempts"] == 2).collect();
        assert_eq!(retried.len(), 3, "{backend}: {list}");
        for d in retried {
            let codes: Vec<&Value> = d["log"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["status_code"])
                .collect();
            assert_eq!(codes, [&json!(200), &json!(500)], "{d}");
        }
        super::flow_tests::verify(&store).await;
    }
}

#[tokio::test]
async fn an_endpoint_failing_for_a_day_is_disabled_then_enabled_and_redelivered() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        // The default schedule: a first wait of a minute.
        let (h, clock) = harness(&store, &engine, &dir.path().join(backend), 60_000).await;
        let (inbox, url) = Inbox::start(Arc::clone(&clock), 0).await;
        inbox.failing.store(true, Ordering::SeqCst);
        let events = json!({"url": url, "events": ["payment.captured", "payment.approved"]});
        let (status, created) = create_endpoint(&h, events).await;
        assert_eq!(status, 201, "{backend}: {created}");
        let endpoint_id = created["endpoint"]["id"].as_str().unwrap().to_owned();
        let (status, _, _) = h
            .enrol(
                "wd-e1",
                &enrolment(
                    "+821012345678",
                    "face_recognition/obama.jpg",
                    "4242424242424242",
                ),
            )
            .await;
        assert_eq!(status, 201);
        let started_ms = clock.now_ms();
        let (status, paid, _) = h
            .pay("wd-p1", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 201, "{paid}");

        drive(&h, &clock, &store).await;
        // Tried on the schedule for a day, then given up; the endpoint
        // disabled, and the API says why.
        let per_event = inbox.received().len() / 2;
        assert!(
            (8..=9).contains(&per_event),
            "{backend}: {per_event} attempts each"
        );
        assert!(clock.now_ms() - started_ms >= 24 * 3_600_000, "{backend}");
        let (_, list) = h.merchant("GET", "/v1/merchant/webhooks", "-", None).await;
        let endpoint = &list["endpoints"][0];
        assert_eq!(endpoint["enabled"], false, "{backend}: {list}");
        let reason = endpoint["disabled_reason"].as_str().unwrap();
        assert!(
            reason.contains("failed for 24 hours") && reason.contains("HTTP 500"),
            "{reason}"
        );
        let path = format!("/v1/merchant/webhooks/{endpoint_id}/deliveries");
        let (_, deliveries) = h.merchant("GET", &path, "-", None).await;
        // The failure that disabled the endpoint ended its delivery's day.
        let failed = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["state"] == "failed")
            .unwrap_or_else(|| panic!("{backend}: none given up: {deliveries}"));
        let event_id = failed["event_id"].as_str().unwrap().to_owned();
        // Both may have ended in the same pass; one still waiting is sent
        // when the endpoint is enabled again.
        let mut expected: Vec<String> = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["state"] == "pending" || d["event_id"] == event_id.as_str())
            .map(|d| d["event_id"].as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        let redeliver = format!("{path}/{event_id}/redeliver");
        let (status, refused) = h.merchant("POST", &redeliver, "-", None).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("webhook_endpoint_disabled"))
        );

        // The receiver is mended: enabled again (what still waited is due
        // at once), the given-up event sent again by hand, and they arrive.
        inbox.failing.store(false, Ordering::SeqCst);
        let endpoint_path = format!("/v1/merchant/webhooks/{endpoint_id}");
        let (status, enabled) = h
            .merchant("PATCH", &endpoint_path, "-", Some(json!({"enabled": true})))
            .await;
        assert_eq!(
            (status, &enabled["enabled"]),
            (200, &json!(true)),
            "{enabled}"
        );
        assert_eq!(enabled["disabled_reason"], Value::Null);
        // Nothing to change: `null`, or no body, answers it as it is.
        for body in [Some(Value::Null), None] {
            let (status, same) = h.merchant("PATCH", &endpoint_path, "-", body).await;
            assert_eq!((status, &same["enabled"]), (200, &json!(true)), "{same}");
        }
        let (status, queued) = h.merchant("POST", &redeliver, "-", None).await;
        assert_eq!(
            (status, queued["state"].as_str()),
            (202, Some("pending")),
            "{queued}"
        );
        let (status, missing) = h
            .merchant("POST", &format!("{path}/evt_nope/redeliver"), "-", None)
            .await;
        assert_eq!(
            (status, missing["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        drive(&h, &clock, &store).await;
        let accepted: Vec<String> = inbox.accepted().into_keys().collect();
        assert_eq!(accepted, expected, "{backend}");

        // Deleted: gone from the list, its secret's data key destroyed.
        let keys_before = data_keys(&store).await;
        let (status, deleted) = h.merchant("DELETE", &endpoint_path, "-", None).await;
        assert_eq!(
            (status, &deleted["deleted"]),
            (200, &json!(true)),
            "{deleted}"
        );
        assert_eq!(data_keys(&store).await, keys_before - 1, "{backend}");
        let (status, _) = h.merchant("DELETE", &endpoint_path, "-", None).await;
        assert_eq!(status, 404);
    }
}

async fn data_keys(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM data_keys")
        .fetch_one(store.pool())
        .await
        .unwrap()
}
