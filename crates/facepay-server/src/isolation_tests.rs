//! Isolation over HTTP, on SQLite and (when CI gives one) PostgreSQL: every
//! route of the served OpenAPI document that needs a caller is walked with
//! the wrong party's credentials (another merchant's key, another user's
//! token, another merchant's terminal, a retired terminal, an expired or
//! revoked key, a read-only key or a `support` operator on a write, another
//! member network's key, and every kind of credential on a route for
//! another kind). Each answer is a coded 401, 403 or 404, and every table
//! of the store reads the same after the walk as before it.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Request;
use ed25519_dalek::SigningKey;
use facepay_hub::demo::merchant_qr;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use facepay_payments::{Config, DecisionPolicy, WebhookConfig};
use facepay_store::{Backend, Clock, Store};
use facepay_terminal::TerminalFile;
use facepay_webhooks::Destinations;
use serde_json::{Value, json};

use super::flow_tests::{enrolment, lenient, payment};
use super::onboarding_tests::{Setup, merchant_and_store, setup_with};
use crate::seed::{self as demo, HubFile, MerchantFile};

/// Routes any caller may use, with why: the walk skips them and only them.
const PUBLIC: [(&str, &str, &str); 11] = [
    ("get", "/", "the front page"),
    ("get", "/health", "liveness for load balancers"),
    ("get", "/healthz", "readiness for load balancers"),
    ("get", "/metrics", "Prometheus scrapes it"),
    ("get", "/openapi.json", "the API's own description"),
    ("get", "/docs", "the API's documentation page"),
    (
        "get",
        "/v1/deployment",
        "what the pages show of this deployment",
    ),
    (
        "post",
        "/api/v1/face/analyze",
        "photo guidance before enrolment",
    ),
    ("post", "/v1/users", "enrolment makes the caller's token"),
    (
        "post",
        "/v1/terminals/pair",
        "the one-time code is the credential",
    ),
    (
        "post",
        "/v1/connectors/hyperswitch/webhooks",
        "signed by the acquirer, checked in the handler",
    ),
];

/// Routes that name a party's own resource, walked with the same kind of
/// credential of another party too (which must not reach it).
const CROSS: [(&str, &str); 20] = [
    ("get", "/v1/merchant/payments/{id}"),
    ("post", "/v1/merchant/payments/{id}/capture"),
    ("post", "/v1/merchant/payments/{id}/void"),
    ("post", "/v1/merchant/payments/{id}/refunds"),
    ("post", "/v1/merchant/keys/{id}/rotate"),
    ("post", "/v1/merchant/keys/{id}/revoke"),
    ("post", "/v1/merchant/loyalty/{what}/{id}/{action}"),
    ("patch", "/v1/merchant/webhooks/{id}"),
    ("delete", "/v1/merchant/webhooks/{id}"),
    ("get", "/v1/merchant/webhooks/{id}/deliveries"),
    (
        "post",
        "/v1/merchant/webhooks/{id}/deliveries/{event_id}/redeliver",
    ),
    ("post", "/v1/terminal/payments/{id}/step-up"),
    ("post", "/v1/users/me/claims"),
    ("post", "/v1/users/me/hub/transfers"),
    ("post", "/v1/users/me/cards/{id}/replace"),
    ("post", "/v1/users/me/cards/{id}/default"),
    ("delete", "/v1/users/me/cards/{id}"),
    ("get", "/v1/hub/transfers/{id}"),
    ("post", "/v1/hub/transfers"),
    ("post", "/v1/hub/withdrawals/{id}/confirm"),
];

/// Routes with a path parameter that still only show or change the
/// caller's own, with why another party's credential is no wrong party.
const OWN: [(&str, &str, &str); 2] = [
    (
        "get",
        "/v1/hub/windows/{id}/mine",
        "a window is shared; the answer is the caller's own position in it",
    ),
    (
        "put",
        "/v1/users/me/loyalty/{merchant_id}",
        "the caller's own choice at a merchant anyone may pay",
    ),
];

/// Pairs below this mean the walk lost routes or credentials.
const PAIRS_MIN: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Merchant,
    User,
    Terminal,
    Member,
    Operator,
}

#[derive(Clone)]
enum Credential {
    Bearer(String),
    Signed(String, Box<SigningKey>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    OnWrites,
    /// Only on the `CROSS` routes.
    OnCross,
}

struct Wrong {
    label: &'static str,
    kind: Kind,
    credential: Credential,
    when: When,
}

/// The victims' resources (the demo merchant's, its user's, the Korean
/// wallet's) and the credentials of everyone else.
struct World {
    merchant_id: String,
    terminal_id: String,
    payment_id: String,
    read_key_id: String,
    endpoint_id: String,
    event_id: String,
    program_id: String,
    /// The victim user's card.
    card_id: String,
    user_id: String,
    user_quote_id: String,
    member_quote_id: String,
    member_transfer_id: String,
    /// A valid credential of each kind (the victims' own).
    valid: Vec<(Kind, Credential)>,
    wrong: Vec<Wrong>,
}

struct Route {
    method: String,
    template: String,
    kind: Kind,
    operation: Value,
}

fn kind_of(operation: &Value) -> Option<Kind> {
    let schemes: BTreeSet<String> = operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect();
    let kind = schemes.iter().find_map(|s| match s.as_str() {
        "merchant_key" => Some(Kind::Merchant),
        "user_token" => Some(Kind::User),
        "operator_key" => Some(Kind::Operator),
        "hub_member_key" => Some(Kind::Member),
        s if s.starts_with("terminal_") => Some(Kind::Terminal),
        _ => None,
    });
    assert!(
        kind.is_some() || schemes.is_empty(),
        "an unknown scheme: {schemes:?}"
    );
    kind
}

/// Every operation of the served document that needs a caller; asserts
/// the others are the `PUBLIC` ones.
fn routes() -> Vec<Route> {
    let document: Value = serde_json::from_str(crate::openapi::json().unwrap()).unwrap();
    let mut routes = Vec::new();
    let mut public = BTreeSet::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in crate::openapi::METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            match kind_of(operation) {
                Some(kind) => routes.push(Route {
                    method: method.to_owned(),
                    template: template.clone(),
                    kind,
                    operation: operation.clone(),
                }),
                None => {
                    public.insert((method.to_owned(), template.clone()));
                }
            }
        }
    }
    let named: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(public, named, "a route without a credential must be named");
    let walked: BTreeSet<(&str, &str)> = routes
        .iter()
        .map(|r| (r.method.as_str(), r.template.as_str()))
        .collect();
    for (method, template) in CROSS
        .iter()
        .copied()
        .chain(OWN.iter().map(|&(m, p, _)| (m, p)))
    {
        assert!(walked.contains(&(method, template)), "{method} {template}");
    }
    for r in routes.iter().filter(|r| r.kind != Kind::Operator) {
        let at = (r.method.as_str(), r.template.as_str());
        let named = CROSS.contains(&at) || OWN.iter().any(|(m, p, _)| (*m, *p) == at);
        assert!(
            !r.template.contains('{') || named,
            "{} {}: name it in CROSS or OWN",
            r.method,
            r.template
        );
    }
    routes
}

/// The value for a path parameter: an enum's first value, or the victim's
/// resource the route names.
fn parameter(route: &Route, name: &str, w: &World) -> String {
    let declared = route.operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["in"] == "path" && p["name"] == name);
    if let Some(first) = declared.and_then(|p| p["schema"]["enum"][0].as_str()) {
        return first.to_owned();
    }
    let t = route.template.as_str();
    let value = match name {
        "merchant_id" => &w.merchant_id,
        "key_id" => &w.read_key_id,
        "event_id" => &w.event_id,
        "kind" => "country",
        "value" => "ZZ",
        "id" if t.contains("/payments/") => &w.payment_id,
        "id" if t.starts_with("/v1/merchant/keys/") => &w.read_key_id,
        "id" if t.starts_with("/v1/merchant/loyalty/") => &w.program_id,
        "id" if t.starts_with("/v1/merchant/webhooks/") => &w.endpoint_id,
        "id" if t.starts_with("/v1/users/me/cards/") => &w.card_id,
        "id" if t.starts_with("/v1/operator/merchants/") => &w.merchant_id,
        "id" if t.starts_with("/v1/operator/terminals/") => &w.terminal_id,
        "id" if t.starts_with("/v1/hub/transfers/") || t.starts_with("/v1/hub/withdrawals/") => {
            &w.member_transfer_id
        }
        _ => "x_unknown",
    };
    value.to_owned()
}

fn concrete_path(route: &Route, w: &World) -> String {
    let mut path = route.template.clone();
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').unwrap();
        let value = parameter(route, &path[start + 1..end], w);
        path.replace_range(start..=end, &value);
    }
    path
}

/// A body the route takes, naming the victim's resource where it names
/// one: refused on its credential, never on its shape.
fn body(route: &Route, w: &World) -> Option<Value> {
    let body = match (route.method.as_str(), route.template.as_str()) {
        (_, "/v1/merchant/payments/{id}/capture" | "/v1/merchant/payments/{id}/refunds") => {
            json!({"amount": "1000"})
        }
        (_, "/v1/merchant/keys/{id}/rotate") => json!({"overlap_s": 60}),
        ("patch", "/v1/merchant/webhooks/{id}") => json!({"enabled": false}),
        (_, "/v1/terminal/payments/{id}/step-up") => json!({"pin": "123456"}),
        (_, "/v1/users/me/claims") => {
            json!({"payment_id": w.payment_id, "reason": "not me"})
        }
        (_, "/v1/users/me/hub/transfers") => json!({"quote_id": w.user_quote_id}),
        (_, "/v1/hub/transfers") => json!({"quote_id": w.member_quote_id}),
        (_, "/v1/hub/withdrawals/{id}/confirm") => json!({"dispensed": true}),
        // A number that fails its check digit: the owner is refused on it
        // (422), and their card stays for the walk's last step.
        (_, "/v1/users/me/cards/{id}/replace") => json!({"card": {
            "number": "4242424242424241", "expiry_month": 12, "expiry_year": 2030,
            "security_code": "123"}}),
        ("get" | "delete", _) => return None,
        _ => json!({}),
    };
    Some(body)
}

fn request(
    s: &Setup,
    credential: &Credential,
    method: &str,
    path: &str,
    body: Option<&Value>,
    n: usize,
) -> Request<Body> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let builder = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(path)
        .header("content-type", "application/json");
    let builder = match credential {
        Credential::Bearer(secret) => builder
            .header("authorization", format!("Bearer {secret}"))
            .header("idempotency-key", format!("isolation-{n}")),
        Credential::Signed(terminal_id, key) => {
            let method = method.to_uppercase();
            let h =
                signing::sign(key, terminal_id, &method, path, s.clock.now_ms(), &bytes).unwrap();
            builder
                .header("idempotency-key", &h.nonce)
                .header(HEADER_TERMINAL, &h.terminal_id)
                .header(HEADER_TIMESTAMP, h.timestamp_ms.to_string())
                .header(HEADER_NONCE, &h.nonce)
                .header(HEADER_SIGNATURE, &h.signature)
        }
    };
    builder.body(Body::from(bytes)).unwrap()
}

/// A refusal as the document promises it: 401, 403 or 404 with a coded
/// error; `None` when it is, what is wrong otherwise.
fn refused(status: u16, body: &Value) -> Option<String> {
    let error = &body["error"];
    let coded = [&error["code"], &error["message"]]
        .iter()
        .all(|v| v.as_str().is_some_and(|t| !t.is_empty()));
    let only_error = body.as_object().is_some_and(|o| o.len() == 1);
    if [401, 403, 404].contains(&status) && coded && only_error {
        None
    } else {
        Some(format!("{status} {body}"))
    }
}

/// Walks every route with every wrong credential that applies to it;
/// answers how many pairs were tried, and the failures.
async fn walk(s: &Setup, routes: &[Route], w: &World) -> (usize, Vec<String>) {
    let mut tried = 0;
    let mut failures = Vec::new();
    for route in routes {
        let path = concrete_path(route, w);
        let body = body(route, w);
        let is_write = route.method != "get";
        let cross = CROSS.contains(&(route.method.as_str(), route.template.as_str()));
        let other_kinds = w
            .valid
            .iter()
            .filter(|(kind, _)| *kind != route.kind)
            .map(|(kind, c)| (format!("a {kind:?} credential"), c));
        let wrong = w
            .wrong
            .iter()
            .filter(|x| x.kind == route.kind)
            .filter(|x| match x.when {
                When::Always => true,
                When::OnWrites => is_write,
                When::OnCross => cross,
            })
            .map(|x| (x.label.to_owned(), &x.credential));
        for (label, credential) in other_kinds.chain(wrong) {
            tried += 1;
            let request = request(s, credential, &route.method, &path, body.as_ref(), tried);
            let (status, answer, _) = s.h.send(request).await;
            if let Some(problem) = refused(status, &answer) {
                failures.push(format!(
                    "{} {} ({path}) with {label}: {problem}",
                    route.method, route.template
                ));
            }
        }
    }
    (tried, failures)
}

/// Another party's reads of a list show none of the victims' resources.
async fn lists_show_only_their_own(s: &Setup, routes: &[Route], w: &World) -> usize {
    let secrets: Vec<&str> = [
        &w.payment_id,
        &w.endpoint_id,
        &w.read_key_id,
        &w.program_id,
        &w.card_id,
    ]
    .into_iter()
    .chain([&w.user_id])
    .map(String::as_str)
    .collect();
    let mut read = 0;
    for route in routes
        .iter()
        .filter(|r| r.method == "get" && !r.template.contains('{'))
    {
        let Some(other) = w
            .wrong
            .iter()
            .find(|x| x.kind == route.kind && x.when == When::OnCross)
        else {
            continue;
        };
        read += 1;
        let request = request(s, &other.credential, "get", &route.template, None, read);
        let (status, _, text) = s.h.send(request).await;
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "{}: {} shows {secret} to {}: {status} {text}",
                s.backend,
                route.template,
                other.label
            );
        }
    }
    read
}

async fn victims_reach_their_own(s: &Setup, routes: &[Route], w: &World) {
    let mut cross: Vec<&Route> = routes
        .iter()
        .filter(|r| CROSS.contains(&(r.method.as_str(), r.template.as_str())))
        .collect();
    // What the others only tried to delete goes last, when the rest is done.
    cross.sort_by_key(|r| r.method == "delete");
    for (n, route) in cross.into_iter().enumerate() {
        let (_, credential) = w.valid.iter().find(|(k, _)| *k == route.kind).unwrap();
        let path = concrete_path(route, w);
        let body = body(route, w);
        let request = request(
            s,
            credential,
            &route.method,
            &path,
            body.as_ref(),
            10_000 + n,
        );
        let (status, answer, _) = s.h.send(request).await;
        // A withdrawal's confirmation names a transfer that is no
        // withdrawal: the owner is told so with a 404 of its own.
        let unknown_to_owner = route.template.starts_with("/v1/hub/withdrawals/")
            && answer["error"]["code"] == "hub_unknown_transfer";
        // The replacing card fails its check digit, which the server reads
        // only once it found the owner's card (a stranger's is not found
        // first): the owner's card stays for the delete that comes last.
        let owner_card_reached = route.template.ends_with("/cards/{id}/replace")
            && answer["error"]["code"] == "card_number_luhn";
        assert!(
            ![400, 401, 403, 404, 415, 422].contains(&status)
                || unknown_to_owner
                || owner_card_reached,
            "{}: {} {path} by its owner: {status} {answer}",
            s.backend,
            route.method
        );
    }
}

#[tokio::test]
async fn every_route_refuses_the_wrong_party_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let routes = routes();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let data = dir.path().join(store.backend().name());
        let s = setup_with(store.clone(), &data, config()).await;
        let w = world(&s, &data).await;
        let before = tables(&store).await;
        let (tried, failures) = walk(&s, &routes, &w).await;
        let lists = lists_show_only_their_own(&s, &routes, &w).await;
        let after = tables(&store).await;
        println!(
            "{}: {} routes, {tried} (route, wrong credential) pairs tried, \
             {lists} lists read by another party",
            s.backend,
            routes.len()
        );
        assert!(
            failures.is_empty(),
            "{}: {} let through or answered off the document:\n{}",
            s.backend,
            failures.len(),
            failures.join("\n")
        );
        assert_unchanged(s.backend, &before, &after);
        assert!(tried >= PAIRS_MIN, "{}: only {tried} pairs", s.backend);
        // The victims reach what the others could not: their refusals were
        // isolation, not a wrong path or body.
        victims_reach_their_own(&s, &routes, &w).await;
        super::flow_tests::verify(&store).await;
    }
}

fn config() -> Config {
    Config {
        webhooks: WebhookConfig {
            destinations: Destinations::Loopback,
            ..WebhookConfig::default()
        },
        ..lenient(DecisionPolicy::default())
    }
}

fn assert_unchanged(
    backend: &str,
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) {
    assert!(before.len() > 40, "{backend}: {} tables", before.len());
    for table in [
        "payments",
        "api_keys",
        "webhook_deliveries",
        "hub_transfers",
        "terminals",
    ] {
        assert!(!before[table].is_empty(), "{backend}: {table} is empty");
    }
    let mut changed = Vec::new();
    for (table, rows) in before {
        let now = &after[table];
        if let Some((_, why)) = TECHNICAL.iter().find(|(t, _)| t == table) {
            println!(
                "{backend}: {table}: {} rows before, {} after ({why})",
                rows.len(),
                now.len()
            );
        } else if rows != now {
            let was: BTreeSet<&String> = rows.iter().collect();
            let is: BTreeSet<&String> = now.iter().collect();
            changed.push(format!(
                "{table}: gone {:?}, new {:?}",
                was.difference(&is).collect::<Vec<_>>(),
                is.difference(&was).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "{backend}: the walk changed\n{}",
        changed.join("\n")
    );
}

/// Tables a refused request may still write, with why.
const TECHNICAL: [(&str, &str); 1] = [(
    "terminal_nonces",
    "a nonce is spent once its signature verifies, refused or not, so \
     the request cannot be replayed",
)];

/// Every row of every table, as text, sorted.
async fn tables(store: &Store) -> BTreeMap<String, Vec<String>> {
    let list = match store.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name NOT LIKE '_sqlx%'"
        }
    };
    let names: Vec<(String,)> = sqlx::query_as(list).fetch_all(store.pool()).await.unwrap();
    let mut tables = BTreeMap::new();
    for (table,) in names {
        let sql = match store.backend() {
            Backend::Sqlite => sqlite_rows_sql(store, &table).await,
            Backend::Postgres => format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t"),
        };
        let rows: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(store.pool()).await.unwrap();
        let mut rows: Vec<String> = rows.into_iter().map(|(r,)| r).collect();
        rows.sort();
        tables.insert(table, rows);
    }
    tables
}

/// A query that gives each row of a SQLite table as one text.
async fn sqlite_rows_sql(store: &Store, table: &str) -> String {
    let sql = format!("SELECT name FROM pragma_table_info('{table}')");
    let columns: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(store.pool()).await.unwrap();
    let quoted: Vec<String> = columns
        .iter()
        .map(|(c,)| format!("quote(\"{c}\")"))
        .collect();
    format!("SELECT {} FROM \"{table}\"", quoted.join(" || '|' || "))
}

fn jakarta_qr() -> String {
    merchant_qr(
        ("id.co.qris.sim", "warung-01"),
        ("Warung Makan", "Jakarta", "ID"),
        360,
        Some("55000"),
        "INV-0042",
    )
    .unwrap()
}

/// Checks a setup step went through and answers its body.
fn made(backend: &str, what: &str, (status, body): (u16, Value)) -> Value {
    assert!(
        (200..300).contains(&status),
        "{backend}: {what}: {status} {body}"
    );
    body
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value}"))
        .to_owned()
}

/// The victims' resources: the demo merchant's payment by a user, its
/// keys, webhook endpoint (with a delivery) and loyalty program, and the
/// Korean wallet's transfer; and every wrong party's credential.
async fn world(s: &Setup, data: &std::path::Path) -> World {
    let b = s.backend;
    let merchant: MerchantFile =
        serde_json::from_str(&std::fs::read_to_string(demo::merchant_file(data)).unwrap()).unwrap();
    let admin = merchant.api_key;
    let a = |key: &'static str, path: &'static str, body: Value| {
        let admin = admin.clone();
        async move { s.h.with_bearer(&admin, "POST", path, key, Some(body)).await }
    };
    let endpoint = made(
        b,
        "endpoint",
        a(
            "endpoint-1",
            "/v1/merchant/webhooks",
            json!({"url": "http://127.0.0.1:9/hooks", "events": ["payment.approved"]}),
        )
        .await,
    );
    let program = made(
        b,
        "program",
        a(
            "program-1",
            "/v1/merchant/loyalty/programs",
            json!({"kind": "points", "points_bps": 50}),
        )
        .await,
    );
    let obama = enrolment(
        "+821012340001",
        "face_recognition/obama.jpg",
        "4242424242424242",
    );
    let (status, stale, _) = s.h.enrol("e1", &obama).await;
    assert_eq!(status, 201, "{b}: {stale}");
    let (_, user, _) = s.h.enrol("e1", &obama).await;
    let biden = enrolment(
        "+821098765432",
        "face_recognition/biden.jpg",
        "5555555555554444",
    );
    let (status, other_user, _) = s.h.enrol("e2", &biden).await;
    assert_eq!(status, 201, "{b}: {other_user}");
    let (status, paid, _) =
        s.h.pay("p1", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
    assert_eq!(status, 201, "{b}: {paid}");
    let endpoint_id = text(&endpoint["endpoint"]["id"]);
    let deliveries = format!("/v1/merchant/webhooks/{endpoint_id}/deliveries");
    let (_, deliveries) = s.h.with_bearer(&admin, "GET", &deliveries, "-", None).await;
    let token = text(&user["token"]);
    let (_, cards) =
        s.h.with_bearer(&token, "GET", "/v1/users/me/cards", "-", None)
            .await;
    let user_quote = made(
        b,
        "user quote",
        s.h.with_bearer(
            &token,
            "POST",
            "/v1/users/me/hub/quotes",
            "q1",
            Some(json!({"qr": jakarta_qr()})),
        )
        .await,
    );
    let mut w = World {
        merchant_id: demo::MERCHANT_ID.to_owned(),
        terminal_id: s.h.terminal_id.clone(),
        payment_id: text(&paid["id"]),
        read_key_id: String::new(),
        endpoint_id,
        event_id: text(&deliveries["deliveries"][0]["event_id"]),
        program_id: text(&program["id"]),
        card_id: text(&cards["cards"][0]["id"]),
        user_id: text(&user["user_id"]),
        user_quote_id: text(&user_quote["id"]),
        member_quote_id: String::new(),
        member_transfer_id: String::new(),
        valid: Vec::new(),
        wrong: Vec::new(),
    };
    let wrong_user = |label, token: &Value, when| Wrong {
        label,
        kind: Kind::User,
        credential: Credential::Bearer(text(token)),
        when,
    };
    w.wrong.push(wrong_user(
        "a superseded token",
        &stale["token"],
        When::Always,
    ));
    w.wrong.push(wrong_user(
        "another user's token",
        &other_user["token"],
        When::OnCross,
    ));
    let other_store = merchant_keys(s, &admin, &mut w).await;
    hub_members(s, data, &mut w).await;
    terminals(s, data, &other_store, &mut w).await;
    operators(s, &mut w).await;
    w.valid.push((Kind::Merchant, Credential::Bearer(admin)));
    w.valid.push((Kind::User, Credential::Bearer(token)));
    w.valid
        .push((Kind::Operator, Credential::Bearer(s.operator_key.clone())));
    // Expiries set in the steps above pass before the walk.
    s.clock.advance(2_000);
    w
}

/// The demo merchant's read, refund, expiring and revoked keys, and an
/// admin key of a second merchant.
async fn merchant_keys(s: &Setup, admin: &str, w: &mut World) -> String {
    let b = s.backend;
    let make = |n: u32, body: Value| {
        let admin = admin.to_owned();
        async move {
            let key = format!("key-{n}");
            let answer =
                s.h.with_bearer(&admin, "POST", "/v1/merchant/keys", &key, Some(body))
                    .await;
            made(b, "merchant key", answer)
        }
    };
    let read = make(1, json!({"scope": "read"})).await;
    let refund = make(2, json!({"scope": "refund_capture"})).await;
    let expires_at_ms = s.clock.now_ms() + 1_000;
    let expiring = make(3, json!({"scope": "admin", "expires_at_ms": expires_at_ms})).await;
    let revoked = make(4, json!({"scope": "admin"})).await;
    let revoke = format!("/v1/merchant/keys/{}/revoke", text(&revoked["id"]));
    made(
        b,
        "revoke",
        s.h.with_bearer(admin, "POST", &revoke, "revoke-1", None)
            .await,
    );
    w.read_key_id = text(&read["id"]);
    let (other, other_store) = merchant_and_store(s).await;
    let keys = format!("/v1/operator/merchants/{other}/keys");
    let other_admin = made(
        b,
        "other merchant's key",
        s.operator("POST", &keys, "other-admin", json!({"scope": "admin"}))
            .await,
    );
    let merchant = |label, key: &Value, when| Wrong {
        label,
        kind: Kind::Merchant,
        credential: Credential::Bearer(text(&key["secret"])),
        when,
    };
    w.wrong.extend([
        merchant("a read-only key", &read, When::OnWrites),
        merchant("an expired key", &expiring, When::Always),
        merchant("a revoked key", &revoked, When::Always),
        merchant("another merchant's admin key", &other_admin, When::OnCross),
    ]);
    // A refund key is refused where only an admin key goes.
    for route in ["/v1/merchant/keys", "/v1/merchant/webhooks"] {
        let (status, body) =
            s.h.with_bearer(&text(&refund["secret"]), "GET", route, "-", None)
                .await;
        assert_eq!(
            status,
            if route.ends_with("keys") { 403 } else { 200 },
            "{b}: {body}"
        );
    }
    other_store
}

/// The Korean wallet's transfer and unused quote; Thailand's key.
async fn hub_members(s: &Setup, data: &std::path::Path, w: &mut World) {
    let b = s.backend;
    let text_file = std::fs::read_to_string(demo::hub_file(data)).unwrap();
    let keys = serde_json::from_str::<HubFile>(&text_file)
        .unwrap()
        .member_keys;
    let korea = keys["kr.wallet.sim"].clone();
    let quote_body = json!({"payer_account": "kim", "qr": jakarta_qr()});
    let quote = |n: &'static str| {
        let (korea, body) = (korea.clone(), quote_body.clone());
        async move {
            let answer =
                s.h.with_bearer(&korea, "POST", "/v1/hub/quotes", n, Some(body))
                    .await;
            made(b, "member quote", answer)
        }
    };
    let paid_quote = quote("mq1").await;
    let pay = json!({"quote_id": paid_quote["id"]});
    let transfer = made(
        b,
        "member transfer",
        s.h.with_bearer(&korea, "POST", "/v1/hub/transfers", "mt1", Some(pay))
            .await,
    );
    w.member_transfer_id = text(&transfer["id"]);
    w.member_quote_id = text(&quote("mq2").await["id"]);
    w.valid.push((Kind::Member, Credential::Bearer(korea)));
    w.wrong.push(Wrong {
        label: "another network's key",
        kind: Kind::Member,
        credential: Credential::Bearer(keys["th.promptpay.sim"].clone()),
        when: When::OnCross,
    });
}

/// A terminal of the second merchant's store, paired; one of the demo
/// store's, paired then retired; the demo terminal's id with another key.
async fn terminals(s: &Setup, data: &std::path::Path, other_store: &str, w: &mut World) {
    let b = s.backend;
    let (victim_id, victim_key) = TerminalFile::load(&demo::terminal_file(data)).unwrap();
    let mut paired = Vec::new();
    for (store_id, name) in [(other_store, "other-till"), (demo::STORE_ID, "old-till")] {
        let body = json!({"store_id": store_id, "name": name});
        let created = made(
            b,
            "terminal",
            s.operator("POST", "/v1/operator/terminals", name, body)
                .await,
        );
        let id = text(&created["terminal"]["id"]);
        let key = signing::new_terminal_key().unwrap();
        let code = text(&created["pairing_code"]);
        made(b, "pairing", s.pair(&id, &code, &key).await);
        paired.push((id, key));
    }
    let retire = format!("/v1/operator/terminals/{}/retire", paired[1].0);
    made(
        b,
        "retire",
        s.operator("POST", &retire, "retire", json!({})).await,
    );
    let signed = |label, (id, key): (String, SigningKey), when| Wrong {
        label,
        kind: Kind::Terminal,
        credential: Credential::Signed(id, Box::new(key)),
        when,
    };
    let other_key = paired[0].1.clone();
    let mut paired = paired.into_iter();
    w.wrong.extend([
        signed(
            "another merchant's terminal",
            paired.next().unwrap(),
            When::OnCross,
        ),
        signed("a retired terminal", paired.next().unwrap(), When::Always),
        signed(
            "this terminal's id signed by another terminal",
            (victim_id.clone(), other_key),
            When::Always,
        ),
    ]);
    w.valid.push((
        Kind::Terminal,
        Credential::Signed(victim_id, Box::new(victim_key)),
    ));
}

/// A `support` operator (refused every write) and the admin's expired and
/// revoked keys.
async fn operators(s: &Setup, w: &mut World) {
    let b = s.backend;
    let support = made(
        b,
        "support operator",
        s.operator(
            "POST",
            "/v1/operator/operators",
            "support",
            json!({"name": "support-1", "role": "support"}),
        )
        .await,
    );
    let expires_at_ms = s.clock.now_ms() + 1_000;
    let expiring = made(
        b,
        "expiring operator key",
        s.operator(
            "POST",
            "/v1/operator/keys",
            "op-key-1",
            json!({"operator": "demo", "expires_at_ms": expires_at_ms}),
        )
        .await,
    );
    let revoked = made(
        b,
        "operator key",
        s.operator(
            "POST",
            "/v1/operator/keys",
            "op-key-2",
            json!({"operator": "demo"}),
        )
        .await,
    );
    let revoke = format!("/v1/operator/keys/{}/revoke", text(&revoked["id"]));
    made(
        b,
        "revoke",
        s.operator("POST", &revoke, "op-revoke", json!({})).await,
    );
    let operator = |label, secret: &Value, when| Wrong {
        label,
        kind: Kind::Operator,
        credential: Credential::Bearer(text(secret)),
        when,
    };
    w.wrong.extend([
        operator(
            "a support operator",
            &support["key"]["secret"],
            When::OnWrites,
        ),
        operator("an expired operator key", &expiring["secret"], When::Always),
        operator("a revoked operator key", &revoked["secret"], When::Always),
    ]);
}
