//! What the process-level tests share: the binary, free ports, photos.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_facepay")
}

/// A new schema on the test PostgreSQL server, as a database URL; `None`,
/// said on stderr, when `FACEPAY_TEST_POSTGRES_URL` names no server.
#[allow(dead_code)] // Not every test binary uses PostgreSQL.
pub fn fresh_postgres() -> Option<String> {
    let Ok(url) = std::env::var("FACEPAY_TEST_POSTGRES_URL") else {
        eprintln!("FACEPAY_TEST_POSTGRES_URL not set: PostgreSQL skipped");
        return None;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Some(
        runtime
            .block_on(facepay_store::testing::fresh_postgres_url(&url))
            .unwrap(),
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Photo folders for `facepay demo`: the three people of the dlib examples
/// with the most photos, enrolled from their first, paying with the rest.
#[allow(dead_code)] // Not every test binary runs the demo.
pub fn lay_out_photos(dir: &Path) -> Vec<PathBuf> {
    let faces = facepay_models::faces_dir();
    let mut pay_with = Vec::new();
    for person in ["John_Savage", "John_Schneider", "John_Simm"] {
        let source = faces.join("johns").join(person);
        let mut files: Vec<_> = std::fs::read_dir(&source)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/faces.sh", source.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let target = dir.join(person);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::copy(&files[0], target.join(files[0].file_name().unwrap())).unwrap();
        pay_with.extend(files.into_iter().skip(1));
    }
    pay_with
}

/// The store a command works on: `data` (SQLite there, or `database_url`),
/// set as the configuration's variables over the demo's configuration.
pub fn with_store(command: &mut std::process::Command, data: &Path, database_url: Option<&str>) {
    command.env("FACEPAY_STORE__DATA_DIR", data);
    if let Some(url) = database_url {
        command.env("FACEPAY_STORE__URL", url);
    }
}

/// `facepay serve` on the demo's configuration (the simulated issuer,
/// lenient liveness) on `data`, at `port`, with rules that approve every
/// payment.
#[allow(dead_code)] // Not every test binary serves.
pub fn serve_command(data: &Path, database_url: Option<&str>, port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command
        .args(["serve", "--demo"])
        .env("FACEPAY_SERVER__ADDRESS", format!("127.0.0.1:{port}"))
        .env("FACEPAY_RISK__PRESET", "default")
        .env("FACEPAY_RISK__RULES_FILE", rules_that_approve(data))
        .env("RUST_LOG", "warn");
    with_store(&mut command, data, database_url);
    command
}

/// Runs `facepay demo` on `data` (SQLite there, or `database_url`),
/// enrolling the photos laid out in `photos`.
#[allow(dead_code)] // Not every test binary runs the demo.
pub fn run_demo(data: &Path, photos: &Path, database_url: Option<&str>) {
    let mut demo = std::process::Command::new(binary());
    demo.args(["demo", "--photos"])
        .arg(photos)
        .env("RUST_LOG", "warn");
    with_store(&mut demo, data, database_url);
    let done = demo.output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

pub fn wait_ready(agent: &ureq::Agent, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let url = format!("http://127.0.0.1:{port}/healthz");
        if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not start");
}

/// The demo terminal's id and signing key, as `facepay demo` left them.
#[allow(dead_code)] // Not every test binary pays.
pub fn demo_terminal(data: &Path) -> (String, ed25519_dalek::SigningKey) {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-terminal.json")).unwrap())
            .unwrap();
    let secret: [u8; 32] = hex::decode(file["secret_key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    (
        file["terminal_id"].as_str().unwrap().to_owned(),
        ed25519_dalek::SigningKey::from_bytes(&secret),
    )
}

/// `body` posted to `path` with an idempotency key, signed as the terminal
/// signs its requests.
#[allow(dead_code)] // Not every test binary pays.
pub fn post_signed(
    agent: &ureq::Agent,
    port: u16,
    terminal: &(String, ed25519_dalek::SigningKey),
    path: &str,
    key: &str,
    body: &[u8],
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    use facepay_payments::signing::{
        self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
    };
    let h = signing::sign(
        &terminal.1,
        &terminal.0,
        "POST",
        path,
        facepay_store::now_ms(),
        body,
    )
    .unwrap();
    agent
        .post(&format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .header(HEADER_TERMINAL, &h.terminal_id)
        .header(HEADER_TIMESTAMP, &h.timestamp_ms.to_string())
        .header(HEADER_NONCE, &h.nonce)
        .header(HEADER_SIGNATURE, &h.signature)
        .send(body)
}

/// A risk rules file under `dir` that approves every payment: these tests
/// are about crashes, servers and stores, and a few faces paying many
/// times a minute is what the default rules rightly step up.
pub fn rules_that_approve(dir: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = dir.join("rules-that-approve.toml");
    std::fs::create_dir_all(dir).unwrap();
    // Written aside and renamed over: servers started one after another
    // read the file while the next start writes it.
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = dir.join(format!("rules-that-approve.toml.{n}"));
    std::fs::write(&aside, facepay_risk::APPROVE_ALL).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    path
}
