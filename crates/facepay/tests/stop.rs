//! `facepay serve` stopped as a service manager stops it (SIGTERM) ends as
//! it does on Ctrl-C: it stops its jobs, writes its gallery snapshot when
//! due and exits with success, instead of being killed with its work cut
//! short. A second signal ends it at once.
#![cfg(unix)]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

mod common;
use common::{free_port, serve_command, wait_ready};

/// Far more than a start's first snapshot or a stop takes.
const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn sigterm_stops_the_server_and_keeps_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("gallery.snapshot");
    let port = free_port();
    let mut command = serve_command(dir.path(), None, port);
    command.env("FACEPAY_GALLERY__SNAPSHOT_FILE", &snapshot);
    let server = started(command, port);
    // The start's own snapshot first, so that the stop finds it up to date.
    let deadline = Instant::now() + WITHIN;
    while !snapshot.exists() {
        if Instant::now() > deadline {
            fail(server, "no snapshot written at start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_process(Pid::from_child(&server), Signal::TERM).unwrap();
    let (status, log) = ended(server, WITHIN, "the server did not stop on SIGTERM");
    assert!(status.success(), "{status}: {log}");
    // Once at start; the stop finds it holds every change, and says so.
    assert_eq!(log.matches("gallery snapshot written").count(), 1, "{log}");
    assert!(log.contains("gallery snapshot up to date"), "{log}");
}

/// A request under way holds a stop for up to the request timeout (a
/// minute by default); a second SIGTERM ends the server at once, with the
/// status a shell reports for a process SIGTERM ended (128 + 15).
#[test]
fn a_second_sigterm_ends_the_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = started(serve_command(dir.path(), None, port), port);
    // The body is read whole before the handler runs, and this one never
    // comes in full.
    let mut under_way = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    under_way
        .write_all(
            b"POST /v1/connectors/hyperswitch/webhooks HTTP/1.1\r\nhost: localhost\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill_process(Pid::from_child(&server), Signal::TERM).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    if let Some(status) = server.try_wait().unwrap() {
        panic!(
            "stopped with a request under way: {status}: {}",
            log_of(&mut server)
        );
    }
    kill_process(Pid::from_child(&server), Signal::TERM).unwrap();
    let within = Duration::from_secs(10);
    let (status, log) = ended(server, within, "a second SIGTERM did not end the server");
    assert_eq!(status.code(), Some(143), "{status}: {log}");
    assert!(log.contains("a second stop signal"), "{log}");
    drop(under_way);
}

/// The server of `command`, its log piped, once it answers.
fn started(mut command: Command, port: u16) -> Child {
    let server = command
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
    server
}

/// The server's status and log once it ended, within `within`; fails with
/// `why` if it did not.
fn ended(mut server: Child, within: Duration, why: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            return (status, log_of(&mut server));
        }
        if Instant::now() > deadline {
            fail(server, why);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
