//! One delivery: a signed POST of the event's body, within a timeout, to
//! an address the policy allows, following no redirect and through no
//! proxy, and what came of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use zeroize::Zeroizing;

use crate::destination::Destinations;
use crate::signature::{HEADER_EVENT_ID, HEADER_SIGNATURE, sign};

/// The most of an answer read (and then dropped): receivers should answer
/// with an empty body; reading a little lets the connection be reused.
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024;
/// Error text kept per attempt.
const ERROR_CHARS_MAX: usize = 200;
const USER_AGENT: &str = concat!("facepay-webhooks/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy)]
pub struct SenderConfig {
    pub destinations: Destinations,
    /// The whole attempt (resolving, connecting, sending, the answer's
    /// head and what is read of its body) ends after this long.
    pub timeout_ms: u64,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// Why it was not delivered; `None` when it was.
    pub error: Option<String>,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Sends deliveries. Cheap to clone; one per server.
#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Self {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            // A redirect could lead anywhere the policy forbids, and a
            // proxy would be resolved instead of the receiver.
            .max_redirects(0)
            .proxy(None)
            .user_agent(USER_AGENT)
            .build();
        let resolver = GuardedResolver {
            destinations: config.destinations,
            inner: DefaultResolver::default(),
        };
        Self {
            agent: ureq::Agent::with_parts(agent_config, DefaultConnector::new(), resolver),
        }
    }

    /// POSTs `body` to `url` signed with `secret` at `timestamp_s`, on a
    /// blocking thread (ureq is synchronous).
    pub async fn post(
        &self,
        url: String,
        event_id: String,
        body: Arc<str>,
        secret: Zeroizing<Vec<u8>>,
        timestamp_s: i64,
    ) -> Attempt {
        let agent = self.agent.clone();
        let start = Instant::now();
        let sent = tokio::task::spawn_blocking(move || {
            let signature = sign(&secret, timestamp_s, body.as_bytes());
            post_blocking(&agent, &url, &event_id, &signature, &body)
        })
        .await;
        let latency_ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        match sent {
            Ok(Ok(status)) if (200..300).contains(&status) => Attempt {
                status_code: Some(status),
                latency_ms,
                error: None,
            },
            Ok(Ok(status)) => Attempt {
                status_code: Some(status),
                latency_ms,
                error: Some(format!("HTTP {status}")),
            },
            Ok(Err(e)) => Attempt {
                status_code: None,
                latency_ms,
                error: Some(shortened(&e)),
            },
            Err(e) => Attempt {
                status_code: None,
                latency_ms,
                error: Some(shortened(&format!("the sending thread failed: {e}"))),
            },
        }
    }
}

/// The receiver's status, after reading a bounded part of its answer.
fn post_blocking(
    agent: &ureq::Agent,
    url: &str,
    event_id: &str,
    signature: &str,
    body: &str,
) -> Result<u16, String> {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .header(HEADER_EVENT_ID, event_id)
        .header(HEADER_SIGNATURE, signature)
        .send(body.as_bytes())
        .map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    // What the receiver says is not kept: only whether it took the event.
    let _ = response
        .body_mut()
        .with_config()
        .limit(RESPONSE_BYTES_MAX)
        .read_to_vec();
    Ok(status)
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Other(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

fn shortened(text: &str) -> String {
    text.chars().take(ERROR_CHARS_MAX).collect()
}

/// The system's resolver, keeping only the addresses the policy allows:
/// the connection is made to one of those, so a name that points
/// somewhere forbidden (now, or after it was registered) reaches nothing.
#[derive(Debug)]
struct GuardedResolver {
    destinations: Destinations,
    inner: DefaultResolver,
}

#[derive(Debug, thiserror::Error)]
#[error("the host resolves to no address deliveries may reach ({} addresses only)", .0.as_str())]
struct NotAllowed(Destinations);

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let mut allowed = self.empty();
        for address in resolved.iter() {
            if self.destinations.allows(address.ip()) {
                allowed.push(*address);
            }
        }
        if allowed.is_empty() {
            return Err(ureq::Error::Other(Box::new(NotAllowed(self.destinations))));
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::signature::verify;

    /// A receiver on loopback that answers each connection with `status`
    /// and hands back the request's head and body.
    fn receiver(status: u16) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            (head, body)
        });
        (url, handle)
    }

    fn sender(destinations: Destinations) -> Sender {
        Sender::new(SenderConfig {
            destinations,
            timeout_ms: 5_000,
        })
    }

    #[tokio::test]
    async fn a_delivery_is_signed_and_a_2xx_delivers_it() {
        let (url, received) = receiver(204);
        let body: Arc<str> = Arc::from(r#"{"id":"evt_1"}"#);
        let secret = b"whsec_test".to_vec();
        let attempt = sender(Destinations::Loopback)
            .post(
                url,
                "evt_1".into(),
                body.clone(),
                Zeroizing::new(secret.clone()),
                1_700_000_000,
            )
            .await;
        assert_eq!(
            (attempt.status_code, attempt.error.as_deref()),
            (Some(204), None)
        );
        let (head, bytes) = received.join().unwrap();
        assert_eq!(bytes, body.as_bytes());
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(": ")?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("no {name} in {head}"))
        };
        assert_eq!(header("facepay-event-id"), "evt_1");
        assert!(head.starts_with("POST /hooks HTTP/1.1"));
        assert_eq!(
            verify(&secret, &header("facepay-signature"), &bytes, 1_700_000_000),
            Ok(())
        );
    }

    #[tokio::test]
    async fn anything_but_a_2xx_or_a_forbidden_address_is_a_failed_attempt() {
        for status in [301, 404, 500] {
            let (url, received) = receiver(status);
            let attempt = sender(Destinations::Loopback)
                .post(url, "e".into(), Arc::from("{}"), Zeroizing::new(vec![1]), 0)
                .await;
            received.join().unwrap();
            assert_eq!(attempt.status_code, Some(status));
            assert_eq!(attempt.error, Some(format!("HTTP {status}")));
            assert!(!attempt.delivered());
        }
        // A receiver on loopback is refused where only public addresses
        // may be reached, even by a name that resolves there.
        let (url, _unused) = receiver(200);
        let by_name = url.replace("127.0.0.1", "localhost");
        let attempt = sender(Destinations::Public)
            .post(
                by_name,
                "e".into(),
                Arc::from("{}"),
                Zeroizing::new(vec![1]),
                0,
            )
            .await;
        assert_eq!(attempt.status_code, None);
        assert!(
            attempt
                .error
                .as_deref()
                .unwrap()
                .contains("public addresses only"),
            "{attempt:?}"
        );
        // Nobody listening: the connection is refused, quickly.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let attempt = sender(Destinations::Any)
            .post(url, "e".into(), Arc::from("{}"), Zeroizing::new(vec![1]), 0)
            .await;
        assert!(attempt.error.is_some() && attempt.status_code.is_none());
    }
}
