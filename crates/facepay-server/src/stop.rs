//! Stopping on Ctrl-C or SIGTERM, the signal with which service managers
//! (systemd, Docker, Kubernetes) stop a server.
//!
//! On Unix the listeners are made when the stop future is made, not when
//! it is first awaited: `tokio::signal::ctrl_c` installs its handler only
//! when polled, so a signal sent just after the server said it was
//! listening could end the process as if no handler were there. Elsewhere
//! only Ctrl-C stops it, through `tokio::signal::ctrl_c`.

/// The stop signals this process listens for, from when this is made.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

/// The status a shell reports for a process that a signal ended: 128 and
/// the signal's number.
const BY_CTRL_C: i32 = 128 + 2;

impl StopSignals {
    #[cfg(unix)]
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listening = |kind, name: &str| match signal(kind) {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "{name} not handled");
                None
            }
        };
        Self {
            interrupt: listening(SignalKind::interrupt(), "Ctrl-C"),
            terminate: listening(SignalKind::terminate(), "SIGTERM"),
        }
    }

    #[cfg(not(unix))]
    fn listen() -> Self {
        Self {}
    }

    /// The next stop signal, as the status a shell reports for a process
    /// it ended.
    #[cfg(unix)]
    async fn next(&mut self) -> i32 {
        const BY_SIGTERM: i32 = 128 + 15;
        tokio::select! {
            () = received(&mut self.interrupt) => BY_CTRL_C,
            () = received(&mut self.terminate) => BY_SIGTERM,
        }
    }

    /// Elsewhere only Ctrl-C stops the server, and its handler is
    /// installed when first awaited.
    #[cfg(not(unix))]
    async fn next(&mut self) -> i32 {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "Ctrl-C not handled");
            std::future::pending::<()>().await;
        }
        BY_CTRL_C
    }
}

/// Completes when `listener` delivers its signal; never, without one.
#[cfg(unix)]
async fn received(listener: &mut Option<tokio::signal::unix::Signal>) {
    let delivered = match listener {
        Some(listener) => listener.recv().await.is_some(),
        None => false,
    };
    if !delivered {
        std::future::pending::<()>().await;
    }
}

/// Completes on the first stop signal, listened for from when this is
/// called: for a process that then only finishes the requests under way
/// (the card vault).
pub fn stop_requested() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = StopSignals::listen();
    async move {
        signals.next().await;
    }
}

/// Completes on the first stop signal; a second one ends the process at
/// once, with the status a shell reports for that signal. An operator who
/// sends it means that the requests under way (up to the request timeout)
/// and the snapshot are not worth the wait. Nothing is lost by it: a
/// payment is as safe as after a crash, and the last snapshot stays whole
/// (it is written aside, then renamed). `exit` runs the C++ libraries'
/// static destructors while a face may still be in ONNX Runtime on
/// another thread; at worst the process then ends with a crash's status
/// instead of this one, and it ends at once either way.
pub(crate) fn first_of_two_stops() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = StopSignals::listen();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!(
            "stopping: finishing the requests under way; a second stop signal ends at once"
        );
        let _ = first_tx.send(());
        let status = signals.next().await;
        tracing::warn!(
            "a second stop signal: ending now, without the requests under way or a snapshot"
        );
        std::process::exit(status);
    });
    async move {
        let _ = first_rx.await;
    }
}
