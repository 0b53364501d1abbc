//! Onboarding, pairing and keys over HTTP, on SQLite and (when CI gives
//! one) PostgreSQL: an operator onboards a merchant, a store and a
//! terminal; the terminal pairs with its code and pays; every coded
//! refusal on the way; keys rotated with an overlap, revoked, expired, and
//! refused outside their scope or role.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use facepay_payments::DecisionPolicy;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use facepay_store::{Clock, ManualClock, Store};
use serde_json::{Value, json};

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment};
use crate::seed as demo;

/// A test's server on a clock it moves, with the demo operator's key.
pub(super) struct Setup {
    pub(super) h: Harness,
    pub(super) clock: Arc<ManualClock>,
    pub(super) operator_key: String,
    pub(super) backend: &'static str,
}

async fn setup(store: Store, dir: &std::path::Path) -> Setup {
    setup_with(store, dir, lenient(DecisionPolicy::default())).await
}

/// As `setup`, with the payments' `config`.
pub(super) async fn setup_with(
    store: Store,
    dir: &std::path::Path,
    config: facepay_payments::Config,
) -> Setup {
    let clock = Arc::new(ManualClock::new(facepay_store::now_ms()));
    let backend = store.backend().name();
    let h = Harness::with_clock(
        store,
        engine_with_logs(),
        Arc::clone(&clock) as Arc<dyn Clock>,
        dir,
        config,
    )
    .await;
    let file: demo::OperatorFile =
        serde_json::from_str(&std::fs::read_to_string(demo::operator_file(dir)).unwrap()).unwrap();
    Setup {
        h,
        clock,
        operator_key: file.operator_key,
        backend,
    }
}

impl Setup {
    pub(super) async fn operator(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> (u16, Value) {
        self.h
            .with_bearer(&self.operator_key, method, path, key, Some(body))
            .await
    }

    /// A request signed by `terminal_id` with `key`, at the app's time.
    pub(super) async fn pay_as(
        &self,
        terminal_id: &str,
        key: &SigningKey,
        body: &Value,
    ) -> (u16, Value) {
        let path = "/v1/terminal/payments";
        let body = serde_json::to_vec(body).unwrap();
        let h = signing::sign(key, terminal_id, "POST", path, self.clock.now_ms(), &body).unwrap();
        let request = Request::post(path)
            .header("content-type", "application/json")
            .header("idempotency-key", &h.nonce)
            .header(HEADER_TERMINAL, &h.terminal_id)
            .header(HEADER_TIMESTAMP, h.timestamp_ms.to_string())
            .header(HEADER_NONCE, &h.nonce)
            .header(HEADER_SIGNATURE, &h.signature)
            .body(Body::from(body))
            .unwrap();
        let (status, json, _) = self.h.send(request).await;
        (status, json)
    }

    pub(super) async fn pair(
        &self,
        terminal_id: &str,
        code: &str,
        key: &SigningKey,
    ) -> (u16, Value) {
        let body = json!({
            "terminal_id": terminal_id, "code": code,
            "public_key_hex": hex::encode(key.verifying_key().to_bytes()),
        });
        let request = Request::post("/v1/terminals/pair")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, json, _) = self.h.send(request).await;
        (status, json)
    }
}

pub(super) fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn store_body(merchant_id: &str) -> Value {
    json!({
        "merchant_id": merchant_id, "name": "Cafe Sinsa", "address": "12 Dosan-daero",
        "city": "Seoul", "country": "KR", "latitude": 37.5163, "longitude": 127.0203,
        "time_zone": "Asia/Seoul", "currency": "KRW",
        "opening_hours": [{"day": "mon", "opens": "08:00", "closes": "20:00"}],
    })
}

/// Creates a merchant and its store; answers their ids.
pub(super) async fn merchant_and_store(s: &Setup) -> (String, String) {
    let b = s.backend;
    let merchant = json!({
        "name": "Cafe Sinsa", "legal_name": "Sinsa Coffee Co., Ltd.",
        "fee_bps": 180, "settlement_currency": "KRW",
    });
    let (status, body) = s
        .operator("POST", "/v1/operator/merchants", "m1", merchant.clone())
        .await;
    assert_eq!(status, 201, "{b}: {body}");
    let merchant_id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "active");
    let (status, replay) = s
        .operator("POST", "/v1/operator/merchants", "m1", merchant)
        .await;
    assert_eq!((status, &replay["id"]), (201, &body["id"]), "{b}: a replay");

    let bad = |field: &str, value: Value| {
        let mut body = store_body(&merchant_id);
        body[field] = value;
        body
    };
    for (i, (body, status, error)) in [
        (
            bad("time_zone", json!("Mars/Olympus")),
            422,
            "time_zone_invalid",
        ),
        (bad("currency", json!("XXX")), 422, "unknown_currency"),
        (bad("latitude", json!(91.5)), 422, "coordinates_invalid"),
        (
            bad("merchant_id", json!("mer_nobody")),
            404,
            "unknown_merchant",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("bad-store-{i}");
        let (got, answer) = s.operator("POST", "/v1/operator/stores", &key, body).await;
        assert_eq!((got, code(&answer)), (status, Some(error)), "{b}: {answer}");
    }
    let (status, body) = s
        .operator(
            "POST",
            "/v1/operator/stores",
            "s1",
            store_body(&merchant_id),
        )
        .await;
    assert_eq!(status, 201, "{b}: {body}");
    assert_eq!(body["time_zone"], "Asia/Seoul");
    assert_eq!(body["opening_hours"][0]["closes"], "20:00");
    (merchant_id, body["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_operator_onboards_a_merchant_whose_paired_terminal_pays() {
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let data = dir.path().join(store.backend().name());
        let s = setup(store.clone(), &data).await;
        let b = s.backend;
        let (merchant_id, store_id) = merchant_and_store(&s).await;

        let terminal = json!({"store_id": store_id, "name": "till 1"});
        let mut unknown = terminal.clone();
        unknown["store_id"] = json!("sto_nowhere");
        let (status, body) = s
            .operator("POST", "/v1/operator/terminals", "t0", unknown)
            .await;
        assert_eq!((status, code(&body)), (404, Some("unknown_store")), "{b}");
        let (status, created) = s
            .operator("POST", "/v1/operator/terminals", "t1", terminal.clone())
            .await;
        assert_eq!(status, 201, "{b}: {created}");
        let terminal_id = created["terminal"]["id"].as_str().unwrap().to_owned();
        let pairing_code = created["pairing_code"].as_str().unwrap().to_owned();
        assert_eq!(pairing_code.len(), 8);
        assert_eq!(created["terminal"]["paired"], false);
        let (status, body) = s
            .operator("POST", "/v1/operator/terminals", "t2", terminal)
            .await;
        assert_eq!(
            (status, code(&body)),
            (409, Some("terminal_name_taken")),
            "{b}"
        );

        // Unpaired, it pays nothing; a wrong code pairs nothing.
        let key = signing::new_terminal_key().unwrap();
        let pay = payment("face_recognition/obama2.jpg", "4500");
        let (status, body) = s.pay_as(&terminal_id, &key, &pay).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("terminal_not_paired")),
            "{b}"
        );
        let (status, body) = s.pair(&terminal_id, "ABCD-EFGH", &key).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("pairing_code_invalid")),
            "{b}"
        );
        let typed = pairing_code.to_lowercase();
        let (status, body) = s.pair(&terminal_id, &typed, &key).await;
        assert_eq!(status, 200, "{b}: {body}");
        assert_eq!(
            (body["merchant_id"].as_str(), body["currency"].as_str()),
            (Some(merchant_id.as_str()), Some("KRW"))
        );
        let (status, body) = s.pair(&terminal_id, &pairing_code, &key).await;
        assert_eq!(
            (status, code(&body)),
            (409, Some("pairing_code_used")),
            "{b}"
        );

        // Someone enrols; the paired terminal's signed payment goes through.
        let obama = enrolment(
            "+821012340001",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, body, _) = s.h.enrol("e1", &obama).await;
        assert_eq!(status, 201, "{b}: {body}");
        let (status, paid) = s.pay_as(&terminal_id, &key, &pay).await;
        assert_eq!(status, 201, "{b}: {paid}");
        assert_eq!(paid["receipt"]["merchant"], "Cafe Sinsa");

        merchant_states(&s, &merchant_id, &terminal_id, &key, &paid).await;
        terminal_states(&s, &store_id).await;
        super::flow_tests::verify(&store).await;
        audited(&store).await;
    }
}

/// A read key cannot refund, a refund key can; a suspended merchant's
/// terminal and keys are refused until it is reactivated, a closed one's
/// for good.
async fn merchant_states(
    s: &Setup,
    merchant_id: &str,
    terminal_id: &str,
    key: &SigningKey,
    paid: &Value,
) {
    let b = s.backend;
    let keys_path = format!("/v1/operator/merchants/{merchant_id}/keys");
    let (status, read) = s
        .operator("POST", &keys_path, "k1", json!({"scope": "read"}))
        .await;
    assert_eq!(status, 201, "{b}: {read}");
    let (status, refunds) = s
        .operator(
            "POST",
            &keys_path,
            "k2",
            json!({"scope": "refund_capture", "label": "till"}),
        )
        .await;
    assert_eq!(status, 201, "{b}: {refunds}");
    let secret = |v: &Value| v["secret"].as_str().unwrap().to_owned();
    let refund_path = format!(
        "/v1/merchant/payments/{}/refunds",
        paid["id"].as_str().unwrap()
    );
    let refund = json!({"amount": "1000"});
    let (status, body) =
        s.h.with_bearer(
            &secret(&read),
            "POST",
            &refund_path,
            "r1",
            Some(refund.clone()),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("insufficient_scope")),
        "{b}: {body}"
    );
    let (status, body) =
        s.h.with_bearer(&secret(&read), "GET", "/v1/merchant/payments", "-", None)
            .await;
    assert_eq!(status, 200, "{b}: {body}");
    let (status, body) =
        s.h.with_bearer(&secret(&refunds), "POST", &refund_path, "r1", Some(refund))
            .await;
    assert_eq!(
        (status, &body["refunded_minor"]),
        (200, &json!(1000)),
        "{b}: {body}"
    );

    let pay = payment("face_recognition/obama2.jpg", "3000");
    let act = |action: &str| format!("/v1/operator/merchants/{merchant_id}/{action}");
    let (status, body) = s.operator("POST", &act("suspend"), "-", json!({})).await;
    assert_eq!((status, &body["status"]), (200, &json!("suspended")), "{b}");
    let (status, body) = s.pay_as(terminal_id, key, &pay).await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("merchant_suspended")),
        "{b}"
    );
    let (status, body) =
        s.h.with_bearer(&secret(&read), "GET", "/v1/merchant/payments", "-", None)
            .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("merchant_suspended")),
        "{b}"
    );
    let (status, _) = s.operator("POST", &act("reactivate"), "-", json!({})).await;
    assert_eq!(status, 200, "{b}");
    let (status, _) = s.operator("POST", &act("close"), "-", json!({})).await;
    assert_eq!(status, 200, "{b}");
    let (status, body) = s.pay_as(terminal_id, key, &pay).await;
    assert_eq!((status, code(&body)), (403, Some("merchant_closed")), "{b}");
    let (status, body) = s.operator("POST", &act("reactivate"), "-", json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("merchant_closed")), "{b}");
}

/// Codes expire and die after wrong guesses; re-pairing drops the old key
/// at once; a retired terminal is refused.
async fn terminal_states(s: &Setup, store_id: &str) {
    let b = s.backend;
    // The closed merchant's store gets no terminal: a new merchant's does.
    let (status, body) = s
        .operator(
            "POST",
            "/v1/operator/terminals",
            "t3",
            json!({"store_id": store_id, "name": "till 2"}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, Some("merchant_closed")), "{b}");
    let terminal = json!({"store_id": demo::STORE_ID, "name": "kiosk 2", "pairing_code_ttl_s": 60});
    let (status, created) = s
        .operator("POST", "/v1/operator/terminals", "t4", terminal)
        .await;
    assert_eq!(status, 201, "{b}: {created}");
    let id = created["terminal"]["id"].as_str().unwrap().to_owned();
    let first = created["pairing_code"].as_str().unwrap().to_owned();
    let key = signing::new_terminal_key().unwrap();
    s.clock.advance(61_000);
    let (status, body) = s.pair(&id, &first, &key).await;
    assert_eq!(
        (status, code(&body)),
        (410, Some("pairing_code_expired")),
        "{b}"
    );

    let re_pair = format!("/v1/operator/terminals/{id}/re-pair");
    let (status, body) = s.operator("POST", &re_pair, "-", json!({})).await;
    assert_eq!(status, 200, "{b}: {body}");
    let second = body["pairing_code"].as_str().unwrap().to_owned();
    for _ in 0..facepay_payments::onboarding::FAILURES_PER_CODE_MAX {
        let (status, _) = s.pair(&id, "ZZZZZZZZ", &key).await;
        assert_eq!(status, 401, "{b}");
    }
    let (status, body) = s.pair(&id, &second, &key).await;
    assert_eq!(
        (status, code(&body)),
        (429, Some("pairing_throttled")),
        "{b}: the code is dead"
    );
    let (status, body) = s.operator("POST", &re_pair, "-", json!({})).await;
    let third = body["pairing_code"].as_str().unwrap().to_owned();
    assert_eq!(status, 200, "{b}");
    let (status, _) = s.pair(&id, &third, &key).await;
    assert_eq!(status, 200, "{b}");
    let pay = payment("face_recognition/obama2.jpg", "3000");
    let (status, body) = s.pay_as(&id, &key, &pay).await;
    assert_eq!(status, 201, "{b}: {body}");
    // Re-pairing retires the key at once.
    let (status, _) = s.operator("POST", &re_pair, "-", json!({})).await;
    assert_eq!(status, 200, "{b}");
    let (status, body) = s.pay_as(&id, &key, &pay).await;
    assert_eq!(
        (status, code(&body)),
        (401, Some("terminal_not_paired")),
        "{b}"
    );
    let retire = format!("/v1/operator/terminals/{id}/retire");
    let (status, body) = s.operator("POST", &retire, "-", json!({})).await;
    assert_eq!((status, &body["status"]), (200, &json!("retired")), "{b}");
    let (status, body) = s.pay_as(&id, &key, &pay).await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("terminal_retired")),
        "{b}"
    );
    let (status, body) = s.operator("POST", &re_pair, "-", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("terminal_retired")),
        "{b}"
    );
}

/// Each onboarding step is in the audit chain with the operator who did it.
async fn audited(store: &Store) {
    let mut conn = store.pool().acquire().await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, action FROM audit_log WHERE action IN ('merchant_created', \
         'store_created', 'terminal_created', 'terminal_paired', 'merchant_suspended', \
         'merchant_closed', 'terminal_re_paired', 'terminal_retired', 'merchant_key_created') \
         ORDER BY seq",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let actions: Vec<&str> = rows.iter().map(|(_, a)| a.as_str()).collect();
    for action in [
        "merchant_created",
        "store_created",
        "terminal_created",
        "terminal_paired",
        "merchant_closed",
        "terminal_retired",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    for (actor, action) in &rows {
        let expected = if action == "terminal_paired" {
            "terminal:"
        } else {
            "operator:demo"
        };
        assert!(actor.starts_with(expected), "{action} by {actor}");
    }
}

/// A new terminal at the demo store, created on `s`: its id and code.
async fn new_terminal(s: &Setup, key: &str) -> (String, String) {
    let terminal = json!({"store_id": demo::STORE_ID, "name": key});
    let (status, created) = s
        .operator("POST", "/v1/operator/terminals", key, terminal)
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["terminal"]["id"].as_str().unwrap().to_owned();
    (id, created["pairing_code"].as_str().unwrap().to_owned())
}

/// Wrong pairing codes across all terminals are counted in the store: two
/// servers on one store take `FAILURES_GLOBAL_MAX` a minute together, not
/// each. A right code is not counted, nor one a dead code keeps from its
/// check; the next minute starts again.
#[tokio::test]
async fn wrong_pairing_codes_are_bounded_across_servers() {
    use facepay_payments::onboarding::{
        FAILURE_WINDOW_MS, FAILURES_GLOBAL_MAX, FAILURES_PER_CODE_MAX,
    };
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let data = dir.path().join(store.backend().name());
        let a = setup(store.clone(), &data).await;
        let b = setup(store, &data).await;
        let backend = a.backend;
        // Both servers at the start of one window.
        let now_ms = a.clock.now_ms();
        let start_ms = now_ms - now_ms.rem_euclid(FAILURE_WINDOW_MS) + FAILURE_WINDOW_MS;
        a.clock.set(start_ms);
        b.clock.set(start_ms);
        let key = signing::new_terminal_key().unwrap();
        let (first, first_code) = new_terminal(&a, "till1").await;
        let (second, second_code) = new_terminal(&a, "till2").await;
        let (third, third_code) = new_terminal(&a, "till3").await;
        let (status, body) = b.pair(&first, &first_code, &key).await;
        assert_eq!(status, 200, "{backend}: {body}");
        // The second terminal's code dies; the right one is then not checked.
        for _ in 0..FAILURES_PER_CODE_MAX {
            let (status, body) = a.pair(&second, "ZZZZZZZZ", &key).await;
            assert_eq!(
                code(&body),
                Some("pairing_code_invalid"),
                "{backend}: {status}"
            );
        }
        let (status, body) = b.pair(&second, &second_code, &key).await;
        assert_eq!(
            code(&body),
            Some("pairing_throttled"),
            "{backend}: {status}"
        );
        for i in FAILURES_PER_CODE_MAX..FAILURES_GLOBAL_MAX {
            let server = if i % 2 == 0 { &a } else { &b };
            let (status, body) = server.pair(&format!("ter_{i}"), "ZZZZZZZZ", &key).await;
            let refused = (status, code(&body));
            assert_eq!(
                refused,
                (401, Some("pairing_code_invalid")),
                "{backend}: {i}"
            );
        }
        let other_key = signing::new_terminal_key().unwrap();
        for server in [&a, &b] {
            let (status, body) = server.pair(&third, &third_code, &other_key).await;
            let refused = (status, code(&body));
            assert_eq!(
                refused,
                (429, Some("pairing_throttled")),
                "{backend}: {body}"
            );
        }
        a.clock.advance(FAILURE_WINDOW_MS);
        b.clock.advance(FAILURE_WINDOW_MS);
        let (status, body) = b.pair(&third, &third_code, &other_key).await;
        assert_eq!(status, 200, "{backend}: {body}");
    }
}

#[tokio::test]
async fn keys_rotate_with_an_overlap_expire_are_revoked_and_keep_to_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let data = dir.path().join(store.backend().name());
        let s = setup(store, &data).await;
        let b = s.backend;
        let admin = merchant_admin_key(&data);
        let merchant = |secret: &str, method: &str, path: &str, key: &str, body: Option<Value>| {
            let (secret, method, path, key) = (
                secret.to_owned(),
                method.to_owned(),
                path.to_owned(),
                key.to_owned(),
            );
            let h = &s.h;
            async move { h.with_bearer(&secret, &method, &path, &key, body).await }
        };
        // The demo key made before scopes is an admin key.
        let (status, list) = merchant(&admin, "GET", "/v1/merchant/keys", "-", None).await;
        assert_eq!(status, 200, "{b}: {list}");
        assert_eq!(list["keys"][0]["scope"], "admin");
        let admin_id = list["keys"][0]["id"].as_str().unwrap().to_owned();

        let (status, read) = merchant(
            &admin,
            "POST",
            "/v1/merchant/keys",
            "k1",
            Some(json!({"scope": "read"})),
        )
        .await;
        assert_eq!(status, 201, "{b}: {read}");
        let read_secret = read["secret"].as_str().unwrap().to_owned();
        let read_id = read["id"].as_str().unwrap().to_owned();
        let (status, body) = merchant(&read_secret, "GET", "/v1/merchant/keys", "-", None).await;
        assert_eq!(
            (status, code(&body)),
            (403, Some("insufficient_scope")),
            "{b}"
        );
        let (status, listed) = merchant(&admin, "GET", "/v1/merchant/keys", "-", None).await;
        assert_eq!(status, 200);
        assert!(
            !listed.to_string().contains(&read_secret),
            "{b}: a list shows no secret"
        );

        // Rotation: both work for the overlap, then only the new one.
        let rotate = format!("/v1/merchant/keys/{read_id}/rotate");
        let (status, rotated) = merchant(
            &admin,
            "POST",
            &rotate,
            "rot1",
            Some(json!({"overlap_s": 120})),
        )
        .await;
        assert_eq!(status, 201, "{b}: {rotated}");
        let new_secret = rotated["key"]["secret"].as_str().unwrap().to_owned();
        for secret in [&read_secret, &new_secret] {
            let (status, _) = merchant(secret, "GET", "/v1/merchant/payments", "-", None).await;
            assert_eq!(status, 200, "{b}: both keys during the overlap");
        }
        let (status, body) = merchant(&admin, "POST", &rotate, "rot2", None).await;
        assert_eq!(
            (status, code(&body)),
            (409, Some("key_not_rotatable")),
            "{b}"
        );
        s.clock.advance(121_000);
        let (status, body) =
            merchant(&read_secret, "GET", "/v1/merchant/payments", "-", None).await;
        assert_eq!((status, code(&body)), (401, Some("key_expired")), "{b}");
        let (status, _) = merchant(&new_secret, "GET", "/v1/merchant/payments", "-", None).await;
        assert_eq!(status, 200, "{b}");

        // Revocation is at once; a key cannot revoke itself.
        let new_id = rotated["key"]["id"].as_str().unwrap();
        let (status, body) = merchant(
            &admin,
            "POST",
            &format!("/v1/merchant/keys/{new_id}/revoke"),
            "-",
            None,
        )
        .await;
        assert_eq!(
            (status, &body["state"]),
            (200, &json!("revoked")),
            "{b}: {body}"
        );
        let (status, body) = merchant(&new_secret, "GET", "/v1/merchant/payments", "-", None).await;
        assert_eq!((status, code(&body)), (401, Some("key_revoked")), "{b}");
        let (status, body) = merchant(
            &admin,
            "POST",
            &format!("/v1/merchant/keys/{admin_id}/revoke"),
            "-",
            None,
        )
        .await;
        assert_eq!((status, code(&body)), (409, Some("key_in_use")), "{b}");

        // A key made to expire does.
        let expires_at_ms = s.clock.now_ms() + 30_000;
        let body = json!({"scope": "refund_capture", "expires_at_ms": expires_at_ms});
        let (status, short) = merchant(&admin, "POST", "/v1/merchant/keys", "k2", Some(body)).await;
        assert_eq!(status, 201, "{b}: {short}");
        let short = short["secret"].as_str().unwrap().to_owned();
        let (status, _) = merchant(&short, "GET", "/v1/merchant/payments", "-", None).await;
        assert_eq!(status, 200, "{b}");
        s.clock.advance(30_000);
        let (status, body) = merchant(&short, "GET", "/v1/merchant/payments", "-", None).await;
        assert_eq!((status, code(&body)), (401, Some("key_expired")), "{b}");
        let past = json!({"scope": "read", "expires_at_ms": s.clock.now_ms() - 1});
        let (status, body) = merchant(&admin, "POST", "/v1/merchant/keys", "k3", Some(past)).await;
        assert_eq!((status, code(&body)), (422, Some("expiry_invalid")), "{b}");

        operator_roles(&s).await;
    }
}

/// The demo merchant's admin key, as `facepay demo` wrote it.
fn merchant_admin_key(data: &std::path::Path) -> String {
    let file = std::fs::read_to_string(demo::merchant_file(data)).unwrap();
    serde_json::from_str::<demo::MerchantFile>(&file)
        .unwrap()
        .api_key
}

/// A merchant holds at most `KEYS_PER_OWNER_MAX` live keys. A rotation
/// replaces a key, so it is made at the limit too, and the listing shows
/// every live key first; a revoked key makes room for a new one.
#[tokio::test]
async fn keys_stop_at_the_limit_of_live_ones() {
    use facepay_store::access::KEYS_PER_OWNER_MAX;
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let data = dir.path().join(store.backend().name());
        let s = setup(store, &data).await;
        let b = s.backend;
        let admin = merchant_admin_key(&data);
        let post = |path: String, key: String, body: Option<Value>| {
            let (h, admin) = (&s.h, admin.clone());
            async move { h.with_bearer(&admin, "POST", &path, &key, body).await }
        };
        let make = |key: String| {
            post(
                "/v1/merchant/keys".into(),
                key,
                Some(json!({"scope": "read"})),
            )
        };
        let mut made = Vec::new();
        let refused = loop {
            let (status, body) = make(format!("k{}", made.len())).await;
            if status != 201 {
                break (status, body);
            }
            made.push(body["id"].as_str().unwrap().to_owned());
            assert!(
                made.len() < 2 * usize::try_from(KEYS_PER_OWNER_MAX).unwrap(),
                "{b}"
            );
        };
        assert_eq!(
            (refused.0, code(&refused.1)),
            (409, Some("too_many_keys")),
            "{b}"
        );
        let rotate = format!("/v1/merchant/keys/{}/rotate", made[0]);
        let (status, rotated) = post(rotate, "rot".into(), None).await;
        assert_eq!(status, 201, "{b}: {rotated}");
        let (status, list) =
            s.h.with_bearer(&admin, "GET", "/v1/merchant/keys", "-", None)
                .await;
        assert_eq!(status, 200, "{b}");
        let listed: Vec<&str> = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            i64::try_from(listed.len()).unwrap(),
            KEYS_PER_OWNER_MAX,
            "{b}"
        );
        assert!(
            listed.contains(&rotated["key"]["id"].as_str().unwrap()),
            "{b}: the new key is listed"
        );
        assert!(
            !listed.contains(&made[0].as_str()),
            "{b}: the replaced one gives way"
        );
        let (status, body) = make("k-again".into()).await;
        assert_eq!((status, code(&body)), (409, Some("too_many_keys")), "{b}");
        let revoke = format!("/v1/merchant/keys/{}/revoke", made[1]);
        let (status, _) = post(revoke, "-".into(), None).await;
        assert_eq!(status, 200, "{b}");
        let (status, body) = make("k-after-revoke".into()).await;
        assert_eq!(status, 201, "{b}: {body}");
    }
}

/// Support reads, risk keeps the blocklist, only an admin onboards.
async fn operator_roles(s: &Setup) {
    let b = s.backend;
    let mut secrets = Vec::new();
    for role in ["support", "risk"] {
        let body = json!({"name": format!("{role}-1"), "role": role});
        let (status, made) = s
            .operator("POST", "/v1/operator/operators", role, body)
            .await;
        assert_eq!(status, 201, "{b}: {made}");
        assert_eq!(made["operator"]["role"], role);
        secrets.push(made["key"]["secret"].as_str().unwrap().to_owned());
    }
    let (support, risk) = (&secrets[0], &secrets[1]);
    let block = json!({"kind": "country", "value": "ZZ", "reason": "test"});
    let merchant =
        json!({"name": "X", "legal_name": "X Ltd", "fee_bps": 100, "settlement_currency": "USD"});
    for (secret, method, path, body, status) in [
        (support, "GET", "/v1/operator/claims", None, 200),
        (
            support,
            "POST",
            "/v1/operator/blocks",
            Some(block.clone()),
            403,
        ),
        (risk, "POST", "/v1/operator/blocks", Some(block), 201),
        (risk, "POST", "/v1/operator/merchants", Some(merchant), 403),
        (risk, "GET", "/v1/operator/keys", None, 403),
        (&s.operator_key, "GET", "/v1/operator/keys", None, 200),
    ] {
        let (got, answer) = s.h.with_bearer(secret, method, path, "op-1", body).await;
        assert_eq!(got, status, "{b}: {method} {path}: {answer}");
        if status == 403 {
            assert_eq!(code(&answer), Some("insufficient_scope"), "{b}");
        }
    }
    let (status, body) = s
        .operator(
            "POST",
            "/v1/operator/operators",
            "dup",
            json!({"name": "risk-1", "role": "admin"}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, Some("operator_exists")), "{b}");
}

/// A receiver on loopback that accepts every delivery and keeps its body.
async fn receiver() -> (Arc<std::sync::Mutex<Vec<Value>>>, String) {
    type Seen = Arc<std::sync::Mutex<Vec<Value>>>;
    let seen: Seen = Arc::default();
    let receive = |State(seen): State<Seen>, body: String| async move {
        seen.lock()
            .unwrap()
            .push(serde_json::from_str(&body).unwrap_or(Value::Null));
        StatusCode::OK
    };
    let router = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (seen, url)
}

/// docs/onboarding.md's walk-through from a fresh data dir, no demo: the
/// first operator, a merchant, a store and a terminal, pairing, a webhook
/// endpoint, an enrolment, a payment at the paired terminal, a refund with
/// a refund-scoped key, and the deliveries as the API lists them.
#[tokio::test]
async fn the_walk_through_runs_from_a_fresh_data_dir() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let clock = Arc::new(ManualClock::new(facepay_store::now_ms()));
        let config = facepay_payments::Config {
            webhooks: facepay_payments::WebhookConfig {
                destinations: facepay_webhooks::Destinations::Loopback,
                ..Default::default()
            },
            ..lenient(DecisionPolicy::default())
        };
        let shared = Arc::clone(&clock) as Arc<dyn Clock>;
        let app =
            crate::root::embedded_app(store.clone(), Arc::clone(&engine), shared, &data, config)
                .await
                .unwrap();
        // 1. The first operator, as `facepay operator init` makes it.
        let made = facepay_payments::access::init_admin_operator(&store, "alice", clock.now_ms())
            .await
            .unwrap();
        let s = Setup {
            h: Harness::without_demo(app),
            clock,
            operator_key: made.key.secret,
            backend,
        };
        let (status, list) =
            s.h.with_bearer(&s.operator_key, "GET", "/v1/operator/merchants", "-", None)
                .await;
        assert_eq!(
            (status, &list["merchants"]),
            (200, &json!([])),
            "{backend}: no demo"
        );
        // 2-4. A merchant, a store and a terminal, paired with its code.
        let (merchant_id, terminal_id, key) = onboard(&s).await;
        let (admin, endpoint_id, seen) = merchant_admin_and_endpoint(&s, &merchant_id).await;
        walk_through_pays_and_refunds(&s, &terminal_id, &key, &admin).await;
        walk_through_deliveries(&s, &admin, &endpoint_id, &seen).await;
        super::flow_tests::verify(&store).await;
    }
}

/// A merchant, its store and a terminal paired with its code.
async fn onboard(s: &Setup) -> (String, String, SigningKey) {
    let b = s.backend;
    let (merchant_id, store_id) = merchant_and_store(s).await;
    let terminal = json!({"store_id": store_id, "name": "till 1"});
    let (status, created) = s
        .operator("POST", "/v1/operator/terminals", "t1", terminal)
        .await;
    assert_eq!(status, 201, "{b}: {created}");
    let terminal_id = created["terminal"]["id"].as_str().unwrap().to_owned();
    let key = signing::new_terminal_key().unwrap();
    let code = created["pairing_code"].as_str().unwrap();
    let (status, paired) = s.pair(&terminal_id, code, &key).await;
    assert_eq!(status, 200, "{b}: {paired}");
    (merchant_id, terminal_id, key)
}

/// The merchant's first key, from the operator, and a webhook endpoint on
/// a loopback receiver, registered before anyone pays.
async fn merchant_admin_and_endpoint(
    s: &Setup,
    merchant_id: &str,
) -> (String, String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let b = s.backend;
    let keys = format!("/v1/operator/merchants/{merchant_id}/keys");
    let (status, admin) = s
        .operator("POST", &keys, "k-admin", json!({"scope": "admin"}))
        .await;
    assert_eq!(status, 201, "{b}: {admin}");
    let admin = admin["secret"].as_str().unwrap().to_owned();
    let (seen, url) = receiver().await;
    let events = json!({"url": url, "events": ["payment.approved", "payment.refunded"]});
    let (status, endpoint) =
        s.h.with_bearer(&admin, "POST", "/v1/merchant/webhooks", "w1", Some(events))
            .await;
    assert_eq!(status, 201, "{b}: {endpoint}");
    let endpoint_id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
    (admin, endpoint_id, seen)
}

/// Someone enrols through the app API and pays at the paired terminal;
/// a refund-scoped key the merchant makes refunds part of it.
async fn walk_through_pays_and_refunds(
    s: &Setup,
    terminal_id: &str,
    key: &SigningKey,
    admin: &str,
) {
    let b = s.backend;
    let obama = enrolment(
        "+821012340001",
        "face_recognition/obama.jpg",
        "4242424242424242",
    );
    let (status, enrolled, _) = s.h.enrol("e1", &obama).await;
    assert_eq!(status, 201, "{b}: {enrolled}");
    let (status, me) =
        s.h.with_bearer(
            enrolled["token"].as_str().unwrap(),
            "GET",
            "/v1/users/me",
            "-",
            None,
        )
        .await;
    assert_eq!(status, 200, "{b}: {me}");
    let (status, paid) = s
        .pay_as(
            terminal_id,
            key,
            &payment("face_recognition/obama2.jpg", "4500"),
        )
        .await;
    assert_eq!(status, 201, "{b}: {paid}");
    assert_eq!(paid["receipt"]["merchant"], "Cafe Sinsa");
    let body = json!({"scope": "refund_capture", "label": "till"});
    let (status, refunds) =
        s.h.with_bearer(admin, "POST", "/v1/merchant/keys", "k-refund", Some(body))
            .await;
    assert_eq!(
        (status, &refunds["scope"]),
        (201, &json!("refund_capture")),
        "{b}"
    );
    let refunds = refunds["secret"].as_str().unwrap();
    let path = format!(
        "/v1/merchant/payments/{}/refunds",
        paid["id"].as_str().unwrap()
    );
    let amount = json!({"amount": "1500"});
    let (status, refunded) =
        s.h.with_bearer(refunds, "POST", &path, "r1", Some(amount))
            .await;
    assert_eq!(
        (status, &refunded["refunded_minor"]),
        (200, &json!(1500)),
        "{b}: {refunded}"
    );
    // The refund key is no admin key.
    let (status, body) =
        s.h.with_bearer(refunds, "GET", "/v1/merchant/keys", "-", None)
            .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("insufficient_scope")),
        "{b}"
    );
}

/// The delivery worker sends the payment's and the refund's events to the
/// receiver, and the API lists both delivered.
async fn walk_through_deliveries(
    s: &Setup,
    admin: &str,
    endpoint_id: &str,
    seen: &std::sync::Mutex<Vec<Value>>,
) {
    let b = s.backend;
    for _ in 0..50 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        s.h.app.services.webhooks.deliver_due().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut received: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap_or("").to_owned())
        .collect();
    received.sort();
    assert_eq!(received, ["payment.approved", "payment.refunded"], "{b}");
    let path = format!("/v1/merchant/webhooks/{endpoint_id}/deliveries");
    let (status, list) = s.h.with_bearer(admin, "GET", &path, "-", None).await;
    assert_eq!(status, 200, "{b}: {list}");
    let mut listed: Vec<(String, String)> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event_type"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    let delivered = |t: &str| (t.to_owned(), "delivered".to_owned());
    assert_eq!(
        listed,
        [delivered("payment.approved"), delivered("payment.refunded")],
        "{b}: {list}"
    );
}
