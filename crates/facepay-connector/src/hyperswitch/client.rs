//! One HTTP exchange with Hyperswitch, and what its answer lets us conclude.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::api::ErrorBody;
use super::config::HyperswitchConfig;

/// The largest answer read; a `PaymentsResponse` is a few kilobytes.
pub const RESPONSE_BYTES_MAX: u64 = 1024 * 1024;
/// Error text kept from an answer that is not Hyperswitch's error body.
const ERROR_TEXT_CHARS_MAX: usize = 200;

/// What one request told us.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A 2xx with its body.
    Success(Vec<u8>),
    /// A 4xx: Hyperswitch read the request and refused it without acting.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer to rely on (a timeout, a broken connection, a 5xx): the
    /// request may or may not have acted.
    Unknown(String),
}

#[derive(Clone, Copy)]
pub(crate) enum Method {
    Get,
    Post,
}

pub(crate) struct Client {
    base_url: String,
    api_key: Zeroizing<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(config: &HyperswitchConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            // The API never redirects; following one could hand the api-key
            // header to another host.
            .max_redirects(0)
            .build()
            .new_agent();
        Client {
            base_url: config.base_url_trimmed().to_owned(),
            api_key: Zeroizing::new(config.api_key.clone()),
            agent,
        }
    }

    /// One request on a blocking thread (ureq is synchronous). The body may
    /// hold a card number: it is wiped when the request is done.
    pub(crate) async fn exchange(
        self: &Arc<Self>,
        method: Method,
        path: String,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Reply {
        let client = Arc::clone(self);
        tokio::task::spawn_blocking(move || client.exchange_blocking(method, &path, body))
            .await
            .unwrap_or_else(|e| Reply::Unknown(format!("the request thread failed: {e}")))
    }

    fn exchange_blocking(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Reply {
        let url = format!("{}{path}", self.base_url);
        let api_key = self.api_key.as_str();
        let sent = match (method, body) {
            (Method::Get, _) => self
                .agent
                .get(&url)
                .header("api-key", api_key)
                .header("accept", "application/json")
                .call(),
            (Method::Post, body) => self
                .agent
                .post(&url)
                .header("api-key", api_key)
                .header("accept", "application/json")
                .header("content-type", "application/json")
                .send(body.as_ref().map_or(&b"{}"[..], |bytes| &bytes[..])),
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Reply::Unknown(e.to_string()),
        };
        let status = response.status().as_u16();
        let read = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec();
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => return Reply::Unknown(format!("HTTP {status}, body unreadable: {e}")),
        };
        classify(status, bytes)
    }
}

fn classify(status: u16, bytes: Vec<u8>) -> Reply {
    match status {
        200..=299 => Reply::Success(bytes),
        400..=499 => match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Reply::Refused {
                status,
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => Reply::Refused {
                status,
                code: format!("http_{status}"),
                message: excerpt(&bytes),
            },
        },
        _ => Reply::Unknown(format!("HTTP {status}: {}", excerpt(&bytes))),
    }
}

/// A short, printable piece of an unexpected body, for an error message.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(ERROR_TEXT_CHARS_MAX)
        .collect()
}

/// A reply with its 2xx body read as `T`.
#[derive(Debug)]
pub(crate) enum Decoded<T> {
    Answer(T),
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    Unknown(String),
}

/// A 2xx whose body is not what the document says is no answer either.
pub(crate) fn decode<T: DeserializeOwned>(reply: Reply) -> Decoded<T> {
    match reply {
        Reply::Success(bytes) => match serde_json::from_slice(&bytes) {
            Ok(answer) => Decoded::Answer(answer),
            Err(e) => Decoded::Unknown(format!("unexpected answer: {e}")),
        },
        Reply::Refused {
            status,
            code,
            message,
        } => Decoded::Refused {
            status,
            code,
            message,
        },
        Reply::Unknown(reason) => Decoded::Unknown(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status() {
        assert!(matches!(classify(200, b"{}".to_vec()), Reply::Success(_)));
        let refused = classify(
            404,
            br#"{"error":{"type":"invalid_request","message":"Payment does not exist in our records","code":"HE_02"}}"#.to_vec(),
        );
        let Reply::Refused { status, code, .. } = refused else {
            panic!("404 is a refusal: {refused:?}");
        };
        assert_eq!((status, code.as_str()), (404, "HE_02"));
        let html = classify(403, b"<html>forbidden</html>".to_vec());
        assert!(
            matches!(&html, Reply::Refused { code, .. } if code == "http_403"),
            "{html:?}"
        );
        assert!(matches!(classify(500, Vec::new()), Reply::Unknown(_)));
        assert!(matches!(classify(503, Vec::new()), Reply::Unknown(_)));
        assert!(matches!(classify(302, Vec::new()), Reply::Unknown(_)));
    }
}
