//! `facepay serve` stopped as a service manager stops it (SIGTERM) ends as
//! it does on Ctrl-C: it stops its jobs, writes its gallery snapshot and
//! exits with success, instead of being killed with its work cut short.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

mod common;
use common::{free_port, serve_command, wait_ready};

/// Far more than a stop takes; a server that ignores the signal fails here.
const STOP_WITHIN: Duration = Duration::from_secs(30);

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
    let agent = ureq::Agent::new_with_defaults();
    wait_ready(&agent, port);
    kill_process(Pid::from_child(&server), Signal::TERM).unwrap();
    let deadline = Instant::now() + STOP_WITHIN;
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("the server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status}: {log}");
    // Once at start, once at the stop.
    assert!(
        log.matches("gallery snapshot written").count() >= 2,
        "{log}"
    );
    assert!(snapshot.exists());
}
