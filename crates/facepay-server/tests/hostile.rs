//! Hostile input on every route the API document lists, on SQLite and (when
//! `FACEPAY_TEST_POSTGRES_URL` names one) PostgreSQL: bad path parameters
//! (NUL, bytes that are not UTF-8, bad percent-encoding, huge numbers,
//! very long), bad bodies (truncated, wrong JSON types, NUL, huge and
//! negative numbers, deep nesting, not UTF-8), wrong content types, bad
//! and duplicate headers, bad queries, a method no route takes; each sent with the caller's real
//! credential where the route has one, so the input reaches past the
//! edge's first check. Nothing may answer 5xx, and every 4xx must be in
//! the `{"error":{"code","message"}}` shape. Prints the counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use facepay_server::seed::{self, HubFile, MerchantFile, OperatorFile};
use facepay_terminal::TerminalFile;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The least number of requests each store must be sent.
const REQUESTS_MIN: usize = 1_000;
/// The largest answer read.
const ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// What a route's caller shows.
struct Credentials {
    terminal_id: String,
    terminal_key: ed25519_dalek::SigningKey,
    merchant_key: String,
    operator_key: String,
    member_key: String,
}

impl Credentials {
    fn load(dir: &Path) -> Self {
        let (terminal_id, terminal_key) = TerminalFile::load(&seed::terminal_file(dir)).unwrap();
        let read = |file: std::path::PathBuf| std::fs::read_to_string(file).unwrap();
        let merchant: MerchantFile = serde_json::from_str(&read(seed::merchant_file(dir))).unwrap();
        let operator: OperatorFile = serde_json::from_str(&read(seed::operator_file(dir))).unwrap();
        let hub: HubFile = serde_json::from_str(&read(seed::hub_file(dir))).unwrap();
        Self {
            terminal_id,
            terminal_key,
            merchant_key: merchant.api_key,
            operator_key: operator.operator_key,
            member_key: hub.member_keys.into_values().next().unwrap_or_default(),
        }
    }
}

/// One operation of the document: method, path template, the security
/// schemes it requires.
struct Operation {
    method: String,
    path: String,
    schemes: Vec<String>,
}

/// One hostile request.
struct Case {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Whether the caller's credential is added (a terminal signs the
    /// request as sent).
    credential: bool,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let schemes = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|r| r.keys().cloned())
                .collect();
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                schemes,
            });
        }
    }
    operations
}

/// Path parameters no route takes.
fn path_fills() -> Vec<String> {
    [
        "%00",
        "a%00b",
        "%FF%FE",
        "%ZZ",
        "%",
        "a%2Fb",
        "..%2F..%2Fetc",
        "99999999999999999999999999999999",
        "-1",
        "%F0%9F%98%80",
        "%C0%AF",
        "null",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["x".repeat(4_000), "pay_nonexistent".to_owned()])
    .collect()
}

/// Bodies no command takes.
fn bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "{",
        "[]",
        "null",
        "true",
        "\"text\"",
        "{}",
        "{\"amount\":\"1e999\",\"currency\":\"KRW\"}",
        "{\"amount\":1e999}",
        "{\"amount\":\"99999999999999999999999999999999\",\"currency\":\"KRW\"}",
        "{\"amount\":\"-5\",\"currency\":\"USD\"}",
        "{\"amount\":\"12.345\",\"currency\":\"XXX\"}",
        "{\"amount\":18446744073709551616}",
        "{\"id\":\"\\u0000\",\"payment_id\":\"a\\u0000\",\"coupon_id\":\"\\u0000\"}",
        "{\"quote_id\":\"\\u0000\",\"value\":\"\\u0000\",\"kind\":\"\\u0000\"}",
        "{\"frames\":[\"!!!not base64\"],\"phone\":\"+82\\u0000\"}",
        "{\"frames\":\"none\",\"amount\":[],\"currency\":{}}",
        "{\"\\u0000\":1}",
        "{\"a\":1,\"a\":2}",
        "{\"date\":\"2024-02-30\",\"limit\":-1}",
    ]
    .iter()
    .map(|b| b.as_bytes().to_vec())
    .collect();
    bodies.push(b"{\"x\":\"\xff\xfe\"}".to_vec());
    bodies.push(format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes());
    bodies.push("[".repeat(100_000).into_bytes());
    bodies.push(format!("{{\"reason\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes());
    bodies
}

fn json_headers(key: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("idempotency-key".into(), key.as_bytes().to_vec()),
    ]
}

/// The target with its path parameters replaced by `fill`.
fn target(template: &str, fill: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(fill);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

fn cases(operation: &Operation, serial: &mut usize) -> Vec<Case> {
    let mut key = || {
        *serial += 1;
        format!("hostile-{serial}")
    };
    let plain = target(&operation.path, "pay_nonexistent");
    let case = |target: String, headers, body: Vec<u8>, credential| Case {
        method: operation.method.clone(),
        target,
        headers,
        body,
        credential,
    };
    let mut cases = Vec::new();
    if operation.path.contains('{') {
        for fill in path_fills() {
            let t = target(&operation.path, &fill);
            cases.push(case(t, json_headers(&key()), b"{}".to_vec(), true));
        }
    }
    for body in bodies() {
        cases.push(case(plain.clone(), json_headers(&key()), body, true));
    }
    for content_type in [
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data",
        "image/png",
    ] {
        let mut headers = json_headers(&key());
        headers[0].1 = content_type.as_bytes().to_vec();
        cases.push(case(plain.clone(), headers, b"{}".to_vec(), true));
    }
    let mut no_type = json_headers(&key());
    no_type.remove(0);
    cases.push(case(plain.clone(), no_type, b"{}".to_vec(), true));
    for headers in hostile_headers(&key()) {
        cases.push(case(plain.clone(), headers, b"{}".to_vec(), false));
    }
    let mut duplicate_key = json_headers(&key());
    duplicate_key.push(("idempotency-key".into(), b"another".to_vec()));
    cases.push(case(plain.clone(), duplicate_key, b"{}".to_vec(), true));
    for query in [
        "?date=2024-02-30",
        "?limit=-1",
        "?%FF=1",
        "?a=%00",
        "?limit=99999999999999999999",
        "?from=x&to=y&currency=%00",
        "?&&==&",
    ] {
        cases.push(case(
            format!("{plain}{query}"),
            json_headers(&key()),
            b"{}".to_vec(),
            true,
        ));
    }
    // A method no route takes: 405.
    cases.push(Case {
        method: "PATCH".into(),
        ..case(plain, json_headers(&key()), b"{}".to_vec(), true)
    });
    cases
}

/// Headers in place of a credential: malformed, duplicated, unknown.
fn hostile_headers(key: &str) -> Vec<Vec<(String, Vec<u8>)>> {
    let with = |extra: &[(&str, &[u8])]| {
        let mut headers = json_headers(key);
        headers.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), v.to_vec())));
        headers
    };
    vec![
        with(&[("authorization", b"Bearer")]),
        with(&[("authorization", b"Bearer fpk_not_a_key")]),
        with(&[("authorization", b"Basic dXNlcjpwYXNz")]),
        with(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ]),
        with(&[("authorization", b"Bearer \xff\xfe")]),
        with(&[
            (HEADER_TERMINAL, b"trm_demo_till1"),
            (HEADER_TIMESTAMP, b"not a number"),
            (HEADER_NONCE, b"n"),
            (HEADER_SIGNATURE, b"!!"),
        ]),
        with(&[
            (HEADER_TERMINAL, b"trm_demo_till1"),
            (HEADER_TERMINAL, b"trm_other"),
            (HEADER_TIMESTAMP, b"99999999999999999999999"),
            (HEADER_NONCE, b"0123456789abcdef0123"),
            (HEADER_SIGNATURE, b"AAAA"),
        ]),
        with(&[("idempotency-key", b"a key with spaces")]),
    ]
}

/// The case as a request, with the caller's credential when it asks.
fn request(
    case: &Case,
    operation: &Operation,
    credentials: &Credentials,
    now_ms: i64,
) -> Option<Request<Body>> {
    let mut builder = Request::builder()
        .method(case.method.as_str())
        .uri(&case.target);
    for (name, value) in &case.headers {
        builder = builder.header(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    if case.credential {
        for (name, value) in credential(operation, case, credentials, now_ms) {
            builder = builder.header(name, value);
        }
    }
    builder.body(Body::from(case.body.clone())).ok()
}

fn credential(
    operation: &Operation,
    case: &Case,
    c: &Credentials,
    now_ms: i64,
) -> Vec<(&'static str, String)> {
    let schemes = &operation.schemes;
    if schemes.iter().any(|s| s.starts_with("terminal_")) {
        let h = signing::sign(
            &c.terminal_key,
            &c.terminal_id,
            &case.method,
            &case.target,
            now_ms,
            &case.body,
        )
        .unwrap();
        return vec![
            (HEADER_TERMINAL, h.terminal_id),
            (HEADER_TIMESTAMP, h.timestamp_ms.to_string()),
            (HEADER_NONCE, h.nonce),
            (HEADER_SIGNATURE, h.signature),
        ];
    }
    let bearer = |secret: &str| vec![("authorization", format!("Bearer {secret}"))];
    match schemes.first().map(String::as_str) {
        Some("merchant_key") => bearer(&c.merchant_key),
        Some("operator_key") => bearer(&c.operator_key),
        Some("hub_member_key") => bearer(&c.member_key),
        Some(_) => bearer("fpu_not_a_token"),
        None => Vec::new(),
    }
}

/// Counts of what the store answered, and the answers that broke a rule.
#[derive(Default)]
struct Tally {
    sent: usize,
    by_status: BTreeMap<u16, usize>,
    broken: Vec<String>,
}

async fn run_on(store: facepay_store::Store, engine: Arc<FaceEngine>, dir: &Path) -> Tally {
    let app = facepay_server::root::embedded_app(
        store,
        engine,
        Arc::new(facepay_store::SystemClock),
        dir,
        facepay_payments::Config::default(),
    )
    .await
    .unwrap();
    seed::ensure_parties(&app, dir).await.unwrap();
    let credentials = Credentials::load(dir);
    let router = facepay_server::router(&app);
    let document = get_json(&router, "/openapi.json").await;
    let mut tally = Tally::default();
    let mut serial = 0;
    for operation in operations(&document) {
        for case in cases(&operation, &mut serial) {
            let now_ms = app.services.clock().now_ms();
            let Some(request) = request(&case, &operation, &credentials, now_ms) else {
                continue;
            };
            let (status, body) = send(&router, request).await;
            tally.sent += 1;
            *tally.by_status.entry(status).or_default() += 1;
            if let Some(broken) = judge(status, &body) {
                let body_start: String = String::from_utf8_lossy(&case.body)
                    .chars()
                    .take(60)
                    .collect();
                let target: String = case.target.chars().take(120).collect();
                tally.broken.push(format!(
                    "{} {target} [{body_start}]: {status} {broken}",
                    case.method
                ));
            }
        }
    }
    tally
}

/// What is wrong with an answer, if anything.
fn judge(status: u16, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if status >= 500 {
        return Some(format!("a server error: {text}"));
    }
    if status >= 400 {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let code = json["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty());
        let message = json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if !(code && message) {
            return Some(format!("not the error shape: {text}"));
        }
    }
    None
}

async fn send(router: &axum::Router, request: Request<Body>) -> (u16, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

async fn get_json(router: &axum::Router, path: &str) -> Value {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let (status, body) = send(router, request).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_client_error_in_the_error_shape_on_every_route() {
    let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
        .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"));
    let engine = Arc::new(engine);
    let dir = tempfile::tempdir().unwrap();
    let stores = facepay_store::testing::stores(dir.path()).await.unwrap();
    let mut broken = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let backend = store.backend().name();
        let data = dir.path().join(format!("app{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let start = std::time::Instant::now();
        let tally = run_on(store, Arc::clone(&engine), &data).await;
        println!(
            "{backend}: {} hostile requests in {} ms, by status {:?}, {} broke a rule",
            tally.sent,
            start.elapsed().as_millis(),
            tally.by_status,
            tally.broken.len()
        );
        assert!(
            tally.sent >= REQUESTS_MIN,
            "{backend}: only {} sent",
            tally.sent
        );
        broken.extend(tally.broken.into_iter().map(|b| format!("{backend}: {b}")));
    }
    assert!(
        broken.is_empty(),
        "{} answers broke a rule:\n{}",
        broken.len(),
        broken.join("\n")
    );
}
