//! `facepay bench ledger`, bounded for CI: a few payments over the photos'
//! payers and a few synthetic ones, on SQLite and (when CI gives one)
//! PostgreSQL. Every payment is recorded, none refused, the synthetic
//! enrolment is timed, and a PostgreSQL run leaves no schema behind.

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
    let mut stores = vec![None];
    stores.extend(std::env::var("FACEPAY_TEST_POSTGRES_URL").ok().map(Some));
    for database_url in stores {
        let mut bench = Command::new(binary());
        bench
            .args(["bench", "ledger", "--concurrency", "4", "--payers", "6"])
            .args(["--payments", &PAYMENTS.to_string(), "--photos"])
            .arg(&photos)
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
    }
}
