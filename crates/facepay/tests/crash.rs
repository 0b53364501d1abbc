//! Crash tests: payments are sent concurrently, the server is killed with
//! SIGKILL mid-run (twice) and restarted, the clients retry with their
//! idempotency keys; and, on PostgreSQL, three servers share the load and
//! one is killed for good mid-run, its clients retrying on the others.
//! Afterwards `facepay ledger verify` and `audit verify` pass, every
//! acknowledged payment is in the store exactly as acknowledged, and no
//! idempotency key was charged twice.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_store::{Store, now_ms, payments};

mod common;
use common::{
    binary, demo_terminal, free_port, fresh_postgres, lay_out_photos, post_signed, run_demo,
    serve_command, wait_ready, with_store,
};

const CLIENTS: usize = 4;
const PAYMENTS_PER_CLIENT: usize = 12;
/// A payment not acknowledged within this long fails the test.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

fn start_server(data: &Path, database_url: Option<&str>, port: u16) -> Child {
    serve_command(data, database_url, port)
        .env("FACEPAY_LIMITS__IDEMPOTENCY_LEASE_MS", "1000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The demo terminal's id and signing key.
type Terminal = (String, ed25519_dalek::SigningKey);

#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    /// The server that answered.
    port: u16,
    payment_id: String,
    state: String,
}

/// Sends the payment with `key` until a server answers it for good,
/// starting with `ports[first]`; a server that does not answer is left for
/// the next one, as a terminal fails over between a deployment's servers.
fn pay_until_answered(
    unanswered: &AtomicUsize,
    agent: &ureq::Agent,
    (ports, first): (&[u16], usize),
    terminal: &Terminal,
    key: &str,
    body: &[u8],
) -> Acknowledged {
    let started = Instant::now();
    let mut next = first;
    loop {
        assert!(
            started.elapsed() < GIVE_UP_AFTER,
            "payment {key} never acknowledged"
        );
        let port = ports[next % ports.len()];
        let sent = post_signed(agent, port, terminal, "/v1/terminal/payments", key, body);
        let Ok(mut response) = sent else {
            unanswered.fetch_add(1, Ordering::Relaxed);
            next += 1;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let status = response.status().as_u16();
        let Ok(text) = response.body_mut().read_to_string() else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        match status {
            // A replay after a crash answers 200 with the committed payment.
            200 | 201 | 402 => {
                let payment = if json["payment"].is_object() {
                    &json["payment"]
                } else {
                    &json
                };
                return Acknowledged {
                    key: key.to_owned(),
                    port,
                    payment_id: payment["id"].as_str().unwrap().to_owned(),
                    state: payment["state"].as_str().unwrap().to_owned(),
                };
            }
            409 if json["error"]["code"] == "idempotency_in_progress" => {
                std::thread::sleep(Duration::from_millis(100));
            }
            503 => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("payment {key}: unexpected {other}: {text}"),
        }
    }
}

#[test]
fn three_servers_one_killed_lose_nothing_and_charge_nothing_twice() {
    // Three servers need PostgreSQL.
    let Some(fresh) = fresh_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (terminal, bodies) = demo_payments(dir.path(), Some(&fresh));
    let agent = agent();
    // The servers share the database and the key files, as replicas of
    // one deployment do.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers: Vec<Child> = ports
        .iter()
        .map(|&port| start_server(&data, Some(&fresh), port))
        .collect();
    for &port in &ports {
        wait_ready(&agent, port);
    }
    replay_is_refused_by_another_server(&agent, &ports, &terminal, &bodies[0]);
    let run = Run::start(&agent, &ports, &terminal, &bodies);
    run.wait_for(CLIENTS * PAYMENTS_PER_CLIENT / 3);
    servers[2].kill().unwrap();
    servers[2].wait().unwrap();
    let (acknowledged, unanswered) = run.finish();
    for server in &mut servers[..2] {
        server.kill().unwrap();
        server.wait().unwrap();
    }
    assert!(unanswered > 0, "no request met the killed server");
    let by_port = |port: u16| acknowledged.iter().filter(|a| a.port == port).count();
    assert!(by_port(ports[2]) > 0, "the killed server answered nothing");
    assert!(by_port(ports[0]) > 0 && by_port(ports[1]) > 0);
    verify_after(&data, Some(&fresh), &terminal, &acknowledged);
}

#[test]
fn killed_server_loses_nothing_and_charges_nothing_twice() {
    crash_run(None);
    if let Some(fresh) = fresh_postgres() {
        crash_run(Some(&fresh));
    }
}

fn crash_run(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (terminal, bodies) = demo_payments(dir.path(), database_url);
    let port = free_port();
    let agent = agent();
    let mut server = start_server(&data, database_url, port);
    wait_ready(&agent, port);
    let run = Run::start(&agent, &[port], &terminal, &bodies);
    // Kill mid-run twice: once early, once when about half are through.
    for target in [3, CLIENTS * PAYMENTS_PER_CLIENT / 2] {
        run.wait_for(target);
        server.kill().unwrap();
        server.wait().unwrap();
        server = start_server(&data, database_url, port);
        wait_ready(&agent, port);
    }
    let (acknowledged, unanswered) = run.finish();
    server.kill().unwrap();
    server.wait().unwrap();
    // The kills cut requests off mid-flight, and the clients carried on.
    assert!(unanswered > 0, "no request was cut off");
    verify_after(&data, database_url, &terminal, &acknowledged);
}

/// A signed request answered by one server and sent again, as signed, to
/// another is refused there: the servers share the terminals' nonces.
fn replay_is_refused_by_another_server(
    agent: &ureq::Agent,
    ports: &[u16],
    terminal: &Terminal,
    body: &[u8],
) {
    use facepay_payments::signing::{
        self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
    };
    let path = "/v1/terminal/payments";
    let h = signing::sign(&terminal.1, &terminal.0, "POST", path, now_ms(), body).unwrap();
    let send = |port: u16| {
        let mut response = agent
            .post(&format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .header("idempotency-key", &format!("replayed-{}", h.nonce))
            .header(HEADER_TERMINAL, &h.terminal_id)
            .header(HEADER_TIMESTAMP, &h.timestamp_ms.to_string())
            .header(HEADER_NONCE, &h.nonce)
            .header(HEADER_SIGNATURE, &h.signature)
            .send(body)
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), text)
    };
    let (status, text) = send(ports[0]);
    assert_eq!(status, 201, "{text}");
    let (status, text) = send(ports[1]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("nonce_reused"), "{text}");
}

/// The demo's parties and people on `dir`'s data (SQLite there, or
/// `database_url`): its terminal and one payment body per photo left.
fn demo_payments(dir: &Path, database_url: Option<&str>) -> (Arc<Terminal>, Arc<Vec<Vec<u8>>>) {
    let data = dir.join("data");
    let photos = dir.join("photos");
    let pay_with = lay_out_photos(&photos);
    run_demo(&data, &photos, database_url);
    let bodies = pay_with
        .iter()
        .map(|p| {
            let frame = BASE64.encode(std::fs::read(p).unwrap());
            serde_json::to_vec(
                &serde_json::json!({"amount": "4500", "currency": "KRW", "frames": [frame]}),
            )
            .unwrap()
        })
        .collect();
    (Arc::new(demo_terminal(&data)), Arc::new(bodies))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// The clients at work: each pays its share, one payment after another,
/// spread over the servers.
struct Run {
    clients: Vec<std::thread::JoinHandle<()>>,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    unanswered: Arc<AtomicUsize>,
}

impl Run {
    fn start(
        agent: &ureq::Agent,
        ports: &[u16],
        terminal: &Arc<Terminal>,
        bodies: &Arc<Vec<Vec<u8>>>,
    ) -> Self {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let unanswered = Arc::new(AtomicUsize::new(0));
        let clients = (0..CLIENTS)
            .map(|c| {
                let (agent, terminal, bodies, ports) = (
                    agent.clone(),
                    Arc::clone(terminal),
                    Arc::clone(bodies),
                    ports.to_vec(),
                );
                let (acknowledged, unanswered) =
                    (Arc::clone(&acknowledged), Arc::clone(&unanswered));
                std::thread::spawn(move || {
                    for i in 0..PAYMENTS_PER_CLIENT {
                        let n = c * PAYMENTS_PER_CLIENT + i;
                        let key = format!("crash-{c}-{i}-{}", now_ms());
                        let body = &bodies[n % bodies.len()];
                        let servers = (ports.as_slice(), n);
                        let ack =
                            pay_until_answered(&unanswered, &agent, servers, &terminal, &key, body);
                        acknowledged.lock().unwrap().push(ack);
                    }
                })
            })
            .collect();
        Self {
            clients,
            acknowledged,
            unanswered,
        }
    }

    /// Returns once `count` payments are acknowledged.
    fn wait_for(&self, count: usize) {
        while self.acknowledged.lock().unwrap().len() < count {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every acknowledgement once the clients are done, and how many
    /// requests went unanswered.
    fn finish(self) -> (Vec<Acknowledged>, usize) {
        for client in self.clients {
            client.join().unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        (acknowledged, self.unanswered.load(Ordering::Relaxed))
    }
}

/// `ledger verify` and `audit verify` pass, and every acknowledged payment
/// is stored once, as acknowledged.
fn verify_after(
    data: &Path,
    database_url: Option<&str>,
    terminal: &Terminal,
    acknowledged: &[Acknowledged],
) {
    for check in ["ledger", "audit"] {
        let mut verify = Command::new(binary());
        verify.args([check, "verify"]);
        with_store(&mut verify, data, database_url);
        let verify = verify.output().unwrap();
        assert!(
            verify.status.success(),
            "{check} verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    assert_eq!(acknowledged.len(), CLIENTS * PAYMENTS_PER_CLIENT);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => Store::sqlite_url(data).unwrap(),
        };
        let store = Store::open(&url).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        for ack in acknowledged {
            let stored = payments::by_idempotency_key(&mut conn, &terminal.0, &ack.key)
                .await
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("{database_url:?}: acknowledged payment {ack:?} is missing")
                });
            assert_eq!(stored.id, ack.payment_id);
            assert_eq!(
                stored.state, ack.state,
                "payment {} changed after acknowledgement",
                ack.payment_id
            );
            // One authorise and at most one capture per payment, never two.
            let transfers = facepay_store::ledger::transfer_count(&mut conn, &stored.id)
                .await
                .unwrap();
            let expected = if stored.state == "captured" { 2 } else { 0 };
            assert_eq!(
                transfers, expected,
                "payment {} has {transfers} transfers",
                stored.id
            );
        }
    });
}
