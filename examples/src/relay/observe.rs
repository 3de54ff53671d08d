//! Watching the relay while it serves: its web view (`relay serve --web ADDR`) and its
//! control endpoint (`relay serve --control PATH`), bound to the tree and run beside it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use taskthread::Handle;
use taskthread::control::{ControlEndpoint, ControlError};
use taskthread::web::{WebEndpoint, WebError};

use super::Master;

/// Where to serve the views of the tree; nothing by default.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    /// The web view's loopback address.
    pub web: Option<SocketAddr>,
    /// The control endpoint's Unix socket.
    pub control: Option<PathBuf>,
}

/// A view that could not be bound.
#[derive(Debug)]
pub enum ObserveError {
    /// The web view.
    Web(WebError),
    /// The control endpoint.
    Control(ControlError),
}

impl fmt::Display for ObserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Web(e) => e.fmt(f),
            Self::Control(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ObserveError {}

/// Runs `master` as `taskthread::run` does (until it ends, or Ctrl-C / SIGTERM stops it
/// gracefully), with the views `options` asks for bound to it and stopped after it.
pub async fn run_observed(
    master: Master,
    options: &ObserveOptions,
) -> Result<taskthread::Result<()>, ObserveError> {
    let root = taskthread::spawn(master).stop_on_signals();
    let web = match options.web {
        Some(addr) => {
            let server = WebEndpoint::new(addr)
                .bind(&root)
                .await
                .map_err(ObserveError::Web)?;
            tracing::info!("web view on http://{}/", server.local_addr());
            Some(taskthread::spawn(server))
        }
        None => None,
    };
    let control = match &options.control {
        Some(path) => {
            let server = ControlEndpoint::unix(path)
                .bind(&root)
                .await
                .map_err(ObserveError::Control)?;
            tracing::info!(socket = %path.display(), "control endpoint: taskthread-ctl --unix {} top", path.display());
            Some(taskthread::spawn(server))
        }
        None => None,
    };
    let exit = root.join().await;
    stop(web).await;
    stop(control).await;
    Ok(exit.into_result())
}

async fn stop<T: taskthread::Thread>(view: Option<Handle<T>>) {
    if let Some(view) = view {
        view.stop();
        let _ = view.join().await;
    }
}
