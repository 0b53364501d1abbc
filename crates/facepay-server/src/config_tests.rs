//! The server as a configuration builds it. A configuration that names no
//! simulator takes no card through one: with Hyperswitch named and no
//! Hyperswitch to reach, the card's verification at enrolment is refused
//! with a clear code, nobody is enrolled, and nothing reaches the ledger.

use std::sync::Arc;

use facepay_config::Config;
use facepay_connector::hyperswitch::webhook;
use facepay_models::ModelStore;
use facepay_store::{SystemClock, ledger};

use super::flow_tests::{Harness, enrolment, payment};
use tower::ServiceExt;

use crate::root::App;
use crate::routes::service::SIMULATED_HEADER;

/// A loopback port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A configuration naming Hyperswitch, at a loopback port nothing answers.
fn hyperswitch_config(dir: &std::path::Path) -> Config {
    let text = format!(
        "[store]\ndata_dir = {data:?}\n\n[face]\nliveness = \"lenient\"\n\n[risk]\npreset = \"demo\"\n\n\
         [connector]\nkind = \"hyperswitch\"\n\n[connector.hyperswitch]\n\
         base_url = \"http://127.0.0.1:{port}\"\napi_key = {{ env = \"TEST_HS_API_KEY\" }}\n\
         webhook_secret = {{ env = \"TEST_HS_WEBHOOK_SECRET\" }}\ntimeout_ms = 500\n",
        data = dir.display().to_string(),
        port = closed_port(),
    );
    let env = [
        ("TEST_HS_API_KEY".to_owned(), "snd_test_key".to_owned()),
        (
            "TEST_HS_WEBHOOK_SECRET".to_owned(),
            WEBHOOK_SECRET.to_owned(),
        ),
    ];
    Config::from_toml(&text, None, env).unwrap()
}

const WEBHOOK_SECRET: &str = "whsec_test";

#[tokio::test]
async fn a_configuration_naming_no_simulator_refuses_a_payment_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let config = hyperswitch_config(dir.path());
    assert!(
        config.simulated_parts().is_empty(),
        "{:?}",
        config.simulated_parts()
    );
    let app = App::build(config, &ModelStore::open_default(), Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(app.simulated_parts().is_empty());
    let h = Harness::from_app(app, dir.path()).await;
    let request = axum::http::Request::get("/v1/deployment")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = h.router().oneshot(request).await.unwrap();
    assert!(response.headers().get(SIMULATED_HEADER).is_none());
    let (status, body, _) = h.get("/v1/deployment").await;
    assert_eq!(
        (status, body["simulated"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let enrol = enrolment(
        "+821055501234",
        "face_recognition/obama.jpg",
        "4242424242424242",
    );
    // The card's verification is the first call to the issuer: refused
    // with the issuer's code, and nothing is enrolled.
    let (status, body, text) = h.enrol("enrol-1", &enrol).await;
    assert!(
        (500..600).contains(&status) && status != 500,
        "not refused: {text}"
    );
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        code.starts_with("issuer_") || code == "card_verification_failed",
        "{text}"
    );
    assert!(body.get("user_id").is_none(), "{text}");
    let (status, body, text) = h
        .pay("pay-1", &payment("face_recognition/obama2.jpg", "4500"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("face_not_recognised")),
        "nobody was enrolled: {text}"
    );

    let mut conn = h.app.services.store().acquire().await.unwrap();
    let verified = ledger::verify(&mut conn).await.unwrap();
    assert!(verified.ok());
    assert_eq!(verified.transfers, 0, "a refused payment moved money");
}

#[tokio::test]
async fn the_demo_says_what_it_simulates_on_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let config = Config::demo([("FACEPAY_STORE__DATA_DIR".to_owned(), data)]).unwrap();
    let app = App::build(config, &ModelStore::open_default(), Arc::new(SystemClock))
        .await
        .unwrap();
    let h = Harness::from_app(app, dir.path()).await;
    let request = axum::http::Request::get("/healthz")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = h.router().oneshot(request).await.unwrap();
    let marked = response.headers().get(SIMULATED_HEADER).unwrap();
    assert!(
        marked
            .to_str()
            .unwrap()
            .contains("issuer: simulated_issuer")
    );
    let (status, body, _) = h.get("/v1/deployment").await;
    assert_eq!(status, 200);
    let parts: Vec<&str> = body["simulated"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(parts.contains(&"issuer: simulated_issuer"), "{parts:?}");
    assert!(parts.contains(&"hub network: kr.wallet.sim"), "{parts:?}");
}

fn webhook(event_id: &str, payment_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "merchant_id": "merchant_1",
        "event_id": event_id,
        "event_type": format!("payment_{status}"),
        "content": {"type": "payment_details", "object": {"payment_id": payment_id, "status": status}},
        "timestamp": "2026-12-03T10:00:00Z",
    }))
    .unwrap()
}

fn delivery(body: &[u8], signature: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut request = axum::http::Request::post("/v1/connectors/hyperswitch/webhooks")
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header(webhook::SIGNATURE_HEADER, signature);
    }
    request.body(axum::body::Body::from(body.to_vec())).unwrap()
}

#[tokio::test]
async fn hyperswitch_webhooks_are_verified_and_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let models = ModelStore::open_default();
    let app = App::build(
        hyperswitch_config(dir.path()),
        &models,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let h = Harness::from_app(app, dir.path()).await;
    let body = webhook("evt_1", "pay_unknown", "cancelled");
    let signed = webhook::sign(&body, WEBHOOK_SECRET);

    let zeros = "0".repeat(128);
    let other_secret = webhook::sign(&body, "whsec_other");
    for (signature, status, code) in [
        (None, 400, "webhook_signature_missing"),
        (Some("00ff"), 400, "webhook_signature_malformed"),
        (Some(zeros.as_str()), 401, "webhook_signature_invalid"),
        (
            Some(other_secret.as_str()),
            401,
            "webhook_signature_invalid",
        ),
    ] {
        let (got, answer, text) = h.send(delivery(&body, signature)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{text}"
        );
        assert!(answer["error"]["message"].is_string(), "{text}");
    }
    let garbled = b"{\"event_id\": 1}";
    let (got, answer, _) = h
        .send(delivery(
            garbled,
            Some(&webhook::sign(garbled, WEBHOOK_SECRET)),
        ))
        .await;
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (400, Some("webhook_body_invalid"))
    );

    // A payment facepay does not have: acknowledged, recorded, then a
    // repeat is recognised, also by a server started again on the store.
    let (got, answer, text) = h.send(delivery(&body, Some(&signed))).await;
    assert_eq!(got, 200, "{text}");
    assert_eq!(answer["event_id"], "evt_1");
    assert_eq!(answer["outcome"], "unknown_payment");
    let (got, answer, _) = h.send(delivery(&body, Some(&signed))).await;
    assert_eq!((got, answer["outcome"].as_str()), (200, Some("duplicate")));
    let store = h.app.services.store().clone();
    let restarted = App::build(
        hyperswitch_config(dir.path()),
        &models,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let again = Harness::from_app(restarted, dir.path()).await;
    let (got, answer, _) = again.send(delivery(&body, Some(&signed))).await;
    assert_eq!((got, answer["outcome"].as_str()), (200, Some("duplicate")));
    let other = webhook("evt_2", "pay_unknown", "succeeded");
    let (got, answer, _) = again
        .send(delivery(
            &other,
            Some(&webhook::sign(&other, WEBHOOK_SECRET)),
        ))
        .await;
    assert_eq!((got, answer["outcome"].as_str()), (200, Some("noted")));
    let mut conn = store.acquire().await.unwrap();
    assert!(
        facepay_store::connector_events::seen(&mut conn, "hyperswitch", "evt_2")
            .await
            .unwrap()
    );

    // A hold facepay counts that Hyperswitch says it cancelled is voided
    // only after reading the payment back; Hyperswitch cannot be reached
    // here, so nothing changes, the event is not recorded, and the answer
    // asks for the delivery again.
    let held = authorised_payment("pay_held", again.now_ms());
    facepay_store::payments::insert(&mut conn, &held)
        .await
        .unwrap();
    drop(conn);
    let cancelled = webhook("evt_3", "pay_held", "cancelled");
    let signature = webhook::sign(&cancelled, WEBHOOK_SECRET);
    let (got, answer, text) = again.send(delivery(&cancelled, Some(&signature))).await;
    assert!(matches!(got, 502 | 504), "{text}");
    assert_eq!(answer["error"]["code"], "issuer_timeout", "{text}");
    let mut conn = store.acquire().await.unwrap();
    let after = facepay_store::payments::get(&mut conn, "pay_held").await;
    assert_eq!(after.unwrap().unwrap().state, "authorised");
    let seen = facepay_store::connector_events::seen(&mut conn, "hyperswitch", "evt_3");
    assert!(
        !seen.await.unwrap(),
        "delivered again, it is acted on again"
    );
}

/// A manual-capture payment Hyperswitch authorised, as facepay records it.
fn authorised_payment(id: &str, now_ms: i64) -> facepay_store::payments::Payment {
    facepay_store::payments::Payment {
        id: id.into(),
        terminal_id: crate::seed::TERMINAL_ID.into(),
        store_id: crate::seed::STORE_ID.into(),
        merchant_id: crate::seed::MERCHANT_ID.into(),
        idempotency_key: format!("key-{id}"),
        user_id: None,
        payment_method_id: None,
        amount_minor: 4_500,
        currency: "KRW".into(),
        capture_mode: "manual".into(),
        authorised_minor: 4_500,
        captured_minor: 0,
        refunded_minor: 0,
        fee_minor: 0,
        state: "authorised".into(),
        reason: String::new(),
        connector: Some("hyperswitch".into()),
        issuer_ref: Some(id.into()),
        match_score: None,
        candidates: None,
        step_up_attempts: 0,
        liveness: None,
        expires_at_ms: Some(now_ms + 3_600_000),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    }
}

#[tokio::test]
async fn a_server_without_hyperswitch_takes_no_hyperswitch_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let config = Config::demo([("FACEPAY_STORE__DATA_DIR".to_owned(), data)]).unwrap();
    let app = App::build(config, &ModelStore::open_default(), Arc::new(SystemClock))
        .await
        .unwrap();
    let h = Harness::from_app(app, dir.path()).await;
    let body = webhook("evt_1", "pay_1", "cancelled");
    let signature = webhook::sign(&body, WEBHOOK_SECRET);
    let (got, answer, _) = h.send(delivery(&body, Some(&signature))).await;
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (404, Some("connector_not_configured"))
    );
    let (got, answer, _) = h.send(delivery(&body, None)).await;
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (400, Some("webhook_signature_missing"))
    );
}
