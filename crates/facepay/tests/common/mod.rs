//! What the process-level tests share: the binary, free ports, photos.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_facepay")
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
