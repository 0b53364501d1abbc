//! Webhooks across a SIGKILL: a receiver on loopback fails the first
//! three deliveries and then accepts; the server is killed with SIGKILL
//! while those three wait for their retry, and restarted; afterwards
//! every event of the outbox has arrived, each signature verifies with
//! the documented recipe, each event was accepted exactly once, and no
//! two deliveries of one event were ever under way at once.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_store::{Store, now_ms};
use serde_json::{Value, json};

mod common;
use common::{
    demo_terminal, free_port, fresh_postgres, lay_out_photos, post_signed, run_demo, serve_command,
    wait_ready,
};

/// Deliveries the receiver refuses before it accepts.
const REFUSED_FIRST: usize = 3;
/// The first retry waits this long (± 20%): far longer than the kill and
/// the restart take, so the refused deliveries are waiting, not under
/// way, when the server dies.
const RETRY_DELAY_FIRST_MS: u64 = 20_000;
/// Waiting for anything longer than this fails the test.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature: String,
    body: Vec<u8>,
    status: u16,
    at_s: i64,
}

#[derive(Default)]
struct Inbox {
    requests: AtomicUsize,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlapped: AtomicBool,
}

impl Inbox {
    fn accepted(&self) -> BTreeMap<String, usize> {
        let mut accepted = BTreeMap::new();
        for r in self
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
        {
            *accepted.entry(r.event_id.clone()).or_default() += 1;
        }
        accepted
    }

    fn refused(&self) -> usize {
        let received = self.received.lock().unwrap();
        received.iter().filter(|r| r.status != 200).count()
    }
}

/// A receiver on loopback, one thread per connection: the first
/// `REFUSED_FIRST` requests get 500, the rest 200.
fn receiver(inbox: Arc<Inbox>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || serve_one(&inbox, stream));
        }
    });
    url
}

fn serve_one(inbox: &Inbox, stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let event_id = headers.get("facepay-event-id").cloned().unwrap_or_default();
    {
        let mut in_flight = inbox.in_flight.lock().unwrap();
        let n = in_flight.entry(event_id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            inbox.overlapped.store(true, Ordering::SeqCst);
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    let n = inbox.requests.fetch_add(1, Ordering::SeqCst);
    let status = if n < REFUSED_FIRST { 500 } else { 200 };
    inbox.received.lock().unwrap().push(Received {
        event_id: event_id.clone(),
        signature: headers
            .get("facepay-signature")
            .cloned()
            .unwrap_or_default(),
        body,
        status,
        at_s: now_ms() / 1000,
    });
    *inbox.in_flight.lock().unwrap().entry(event_id).or_default() -= 1;
    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = reader.get_mut().write_all(answer.as_bytes());
}

fn start_server(data: &Path, database_url: Option<&str>, port: u16) -> Child {
    serve_command(data, database_url, port)
        .env(
            "FACEPAY_WEBHOOKS__RETRY_DELAY_FIRST_MS",
            RETRY_DELAY_FIRST_MS.to_string(),
        )
        .env("FACEPAY_WEBHOOKS__TIMEOUT_MS", "2000")
        .env("FACEPAY_WEBHOOKS__POLL_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < GIVE_UP_AFTER,
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every event in the outbox, and how many deliveries are not delivered.
fn outbox(data: &Path, database_url: Option<&str>) -> (Vec<String>, i64) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => Store::sqlite_url(data).unwrap(),
        };
        let store = Store::open(&url).await.unwrap();
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM webhook_events ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        let waiting: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries WHERE state <> 'delivered'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        store.close().await;
        (ids, waiting)
    })
}

struct Api {
    agent: ureq::Agent,
    port: u16,
    merchant_key: String,
}

impl Api {
    fn merchant(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let auth = format!("Bearer {}", self.merchant_key);
        let key = format!("wh-{}", now_ms());
        let sent = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("idempotency-key", &key)
                .send_json(body.unwrap_or(Value::Null)),
            _ => self.agent.get(&url).header("authorization", &auth).call(),
        };
        let mut response = sent.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    fn pay(
        &self,
        terminal: &(String, ed25519_dalek::SigningKey),
        photo: &Path,
        key: &str,
    ) -> Value {
        let frame = BASE64.encode(std::fs::read(photo).unwrap());
        let body = json!({"amount": "4500", "currency": "KRW", "frames": [frame]});
        let body = serde_json::to_vec(&body).unwrap();
        let mut response = post_signed(
            &self.agent,
            self.port,
            terminal,
            "/v1/terminal/payments",
            key,
            &body,
        )
        .unwrap();
        let status = response.status().as_u16();
        let paid: Value = response.body_mut().read_json().unwrap();
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("captured")),
            "{paid}"
        );
        paid
    }
}

#[test]
fn every_event_arrives_once_after_a_sigkill_while_deliveries_wait() {
    webhook_run(None);
    if let Some(fresh) = fresh_postgres() {
        webhook_run(Some(&fresh));
    }
}

fn webhook_run(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (data, photos) = (dir.path().join("data"), dir.path().join("photos"));
    let pay_with = lay_out_photos(&photos);
    run_demo(&data, &photos, database_url);
    let terminal = demo_terminal(&data);
    let merchant: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-merchant.json")).unwrap())
            .unwrap();
    let inbox = Arc::new(Inbox::default());
    let url = receiver(Arc::clone(&inbox));
    let api = Api {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent(),
        port: free_port(),
        merchant_key: merchant["api_key"].as_str().unwrap().to_owned(),
    };
    let mut server = start_server(&data, database_url, api.port);
    wait_ready(&api.agent, api.port);

    // One event per payment, so that the three refused deliveries are
    // all there are when the server dies.
    let events = json!(["payment.captured", "payment.refunded"]);
    let (status, created) = api.merchant(
        "POST",
        "/v1/merchant/webhooks",
        Some(json!({"url": url, "events": events})),
    );
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    for (i, photo) in pay_with.iter().take(REFUSED_FIRST).enumerate() {
        api.pay(&terminal, photo, &format!("wh-before-{i}-{}", now_ms()));
    }
    wait_for("the refused deliveries", || {
        inbox.refused() == REFUSED_FIRST
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let (written, waiting) = outbox(&data, database_url);
    assert_eq!(written.len(), REFUSED_FIRST, "{database_url:?}");
    assert_eq!(
        waiting, REFUSED_FIRST as i64,
        "{database_url:?}: all wait for their retry"
    );
    assert!(inbox.accepted().is_empty());

    // Restarted: the waiting deliveries go out when due, and new events
    // (two payments and a refund) go out at once.
    let mut server = start_server(&data, database_url, api.port);
    wait_ready(&api.agent, api.port);
    let mut paid = Value::Null;
    for (i, photo) in pay_with.iter().skip(REFUSED_FIRST).take(2).enumerate() {
        paid = api.pay(&terminal, photo, &format!("wh-after-{i}-{}", now_ms()));
    }
    let refund = format!(
        "/v1/merchant/payments/{}/refunds",
        paid["id"].as_str().unwrap()
    );
    let (status, refunded) = api.merchant("POST", &refund, Some(json!({"amount": "1000"})));
    assert_eq!(status, 200, "{refunded}");
    // Accepted by the receiver and recorded so by the server: a kill
    // between the two would leave a delivery to send again, which is
    // right, but not what this step waits for.
    wait_for("every event", || {
        let (written, waiting) = outbox(&data, database_url);
        inbox.accepted().into_keys().collect::<Vec<_>>() == written && waiting == 0
    });
    server.kill().unwrap();
    server.wait().unwrap();

    let (written, waiting) = outbox(&data, database_url);
    assert_eq!(written.len(), REFUSED_FIRST + 3, "{database_url:?}");
    assert_eq!(waiting, 0, "{database_url:?}");
    let accepted = inbox.accepted();
    assert!(
        accepted.values().all(|n| *n == 1),
        "{database_url:?}: {accepted:?}"
    );
    assert!(!inbox.overlapped.load(Ordering::SeqCst), "{database_url:?}");
    let received = inbox.received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        written.len() + REFUSED_FIRST,
        "{database_url:?}"
    );
    for r in &received {
        let checked = facepay_webhooks::verify(secret.as_bytes(), &r.signature, &r.body, r.at_s);
        assert_eq!(checked, Ok(()), "{database_url:?}: {r:?}");
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["id"], r.event_id.as_str());
    }
}
