//! `facepay bench pay --enrolled N`, bounded for CI: a few thousand
//! synthetic payers imported through the bulk path, the server started
//! again from the store and from its snapshot with all of them in its
//! gallery, and a few payments by the photos' people, on SQLite (without
//! the floats, as at ten million) and (when CI gives one) PostgreSQL; and
//! a store kept with `--store-dir` opened again.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// Shared by the process tests; this one needs two of its helpers.
#[allow(dead_code)]
mod common;
use common::{binary, lay_out_photos};

const ENROLLED: usize = 2_500;
const PAYMENTS: usize = 6;

#[test]
fn a_payment_with_thousands_enrolled_and_both_start_ups_timed() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos_in(dir.path());
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

/// A store kept with `--store-dir`: an import stopped with Ctrl-C goes on
/// at the next run, which then times the starts and pays; a record of the
/// import that the store does not match (as a run killed mid-import
/// leaves) is refused.
#[test]
fn a_kept_store_goes_on_where_its_import_stopped() {
    const KEPT: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let photos = photos_in(dir.path());
    let store = dir.path().join("store");
    let bench = || {
        let mut bench = Command::new(binary());
        bench
            .args(["bench", "pay", "--gallery-kind", "ivf", "--store-dir"])
            .arg(&store)
            .args([
                "--enrolled",
                &KEPT.to_string(),
                "--payments",
                "2",
                "--photos",
            ])
            .arg(&photos)
            .env("RUST_LOG", "warn");
        bench
    };
    let imported = stopped_at_import(bench());
    assert!(
        imported < KEPT && imported.is_multiple_of(1_000),
        "{imported}"
    );

    let again = bench().output().unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rest = format!("imported {} synthetic payers in", KEPT - imported);
    for line in [
        &rest,
        "start-up from the store:",
        "start-up from the snapshot:",
        "2 payments in",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }

    let record = store.join("synthetic-import.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let all = format!("\"imported\":{KEPT}");
    assert!(text.contains(&all), "{text}");
    std::fs::write(&record, text.replace(&all, "\"imported\":0")).unwrap();
    let refused = bench().output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("killed or failed rather than stopped"),
        "{stderr}"
    );
}

/// Runs `bench`, sends it Ctrl-C (SIGINT) once its import has begun, and
/// returns how many payers its record says are stored.
fn stopped_at_import(mut bench: Command) -> usize {
    let mut child = bench
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("importing synthetic payers") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no import in {seen}"
        );
        seen.push_str(&line);
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    stdout.read_to_string(&mut seen).unwrap();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success(), "{seen}");
    assert!(
        stderr.contains("run the same command again"),
        "{seen}\n{stderr}"
    );
    let stored = seen
        .lines()
        .find_map(|l| l.split(", ").last()?.strip_suffix(" in the store"))
        .and_then(|s| s.split(' ').next()?.parse().ok());
    stored.unwrap_or_else(|| panic!("no payers stored in {seen}"))
}

/// The sample photos laid out under `dir` as `bench pay` takes them: it
/// enrols each person's first photo and pays with the rest.
fn photos_in(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    for other in lay_out_photos(&photos) {
        let person = other.parent().unwrap().file_name().unwrap();
        let to = photos.join(person).join(other.file_name().unwrap());
        std::fs::copy(&other, to).unwrap();
    }
    photos
}
