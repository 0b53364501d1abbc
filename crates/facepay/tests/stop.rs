//! `facepay serve` stopped as a service manager stops it (SIGTERM) ends as
//! it does on Ctrl-C: it stops its jobs, writes its gallery snapshot and
//! exits with success, instead of being killed with its work cut short.
#![cfg(unix)]

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

mod common;
use common::{free_port, serve_command, wait_ready};

/// Far more than a start's first snapshot or a stop takes.
const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn sigterm_stops_the_server_and_writes_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("gallery.snapshot");
    let port = free_port();
    let mut server = serve_command(dir.path(), None, port)
        .env("FACEPAY_GALLERY__SNAPSHOT_FILE", &snapshot)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    wait_ready(&agent, port);
    // The start's own snapshot first, so that the stop's is a second one.
    let deadline = Instant::now() + WITHIN;
    while !snapshot.exists() {
        if Instant::now() > deadline {
            fail(server, "no snapshot written at start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_process(Pid::from_child(&server), Signal::TERM).unwrap();
    let deadline = Instant::now() + WITHIN;
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            fail(server, "the server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log_of(&mut server);
    assert!(status.success(), "{status}: {log}");
    // Once at start, once at the stop.
    assert_eq!(log.matches("gallery snapshot written").count(), 2, "{log}");
}

fn fail(mut server: Child, why: &str) -> ! {
    let _ = server.kill();
    let _ = server.wait();
    panic!("{why}: {}", log_of(&mut server));
}

fn log_of(server: &mut Child) -> String {
    let mut log = String::new();
    if let Some(mut stderr) = server.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    log
}
