//! Crash test: payments are sent concurrently, the server is killed with
//! SIGKILL mid-run (twice) and restarted, the clients retry with their
//! idempotency keys; afterwards `facepay ledger verify` passes, every
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
    binary, demo_terminal, free_port, lay_out_photos, post_signed, run_demo, serve_command,
    wait_ready, with_store,
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

#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    payment_id: String,
    state: String,
}

fn pay_until_answered(
    unanswered: &AtomicUsize,
    agent: &ureq::Agent,
    port: u16,
    terminal: &(String, ed25519_dalek::SigningKey),
    key: &str,
    body: &[u8],
) -> Acknowledged {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < GIVE_UP_AFTER,
            "payment {key} never acknowledged"
        );
        let sent = post_signed(agent, port, terminal, "/v1/terminal/payments", key, body);
        let Ok(mut response) = sent else {
            unanswered.fetch_add(1, Ordering::Relaxed);
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
fn killed_server_loses_nothing_and_charges_nothing_twice() {
    crash_run(None);
    match std::env::var("FACEPAY_TEST_POSTGRES_URL") {
        Ok(url) => {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let fresh = runtime
                .block_on(facepay_store::testing::fresh_postgres_url(&url))
                .unwrap();
            crash_run(Some(&fresh));
        }
        Err(_) => eprintln!("FACEPAY_TEST_POSTGRES_URL not set: PostgreSQL skipped"),
    }
}

fn crash_run(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let photos = dir.path().join("photos");
    let pay_with = lay_out_photos(&photos);
    run_demo(&data, &photos, database_url);

    let terminal = Arc::new(demo_terminal(&data));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        pay_with
            .iter()
            .map(|p| {
                let frame = BASE64.encode(std::fs::read(p).unwrap());
                serde_json::to_vec(
                    &serde_json::json!({"amount": "4500", "currency": "KRW", "frames": [frame]}),
                )
                .unwrap()
            })
            .collect(),
    );

    let port = free_port();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut server = start_server(&data, database_url, port);
    wait_ready(&agent, port);

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (agent, terminal, bodies, acknowledged, unanswered) = (
                agent.clone(),
                Arc::clone(&terminal),
                Arc::clone(&bodies),
                Arc::clone(&acknowledged),
                Arc::clone(&unanswered),
            );
            std::thread::spawn(move || {
                for i in 0..PAYMENTS_PER_CLIENT {
                    let key = format!("crash-{c}-{i}-{}", now_ms());
                    let body = &bodies[(c * PAYMENTS_PER_CLIENT + i) % bodies.len()];
                    let ack = pay_until_answered(&unanswered, &agent, port, &terminal, &key, body);
                    acknowledged.lock().unwrap().push(ack);
                }
            })
        })
        .collect();

    // Kill mid-run twice: once early, once when about half are through.
    for target in [3, CLIENTS * PAYMENTS_PER_CLIENT / 2] {
        while acknowledged.lock().unwrap().len() < target {
            std::thread::sleep(Duration::from_millis(20));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        server = start_server(&data, database_url, port);
        wait_ready(&agent, port);
    }
    for client in clients {
        client.join().unwrap();
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // The kills cut requests off mid-flight, and the clients carried on.
    assert!(
        unanswered.load(Ordering::Relaxed) > 0,
        "no request was cut off"
    );
    let mut verify = Command::new(binary());
    verify.args(["ledger", "verify"]);
    with_store(&mut verify, &data, database_url);
    let verify = verify.output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let mut audit = Command::new(binary());
    audit.args(["audit", "verify"]);
    with_store(&mut audit, &data, database_url);
    let audit = audit.output().unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), CLIENTS * PAYMENTS_PER_CLIENT);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => Store::sqlite_url(&data).unwrap(),
        };
        let store = Store::open(&url).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        for ack in &acknowledged {
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
