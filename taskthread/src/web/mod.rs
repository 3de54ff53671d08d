//! The web view: one page that shows a running tree live, served by the application itself
//! on a loopback address.
//!
//! Opt-in: the `web` feature (it brings `watch`, and hyper's HTTP/1 server). Bind a
//! [`WebEndpoint`] to a subtree and spawn the [`WebServer`] it gives as a thread:
//!
//! ```no_run
//! # // `no_run`: it would serve until stopped. The guide's chapter on observing a tree
//! # // runs one, and the tests drive one from a browser.
//! use taskthread::web::WebEndpoint;
//! # use taskthread::prelude::*;
//! # #[derive(Default)] struct App;
//! # #[taskthread] impl App {}
//!
//! # #[tokio::main] async fn main() -> taskthread::Result<()> {
//! let app = taskthread::spawn(App::default());
//! let web = WebEndpoint::new("127.0.0.1:8080".parse()?).bind(&app).await?;
//! println!("open http://{}/", web.local_addr());
//! let web = taskthread::spawn(web); // or `ctx.spawn(web)` inside the tree
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! | path | answer |
//! |---|---|
//! | `/` | the page: the tree with each thread's queues, message rate (a sparkline) and waits; a thread's details on click (or `?select=PATH`); the event timeline. One HTML file with its script, embedded in the crate: nothing to build, nothing fetched from elsewhere |
//! | `/events` | the watch stream as server-sent events: one `data:` line of JSON per [`WatchMessage`](crate::watch::WatchMessage), a snapshot first |
//! | `/tree.json` | a snapshot, as the JSON of a [`WatchMessage::Snapshot`](crate::watch::WatchMessage::Snapshot) |
//! | `/metrics` | the figures in the Prometheus text exposition format, labelled by path (and message type, task) |
//!
//! Only `GET` (and `HEAD`) is answered; anything else gets `405`, an unknown path `404`.
//!
//! # Security
//!
//! The view shows the tree's paths, types and figures, and nothing on it changes the tree.
//! Still, it is served on loopback addresses only, unless
//! [`WebEndpoint::allow_remote`] gives a token: then it may listen on any address, and
//! every request must carry the token, as `?token=...` (the page passes it on) or as an
//! `Authorization: Bearer ...` header; any other request gets `401`. The token travels in
//! clear: put a TLS proxy in front for anything but a trusted network.

mod body;
mod metrics_text;
mod routes;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::thread::{Thread, serving_thread_items};
use crate::watch::{DEFAULT_INTERVAL, Subtree, Watcher};

/// Where the web view listens, before it is bound: `WebEndpoint::new(addr)`, then
/// [`bind`](Self::bind) it to a subtree to get the [`WebServer`].
#[derive(Clone)]
pub struct WebEndpoint {
    addr: SocketAddr,
    token: Option<Arc<str>>,
    interval: Duration,
}

impl fmt::Debug for WebEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebEndpoint")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "..."))
            .field("interval", &self.interval)
            .finish()
    }
}

impl WebEndpoint {
    /// The web view on `addr` (port 0 picks a free port: see [`WebServer::local_addr`]).
    /// Only loopback addresses are accepted unless [`allow_remote`](Self::allow_remote)
    /// gives a token.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            token: None,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// Accepts an address that is not loopback, and requires `token` on every request
    /// (`?token=...` or `Authorization: Bearer ...`). An empty token is refused by
    /// [`bind`](Self::bind).
    pub fn allow_remote(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    /// How often the tree is sampled for the page (all its viewers share the sampling).
    /// The default is [`DEFAULT_INTERVAL`] (one second).
    ///
    /// # Panics
    /// If `interval` is zero.
    #[track_caller]
    pub fn interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "a watch interval must not be zero");
        self.interval = interval;
        self
    }

    /// Binds the view for the subtree of `tree`; spawn the server to serve it.
    pub async fn bind(self, tree: &impl Subtree) -> Result<WebServer, WebError> {
        match &self.token {
            Some(token) if token.is_empty() => return Err(WebError::EmptyToken),
            None if !self.addr.ip().is_loopback() => {
                return Err(WebError::NotLoopback(self.addr));
            }
            _ => {}
        }
        let listener = TcpListener::bind(self.addr).await.map_err(WebError::Io)?;
        let local_addr = listener.local_addr().map_err(WebError::Io)?;
        Ok(WebServer {
            listener: Some(listener),
            local_addr,
            site: Arc::new(routes::Site {
                watcher: Watcher::with_interval(tree, self.interval),
                token: self.token,
            }),
            tasks: JoinSet::new(),
            stop: Arc::new(Notify::new()),
        })
    }
}

/// Why the web view could not be bound.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebError {
    /// An address that is not loopback, without [`WebEndpoint::allow_remote`].
    NotLoopback(SocketAddr),
    /// [`WebEndpoint::allow_remote`] was given an empty token.
    EmptyToken,
    /// Binding failed.
    Io(io::Error),
}

impl fmt::Display for WebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLoopback(addr) => write!(
                f,
                "refusing to serve the web view on {addr}, which is not a loopback address (use `allow_remote(token)` to allow it with a token)"
            ),
            Self::EmptyToken => f.write_str("the web view's token must not be empty"),
            Self::Io(e) => write!(f, "cannot bind the web view: {e}"),
        }
    }
}

impl std::error::Error for WebError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A bound web view: a thread that serves it until it stops. Spawn it like any thread.
///
/// Its connections run on tasks it owns: they end when it stops (open `/events` streams
/// are closed).
pub struct WebServer {
    /// Moved into the accept task when the thread starts.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    site: Arc<routes::Site>,
    tasks: JoinSet<()>,
    stop: Arc<Notify>,
}

impl fmt::Debug for WebServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl WebServer {
    /// The address it listens on (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

// Not offered as a hint in the errors about types that are not threads.
#[diagnostic::do_not_recommend]
impl Thread for WebServer {
    serving_thread_items!();

    const TYPE_NAME: &'static str = "WebServer";
    const DEFAULT_NAME: &'static str = "web";

    async fn __enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.listener.take() {
            let site = Arc::clone(&self.site);
            self.tasks
                .spawn(accept_loop(listener, site, Arc::clone(&self.stop)));
        }
        Ok(())
    }

    async fn __exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        // The accept loop ends its connections and waits for them before it returns.
        self.stop.notify_one();
        while self.tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Accepts connections, each served on its own task, until `stop`; then ends them all
/// before returning.
async fn accept_loop(listener: TcpListener, site: Arc<routes::Site>, stop: Arc<Notify>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.notified() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(routes::serve(stream, Arc::clone(&site)));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little, do not spin.
                tracing::warn!("web view: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}
