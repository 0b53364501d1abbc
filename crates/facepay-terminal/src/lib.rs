//! The client side of a facepay terminal: its pairing (its own key made
//! here, the public half registered with the operator's one-time code, the
//! key file written 0600), its key file, and a client that signs each
//! request with the terminal's Ed25519 key exactly as a kiosk
//! does. A request that got no answer, or found the first request with its
//! key still running, is sent again with the same idempotency key (and a
//! fresh signature and nonce), so a terminal never pays twice.

use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use serde::{Deserialize, Serialize};

/// One attempt waits this long for the server's answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// A request is retried for this long at most: past the server's
/// idempotency lease (30 s by default), after which a retry takes over the
/// work of a first request whose server died.
const RETRY_FOR: Duration = Duration::from_secs(45);
/// Pause between attempts: doubles from the first, up to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("{path}: {reason}; pair a terminal first (`facepay terminal pair`)")]
    KeyFile { path: String, reason: String },
    #[error("the server did not answer: {0}")]
    Transport(String),
    #[error("the server refused ({status}): {answer}")]
    Refused { status: u16, answer: String },
    #[error("{path}: {reason}")]
    Write { path: String, reason: String },
    #[error("no key or nonce: {0}")]
    Random(#[from] facepay_payments::keys::KeyError),
    #[error("the server answered {status} for {seconds} s: {answer}")]
    GaveUp {
        status: u16,
        seconds: u64,
        answer: String,
    },
}

/// A terminal's identity on disk: its id and secret key.
#[derive(Serialize, Deserialize)]
pub struct TerminalFile {
    pub terminal_id: String,
    pub secret_key_hex: String,
}

impl TerminalFile {
    pub fn load(path: &Path) -> Result<(String, SigningKey), TerminalError> {
        let fail = |reason: String| TerminalError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: TerminalFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let bytes: [u8; 32] = hex::decode(&file.secret_key_hex)
            .map_err(|e| fail(e.to_string()))?
            .try_into()
            .map_err(|_| fail("the terminal key is not 32 bytes".into()))?;
        Ok((file.terminal_id, SigningKey::from_bytes(&bytes)))
    }
}

impl TerminalFile {
    /// Writes the file readable by its owner only (0600), replacing one
    /// there: the key is the terminal's identity.
    pub fn write_private(&self, path: &Path) -> Result<(), TerminalError> {
        use std::io::Write;
        let fail = |e: std::io::Error| TerminalError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.into()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
        file.write_all(text.as_bytes()).map_err(fail)
    }
}

/// Pairs a terminal as a kiosk does: makes its Ed25519 key here, sends
/// the public half with the one-time code, and writes the key file (0600)
/// once the server took it. Answers the server's description of the
/// terminal (its store, merchant and currency).
pub fn pair(
    server: &str,
    terminal_id: &str,
    code: &str,
    out: &Path,
) -> Result<serde_json::Value, TerminalError> {
    let key = signing::new_terminal_key()?;
    let body = serde_json::json!({
        "terminal_id": terminal_id,
        "code": code,
        "public_key_hex": hex::encode(key.verifying_key().to_bytes()),
    });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .build()
        .new_agent();
    let url = format!("{}/v1/terminals/pair", server.trim_end_matches('/'));
    let mut response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|e| TerminalError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| TerminalError::Transport(e.to_string()))?;
    if status != 200 {
        return Err(TerminalError::Refused {
            status,
            answer: text,
        });
    }
    let file = TerminalFile {
        terminal_id: terminal_id.to_owned(),
        secret_key_hex: hex::encode(key.to_bytes()),
    };
    file.write_private(out)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

pub struct Client {
    agent: ureq::Agent,
    server: String,
    terminal_id: String,
    key: SigningKey,
}

pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
    /// The server's `Server-Timing` header: its time per stage.
    pub server_timing: String,
}

impl Answer {
    /// Worth sending again with the same key: the server could not finish
    /// (a 5xx other than the issuer's own 502/504), or the first request
    /// with this key still holds it.
    fn retryable(&self) -> bool {
        let in_progress =
            self.status == 409 && self.json["error"]["code"] == "idempotency_in_progress";
        (self.status >= 500 && self.status != 502 && self.status != 504) || in_progress
    }
}

impl Client {
    pub fn new(server: &str, terminal_id: String, key: SigningKey) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            .build()
            .new_agent();
        Self {
            agent,
            server: server.trim_end_matches('/').to_owned(),
            terminal_id,
            key,
        }
    }

    /// Sends a signed POST, retrying with the same idempotency key until
    /// the server answers for good or `RETRY_FOR` has passed.
    pub fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> Result<Answer, TerminalError> {
        let started = Instant::now();
        let mut backoff = BACKOFF_FIRST;
        loop {
            let outcome = self.attempt(path, idempotency_key, body);
            let retry = match &outcome {
                Ok(answer) => answer.retryable(),
                Err(_) => true,
            };
            if !retry {
                return outcome;
            }
            if started.elapsed() + backoff > RETRY_FOR {
                return Err(match outcome {
                    Ok(answer) => TerminalError::GaveUp {
                        status: answer.status,
                        seconds: started.elapsed().as_secs(),
                        answer: answer.json.to_string(),
                    },
                    Err(e) => e,
                });
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn attempt(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> Result<Answer, TerminalError> {
        let now_ms = facepay_store::now_ms();
        let signed = signing::sign(&self.key, &self.terminal_id, "POST", path, now_ms, body)?;
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.server))
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key)
            .header(HEADER_TERMINAL, &signed.terminal_id)
            .header(HEADER_TIMESTAMP, &signed.timestamp_ms.to_string())
            .header(HEADER_NONCE, &signed.nonce)
            .header(HEADER_SIGNATURE, &signed.signature)
            .send(body)
            .map_err(|e| TerminalError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let server_timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| TerminalError::Transport(e.to_string()))?;
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok(Answer {
            status,
            json,
            server_timing,
        })
    }
}

pub fn new_idempotency_key() -> Result<String, TerminalError> {
    Ok(hex::encode(facepay_payments::keys::random_bytes::<16>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_written_for_its_owner_only_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terminal.json");
        std::fs::write(&path, "old").unwrap();
        let key = signing::new_terminal_key().unwrap();
        let file = TerminalFile {
            terminal_id: "trm_1".into(),
            secret_key_hex: hex::encode(key.to_bytes()),
        };
        file.write_private(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (id, read) = TerminalFile::load(&path).unwrap();
        assert_eq!((id.as_str(), read.to_bytes()), ("trm_1", key.to_bytes()));
    }
}
