//! The services read the time from the clock they are given and nowhere
//! else: at 03:00 in Seoul by a manual clock, a payment is made at that
//! time, the risk engine sees the small hours, a terminal's signature is
//! checked against that time (not the machine's), and an authorisation
//! expires when the clock, not the machine, passes its hold. On SQLite,
//! and on PostgreSQL when `FACEPAY_TEST_POSTGRES_URL` names one.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_connector::{SimulatedIssuer, SimulatorConfig};
use facepay_face::liveness::{LivenessChecker, LivenessConfig};
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::{Config, FileKeyProvider, LivenessMode, Parts, Reply, Services, signing};
use facepay_store::parties::{self, Merchant, StoreRow, TerminalContext};
use facepay_store::{Clock, ManualClock, Store, fraud, payments};
use facepay_template_transform::TransformKeys;
use facepay_vault::{KeyPart, LocalVault};
use serde_json::{Value, json};

/// 2026-11-20 03:00 in Seoul (18:00 UTC the day before).
const SEOUL_3AM_MS: i64 = 1_795_111_200_000;
const TERMINAL_ID: &str = "trm_clock";
const PAYMENT_PATH: &str = "/v1/terminal/payments";

fn frame(relative: &str) -> String {
    let path = facepay_models::faces_dir().join(relative);
    BASE64.encode(std::fs::read(path).expect("run scripts/faces.sh"))
}

async fn services(store: Store, dir: &Path, clock: Arc<dyn Clock>) -> Services {
    let vault_dir = dir.join("vault");
    let vault_store = facepay_store::testing::vault_beside(&store, &vault_dir)
        .await
        .unwrap();
    let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
    let vault = LocalVault::new(vault_store, issuer);
    let parts: Vec<KeyPart> = [1, 2]
        .iter()
        .map(|n| KeyPart::create_file(&vault_dir.join(format!("custodian-{n}.part"))).unwrap())
        .collect();
    vault.unlock(&parts[0], &parts[1]).await.unwrap();
    let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
        .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"));
    let parts = Parts {
        store,
        engine: Arc::new(engine),
        enrolment_engine: None,
        liveness: Arc::new(LivenessChecker::new(LivenessConfig::default(), None)),
        vault: Arc::new(vault),
        keys: Arc::new(FileKeyProvider::open(&dir.join("keys")).unwrap()),
        transforms: Arc::new(TransformKeys::open(&dir.join("transforms")).unwrap()),
        clock,
    };
    let config = Config {
        // Still photos carry no motion; a spoof would still be refused.
        liveness: LivenessMode::Lenient,
        ..Config::default()
    };
    Services::start(parts, config).await.unwrap()
}

/// A merchant with one store in Seoul and one terminal; its signing key.
async fn terminal(store: &Store, now_ms: i64) -> ed25519_dalek::SigningKey {
    let key = signing::new_terminal_key().unwrap();
    let mut tx = store.begin().await.unwrap();
    let merchant = Merchant {
        id: "mer_clock".into(),
        name: "Clock Coffee".into(),
        fee_bps: 250,
        status: "active".into(),
    };
    parties::insert_merchant(&mut tx, &merchant, now_ms)
        .await
        .unwrap();
    let seoul = StoreRow {
        id: "sto_clock".into(),
        merchant_id: merchant.id.clone(),
        name: "Clock Coffee Gangnam".into(),
        country: "KR".into(),
        city: "Seoul".into(),
        currency: "KRW".into(),
        latitude_e6: 37_497_942,
        longitude_e6: 127_027_621,
    };
    parties::insert_store(&mut tx, &seoul, now_ms)
        .await
        .unwrap();
    let public_key = key.verifying_key().to_bytes();
    parties::insert_terminal(&mut tx, TERMINAL_ID, &seoul.id, &public_key, now_ms)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    key
}

/// The terminal, authenticated for a request it signed at `signed_at_ms`.
async fn authenticated(
    services: &Services,
    key: &ed25519_dalek::SigningKey,
    body: &[u8],
    signed_at_ms: i64,
) -> Result<TerminalContext, facepay_payments::Failure> {
    let headers =
        signing::sign(key, TERMINAL_ID, "POST", PAYMENT_PATH, signed_at_ms, body).unwrap();
    services
        .payments
        .authenticate_terminal(&headers, "POST", PAYMENT_PATH, body)
        .await
}

async fn pay(
    services: &Services,
    key: &ed25519_dalek::SigningKey,
    idem: &str,
    body: &Value,
) -> Reply {
    let body = serde_json::to_vec(body).unwrap();
    let now = services.clock().now_ms();
    let ctx = authenticated(services, key, &body, now).await.unwrap();
    services.payments.pay(&ctx, idem, &body).await.unwrap()
}

#[tokio::test]
async fn every_service_reads_the_time_from_its_clock() {
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let clock = Arc::new(ManualClock::new(SEOUL_3AM_MS));
        let services = services(store.clone(), &data, Arc::clone(&clock) as Arc<dyn Clock>).await;
        let key = terminal(&store, SEOUL_3AM_MS).await;
        let enrolment = json!({
            "phone": "+821012345678", "pin": "123456",
            "frames": [frame("face_recognition/obama.jpg")],
            "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2031, "security_code": "737" },
        });
        let body = serde_json::to_vec(&enrolment).unwrap();
        let enrolled = services.identity.enrol("e1", &body).await.unwrap();
        assert_eq!(enrolled.status, 201, "{backend}: {}", enrolled.body);

        // Signed by the machine's clock, weeks away from the services'
        // clock, or a window too early: refused. Signed at the clock's time:
        // accepted.
        let payment = json!({
            "amount": "4500", "currency": "KRW", "frames": [frame("face_recognition/obama3.jpg")],
        });
        let body = serde_json::to_vec(&payment).unwrap();
        let late = SEOUL_3AM_MS - 2 * signing::WINDOW_MS;
        for signed_at_ms in [facepay_store::now_ms(), late] {
            let refused = authenticated(&services, &key, &body, signed_at_ms)
                .await
                .unwrap_err();
            assert_eq!(refused.code, "request_expired", "{backend}");
        }

        // The payment is made at the clock's time, and the risk engine saw
        // the small hours in Seoul.
        let reply = pay(&services, &key, "p1", &payment).await;
        let view: Value = serde_json::from_str(&reply.body).unwrap();
        let view = if view["payment"].is_object() {
            &view["payment"]
        } else {
            &view
        };
        assert_eq!(
            view["created_at_ms"], SEOUL_3AM_MS,
            "{backend}: {}",
            reply.body
        );
        let id = view["id"].as_str().unwrap().to_owned();
        let mut conn = store.acquire().await.unwrap();
        let assessed = fraud::assessment(&mut conn, &id).await.unwrap().unwrap();
        assert_eq!(assessed.at_ms, SEOUL_3AM_MS, "{backend}");
        assert!(
            assessed.fired.contains("small_hours"),
            "{backend}: {}",
            assessed.fired
        );
        drop(conn);

        // A manual capture holds until the clock passes its hold, however
        // little time the machine saw pass.
        services
            .payments
            .reload_risk_rules(facepay_risk::APPROVE_ALL)
            .unwrap();
        clock.advance(60_000);
        let mut manual = payment.clone();
        manual["capture"] = json!("manual");
        let reply = pay(&services, &key, "p2", &manual).await;
        assert_eq!(reply.status, 201, "{backend}: {}", reply.body);
        let held: Value = serde_json::from_str(&reply.body).unwrap();
        let held_id = held["id"].as_str().unwrap();
        let hold_ms = Config::default().authorisation_hold_ms;
        let mut conn = store.acquire().await.unwrap();
        let row = payments::get(&mut conn, held_id).await.unwrap().unwrap();
        assert_eq!(row.expires_at_ms, Some(SEOUL_3AM_MS + 60_000 + hold_ms));
        drop(conn);
        assert_eq!(
            services.merchant.expire_authorisations(10).await.unwrap(),
            0
        );
        clock.advance(hold_ms + 1);
        assert_eq!(
            services.merchant.expire_authorisations(10).await.unwrap(),
            1,
            "{backend}"
        );
        let mut conn = store.acquire().await.unwrap();
        let row = payments::get(&mut conn, held_id).await.unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.reason.as_str()),
            ("voided", "authorisation_expired")
        );
        assert_eq!(
            row.updated_at_ms,
            SEOUL_3AM_MS + 60_000 + hold_ms + 1,
            "{backend}"
        );
        drop(conn);
        services.store().close().await;
    }
}
