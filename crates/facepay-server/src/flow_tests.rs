//! The whole payments flow over HTTP, on SQLite and (when CI gives one)
//! PostgreSQL: enrol, pay, replay, step up, capture, refund, report, delete,
//! and every kind of bad input, each with its 4xx and nothing half-written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use facepay_payments::{
    Config, DecisionPolicy, FileKeyProvider, LivenessMode, reissue_templates, rewrap_data_keys,
};
use facepay_store::{Clock, Store, SystemClock, ledger, parties};
use facepay_template_transform::TransformKeys;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::root::App;
use crate::seed::{self as demo, MerchantFile};
use facepay_terminal::TerminalFile;

pub(super) fn photos() -> PathBuf {
    facepay_models::faces_dir()
}

pub(super) fn frame(relative: &str) -> String {
    let bytes = std::fs::read(photos().join(relative)).expect("run scripts/faces.sh");
    BASE64.encode(bytes)
}

pub(super) struct Harness {
    pub(super) app: App,
    router: axum::Router,
    pub(super) terminal_id: String,
    key: ed25519_dalek::SigningKey,
    api_key: String,
}

impl Harness {
    pub(super) async fn new(
        store: Store,
        engine: Arc<FaceEngine>,
        dir: &Path,
        config: Config,
    ) -> Self {
        Self::with_clock(store, engine, Arc::new(SystemClock), dir, config).await
    }

    /// The app with `FACEPAY_*` variables set over the demo's configuration.
    pub(super) async fn with_env(
        store: Store,
        engine: Arc<FaceEngine>,
        dir: &Path,
        config: Config,
        env: Vec<(String, String)>,
    ) -> Self {
        let clock = Arc::new(SystemClock);
        let app = crate::root::embedded_app_with(store, engine, clock, dir, config, env)
            .await
            .unwrap();
        Self::from_app(app, dir).await
    }

    /// The app at the time `clock` tells; its terminal signs by it too.
    pub(super) async fn with_clock(
        store: Store,
        engine: Arc<FaceEngine>,
        clock: Arc<dyn Clock>,
        dir: &Path,
        config: Config,
    ) -> Self {
        let app = crate::root::embedded_app(store, engine, clock, dir, config)
            .await
            .unwrap();
        Self::from_app(app, dir).await
    }

    /// The demo's parties on `app`, with their keys in `dir`.
    pub(super) async fn from_app(app: App, dir: &Path) -> Self {
        demo::ensure_parties(&app, dir).await.unwrap();
        let (terminal_id, key) = TerminalFile::load(&demo::terminal_file(dir)).unwrap();
        let merchant: MerchantFile =
            serde_json::from_str(&std::fs::read_to_string(demo::merchant_file(dir)).unwrap())
                .unwrap();
        Self {
            router: super::router(&app),
            app,
            terminal_id,
            key,
            api_key: merchant.api_key,
        }
    }

    /// `app` as a fresh deployment has it: no demo parties, so no
    /// terminal or merchant key of the harness's own.
    pub(super) fn without_demo(app: App) -> Self {
        Self {
            router: super::router(&app),
            app,
            terminal_id: String::new(),
            key: signing::new_terminal_key().unwrap(),
            api_key: String::new(),
        }
    }

    pub(super) fn router(&self) -> axum::Router {
        self.router.clone()
    }

    pub(super) async fn get(&self, path: &str) -> (u16, Value, String) {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub(super) async fn send(&self, request: Request<Body>) -> (u16, Value, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    /// The time by the app's clock.
    pub(super) fn now_ms(&self) -> i64 {
        self.app.services.clock().now_ms()
    }

    pub(super) fn signed(&self, path: &str, key: &str, body: &[u8]) -> Request<Body> {
        let h = signing::sign(
            &self.key,
            &self.terminal_id,
            "POST",
            path,
            self.now_ms(),
            body,
        )
        .unwrap();
        self.signed_with(path, key, body, &h)
    }

    fn signed_with(
        &self,
        path: &str,
        key: &str,
        body: &[u8],
        h: &signing::SignedHeaders,
    ) -> Request<Body> {
        Request::post(path)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .header(HEADER_TERMINAL, &h.terminal_id)
            .header(HEADER_TIMESTAMP, h.timestamp_ms.to_string())
            .header(HEADER_NONCE, &h.nonce)
            .header(HEADER_SIGNATURE, &h.signature)
            .body(Body::from(body.to_vec()))
            .unwrap()
    }

    pub(super) async fn pay(&self, key: &str, body: &Value) -> (u16, Value, String) {
        let body = serde_json::to_vec(body).unwrap();
        self.send(self.signed("/v1/terminal/payments", key, &body))
            .await
    }

    pub(super) async fn merchant(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.with_bearer(&self.api_key, method, path, key, body)
            .await
    }

    /// A JSON request with a bearer secret (API key, user token, operator
    /// key) and an idempotency key.
    pub(super) async fn with_bearer(
        &self,
        secret: &str,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {secret}"))
            .header("idempotency-key", key)
            .header("content-type", "application/json");
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        let (status, json, _) = self.send(request.body(body).unwrap()).await;
        (status, json)
    }

    pub(super) async fn enrol(&self, key: &str, body: &Value) -> (u16, Value, String) {
        let request = Request::post("/v1/users")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }
}

/// Every file under `dir`, in its subdirectories too.
pub(super) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

pub(super) fn lenient(decision: DecisionPolicy) -> Config {
    Config {
        liveness: LivenessMode::Lenient,
        decision,
        // This flow is about payments; `fraud_tests` is about the decisions.
        risk_rules: Some(facepay_risk::APPROVE_ALL.to_owned()),
        ..Config::default()
    }
}

/// The engine, with server-side warnings and errors in the test's output
/// so that a failing answer says why.
pub(super) fn engine_with_logs() -> Arc<FaceEngine> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    Arc::new(
        FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
            .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`")),
    )
}

pub(super) fn enrolment(phone: &str, photo: &str, card: &str) -> Value {
    json!({
        "phone": phone, "pin": "123456", "frames": [frame(photo)],
        "card": {
            "number": card, "expiry_month": 12, "expiry_year": 2031,
            "security_code": facepay_connector::simulator::printed_security_code(card),
        },
    })
}

pub(super) fn payment(photo: &str, amount: &str) -> Value {
    json!({ "amount": amount, "currency": "KRW", "frames": [frame(photo)] })
}

async fn payment_count(store: &Store) -> i64 {
    let mut conn = store.pool().acquire().await.unwrap();
    ledger::verify(&mut conn).await.unwrap().payments
}

pub(super) async fn verify(store: &Store) {
    let mut conn = store.pool().acquire().await.unwrap();
    let v = ledger::verify(&mut conn).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    let points = facepay_store::loyalty::verify(&mut conn).await.unwrap();
    assert!(points.ok(), "{:?}", points.problems);
    let audit = facepay_store::audit::verify(&mut conn).await.unwrap();
    assert!(audit.entries > 0 && audit.broken.is_none(), "{audit:?}");
}

#[tokio::test]
async fn enrol_pay_step_up_refund_report_and_delete() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = Harness::new(
            store.clone(),
            Arc::clone(&engine),
            &data,
            lenient(DecisionPolicy::default()),
        )
        .await;

        // Enrol: a replay answers the same; a face cannot hold two accounts.
        let obama = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, first, first_text) = h.enrol("e1", &obama).await;
        assert_eq!(status, 201, "{backend}: {first}");
        let obama_id = first["user_id"].as_str().unwrap().to_owned();
        // The replay answers the same enrolment with a token made then: the
        // first token is stored nowhere, and stops working.
        let (status, replay, _) = h.enrol("e1", &obama).await;
        assert_eq!(status, 201, "{backend}: {replay}");
        for field in ["user_id", "payment_method", "liveness"] {
            assert_eq!(replay[field], first[field], "{backend}: {first_text}");
        }
        let token = replay["token"].as_str().unwrap().to_owned();
        assert_ne!(Some(token.as_str()), first["token"].as_str());
        let stale = first["token"].as_str().unwrap();
        let (status, body) = h.with_bearer(stale, "GET", "/v1/users/me", "-", None).await;
        assert_eq!(status, 401, "{backend}: {body}");
        let biden = enrolment(
            "+821098765432",
            "face_recognition/biden.jpg",
            "5555555555554444",
        );
        let mut changed = obama.clone();
        changed["pin"] = json!("654321");
        let (status, body, _) = h.enrol("e1", &changed).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("idempotency_key_reused"))
        );
        let again = enrolment(
            "+821011112222",
            "face_recognition/obama2.jpg",
            "4242424242424242",
        );
        let (status, body, _) = h.enrol("e2", &again).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("face_already_enrolled")),
            "{backend}"
        );
        // The card is verified with its security code before anything is
        // stored: a wrong code is the issuer's refusal, a malformed one is
        // refused here, and neither enrols anything, so the same face and
        // phone enrol at once with the right code.
        for (code, status, error) in [
            ("123", 402, "incorrect_security_code"),
            ("12", 422, "card_security_code_invalid"),
        ] {
            let mut wrong = biden.clone();
            wrong["card"]["security_code"] = json!(code);
            let (got, body, _) = h.enrol(&format!("e3-{code}"), &wrong).await;
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(error)),
                "{backend}: {body}"
            );
        }
        let (status, body, _) = h.enrol("e3", &biden).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let biden_id = body["user_id"].as_str().unwrap().to_owned();
        // Two enrolments of one face at once: exactly one account.
        let a = enrolment(
            "+821077770001",
            "johns/John_Salley/000179_02159509.jpg",
            "4242424242424242",
        );
        let b = enrolment(
            "+821077770002",
            "johns/John_Salley/000200_02159354.jpg",
            "4242424242424242",
        );
        let (ra, rb) = tokio::join!(h.enrol("race-a", &a), h.enrol("race-b", &b));
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{backend}: {} / {}", ra.1, rb.1);
        for (bad, code) in [
            (
                enrolment("12", "face_recognition/biden.jpg", "4242424242424242"),
                "phone_invalid",
            ),
            (
                enrolment(
                    "+821055556666",
                    "face_recognition/biden.jpg",
                    "4242424242424241",
                ),
                "card_number_luhn",
            ),
        ] {
            let (status, body, _) = h.enrol("e4", &bad).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (422, Some(code)),
                "{backend}"
            );
        }

        // Pay: approved with a receipt; the same key replays the same answer.
        let (status, paid, paid_text) = h
            .pay("p1", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!(status, 201, "{backend}: {paid}");
        assert_eq!(paid["state"], "captured");
        assert_eq!(paid["receipt"]["payer"], "***-****-5678");
        assert_eq!(paid["fee_minor"], 113);
        let (status, _, replay) = h
            .pay("p1", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!((status, replay), (201, paid_text), "{backend}");
        let (status, body, _) = h
            .pay("p1", &payment("face_recognition/obama3.jpg", "4600"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("idempotency_key_reused"))
        );
        let paid_id = paid["id"].as_str().unwrap().to_owned();

        // Key rotation while serving: a new KEK (made as by another process),
        // every data key re-wrapped, and the cards still open to pay.
        let rotated = FileKeyProvider::open(&data.join("keys"))
            .unwrap()
            .rotate()
            .unwrap();
        let envelope = h.app.services.envelope().clone();
        let rewrapped = rewrap_data_keys(
            &store,
            &envelope,
            h.app.services.clock().as_ref(),
            2,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(
            rewrapped, 10,
            "{backend}: three templates, three cards, three phone numbers and the phone lookup key"
        );
        let by_kek = {
            let mut conn = store.acquire().await.unwrap();
            facepay_store::keys::count_by_kek(&mut conn).await.unwrap()
        };
        assert_eq!(by_kek, vec![(rotated.clone(), 10)], "{backend}");

        let (status, body, _) = h
            .pay("k1", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let (status, body) = h
            .merchant(
                "POST",
                &format!(
                    "/v1/merchant/payments/{}/refunds",
                    body["id"].as_str().unwrap()
                ),
                "k2",
                None,
            )
            .await;
        assert_eq!(status, 200, "{backend}: {body}");
        let payments_so_far = payment_count(&store).await;
        assert_eq!(payments_so_far, 2, "{backend}");

        // Bad input: each refused with its code, none leaves a payment.
        let good = serde_json::to_vec(&payment("face_recognition/obama3.jpg", "4500")).unwrap();
        let replayed = signing::sign(
            &h.key,
            &h.terminal_id,
            "POST",
            "/v1/terminal/payments",
            h.now_ms(),
            &good,
        )
        .unwrap();
        let (status, _, _) = h
            .send(h.signed_with("/v1/terminal/payments", "p2", &good, &replayed))
            .await;
        assert_eq!(status, 201, "{backend}");
        let (status, body, _) = h
            .send(h.signed_with("/v1/terminal/payments", "p3", &good, &replayed))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("nonce_reused"))
        );
        let mut forged = signing::sign(
            &h.key,
            &h.terminal_id,
            "POST",
            "/v1/terminal/payments",
            h.now_ms(),
            b"{}",
        )
        .unwrap();
        forged.nonce = "0123456789abcdef0123".into();
        let (status, body, _) = h
            .send(h.signed_with("/v1/terminal/payments", "p4", &good, &forged))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("signature_invalid"))
        );
        let old = signing::sign(
            &h.key,
            &h.terminal_id,
            "POST",
            "/v1/terminal/payments",
            h.now_ms() - 600_000,
            &good,
        )
        .unwrap();
        let (status, body, _) = h
            .send(h.signed_with("/v1/terminal/payments", "p5", &good, &old))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("request_expired"))
        );
        let mut stranger = signing::sign(
            &h.key,
            "trm_nobody",
            "POST",
            "/v1/terminal/payments",
            h.now_ms(),
            &good,
        )
        .unwrap();
        stranger.terminal_id = "trm_nobody".into();
        let (status, body, _) = h
            .send(h.signed_with("/v1/terminal/payments", "p6", &good, &stranger))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unknown_terminal"))
        );
        let unsigned = Request::post("/v1/terminal/payments")
            .header("content-type", "application/json")
            .header("idempotency-key", "p7")
            .body(Body::from(good.clone()))
            .unwrap();
        let (status, body, _) = h.send(unsigned).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("signature_missing"))
        );

        let truncated = {
            let bytes = std::fs::read(photos().join("face_recognition/obama3.jpg")).unwrap();
            BASE64.encode(&bytes[..bytes.len() / 2])
        };
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (b"{\"amount\": \"4500\",".to_vec(), 400, "json_malformed"),
            (json!({"amount": "4500", "currency": "KRW", "frames": [], "tip": 1}).to_string().into_bytes(), 400, "json_invalid_field"),
            (json!({"amount": 4500, "currency": "KRW", "frames": ["x"]}).to_string().into_bytes(), 400, "json_invalid_field"),
            (serde_json::to_vec(&payment("face_recognition/obama3.jpg", "-5")).unwrap(), 422, "amount_malformed"),
            (serde_json::to_vec(&payment("face_recognition/obama3.jpg", "0")).unwrap(), 422, "amount_not_positive"),
            (serde_json::to_vec(&payment("face_recognition/obama3.jpg", "45.5")).unwrap(), 422, "amount_too_many_decimals"),
            (json!({"amount": "4500", "currency": "XYZ", "frames": ["x"]}).to_string().into_bytes(), 422, "unknown_currency"),
            (json!({"amount": "45.00", "currency": "USD", "frames": ["x"]}).to_string().into_bytes(), 422, "currency_mismatch"),
            (json!({"amount": "4500", "currency": "KRW", "frames": []}).to_string().into_bytes(), 422, "frames_count"),
            (json!({"amount": "4500", "currency": "KRW", "frames": ["%%%"]}).to_string().into_bytes(), 400, "frame_not_base64"),
            (json!({"amount": "4500", "currency": "KRW", "frames": [truncated]}).to_string().into_bytes(), 422, "image_truncated"),
            (json!({"amount": "4500", "currency": "KRW", "frames": [frame("johns/John_Simm/000288_00470387.jpg")]}).to_string().into_bytes(), 422, "face_not_recognised"),
        ];
        for (i, (body, want_status, want_code)) in cases.into_iter().enumerate() {
            let (status, answer, _) = h
                .send(h.signed("/v1/terminal/payments", &format!("bad{i}"), &body))
                .await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (want_status, Some(want_code)),
                "{backend} case {i}: {answer}"
            );
        }
        let wrong_type = Request::post("/v1/terminal/payments")
            .header("content-type", "text/plain")
            .header("idempotency-key", "p8")
            .body(Body::from(good.clone()))
            .unwrap();
        assert_eq!(h.send(wrong_type).await.0, 415);
        let huge = vec![
            b'a';
            crate::edge::RequestLimits::of(&Default::default())
                .bytes_max(crate::edge::BodyKind::PaymentBurst)
                + 1
        ];
        let (status, body, _) = h.send(h.signed("/v1/terminal/payments", "p9", &huge)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("body_too_large"))
        );
        let (status, body, _) = h.send(h.signed("/v1/terminal/payments", "", &good)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("idempotency_key_missing"))
        );
        assert_eq!(
            payment_count(&store).await,
            payments_so_far + 1,
            "{backend}: only p2 paid"
        );
        verify(&store).await;

        // Refunds: partial, more than is left, the rest, then nothing left.
        let refunds = format!("/v1/merchant/payments/{paid_id}/refunds");
        let (status, body) = h
            .merchant("POST", &refunds, "r1", Some(json!({"amount": "1000"})))
            .await;
        assert_eq!(
            (status, body["state"].as_str()),
            (200, Some("partially_refunded")),
            "{backend}: {body}"
        );
        let (status, body) = h
            .merchant("POST", &refunds, "r2", Some(json!({"amount": "4000"})))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("refund_exceeds_captured"))
        );
        let (status, body) = h.merchant("POST", &refunds, "r3", None).await;
        assert_eq!(
            (status, body["refunded_minor"].as_i64()),
            (200, Some(4500)),
            "{backend}: {body}"
        );
        let (status, body) = h.merchant("POST", &refunds, "r4", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("payment_not_refundable"))
        );
        let (status, body) = h
            .merchant("POST", &refunds, "r1", Some(json!({"amount": "1000"})))
            .await;
        assert_eq!(
            (status, body["refunded_minor"].as_i64()),
            (200, Some(1000)),
            "a replay answers as the first time"
        );

        // An authorisation not captured in time is voided by the sweep.
        let quick = Config {
            authorisation_hold_ms: 0,
            ..lenient(DecisionPolicy::default())
        };
        let q = Harness::new(store.clone(), Arc::clone(&engine), &data, quick).await;
        let mut expiring = payment("face_recognition/biden.jpg", "7000");
        expiring["capture"] = json!("manual");
        let (status, held, _) = q.pay("q1", &expiring).await;
        assert_eq!(
            (status, held["state"].as_str()),
            (201, Some("authorised")),
            "{backend}"
        );
        assert_eq!(
            q.app
                .services
                .merchant
                .expire_authorisations(10)
                .await
                .unwrap(),
            1
        );
        let path = format!("/v1/merchant/payments/{}", held["id"].as_str().unwrap());
        let (status, detail) = q.merchant("GET", &path, "", None).await;
        assert_eq!(status, 200, "{backend}: {detail}");
        assert_eq!(detail["payment"]["state"], "voided");
        assert_eq!(detail["payment"]["reason"], "authorisation_expired");
        assert_eq!(detail["events"].as_array().unwrap().len(), 3);
        verify(&store).await;

        // A suspended payer cannot pay.
        let set_user = |status: &'static str| {
            let (store, id) = (store.clone(), biden_id.clone());
            async move {
                let mut conn = store.pool().acquire().await.unwrap();
                parties::set_user_status(&mut conn, &id, status)
                    .await
                    .unwrap();
            }
        };
        set_user("suspended").await;
        let (status, body, _) = h
            .pay("u1", &payment("face_recognition/biden.jpg", "1000"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("user_suspended"))
        );
        set_user("active").await;

        // Manual capture: authorise 9000, capture 6000, the rest released.
        let mut manual = payment("face_recognition/biden.jpg", "9000");
        manual["capture"] = json!("manual");
        let (status, held, _) = h.pay("m1", &manual).await;
        assert_eq!(
            (status, held["state"].as_str()),
            (201, Some("authorised")),
            "{backend}: {held}"
        );
        let capture = format!(
            "/v1/merchant/payments/{}/capture",
            held["id"].as_str().unwrap()
        );
        let (status, body) = h
            .merchant("POST", &capture, "c1", Some(json!({"amount": "9500"})))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("capture_exceeds_authorised"))
        );
        let (status, body) = h
            .merchant("POST", &capture, "c2", Some(json!({"amount": "6000"})))
            .await;
        assert_eq!(
            (status, body["captured_minor"].as_i64()),
            (200, Some(6000)),
            "{backend}: {body}"
        );
        let (status, body) = h.merchant("POST", &capture, "c3", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("payment_not_authorised"))
        );

        // Step-up: a policy that finds no match strong enough asks the payer.
        let strict = DecisionPolicy {
            strong_threshold: 0.99,
            ..DecisionPolicy::default()
        };
        let s = Harness::new(store.clone(), Arc::clone(&engine), &data, lenient(strict)).await;
        let (status, pending, _) = s
            .pay("s1", &payment("face_recognition/obama2.jpg", "3000"))
            .await;
        assert_eq!(
            (status, pending["state"].as_str()),
            (202, Some("requires_step_up")),
            "{backend}: {pending}"
        );
        let step_up = format!(
            "/v1/terminal/payments/{}/step-up",
            pending["id"].as_str().unwrap()
        );
        let wrong = serde_json::to_vec(&json!({"phone_last4": "0000"})).unwrap();
        let (status, body, _) = s.send(s.signed(&step_up, "s2", &wrong)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("step_up_mismatch")),
            "{backend}: {body}"
        );
        // The payer confirmed is assessed, and the risk engine asks for a
        // stronger factor: the payment waits again, nothing sent.
        let pin_asked = super::fraud_tests::rules(60);
        s.app
            .services
            .payments
            .reload_risk_rules(&pin_asked)
            .unwrap();
        let right = serde_json::to_vec(&json!({"phone_last4": "5678"})).unwrap();
        let (status, body, _) = s.send(s.signed(&step_up, "s3", &right)).await;
        assert_eq!(
            (status, body["state"].as_str(), body["reason"].as_str()),
            (202, Some("requires_step_up"), Some("risk_step_up")),
            "{backend}: {body}"
        );
        let pin = serde_json::to_vec(&json!({"pin": "123456"})).unwrap();
        let (status, body, _) = s.send(s.signed(&step_up, "s3b", &pin)).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (201, Some("captured")),
            "{backend}: {body}"
        );
        let (status, body, _) = s.send(s.signed(&step_up, "s4", &right)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("payment_not_awaiting_step_up"))
        );

        // Listing with a cursor, the report, and a suspended terminal.
        let (status, page) = h
            .merchant("GET", "/v1/merchant/payments?limit=2", "", None)
            .await;
        assert_eq!(status, 200, "{backend}: {page}");
        assert_eq!(page["payments"].as_array().unwrap().len(), 2);
        let cursor = page["next_cursor"].as_str().unwrap();
        let (_, next) = h
            .merchant(
                "GET",
                &format!("/v1/merchant/payments?limit=2&cursor={cursor}"),
                "",
                None,
            )
            .await;
        let ids: Vec<_> = page["payments"]
            .as_array()
            .unwrap()
            .iter()
            .chain(next["payments"].as_array().unwrap())
            .map(|p| p["id"].clone())
            .collect();
        assert_eq!(ids.len(), 4, "{backend}: {next}");
        let (status, report) = h
            .merchant(
                "GET",
                &format!("/v1/merchant/reports/daily?date={}", today(h.now_ms())),
                "",
                None,
            )
            .await;
        assert_eq!(status, 200, "{backend}: {report}");
        let row = &report["rows"][0];
        assert_eq!(row["count"], 5, "{backend}: {report}");
        assert_eq!(row["gross_minor"], 4500 + 100 + 4500 + 6000 + 3000);
        assert_eq!(row["refunds_minor"], 4500 + 100);
        assert_eq!(
            row["net_minor"].as_i64().unwrap(),
            18100 - 4600 - row["fees_minor"].as_i64().unwrap()
        );
        // A day the calendar does not have is refused, not read as 3 March.
        let (status, body) = h
            .merchant(
                "GET",
                "/v1/merchant/reports/daily?date=2026-02-31",
                "",
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("date_invalid")),
            "{backend}: {body}"
        );

        let set_status = |status: &'static str| {
            let store = store.clone();
            let id = h.terminal_id.clone();
            async move {
                let mut conn = store.pool().acquire().await.unwrap();
                parties::set_terminal_status(&mut conn, &id, status)
                    .await
                    .unwrap();
            }
        };
        set_status("suspended").await;
        let (status, body, _) = h
            .pay("x1", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("terminal_suspended"))
        );
        set_status("active").await;

        // The user sees their data, deletes it, and their face stops paying.
        // Template re-issue while serving: a new transform secret, every
        // template moved to it under a new data key; this server (gallery in
        // the old space) and a restarted one (gallery in the new) both pay.
        let transforms = TransformKeys::open(&data.join("transforms")).unwrap();
        let old_transform = transforms.current_id().unwrap();
        let new_transform = transforms.reissue().unwrap();
        let reissued = reissue_templates(
            &store,
            &envelope,
            &transforms,
            h.app.services.clock().as_ref(),
            2,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(reissued, 3, "{backend}");
        assert_eq!(
            reissue_templates(
                &store,
                &envelope,
                &transforms,
                h.app.services.clock().as_ref(),
                2,
                |_| {}
            )
            .await
            .unwrap(),
            0,
            "{backend}: resumable, nothing left"
        );
        let by_transform = {
            let mut conn = store.acquire().await.unwrap();
            parties::template_count_by_transform(&mut conn)
                .await
                .unwrap()
        };
        assert_eq!(
            by_transform,
            vec![(Some(new_transform.clone()), 3)],
            "{backend}"
        );
        let (status, body, _) = h
            .pay("t1", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(
            (status, &body["match_score"].is_number()),
            (201, &true),
            "{backend}: {body}"
        );
        // A card stored whole by an earlier release (no vault token) moves
        // into the vault at start-up, and its old data key is destroyed.
        let legacy_id = "pm_legacy_mastercard";
        let legacy = envelope
            .seal(b"5555555555554444", &format!("card:{legacy_id}"))
            .unwrap();
        {
            let mut conn = store.acquire().await.unwrap();
            facepay_store::keys::insert(&mut conn, &legacy.data_key, 0)
                .await
                .unwrap();
            let method = parties::PaymentMethod {
                id: legacy_id.into(),
                user_id: obama_id.clone(),
                brand: "mastercard".into(),
                last4: "4444".into(),
                expiry_month: 12,
                expiry_year: 2099,
                key_id: Some(legacy.key_id.clone()),
                nonce: Some(legacy.nonce.clone()),
                ciphertext: Some(legacy.ciphertext.clone()),
                vault_token: None,
                fingerprint: None,
                status: "active".into(),
                credential_connector: None,
                credential_id: None,
                is_default: 0,
            };
            parties::insert_payment_method(&mut conn, &method, 0)
                .await
                .unwrap();
            // The default, so it is the card the next payment uses.
            let made_default = facepay_store::wallet::set_default(&mut conn, &obama_id, legacy_id);
            assert!(made_default.await.unwrap(), "{backend}");
        }
        let restarted = Harness::new(
            store.clone(),
            Arc::clone(&engine),
            &data,
            lenient(DecisionPolicy::default()),
        )
        .await;
        // Moved, it still has no stored credential: it was never verified
        // with its security code, so it is refused before the issuer, as a
        // declined payment with its code, and its holder adds it again.
        let (status, body, _) = restarted
            .pay("t2", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (402, Some("card_needs_verification")),
            "{backend}: {body}"
        );
        assert_eq!(body["payment"]["state"], "declined", "{backend}");
        let moved = {
            let mut conn = store.acquire().await.unwrap();
            parties::payment_method(&mut conn, legacy_id).await.unwrap()
        };
        let moved = moved.unwrap();
        assert!(
            moved.vault_token.is_some(),
            "{backend}: moved into the vault"
        );
        assert_eq!(moved.credential_id, None, "{backend}");
        verify(&store).await;
        {
            let mut conn = store.acquire().await.unwrap();
            sqlx::query("UPDATE payment_methods SET status = 'deleted' WHERE id = $1")
                .bind(legacy_id)
                .execute(&mut *conn)
                .await
                .unwrap();
        }

        // Phone digits from the till narrow the search to that partition.
        let with_digits = |digits: &str| {
            let mut body = payment("face_recognition/obama3.jpg", "100");
            body["phone_last4"] = json!(digits);
            body
        };
        let (status, body, _) = restarted.pay("t3", &with_digits("5678")).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let (status, body, _) = restarted.pay("t4", &with_digits("0000")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("face_not_recognised")),
            "{backend}: the payer is not among the phones ending 0000"
        );
        let (status, body, _) = restarted.pay("t5", &with_digits("56a8")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("phone_last4_invalid")),
            "{backend}"
        );
        let mut conn = store.acquire().await.unwrap();
        let moved = parties::payment_method(&mut conn, legacy_id)
            .await
            .unwrap()
            .unwrap();
        assert!(moved.vault_token.is_some() && moved.fingerprint.is_some());
        assert!(
            facepay_store::keys::get(&mut conn, &legacy.key_id)
                .await
                .unwrap()
                .is_none(),
            "{backend}: the whole number's data key is destroyed"
        );
        drop(conn);
        assert_ne!(old_transform, new_transform);

        let me = |method: &str| {
            Request::builder()
                .method(method)
                .uri("/v1/users/me")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        let (status, mine, _) = h.send(me("GET")).await;
        assert_eq!(
            (status, mine["has_face"].as_bool()),
            (200, Some(true)),
            "{backend}: {mine}"
        );
        let last4s: Vec<&str> = mine["payment_methods"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["last4"].as_str())
            .collect();
        // The unverified legacy card was taken out of use above.
        assert_eq!(last4s, ["4242"], "{backend}");
        let fingerprint = mine["payment_methods"][0]["fingerprint"].as_str().unwrap();
        assert!(fingerprint.starts_with("fp_"), "{backend}");
        assert!(mine["payments"].as_array().unwrap().len() >= 3);
        let template = {
            let mut conn = store.acquire().await.unwrap();
            parties::active_template(&mut conn, &obama_id)
                .await
                .unwrap()
                .unwrap()
                .template
        };
        // Deleting the face only: it stops paying at once, the account stays.
        let face = || {
            Request::builder()
                .method("DELETE")
                .uri("/v1/users/me/face")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        let (status, body, _) = h.send(face()).await;
        assert_eq!(
            (status, &body["face_deleted"]),
            (200, &json!(true)),
            "{backend}: {body}"
        );
        let (status, body, _) = h
            .pay("f1", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("face_not_recognised")),
            "{backend}"
        );
        let (status, mine, _) = h.send(me("GET")).await;
        assert_eq!(
            (status, &mine["has_face"]),
            (200, &json!(false)),
            "{backend}"
        );
        let (status, body, _) = h.send(face()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("face_not_enrolled")),
            "{backend}"
        );
        let (status, _, _) = h.send(me("DELETE")).await;
        assert_eq!(status, 200);
        // Crypto-shredding: the data key is gone, and no key the system still
        // holds opens a copy of the old ciphertext.
        let mut conn = store.acquire().await.unwrap();
        assert!(
            facepay_store::keys::get(&mut conn, &template.key_id)
                .await
                .unwrap()
                .is_none()
        );
        drop(conn);
        let aad = format!("template:{obama_id}:{}", template.model);
        assert!(
            envelope
                .open(
                    &template.key_id,
                    None,
                    &template.nonce,
                    &template.ciphertext,
                    &aad
                )
                .is_err()
        );
        for kek in envelope.provider().all().unwrap() {
            assert!(
                kek.open(&template.nonce, &template.ciphertext, &aad)
                    .is_err(),
                "{backend}"
            );
        }
        let (status, body, _) = h.send(me("GET")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("token_invalid"))
        );
        let (status, body, _) = h
            .pay("x2", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("face_not_recognised")),
            "{backend}"
        );
        verify(&store).await;
    }
}

/// A backend's data directory under `dir`, its snapshot file, and the
/// lenient configuration that keeps the snapshot there.
fn with_snapshot(dir: &Path, backend: &str) -> (PathBuf, PathBuf, Config) {
    let data = dir.join(backend);
    let file = data.join("gallery.snapshot");
    let config = Config {
        gallery_snapshot: Some(file.clone()),
        ..lenient(DecisionPolicy::default())
    };
    (data, file, config)
}

#[tokio::test]
async fn a_snapshot_restores_the_gallery_and_never_outlives_a_deletion() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let (data, file, config) = with_snapshot(dir.path(), backend);
        let start = || Harness::new(store.clone(), Arc::clone(&engine), &data, config.clone());
        let h = start().await;
        assert!(
            !h.app.services.identity.gallery_restored(),
            "{backend}: no file yet"
        );
        let (status, obama, _) = h
            .enrol(
                "s1",
                &enrolment(
                    "+821012345678",
                    "face_recognition/obama.jpg",
                    "4242424242424242",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {obama}");
        let (status, body, _) = h
            .enrol(
                "s2",
                &enrolment(
                    "+821098765432",
                    "face_recognition/biden.jpg",
                    "5555555555554444",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let (rows, _) = h
            .app
            .services
            .identity
            .write_snapshot()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows, 2, "{backend}");
        let sealed = std::fs::read(&file).unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"FPGROWS1"),
            "{backend}: the rows are sealed"
        );

        // A restart reads the file, then replays what changed after it.
        let r = start().await;
        assert!(r.app.services.identity.gallery_restored(), "{backend}");
        assert_eq!(r.app.services.identity.gallery_len(), 2, "{backend}");
        let (status, body, _) = r
            .pay("s3", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let (status, body, _) = r
            .enrol(
                "s4",
                &enrolment(
                    "+821077770001",
                    "johns/John_Salley/000179_02159509.jpg",
                    "4242424242424242",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let r = start().await;
        assert!(r.app.services.identity.gallery_restored(), "{backend}");
        assert_eq!(
            r.app.services.identity.gallery_len(),
            3,
            "{backend}: replayed"
        );

        // Deleting a face destroys the snapshot's key with it: the file no
        // longer opens, and the next start loads from the store.
        let request = Request::builder()
            .method("DELETE")
            .uri("/v1/users/me/face")
            .header(
                "authorization",
                format!("Bearer {}", obama["token"].as_str().unwrap()),
            )
            .body(Body::empty())
            .unwrap();
        let (status, body, _) = r.send(request).await;
        assert_eq!(status, 200, "{backend}: {body}");
        let r = start().await;
        assert!(!r.app.services.identity.gallery_restored(), "{backend}");
        assert_eq!(r.app.services.identity.gallery_len(), 2, "{backend}");

        // A file changed by one byte is not trusted either.
        r.app
            .services
            .identity
            .write_snapshot()
            .await
            .unwrap()
            .unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let r = start().await;
        assert!(!r.app.services.identity.gallery_restored(), "{backend}");
        assert_eq!(r.app.services.identity.gallery_len(), 2, "{backend}");
        let (status, body, _) = r
            .pay("s5", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("face_not_recognised")),
            "{backend}: {body}"
        );
    }
}

#[tokio::test]
async fn jobs_stop_and_leave_a_snapshot_the_next_start_reads() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let (data, file, config) = with_snapshot(dir.path(), backend);
        let start = || Harness::new(store.clone(), Arc::clone(&engine), &data, config.clone());
        let h = start().await;
        let obama = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, body, _) = h.enrol("j1", &obama).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let jobs = crate::jobs::start(&h.app);
        // The snapshot job writes at once.
        for _ in 0..200 {
            if file.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(file.exists(), "{backend}: the snapshot job wrote");
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), jobs.stop()).await;
        assert!(stopped.is_ok(), "{backend}: every job ended");
        let (rows, _) = h
            .app
            .services
            .identity
            .write_snapshot()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows, 1, "{backend}");
        let r = start().await;
        assert!(r.app.services.identity.gallery_restored(), "{backend}");
        assert_eq!(r.app.services.identity.gallery_len(), 1, "{backend}");
    }
}

/// A start from a snapshot that holds every change does not write it
/// again (seconds of work and gigabytes at ten million rows); a change
/// since, a file getting old, or its key destroyed, does.
#[tokio::test]
async fn a_snapshot_is_written_again_only_when_due() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let (data, file, config) = with_snapshot(dir.path(), backend);
        let clock = Arc::new(facepay_store::ManualClock::new(facepay_store::now_ms()));
        let start = || {
            let clock = Arc::clone(&clock) as Arc<dyn facepay_store::Clock>;
            Harness::with_clock(
                store.clone(),
                Arc::clone(&engine),
                clock,
                &data,
                config.clone(),
            )
        };
        let h = start().await;
        let obama = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, body, _) = h.enrol("d1", &obama).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let identity = &h.app.services.identity;
        assert!(identity.write_snapshot_if_due().await.unwrap().is_some());
        assert!(identity.write_snapshot_if_due().await.unwrap().is_none());
        let written = std::fs::read(&file).unwrap();

        let r = start().await;
        let identity = &r.app.services.identity;
        assert!(identity.gallery_restored(), "{backend}");
        let due = identity.write_snapshot_if_due().await.unwrap();
        assert!(due.is_none(), "{backend}: nothing changed");
        assert_eq!(std::fs::read(&file).unwrap(), written, "{backend}");
        clock.advance(10 * 3_600_000 - 1_000);
        let due = identity.write_snapshot_if_due().await.unwrap();
        assert!(due.is_none(), "{backend}: not ten hours old yet");
        clock.advance(1_000);
        let due = identity.write_snapshot_if_due().await.unwrap();
        assert!(due.is_some(), "{backend}: ten hours old");
        // As a face deleted on another server does, before its change is
        // followed here.
        let mut conn = store.acquire().await.unwrap();
        let all = facepay_store::keys::SnapshotKeys::All;
        facepay_store::keys::destroy_snapshot_keys(&mut conn, all)
            .await
            .unwrap();
        drop(conn);
        let due = identity.write_snapshot_if_due().await.unwrap();
        assert!(due.is_some(), "{backend}: its key destroyed");

        let biden = enrolment(
            "+821098765432",
            "face_recognition/biden.jpg",
            "5555555555554444",
        );
        let (status, body, _) = r.enrol("d2", &biden).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let r = start().await;
        let identity = &r.app.services.identity;
        assert!(identity.gallery_restored(), "{backend}");
        let due = identity.write_snapshot_if_due().await.unwrap();
        assert_eq!(
            due.map(|(rows, _)| rows),
            Some(2),
            "{backend}: a change replayed"
        );
    }
}

fn today(now_ms: i64) -> String {
    let days = now_ms / 86_400_000;
    // Civil-from-days (Howard Hinnant), as the server's parse_date inverts.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One face, one account across servers: two apps on one PostgreSQL, each
/// with its own gallery as two nodes have, enrol the same face at once
/// under different phones. One account is made; the other is refused with
/// the code, and nothing of it is stored.
#[tokio::test]
async fn two_servers_enrolling_one_face_at_once_make_one_account() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    let stores = facepay_store::testing::stores(dir.path()).await.unwrap();
    let Some(store) = stores
        .into_iter()
        .find(|s| s.backend() == facepay_store::Backend::Postgres)
    else {
        return;
    };
    let data = dir.path().join("nodes");
    let config = || lenient(DecisionPolicy::default());
    let a = Harness::new(store.clone(), Arc::clone(&engine), &data, config()).await;
    let b = Harness::new(store.clone(), Arc::clone(&engine), &data, config()).await;
    let before = accounts(&store).await;
    let photos = ["face_recognition/obama.jpg", "face_recognition/biden.jpg"];
    for (round, photo) in photos.into_iter().enumerate() {
        let first = enrolment(&format!("+82101111000{round}"), photo, "4242424242424242");
        let second = enrolment(&format!("+82102222000{round}"), photo, "5555555555554444");
        let (key_a, key_b) = (format!("a{round}"), format!("b{round}"));
        let ((status_a, body_a, _), (status_b, body_b, _)) =
            tokio::join!(a.enrol(&key_a, &first), b.enrol(&key_b, &second));
        let mut answers = [(status_a, body_a), (status_b, body_b)];
        answers.sort_by_key(|(status, _)| *status);
        assert_eq!(answers[0].0, 201, "{photo}: {answers:?}");
        assert_eq!(
            (answers[1].0, answers[1].1["error"]["code"].as_str()),
            (409, Some("face_already_enrolled")),
            "{photo}"
        );
    }
    assert_eq!(accounts(&store).await, before + 2, "one account per face");
}

async fn accounts(store: &Store) -> i64 {
    let mut conn = store.acquire().await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    count
}

/// A first payment at a merchant is announced to the other servers after
/// its answer, through the change log: the announcement is queued, not
/// waited for, and lands as one `regular` change.
#[tokio::test]
async fn a_first_payment_is_announced_to_the_other_servers() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = Harness::new(
            store.clone(),
            Arc::clone(&engine),
            &data,
            lenient(DecisionPolicy::default()),
        )
        .await;
        let photo = "face_recognition/obama.jpg";
        let (status, body, _) = h
            .enrol("a1", &enrolment("+821012345678", photo, "4242424242424242"))
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let user_id = body["user_id"].as_str().unwrap().to_owned();
        let (status, body, _) = h
            .pay("a2", &payment("face_recognition/obama2.jpg", "100"))
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let regulars = loop {
            let mut conn = store.acquire().await.unwrap();
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM gallery_changes WHERE user_id = $1 AND kind = 'regular'",
            )
            .bind(&user_id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            if n > 0 || std::time::Instant::now() > deadline {
                break n;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(regulars, 1, "{backend}: one announcement");
    }
}
