//! `facepay bench ledger`, bounded for CI: a few payments over the photos'
//! payers and a few synthetic ones, on SQLite and (when CI gives one)
//! PostgreSQL (there also through two nodes). Every payment is recorded,
//! none refused, the synthetic enrolment is timed, and a PostgreSQL run
//! leaves no schema behind.

use std::process::Command;

// Shared by the process tests; this one needs two of its helpers.
#[allow(dead_code)]
mod common;
use common::{binary, lay_out_photos};

const PAYMENTS: usize = 24;

#[test]
fn the_store_benchmark_records_every_payment() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    lay_out_photos(&photos);
    let mut runs = vec![(None, 1)];
    if let Ok(url) = std::env::var("FACEPAY_TEST_POSTGRES_URL") {
        // Also through two servers on the one store, as two nodes.
        runs.extend([(Some(url.clone()), 1), (Some(url), 2)]);
    }
    for (database_url, nodes) in runs {
        let mut bench = Command::new(binary());
        bench
            .args(["bench", "ledger", "--concurrency", "4", "--payers", "6"])
            .args(["--payments", &PAYMENTS.to_string(), "--photos"])
            .arg(&photos)
            .args(["--nodes", &nodes.to_string()])
            .env("RUST_LOG", "warn");
        if let Some(url) = &database_url {
            bench.args(["--database-url", url]);
        }
        let done = bench.output().unwrap();
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(stdout.contains("synthetic payers in"), "{stdout}");
        assert!(stdout.contains(&format!("{PAYMENTS} recorded")), "{stdout}");
        assert!(stdout.contains("refused: {}"), "{stdout}");
        assert!(stdout.contains("server: ledger"), "{stdout}");
        if nodes > 1 {
            assert!(stdout.contains("through 2 nodes"), "{stdout}");
        }
    }
}

#[test]
fn several_nodes_need_postgresql() {
    let done = Command::new(binary())
        .args(["bench", "ledger", "--nodes", "2"])
        .output()
        .unwrap();
    assert!(!done.status.success());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("--nodes above 1 needs --database-url"),
        "{stderr}"
    );
}
