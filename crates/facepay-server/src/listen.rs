//! Connections: how many, and how long each may stay silent. At most
//! `connections_max` are open; one over that is answered 503
//! `too_many_connections` and closed. A request's headers must arrive
//! within `header_timeout_ms` of their first byte (else 408
//! `header_timeout`), and a connection that waits for its next request,
//! or for its client to read an answer, is closed after `idle_timeout_ms`
//! without a byte either way. Hyper serves HTTP/1.1 on each connection;
//! the router answers.
//!
//! Hyper's own header timer runs whenever it waits for a request, so it
//! cannot tell a kept-alive connection at rest from one sending its
//! headers a byte at a time: each connection keeps its own watch
//! (`Activity`) from what its socket and its requests do. A connection
//! the server closes first is closed lingering: its answer sent, its
//! write side shut, and what the client still sends read and dropped for
//! a moment, so that the client reads the answer (a 413 to a body it is
//! still sending) instead of a reset.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use facepay_payments::api::ErrorBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::edge::ErrorResponse;

/// Connections over the cap answered at once at most; more are closed
/// without an answer.
const REFUSALS_MAX: usize = 64;
/// How long a closing connection's late bytes are read and dropped.
const LINGER_MS: u64 = 1_000;
/// Pause after a failed accept (out of file descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Longest wait for open connections once the server stops, beyond the
/// time a request may take.
const SHUTDOWN_GRACE_MS: u64 = 2_000;

/// The limits of `[server]` that apply to connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub connections_max: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a request may take (`[server] request_timeout_ms`): a
    /// stopping server waits this long for the requests it has.
    pub request_timeout: Duration,
}

impl ConnectionLimits {
    pub fn of(server: &facepay_config::Server) -> Self {
        Self {
            connections_max: usize::try_from(server.connections_max).unwrap_or(usize::MAX),
            header_timeout: Duration::from_millis(server.header_timeout_ms),
            idle_timeout: Duration::from_millis(server.idle_timeout_ms),
            request_timeout: Duration::from_millis(server.request_timeout_ms),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open requests finish (for at most the request timeout and a grace).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    assert!(limits.connections_max > 0);
    assert!(!limits.header_timeout.is_zero() && !limits.idle_timeout.is_zero());
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let refusals = Arc::new(Semaphore::new(REFUSALS_MAX));
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let connection = Connection {
                    router: router.clone(),
                    peer,
                    limits,
                    stopped: stopped.clone(),
                    _permit: permit,
                };
                tokio::spawn(connection.run(stream));
            }
            Err(_) => refuse(stream, &refusals),
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let grace = limits.request_timeout + Duration::from_millis(SHUTDOWN_GRACE_MS + LINGER_MS);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were dropped");
    }
}

/// The router's answer to one request, as hyper awaits it.
type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// One accepted connection, holding its place under the cap.
struct Connection {
    router: Router,
    peer: SocketAddr,
    limits: ConnectionLimits,
    stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// Why a connection ended.
enum Ending {
    /// Hyper is done with it: the client closed, or one side asked to.
    Served,
    Expired(Expiry),
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        // Answers are small and written whole; waiting to fill a segment
        // only delays them.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
        });
        let mut builder = http1::Builder::new();
        builder.header_read_timeout(None);
        let mut conn = builder.serve_connection(io, self.service(&activity));
        let mut stopping = false;
        let ending = loop {
            tokio::select! {
                done = poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    break Ending::Served;
                }
                expiry = activity.expiry(&self.limits) => break Ending::Expired(expiry),
                _ = self.stopped.changed(), if !stopping => {
                    stopping = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        };
        let mut stream = conn.into_parts().io.into_inner().stream;
        match ending {
            Ending::Expired(Expiry::Idle) => {}
            Ending::Expired(Expiry::Headers) => {
                let message = format!(
                    "the request's headers did not arrive within {} ms",
                    self.limits.header_timeout.as_millis()
                );
                let answer = raw_error(StatusCode::REQUEST_TIMEOUT, "header_timeout", &message);
                let _ = stream.write_all(&answer).await;
                linger(stream).await;
            }
            Ending::Served => linger(stream).await,
        }
    }

    /// The router, with the peer's address for the request and the
    /// connection's watch told when each request starts and ends.
    fn service(
        &self,
        activity: &Arc<Activity>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = Answer,
    > + use<> {
        let router = self.router.clone();
        let peer = self.peer;
        let activity = Arc::clone(activity);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let open = activity.request_started();
            let router = router.clone();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            Box::pin(async move {
                let response = router.oneshot(request).await;
                drop(open);
                response
            }) as Answer
        })
    }
}

/// Answers a connection over the cap with 503 and closes it, from a task
/// of its own while fewer than `REFUSALS_MAX` are being answered; past
/// that it is closed at once.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let answer = raw_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the server has as many connections open as it takes; retry shortly",
        );
        let _ = stream.write_all(&answer).await;
        linger(stream).await;
        drop(permit);
    });
}

/// Shuts the write side (the answer is out), then reads and drops what the
/// client still sends until it closes or `LINGER_MS` pass. Closing with
/// unread bytes would send a reset, which can destroy the answer before
/// the client reads it.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(LINGER_MS), drain).await;
}

/// An error answer written on the socket itself, where hyper has no
/// request to answer: in the API's error shape, and closing.
fn raw_error(status: StatusCode, code: &'static str, message: &str) -> Vec<u8> {
    let body = serde_json::to_string(&ErrorResponse {
        error: ErrorBody { code, message },
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// What expired on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A request's headers began and did not finish in time.
    Headers,
    /// Nothing moved either way, and no request was open.
    Idle,
}

/// Milliseconds since the connection opened, plus one; zero means "none".
const NONE_MS: u64 = 0;

/// What a connection's socket and requests did lately: what its watch
/// decides on. Atomics, because the socket's reads and writes, the
/// requests and the watch run on different tasks.
struct Activity {
    opened: Instant,
    open_requests: AtomicU32,
    /// When the first byte of the next request arrived (no request open).
    head_since_ms: AtomicU64,
    /// When a byte last moved either way, or a request last ended.
    quiet_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            open_requests: AtomicU32::new(0),
            head_since_ms: AtomicU64::new(NONE_MS),
            quiet_since_ms: AtomicU64::new(1),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn moved(&self, bytes: usize, read: bool) {
        if bytes == 0 {
            return;
        }
        let now = self.now_ms();
        self.quiet_since_ms.store(now, Ordering::Relaxed);
        if read && self.open_requests.load(Ordering::Acquire) == 0 {
            let _ = self.head_since_ms.compare_exchange(
                NONE_MS,
                now,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(self: &Arc<Self>) -> OpenRequest {
        self.open_requests.fetch_add(1, Ordering::AcqRel);
        self.head_since_ms.store(NONE_MS, Ordering::Release);
        OpenRequest(Arc::clone(self))
    }

    /// Resolves when the connection's headers or its idleness expire;
    /// never while a request is open (the request timeout bounds those).
    async fn expiry(&self, limits: &ConnectionLimits) -> Expiry {
        loop {
            match self.check(limits) {
                Ok(expiry) => return expiry,
                Err(wake_ms) => {
                    let at = self.opened + Duration::from_millis(wake_ms.saturating_sub(1));
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }

    /// What expired by now, or when to look again. Any deadline that
    /// starts later lies at least the shorter timeout after it starts, so
    /// looking again that soon never misses one.
    fn check(&self, limits: &ConnectionLimits) -> Result<Expiry, u64> {
        let header_ms = millis(limits.header_timeout);
        let idle_ms = millis(limits.idle_timeout);
        let now = self.now_ms();
        let again = now.saturating_add(header_ms.min(idle_ms));
        if self.open_requests.load(Ordering::Acquire) > 0 {
            return Err(again);
        }
        let (deadline, expiry) = match self.head_since_ms.load(Ordering::Acquire) {
            NONE_MS => (
                self.quiet_since_ms
                    .load(Ordering::Relaxed)
                    .saturating_add(idle_ms),
                Expiry::Idle,
            ),
            since => (since.saturating_add(header_ms), Expiry::Headers),
        };
        if now >= deadline {
            Ok(expiry)
        } else {
            Err(deadline.min(again))
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A request being answered on a connection; dropped when its answer is
/// ready (or its handler was cancelled).
struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.quiet_since_ms.store(now, Ordering::Relaxed);
        self.0.open_requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, telling the connection's `Activity` of every byte moved.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            self.activity.moved(buf.filled().len() - before, true);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.activity.moved(n, false);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.activity.moved(n, false);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(header_ms: u64, idle_ms: u64) -> ConnectionLimits {
        ConnectionLimits {
            connections_max: 4,
            header_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            request_timeout: Duration::from_millis(1_000),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn headers_expire_from_their_first_byte_and_idleness_from_the_last() {
        let activity = Arc::new(Activity::new());
        let limits = limits(100, 1_000);
        // At rest: the idle timeout, not the header one.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(activity.check(&limits).is_err());
        activity.moved(10, true);
        tokio::time::advance(Duration::from_millis(60)).await;
        activity.moved(10, true);
        assert!(activity.check(&limits).is_err());
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(activity.check(&limits), Ok(Expiry::Headers));
        // A request open: nothing expires here; once it ends, idleness
        // counts from then.
        let open = activity.request_started();
        tokio::time::advance(Duration::from_millis(5_000)).await;
        assert!(activity.check(&limits).is_err());
        drop(open);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(activity.check(&limits).is_err());
        activity.moved(100, false);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(activity.check(&limits).is_err());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(activity.check(&limits), Ok(Expiry::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_wakes_in_time_for_a_deadline_that_starts_while_it_sleeps() {
        let activity = Arc::new(Activity::new());
        let limits = limits(100, 10_000);
        let watch = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                let expiry = activity.expiry(&limits).await;
                (expiry, activity.now_ms())
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        activity.moved(1, true);
        let (expiry, at_ms) = watch.await.unwrap();
        assert_eq!(expiry, Expiry::Headers);
        assert!((131..=140).contains(&at_ms), "{at_ms}");
    }

    #[test]
    fn a_raw_error_is_the_api_shape_and_closes() {
        let answer = String::from_utf8(raw_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "retry",
        ))
        .unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }
}
