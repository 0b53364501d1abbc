//! What an idempotency key is bound to, and what is kept of an answer: the
//! same key sent for another payment or to another route is refused, never
//! answered with the first request's answer; an enrolment's token is kept
//! nowhere, on SQLite and (when CI gives one) PostgreSQL.

use std::path::Path;
use std::sync::Arc;

use facepay_face::FaceEngine;
use facepay_payments::DecisionPolicy;
use facepay_store::Store;
use serde_json::{Value, json};

use crate::flow_tests::{
    Harness, engine_with_logs, enrolment, files_under, lenient, payment, verify,
};

const REUSED: Option<&str> = Some("idempotency_key_reused");

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn harness(store: &Store, engine: &Arc<FaceEngine>, data: &Path) -> Harness {
    let config = lenient(DecisionPolicy::default());
    Harness::new(store.clone(), Arc::clone(engine), data, config).await
}

/// The one person these tests enrol.
fn person() -> Value {
    enrolment(
        "+821012345678",
        "face_recognition/obama.jpg",
        "4242424242424242",
    )
}

/// A payment by the enrolled face, automatic or manual capture.
async fn paid(h: &Harness, key: &str, amount: &str, manual: bool) -> String {
    let mut body = payment("face_recognition/obama.jpg", amount);
    if manual {
        body["capture"] = json!("manual");
    }
    let (status, answer, _) = h.pay(key, &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

async fn state_of(h: &Harness, payment_id: &str) -> Value {
    let path = format!("/v1/merchant/payments/{payment_id}");
    let (status, body) = h.merchant("GET", &path, "-", None).await;
    assert_eq!(status, 200, "{body}");
    body["payment"].clone()
}

#[tokio::test]
async fn a_key_sent_for_another_payment_or_route_is_refused_not_answered() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let person = person();
        let (status, body, _) = h.enrol("e1", &person).await;
        assert_eq!(status, 201, "{backend}: {body}");

        // Refunds: B sent with A's key and body is refused; B keeps its money.
        let a = paid(&h, "pa", "5000", false).await;
        let b = paid(&h, "pb", "5000", false).await;
        let amount = Some(json!({"amount": "1000"}));
        let refund = |id: &str| format!("/v1/merchant/payments/{id}/refunds");
        let (status, body) = h.merchant("POST", &refund(&a), "k1", amount.clone()).await;
        assert_eq!(status, 200, "{backend}: {body}");
        let (status, body) = h.merchant("POST", &refund(&b), "k1", amount.clone()).await;
        assert_eq!((status, code(&body)), (409, REUSED), "{backend}: {body}");
        assert_eq!(state_of(&h, &b).await["refunded_minor"], 0, "{backend}");
        let (status, body) = h.merchant("POST", &refund(&a), "k1", amount.clone()).await;
        assert_eq!(
            (status, body["refunded_minor"].as_i64()),
            (200, Some(1000)),
            "{backend}: the replay on A still answers: {body}"
        );

        // Captures and voids of manual payments, and one key across routes.
        let c = paid(&h, "pc", "3000", true).await;
        let d = paid(&h, "pd", "3000", true).await;
        let capture = |id: &str| format!("/v1/merchant/payments/{id}/capture");
        let void = |id: &str| format!("/v1/merchant/payments/{id}/void");
        let (status, body) = h.merchant("POST", &capture(&c), "k2", None).await;
        assert_eq!(status, 200, "{backend}: {body}");
        let (status, body) = h.merchant("POST", &capture(&d), "k2", None).await;
        assert_eq!((status, code(&body)), (409, REUSED), "{backend}: {body}");
        let (status, body) = h.merchant("POST", &void(&d), "k2", None).await;
        assert_eq!((status, code(&body)), (409, REUSED), "{backend}: {body}");
        assert_eq!(state_of(&h, &d).await["state"], "authorised", "{backend}");
        let (status, body) = h.merchant("POST", &void(&d), "k3", None).await;
        assert_eq!(status, 200, "{backend}: {body}");
        let (status, body) = h.merchant("POST", &void(&c), "k3", None).await;
        assert_eq!((status, code(&body)), (409, REUSED), "{backend}: {body}");
        let (status, body) = h.merchant("POST", &refund(&c), "k3", None).await;
        assert_eq!((status, code(&body)), (409, REUSED), "{backend}: {body}");
        assert_eq!(state_of(&h, &c).await["state"], "captured", "{backend}");
        verify(&store).await;
    }
}

/// Every byte of the store as text: the SQLite files (every file under
/// `data`: databases, logs, keys, the vault), or a PostgreSQL dump.
pub(super) async fn everything_stored(
    store: &facepay_store::Store,
    data: &std::path::Path,
) -> String {
    match store.backend() {
        facepay_store::Backend::Postgres => {
            facepay_store::testing::postgres_dump(store).await.unwrap()
        }
        facepay_store::Backend::Sqlite => {
            let mut all = String::new();
            for entry in files_under(data) {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
            }
            all
        }
    }
}

#[tokio::test]
async fn no_token_is_kept_at_rest_and_the_records_are_private() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let person = person();
        let (status, first, _) = h.enrol("e1", &person).await;
        assert_eq!(status, 201, "{backend}: {first}");
        let (status, replay, _) = h.enrol("e1", &person).await;
        assert_eq!(status, 201, "{backend}: {replay}");
        let tokens = [&first["token"], &replay["token"]].map(|t| t.as_str().unwrap().to_owned());
        let stored = everything_stored(&store, dir.path()).await;
        assert!(stored.len() > 1_000, "{backend}: the scan read the store");
        for token in &tokens {
            assert!(
                !stored.contains(token.as_str()),
                "{backend}: a token at rest"
            );
        }
        let (status, body) = h
            .with_bearer(&tokens[1], "GET", "/v1/users/me", "-", None)
            .await;
        assert_eq!(status, 200, "{backend}: {body}");
        if store.backend() == facepay_store::Backend::Sqlite {
            assert_private(&data);
        }
    }
}

#[cfg(unix)]
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut checked = 0;
    for path in files_under(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("facepay.db") || name.starts_with("vault.db") || name.ends_with(".kek")
        {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            assert_eq!(mode(path.parent().unwrap()), 0o700, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "database, vault and a KEK: {checked} found");
}

#[cfg(not(unix))]
fn assert_private(_dir: &std::path::Path) {}
