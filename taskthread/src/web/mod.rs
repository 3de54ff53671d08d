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
//! # Limits
//!
//! At most [`DEFAULT_MAX_CONNECTIONS`] connections (64; see
//! [`WebEndpoint::max_connections`]) are served at once, and one that ends frees its place
//! at once. A connection over the limit waits up to a second for a place, then is answered
//! `503 Service Unavailable` and closed.
//!
//! A connection idle for [`DEFAULT_IDLE_TIMEOUT`] (one minute; see
//! [`WebEndpoint::idle_timeout`]) is closed: one that has not sent a whole request head
//! that long after it opened or after its last answer (an idle keep-alive connection, or a
//! client sending its head a byte at a time), or one whose client takes nothing of an
//! answer for that long. So neither forgotten nor slow clients can hold every place.
//!
//! An `/events` stream holds its connection's place for as long as it lasts. It is not
//! idle while its client takes the events (one at least every sampling interval), however
//! long that is; a client that stops reading loses it once the socket's buffers are full
//! and it has then taken nothing for the idle timeout. A browser's `EventSource` connects
//! again by itself after a stream is closed.
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
mod conn;
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

/// The most connections a web view serves at once, unless
/// [`WebEndpoint::max_connections`] says otherwise: 64, as many as the control endpoint's
/// sessions. A browser opens at most a few to one server (the page and its `/events`
/// stream take two).
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// How long a connection may stay idle before the web view closes it, unless
/// [`WebEndpoint::idle_timeout`] says otherwise: one minute, as for the control endpoint's
/// sessions (longer than a browser keeps an idle connection to reuse). See the
/// [module's docs](crate::web#limits) for what idle means.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest idle timeout: a longer one is taken as this, so a deadline computed from it
/// stays within what the clock counts to.
pub(crate) const LONGEST_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where the web view listens, before it is bound: `WebEndpoint::new(addr)`, then
/// [`bind`](Self::bind) it to a subtree to get the [`WebServer`].
#[derive(Clone)]
pub struct WebEndpoint {
    addr: SocketAddr,
    token: Option<Arc<str>>,
    interval: Duration,
    max_connections: usize,
    idle_timeout: Duration,
}

impl fmt::Debug for WebEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebEndpoint")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "..."))
            .field("interval", &self.interval)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
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

    /// Serves at most `max` connections at once; one over the limit waits up to a second
    /// for a place, then is answered `503` and closed. At most `max` more wait or are
    /// being refused at once: past those, a connection is closed as soon as it is
    /// accepted, so a flood holds no more than twice `max` sockets. The default is
    /// [`DEFAULT_MAX_CONNECTIONS`] (64). A limit over
    /// [`Semaphore::MAX_PERMITS`](tokio::sync::Semaphore::MAX_PERMITS) is taken as that.
    ///
    /// # Panics
    /// If `max` is zero.
    ///
    /// ```
    /// use taskthread::web::WebEndpoint;
    ///
    /// let endpoint = WebEndpoint::new("127.0.0.1:0".parse().unwrap()).max_connections(8);
    /// ```
    #[track_caller]
    pub fn max_connections(mut self, max: usize) -> Self {
        assert!(max > 0, "a web view must serve at least one connection");
        self.max_connections = max.min(tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Closes a connection that stays idle for `timeout`: it sends no whole request head
    /// within `timeout` of opening or of its last answer, or its client takes nothing of
    /// an answer for that long (an `/events` stream that is read is never idle). The
    /// default is [`DEFAULT_IDLE_TIMEOUT`] (one minute). A timeout over a year is taken as a
    /// year (as good as never).
    ///
    /// # Panics
    /// If `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::web::WebEndpoint;
    ///
    /// let endpoint = WebEndpoint::new("127.0.0.1:0".parse().unwrap())
    ///     .idle_timeout(Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "a web view's idle timeout must not be zero"
        );
        self.idle_timeout = timeout.min(LONGEST_IDLE_TIMEOUT);
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
            limits: conn::Limits::new(self.max_connections, self.idle_timeout),
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
/// are closed). How many it serves at once, and how long one may stay idle, are set on the
/// [`WebEndpoint`] (see the [module's docs](crate::web#limits)).
pub struct WebServer {
    /// Moved into the accept task when the thread starts.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    site: Arc<routes::Site>,
    limits: conn::Limits,
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
            let limits = self.limits.clone();
            self.tasks
                .spawn(accept_loop(listener, site, limits, Arc::clone(&self.stop)));
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

/// Accepts connections, each served (or refused, over the limit) on its own task, until
/// `stop`; then ends them all before returning.
async fn accept_loop(
    listener: TcpListener,
    site: Arc<routes::Site>,
    limits: conn::Limits,
    stop: Arc<Notify>,
) {
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
                let site = Arc::clone(&site);
                connections.spawn(limits.clone().admit(stream, |connection, idle_timeout| {
                    routes::serve(connection, site, idle_timeout)
                }));
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
