//! The server as a configuration builds it. A configuration that names no
//! simulator takes no card through one: with Hyperswitch named and no
//! Hyperswitch to reach, the card's verification at enrolment is refused
//! with a clear code, nobody is enrolled, and nothing reaches the ledger.

use std::sync::Arc;

use facepay_config::Config;
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

#[tokio::test]
async fn a_configuration_naming_no_simulator_refuses_a_payment_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[store]\ndata_dir = {data:?}\n\n[face]\nliveness = \"lenient\"\n\n[risk]\npreset = \"demo\"\n\n\
         [connector]\nkind = \"hyperswitch\"\n\n[connector.hyperswitch]\n\
         base_url = \"http://127.0.0.1:{port}\"\napi_key = {{ env = \"TEST_HS_API_KEY\" }}\n\
         webhook_secret = {{ env = \"TEST_HS_WEBHOOK_SECRET\" }}\ntimeout_ms = 500\n",
        data = dir.path().display().to_string(),
        port = closed_port(),
    );
    let env = [
        ("TEST_HS_API_KEY".to_owned(), "snd_test_key".to_owned()),
        ("TEST_HS_WEBHOOK_SECRET".to_owned(), "whsec_test".to_owned()),
    ];
    let config = Config::from_toml(&text, None, env).unwrap();
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
