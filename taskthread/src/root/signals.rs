//! Ctrl-C and SIGTERM: the first stops a root gracefully, a second aborts its tree.

use tokio::task::{AbortHandle, JoinHandle};

use crate::child::ChildRef;
use crate::exit::Exit;
use crate::thread::Thread;

use super::{abort_tree, exit_of};

/// Watches the root `child` (whose task is `task`, joined through `join`) until it ends: the
/// first signal stops it gracefully, a second aborts the tree. Returns how it ended, and
/// whether a second signal aborted it.
pub(super) async fn stop_on<T: Thread>(
    mut signals: Signals,
    child: &ChildRef<T>,
    task: &AbortHandle,
    mut join: JoinHandle<Exit>,
) -> (Exit, bool) {
    let mut stopping = false;
    loop {
        tokio::select! {
            // The end first: a signal that comes as the root ends aborts nothing.
            biased;
            joined = &mut join => {
                let exit = exit_of(joined);
                tracing::info!(root = %child.path(), "tree ended: {exit}");
                return (exit, false);
            }
            signal = signals.recv() => {
                if stopping {
                    tracing::warn!(root = %child.path(), "second signal ({signal}): aborting the tree");
                    let (exit, aborted) = abort_tree(&*child.node, task, &mut join).await;
                    tracing::warn!(root = %child.path(), "tree ended: {exit}");
                    return (exit, aborted);
                }
                stopping = true;
                tracing::info!(root = %child.path(), "{signal} received: stopping the tree gracefully (signal again to give up)");
                child.stop();
            }
        }
    }
}

/// The process's stop signals: Ctrl-C, and SIGTERM on Unix. Listened for from the moment
/// they are made, so that a signal between that and the first wait is not missed.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    pub(super) fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(sig) => Some(sig),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                None
            }
        };
        Self {
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    #[cfg(not(unix))]
    pub(super) fn listen() -> Self {
        Self {}
    }

    /// Waits for the next signal and returns its name.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            let received = match signal {
                Some(sig) => sig.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => "SIGINT",
            () = next(&mut self.terminate) => "SIGTERM",
        }
    }

    /// Waits for the next signal and returns its name.
    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    }
}
