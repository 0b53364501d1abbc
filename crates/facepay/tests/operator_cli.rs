//! Onboarding from the shell, against a served fresh data directory with
//! no demo: the first operator from `facepay operator init`, then a
//! merchant, a store (a bad time zone refused with its code first), a
//! terminal and its pairing code, the terminal paired by `facepay terminal
//! pair` (the code refused the second time), and the merchant's key, with
//! which the merchant sees its paired terminal.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

// Shared by the process tests; this one runs on SQLite only.
#[allow(dead_code)]
mod common;
use common::{binary, free_port, serve_command, wait_ready, with_store};

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `facepay operator ARGS --server URL --json` with the operator's key in
/// the environment.
fn operator(port: u16, key: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("operator")
        .args(args)
        .args(["--server", &format!("http://127.0.0.1:{port}"), "--json"])
        .env("FACEPAY_OPERATOR_KEY", key)
        .output()
        .unwrap()
}

fn made(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn first_operator_key(data: &Path) -> String {
    let mut init = Command::new(binary());
    init.args(["operator", "init", "--name", "alice"]);
    with_store(&mut init, data, None);
    let output = init.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().nth(1).unwrap().trim().to_owned()
}

#[test]
fn an_operator_onboards_a_merchant_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = first_operator_key(&data);
    let port = free_port();
    let server = serve_command(&data, None, port)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(server);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_ready(&agent, port);

    let merchant = made(&operator(
        port,
        &key,
        &[
            "merchant",
            "--name",
            "Cafe Sinsa",
            "--legal-name",
            "Cafe Sinsa Ltd",
            "--fee-bps",
            "150",
            "--settlement-currency",
            "KRW",
        ],
    ));
    let merchant_id = merchant["id"].as_str().unwrap();
    let store_args = |time_zone: &'static str| {
        vec![
            "store",
            "--merchant",
            merchant_id,
            "--name",
            "Garosu-gil",
            "--address",
            "1 Garosu-gil",
            "--city",
            "Seoul",
            "--country",
            "KR",
            "--latitude",
            "37.52",
            "--longitude",
            "127.02",
            "--time-zone",
            time_zone,
            "--currency",
            "KRW",
            "--opens",
            "08:00",
            "--closes",
            "22:00",
        ]
    };
    let refused = operator(port, &key, &store_args("Mars/Olympus_Mons"));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("422 time_zone_invalid"), "{said}");
    let store = made(&operator(port, &key, &store_args("Asia/Seoul")));
    assert_eq!(store["opening_hours"].as_array().unwrap().len(), 7);
    let store_id = store["id"].as_str().unwrap();

    let terminal = made(&operator(
        port,
        &key,
        &["terminal", "--store", store_id, "--name", "till 1"],
    ));
    let terminal_id = terminal["terminal"]["id"].as_str().unwrap();
    let code = terminal["pairing_code"].as_str().unwrap();
    let pair = |out: &Path| {
        Command::new(binary())
            .args([
                "terminal",
                "pair",
                "--terminal-id",
                terminal_id,
                "--code",
                code,
            ])
            .args(["--server", &format!("http://127.0.0.1:{port}"), "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let paired = pair(&dir.path().join("till-1.json"));
    assert!(paired.status.success(), "{paired:?}");
    let again = pair(&dir.path().join("till-1-again.json"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("pairing_code_used"));

    let merchant_key = made(&operator(
        port,
        &key,
        &["merchant-key", "--merchant", merchant_id, "--scope", "read"],
    ));
    let secret = merchant_key["secret"].as_str().unwrap();
    let mut answer = agent
        .get(&format!("http://127.0.0.1:{port}/v1/merchant/terminals"))
        .header("authorization", &format!("Bearer {secret}"))
        .call()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let terminals: Value = answer.body_mut().read_json().unwrap();
    let listed = &terminals["terminals"][0];
    assert_eq!(
        (listed["terminal_id"].as_str(), listed["status"].as_str()),
        (Some(terminal_id), Some("active")),
        "{terminals}"
    );

    let unknown = operator(
        port,
        "fpo_not_a_key",
        &["terminal", "--store", store_id, "--name", "x"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("401"));
}
