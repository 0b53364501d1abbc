//! The segregated deployment, end to end, and what its stores give away.
//!
//! The card vault runs as its own process on its own store; it starts locked
//! and opens only when the second custodian gives a key part. The core
//! enrols and pays through it. Then both processes are killed and:
//! - every file they could have written (databases, WAL, logs, the
//!   temporary directory, the data directories) and, on PostgreSQL, a dump
//!   of each schema, holds no image (JPEG or PNG signature, or a piece of a
//!   photo that was sent), no live template (raw floats), and no card
//!   number;
//! - the core's store opened with the core's keys gives a share of each
//!   card that is not its number, and so does the vault's store opened with
//!   both custodians' parts; only the two shares together give the number.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use facepay_payments::{Envelope, FileKeyProvider};
use facepay_store::{Store, now_ms};
use facepay_vault::KeyPart;

mod common;
use common::{binary, free_port, fresh_postgres, lay_out_photos, rules_that_approve, wait_ready};

/// The demo's cards (`demo.rs`): their numbers must appear nowhere.
const CARDS: [&str; 3] = ["4242424242424242", "4111111111110014", "4000000000009995"];

struct Layout {
    root: tempfile::TempDir,
}

impl Layout {
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

fn spawn(args: &[&str], layout: &Layout, log: &str) -> Child {
    spawn_env(args, &[], layout, log)
}

/// `facepay ARGS` with the configuration variables `env` set.
fn spawn_env(args: &[&str], env: &[(&str, String)], layout: &Layout, log: &str) -> Child {
    let log = std::fs::File::create(layout.path("logs").join(log)).unwrap();
    Command::new(binary())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TMPDIR", layout.path("tmp"))
        .env("RUST_LOG", "debug,ort=info,tract_onnx=info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn run_ok(args: &[&str], layout: &Layout, log: &str) -> String {
    run_ok_env(args, &[], layout, log)
}

fn run_ok_env(args: &[&str], env: &[(&str, String)], layout: &Layout, log: &str) -> String {
    let mut child = spawn_env(args, env, layout, log);
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(layout.path("logs").join(log)).unwrap();
    assert!(status.success(), "facepay {args:?} failed:\n{text}");
    text
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn health(agent: &ureq::Agent, port: u16) -> Option<serde_json::Value> {
    let mut response = agent
        .get(&format!("http://127.0.0.1:{port}/healthz"))
        .call()
        .ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

fn wait_healthy(agent: &ureq::Agent, port: u16) -> serde_json::Value {
    for _ in 0..1200 {
        if let Some(json) = health(agent, port) {
            return json;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing answered on port {port}");
}

/// The template the server computes for a photo: the largest face, as
/// `analyse_burst` takes it.
fn template_of(engine: &FaceEngine, photo: &Path) -> Vec<f32> {
    let image = facepay_face::decode::decode(&std::fs::read(photo).unwrap()).unwrap();
    let faces = engine.detect(&image).unwrap();
    let face = facepay_face::detect::largest(&faces).unwrap();
    let aligned = engine.align(&image, &face).unwrap();
    engine.embed(&[aligned]).unwrap().pop().unwrap().vector
}

/// What must never be found: name and byte pattern.
fn needles(photos: &[PathBuf], templates: &[Vec<f32>]) -> Vec<(String, Vec<u8>)> {
    let mut needles = vec![
        ("PNG signature".to_owned(), b"\x89PNG\r\n\x1a\n".to_vec()),
        (
            "JPEG/JFIF header".to_owned(),
            b"\xff\xd8\xff\xe0\x00\x10JFIF".to_vec(),
        ),
        ("JPEG/Exif header".to_owned(), b"Exif\x00\x00".to_vec()),
    ];
    for photo in photos {
        let bytes = std::fs::read(photo).unwrap();
        // Past the headers, a photo's bytes are its own.
        let middle = bytes.len() / 2;
        needles.push((
            format!("a piece of {}", photo.display()),
            bytes[middle..middle + 32].to_vec(),
        ));
    }
    for (n, template) in templates.iter().enumerate() {
        for start in [0, 60, 120] {
            let bytes: Vec<u8> = template[start..start + 4]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            needles.push((format!("template {n} floats {start}.."), bytes));
        }
    }
    for card in CARDS {
        // The whole number, in text and in hex. Its first twelve digits
        // alone are too plain to look for in logs: "400000000000" turns up
        // in any float printed to many places.
        needles.push((format!("card {card}"), card.as_bytes().to_vec()));
        needles.push((
            format!("card {card} in hex"),
            hex::encode(card.as_bytes()).into_bytes(),
        ));
    }
    needles
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Hex runs of a PostgreSQL text dump (`\x…` byte columns), decoded, so
/// the needles are looked for in the bytes as well as in the text.
fn with_decoded_bytes(dump: &str) -> Vec<u8> {
    let mut out = dump.as_bytes().to_vec();
    for run in dump.split("\\\\x").skip(1).chain(dump.split("\\x").skip(1)) {
        let hex_digits: String = run.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        if let Ok(bytes) = hex::decode(&hex_digits[..hex_digits.len() & !1]) {
            out.push(b'\n');
            out.extend_from_slice(&bytes);
        }
    }
    out
}

#[test]
fn a_segregated_vault_keeps_numbers_split_and_no_store_holds_an_image() {
    segregated_run(None);
    // The core and the vault each in a schema of their own.
    if let Some(core) = fresh_postgres() {
        let vault = fresh_postgres().unwrap();
        segregated_run(Some((core, vault)));
    }
}

/// `postgres`: the core's database and the vault's.
fn segregated_run(postgres: Option<(String, String)>) {
    let layout = Layout {
        root: tempfile::tempdir().unwrap(),
    };
    for dir in ["logs", "tmp", "core", "vault-host", "custody"] {
        std::fs::create_dir_all(layout.path(dir)).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (core_url, vault_url) = postgres.clone().unzip();
    let s = |p: &Path| p.display().to_string();
    let core = s(&layout.path("core"));
    let secret = s(&layout.path("vault-host/channel.secret"));
    let parts = [1, 2].map(|n| s(&layout.path(&format!("custody/custodian-{n}.part"))));

    run_ok(
        &["vault", "init", "--part", &parts[0], "--part", &parts[1]],
        &layout,
        "init.log",
    );
    let vault_port = free_port();
    let vault_address = format!("127.0.0.1:{vault_port}");
    let vault_http = format!("http://{vault_address}");
    // The vault process's configuration: its own store, no key part at
    // start (it waits for both custodians), and the simulated issuer.
    let vault_dir = s(&layout.path("vault-host/vault"));
    let mut vault_config = format!(
        "[connector]\nkind = \"simulated_issuer\"\n\n[vault]\nmode = \"embedded\"\n\
         dir = {vault_dir:?}\nembedded_parts = false\n"
    );
    if let Some(url) = &vault_url {
        vault_config.push_str(&format!("database_url = {url:?}\n"));
    }
    let vault_config_file = s(&layout.path("vault-host/vault.toml"));
    std::fs::create_dir_all(layout.path("vault-host")).unwrap();
    std::fs::write(&vault_config_file, vault_config).unwrap();
    let vault_args = [
        "vault",
        "serve",
        "--address",
        &vault_address,
        "--channel-secret",
        &secret,
        "--config",
        &vault_config_file,
    ];
    let mut vault = spawn(&vault_args, &layout, "vault.log");
    let agent = agent();
    assert_eq!(wait_healthy(&agent, vault_port)["unlocked"], false);
    let first = run_ok(
        &[
            "vault",
            "unlock",
            "--url",
            &vault_http,
            "--part",
            &parts[0],
            "--channel-secret",
            &secret,
        ],
        &layout,
        "unlock-first.log",
    );
    assert!(first.contains("waits for the other"), "{first}");
    assert_eq!(health(&agent, vault_port).unwrap()["unlocked"], false);

    // A stranger without the channel secret is refused, part or not.
    let stranger_secret = s(&layout.path("stranger.secret"));
    std::fs::write(&stranger_secret, hex::encode([7u8; 32])).unwrap();
    let stranger = spawn(
        &[
            "vault",
            "unlock",
            "--url",
            &vault_http,
            "--part",
            &parts[1],
            "--channel-secret",
            &stranger_secret,
        ],
        &layout,
        "stranger.log",
    )
    .wait_with_output()
    .unwrap();
    assert!(!stranger.status.success());
    let refused = std::fs::read_to_string(layout.path("logs/stranger.log")).unwrap();
    assert!(refused.contains("channel_forged"), "{refused}");
    assert_eq!(health(&agent, vault_port).unwrap()["unlocked"], false);

    let unlocked = run_ok(
        &[
            "vault",
            "unlock",
            "--url",
            &vault_http,
            "--part",
            &parts[1],
            "--channel-secret",
            &secret,
        ],
        &layout,
        "unlock.log",
    );
    assert!(!unlocked.contains("ERROR"), "{unlocked}");
    assert_eq!(health(&agent, vault_port).unwrap()["unlocked"], true);

    let photos_dir = layout.path("photos");
    let pay_with = lay_out_photos(&photos_dir);
    let mut core_env = vec![
        ("FACEPAY_STORE__DATA_DIR", core.clone()),
        ("FACEPAY_VAULT__MODE", "remote".to_owned()),
        ("FACEPAY_VAULT__URL", vault_http.clone()),
        ("FACEPAY_VAULT__CHANNEL_SECRET_FILE", secret.clone()),
    ];
    if let Some(url) = &core_url {
        core_env.push(("FACEPAY_STORE__URL", url.clone()));
    }
    let photos_arg = s(&photos_dir);
    let demo_log = run_ok_env(
        &["demo", "--photos", &photos_arg],
        &core_env,
        &layout,
        "demo.log",
    );
    assert!(demo_log.contains("enrolled"), "{demo_log}");

    let core_port = free_port();
    let core_address = format!("127.0.0.1:{core_port}");
    let rules = rules_that_approve(&layout.path("rules"));
    core_env.extend([
        ("FACEPAY_SERVER__ADDRESS", core_address.clone()),
        ("FACEPAY_RISK__PRESET", "default".to_owned()),
        ("FACEPAY_RISK__RULES_FILE", rules.display().to_string()),
    ]);
    let mut server = spawn_env(&["serve", "--demo"], &core_env, &layout, "core.log");
    wait_ready(&agent, core_port);
    let terminal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(layout.path("core/demo-terminal.json")).unwrap(),
    )
    .unwrap();
    let secret_key: [u8; 32] = hex::decode(terminal["secret_key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret_key);
    let terminal_id = terminal["terminal_id"].as_str().unwrap();
    let frame = BASE64.encode(std::fs::read(&pay_with[0]).unwrap());
    let body = serde_json::to_vec(
        &serde_json::json!({"amount": "4500", "currency": "KRW", "frames": [frame]}),
    )
    .unwrap();
    let path = "/v1/terminal/payments";
    let signed = signing::sign(&key, terminal_id, "POST", path, now_ms(), &body).unwrap();
    let mut response = agent
        .post(&format!("http://{core_address}{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "segregated-1")
        .header(HEADER_TERMINAL, &signed.terminal_id)
        .header(HEADER_TIMESTAMP, &signed.timestamp_ms.to_string())
        .header(HEADER_NONCE, &signed.nonce)
        .header(HEADER_SIGNATURE, &signed.signature)
        .send(&body[..])
        .unwrap();
    let status = response.status().as_u16();
    let paid: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["state"], "captured", "{paid}");
    assert!(
        !layout.path("core/vault").exists(),
        "the core paid through the vault process, with no vault of its own"
    );

    // Killed, not stopped: whatever is in the WAL stays there to be read.
    server.kill().unwrap();
    server.wait().unwrap();
    vault.kill().unwrap();
    vault.wait().unwrap();

    let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default()).unwrap();
    let mut sent: Vec<PathBuf> = Vec::new();
    files_under(&photos_dir, &mut sent);
    sent.push(pay_with[0].clone());
    let templates: Vec<Vec<f32>> = sent.iter().map(|p| template_of(&engine, p)).collect();
    let needles = needles(&sent, &templates);

    // The scanner finds what it looks for: a planted template and photo piece.
    let mut planted = b"padding".to_vec();
    planted.extend(templates[0][60..64].iter().flat_map(|v| v.to_le_bytes()));
    assert!(needles.iter().any(|(_, n)| find(&planted, n)));

    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files = Vec::new();
    for dir in ["core", "vault-host", "logs", "tmp"] {
        files_under(&layout.path(dir), &mut files);
    }
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("vault.db-wal"))
            || postgres.is_some(),
        "the vault's WAL is among the files scanned: {files:?}"
    );
    for expected in ["core.log", "vault.log", "demo.log"] {
        assert!(files.iter().any(|f| f.ends_with(expected)), "{expected}");
    }
    assert!(
        files.iter().any(|f| f.ends_with("facepay.db")) || postgres.is_some(),
        "the core's database is among the files scanned"
    );
    for file in &files {
        haystacks.push((s(file), std::fs::read(file).unwrap()));
    }
    let (core_db, vault_db) = runtime.block_on(async {
        let core_db = match &core_url {
            Some(url) => Store::open(url).await.unwrap(),
            None => Store::open(&Store::sqlite_url(&layout.path("core")).unwrap())
                .await
                .unwrap(),
        };
        let vault_db = match &vault_url {
            Some(url) => Store::open_vault(url).await.unwrap(),
            None => Store::open_vault(
                &Store::vault_sqlite_url(&layout.path("vault-host/vault")).unwrap(),
            )
            .await
            .unwrap(),
        };
        (core_db, vault_db)
    });
    if postgres.is_some() {
        runtime.block_on(async {
            for (name, store) in [("core dump", &core_db), ("vault dump", &vault_db)] {
                let dump = facepay_store::testing::postgres_dump(store).await.unwrap();
                assert!(dump.contains("vault_token") || dump.contains("tok_"));
                haystacks.push((name.to_owned(), with_decoded_bytes(&dump)));
            }
        });
    }
    for (name, haystack) in &haystacks {
        for (what, needle) in &needles {
            assert!(!find(haystack, needle), "{what} found in {name}");
        }
    }

    runtime.block_on(shares_alone_give_nothing(
        &layout, &core_db, &vault_db, &parts,
    ));
}

/// Each store with its own keys gives one share per card, never a number;
/// the two shares together give it.
async fn shares_alone_give_nothing(
    layout: &Layout,
    core_db: &Store,
    vault_db: &Store,
    parts: &[String; 2],
) {
    let envelope = Envelope::new(Arc::new(
        FileKeyProvider::open(&layout.path("core/keys")).unwrap(),
    ));
    let [a, b] = parts
        .clone()
        .map(|p| KeyPart::read_file(Path::new(&p)).unwrap());
    let mut conn = core_db.acquire().await.unwrap();
    let mut joined = Vec::new();
    let mut vault_conn = vault_db.acquire().await.unwrap();
    let vault_rows = facepay_store::vault::shares_after(&mut vault_conn, "", 1000)
        .await
        .unwrap();
    assert!(vault_rows.len() >= 3, "one share per enrolled card");
    for row in &vault_rows {
        let vault_share = facepay_vault::open_stored_share(&a, &b, row).unwrap();
        let method = facepay_store::parties::payment_method_by_vault_token(&mut conn, &row.token)
            .await
            .unwrap()
            .expect("each share has its card in the core");
        let key_id = method.key_id.clone().unwrap();
        let data_key = facepay_store::keys::get(&mut conn, &key_id).await.unwrap();
        let core_share = envelope
            .open(
                &key_id,
                data_key.as_ref(),
                method.nonce.as_deref().unwrap(),
                method.ciphertext.as_deref().unwrap(),
                &format!("card-share:{}:{}", method.id, row.token),
            )
            .unwrap();
        for share in [&vault_share, &core_share] {
            assert_eq!(share.len(), 16);
            for card in CARDS {
                assert_ne!(share.as_slice(), card.as_bytes());
                assert!(!find(share, &card.as_bytes()[..6]));
            }
        }
        let number: Vec<u8> = vault_share
            .iter()
            .zip(core_share.iter())
            .map(|(x, y)| x ^ y)
            .collect();
        joined.push(String::from_utf8(number).unwrap());
    }
    joined.sort();
    let mut expected: Vec<String> = CARDS.iter().map(|c| c.to_string()).collect();
    expected.sort();
    assert_eq!(joined, expected, "both shares together give the numbers");
}
