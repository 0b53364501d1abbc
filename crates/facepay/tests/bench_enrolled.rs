//! `facepay bench pay --enrolled N`, bounded for CI: a few thousand
//! synthetic payers imported through the bulk path, the server started
//! again from the store and from its snapshot with all of them in its
//! gallery, and a few payments by the photos' people, on SQLite (without
//! the floats, as at ten million) and (when CI gives one) PostgreSQL.

use std::process::Command;

// Shared by the process tests; this one needs two of its helpers.
#[allow(dead_code)]
mod common;
use common::{binary, lay_out_photos};

const ENROLLED: usize = 2_500;
const PAYMENTS: usize = 6;

#[test]
fn a_payment_with_thousands_enrolled_and_both_start_ups_timed() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    // `bench pay` enrols each person's first photo and pays with the rest.
    for other in lay_out_photos(&photos) {
        let person = other.parent().unwrap().file_name().unwrap();
        let to = photos.join(person).join(other.file_name().unwrap());
        std::fs::copy(&other, to).unwrap();
    }
    let mut stores = vec![None];
    stores.extend(std::env::var("FACEPAY_TEST_POSTGRES_URL").ok().map(Some));
    for database_url in stores {
        let mut bench = Command::new(binary());
        bench
            .args([
                "bench",
                "pay",
                "--concurrency",
                "2",
                "--gallery-kind",
                "ivf",
            ])
            .args(["--enrolled", &ENROLLED.to_string()])
            .args(["--payments", &PAYMENTS.to_string(), "--photos"])
            .arg(&photos)
            .env("RUST_LOG", "warn");
        match &database_url {
            Some(url) => bench.args(["--database-url", url]),
            // As at ten million: scores from the int8 codes alone.
            None => bench.args(["--keep-floats", "false"]),
        };
        let done = bench.output().unwrap();
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(
            stdout.contains(&format!("imported {ENROLLED} synthetic payers in")),
            "{stdout}"
        );
        // The photos' people enrolled before the import, so the gallery
        // holds more than the synthetic payers after each start.
        for from in ["store", "snapshot"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("start-up from the {from}:")))
                .unwrap_or_else(|| panic!("no start-up from the {from}: {stdout}"));
            let templates: usize = line
                .split(", ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            assert!(templates > ENROLLED, "{line}");
        }
        assert!(stdout.contains("snapshot written in"), "{stdout}");
        assert!(
            stdout.contains(&format!("{PAYMENTS} payments in")),
            "{stdout}"
        );
    }
}
