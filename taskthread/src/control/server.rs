//! Binding a control endpoint, and the server thread: it accepts sessions, each on its own
//! task, and answers their requests against its subtree.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::connection::Connection;
use super::protocol::{self, Command, Format, Line, Refusal, Request};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::thread::{Thread, serving_thread_items};
use crate::watch::{DEFAULT_INTERVAL, Subtree, SubtreeRoot, Watcher};

/// The most sessions served at once. A connection over the limit waits up to a second for
/// a session to end (a closed session frees its place at once); if none does, it is
/// answered with an error and closed.
pub const MAX_SESSIONS: usize = 64;

/// How long a session may stay idle (no request coming in, an answer not taken, or in a
/// `watch`, a message not acknowledged) before the endpoint closes it, unless
/// [`ControlEndpoint::idle_timeout`] says otherwise: one minute. Idle sessions are closed
/// so that forgotten ones cannot hold every place. It also bounds the wait for a pool to
/// apply a command.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the endpoint tries to tell a `watch` client why it closes the session.
const TELL_BEFORE_CLOSING: Duration = Duration::from_secs(1);

/// The longest idle timeout: a longer one is taken as this, so a deadline computed from it
/// stays within what the clock counts to.
pub(crate) const LONGEST_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long a connection over the limit waits for a place before it is refused.
const PLACE_WAIT: Duration = Duration::from_secs(1);

/// Where a control endpoint listens, before it is bound:
/// `ControlEndpoint::unix(path)` or `ControlEndpoint::tcp(addr)`, then
/// [`bind`](Self::bind) it to a subtree to get the [`ControlServer`].
#[derive(Debug, Clone)]
pub struct ControlEndpoint {
    address: Address,
    allow_remote: bool,
    idle_timeout: Duration,
    watch_interval: Duration,
}

#[derive(Debug, Clone)]
enum Address {
    #[cfg(unix)]
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl ControlEndpoint {
    /// A control endpoint on a Unix socket at `path`.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            address: Address::Unix(path.into()),
            allow_remote: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            watch_interval: DEFAULT_INTERVAL,
        }
    }

    /// A control endpoint on TCP at `addr` (port 0 picks a free port: see
    /// [`ControlServer::local_addr`]). Only loopback addresses are accepted unless
    /// [`allow_remote`](Self::allow_remote) is set.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            address: Address::Tcp(addr),
            allow_remote: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            watch_interval: DEFAULT_INTERVAL,
        }
    }

    /// Accepts a TCP address that is not loopback. The protocol has no authentication:
    /// anyone who can connect can stop threads.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// Closes a session that stays idle for `timeout`: no request comes in, the client
    /// does not take its answer, or a `watch` client leaves a message unacknowledged (see
    /// the protocol's [sessions](crate::control#sessions)). A pool command the pool has not
    /// applied within `timeout` is answered `ERR`. The default is [`DEFAULT_IDLE_TIMEOUT`]
    /// (one minute). A timeout over a year is taken as a year (as good as never).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::control::ControlEndpoint;
    ///
    /// let endpoint = ControlEndpoint::tcp("127.0.0.1:0".parse().unwrap())
    ///     .idle_timeout(Duration::from_secs(10));
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.min(LONGEST_IDLE_TIMEOUT);
        self
    }

    /// How often the tree is sampled for `watch` sessions (all of them share the
    /// sampling). The default is [`DEFAULT_INTERVAL`] (one second).
    ///
    /// # Panics
    /// If `interval` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::control::ControlEndpoint;
    ///
    /// let endpoint = ControlEndpoint::tcp("127.0.0.1:0".parse().unwrap())
    ///     .watch_interval(Duration::from_millis(250));
    /// ```
    #[track_caller]
    pub fn watch_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "a watch interval must not be zero");
        self.watch_interval = interval;
        self
    }

    /// Binds the endpoint for the subtree of `tree`; spawn the server to serve it.
    pub async fn bind(self, tree: &impl Subtree) -> Result<ControlServer, ControlError> {
        let mut server = ControlServer {
            listener: None,
            socket_file: None,
            local_addr: None,
            tree: tree.__root(),
            watcher: Watcher::with_interval(tree, self.watch_interval),
            tasks: JoinSet::new(),
            stop: Arc::new(Notify::new()),
            idle_timeout: self.idle_timeout,
        };
        match self.address {
            #[cfg(unix)]
            Address::Unix(path) => {
                server.listener = Some(Listener::Unix(bind_unix(&path).await?));
                let id = socket_id(&path);
                server.socket_file = Some((path, id));
            }
            Address::Tcp(addr) => {
                if !addr.ip().is_loopback() && !self.allow_remote {
                    return Err(ControlError::NotLoopback(addr));
                }
                let listener = TcpListener::bind(addr).await?;
                server.local_addr = Some(listener.local_addr()?);
                server.listener = Some(Listener::Tcp(listener));
            }
        }
        Ok(server)
    }
}

#[cfg(unix)]
async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ControlError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket(path.to_owned()));
        }
        // A socket file: live if something answers on it, stale (left by a dead process)
        // otherwise.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The device and inode of the file at `path`, if any.
#[cfg(unix)]
fn socket_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Why a control endpoint could not be bound.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// A TCP address that is not loopback, without [`ControlEndpoint::allow_remote`].
    NotLoopback(SocketAddr),
    /// Something is listening on the socket already.
    InUse(PathBuf),
    /// The path exists and is not a socket: it is left alone.
    NotASocket(PathBuf),
    /// Binding failed.
    Io(io::Error),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLoopback(addr) => write!(
                f,
                "refusing to serve the control endpoint on {addr}, which is not a loopback address (use `allow_remote(true)` to allow it)"
            ),
            Self::InUse(path) => write!(f, "something is already listening on {}", path.display()),
            Self::NotASocket(path) => write!(
                f,
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            ),
            Self::Io(e) => write!(f, "cannot bind the control endpoint: {e}"),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ControlError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

enum Listener {
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<Connection> {
        match self {
            #[cfg(unix)]
            Self::Unix(l) => l.accept().await.map(|(s, _)| Connection::Unix(s)),
            Self::Tcp(l) => l.accept().await.map(|(s, _)| Connection::Tcp(s)),
        }
    }
}

/// A bound control endpoint: a thread that serves it until it stops. Spawn it like any
/// thread (as a root with [`spawn`](crate::spawn), or as a child).
///
/// Its sessions run on tasks it owns: they end when it stops, and so does the socket (a
/// Unix socket file is removed).
pub struct ControlServer {
    /// Moved into the accept task when the thread starts.
    listener: Option<Listener>,
    /// The socket's path, and its file's identity: only that file is removed at the end.
    socket_file: Option<(PathBuf, Option<(u64, u64)>)>,
    local_addr: Option<SocketAddr>,
    tree: SubtreeRoot,
    /// The sampling shared by the `watch` sessions.
    watcher: Watcher,
    tasks: JoinSet<()>,
    stop: Arc<Notify>,
    idle_timeout: Duration,
}

impl fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlServer")
            .field("tree", &self.tree.path())
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// The TCP address it listens on (with the port picked for port 0), if on TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The path of its Unix socket, if on a Unix socket.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_file.as_ref().map(|(path, _)| path.as_path())
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // The thread has ended (or the server was never spawned): no session is left.
        // A file put there since by someone else (who replaced ours) is left alone.
        #[cfg(unix)]
        if let Some((path, id)) = &self.socket_file
            && socket_id(path) == *id
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Thread for ControlServer {
    serving_thread_items!();

    const TYPE_NAME: &'static str = "ControlServer";
    const DEFAULT_NAME: &'static str = "control";

    async fn __enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.listener.take() {
            let sessions = Sessions {
                tree: self.tree.clone(),
                watcher: self.watcher.clone(),
                idle_timeout: self.idle_timeout,
                places: Arc::new(Semaphore::new(MAX_SESSIONS)),
            };
            self.tasks
                .spawn(accept_loop(listener, sessions, Arc::clone(&self.stop)));
        }
        Ok(())
    }

    async fn __exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        // The accept loop ends its sessions and waits for them before it returns.
        self.stop.notify_one();
        while self.tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// What every session of a server shares.
#[derive(Clone)]
struct Sessions {
    tree: SubtreeRoot,
    watcher: Watcher,
    idle_timeout: Duration,
    /// One permit per session served: held by its task, so a session that ends frees its
    /// place at once.
    places: Arc<Semaphore>,
}

/// Accepts sessions, each on its own task, until `stop`; then ends them all before
/// returning, so none outlives the server.
async fn accept_loop(listener: Listener, sessions: Sessions, stop: Arc<Notify>) {
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.notified() => break,
            // Reaps ended sessions' tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let connection = match accepted {
            Ok(connection) => connection,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, do not spin.
                tracing::warn!("control endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let sessions = sessions.clone();
        match Arc::clone(&sessions.places).try_acquire_owned() {
            Ok(place) => tasks.spawn(sessions.serve(connection, place)),
            Err(_) => tasks.spawn(sessions.wait_for_place(connection)),
        };
    }
    drop(listener);
    tasks.shutdown().await;
}

impl Sessions {
    /// Serves a session that holds a place; the place is freed when it ends.
    async fn serve(self, connection: Connection, place: OwnedSemaphorePermit) {
        if let Err(e) = self.answer_requests(connection).await {
            tracing::debug!("control session ended: {e}");
        }
        drop(place);
    }

    /// A connection over the limit: served if a session ends soon, refused otherwise.
    async fn wait_for_place(self, mut connection: Connection) {
        let places = Arc::clone(&self.places);
        match tokio::time::timeout(PLACE_WAIT, places.acquire_owned()).await {
            Ok(Ok(place)) => self.serve(connection, place).await,
            _ => self.refuse(&mut connection).await,
        }
    }

    /// Answers with the refusal before the client asks anything, then reads (and drops)
    /// what it sends until it closes: a client that sent its request meanwhile reads the
    /// refusal, not a reset connection.
    async fn refuse(&self, connection: &mut Connection) {
        let refusal = Refusal::TooManySessions { max: MAX_SESSIONS };
        let refused = async {
            protocol::write_answer(connection, &Err(refusal)).await?;
            connection.shutdown().await?;
            let mut sink = [0; 1024];
            let mut left = protocol::MAX_LINE;
            while left > 0 {
                match connection.read(&mut sink).await? {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(self.idle_timeout.min(PLACE_WAIT), refused).await;
    }

    /// Answers a session's requests, one after the other, until it ends or stays idle for
    /// the idle timeout.
    async fn answer_requests(&self, connection: Connection) -> io::Result<()> {
        let idle = |what: &str| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle for {:?} {what}: closed", self.idle_timeout),
            )
        };
        let mut session = BufReader::new(connection);
        loop {
            let line = tokio::time::timeout(self.idle_timeout, protocol::read_line(&mut session))
                .await
                .map_err(|_| idle("waiting for a request"))??;
            let answer = match line {
                Line::End => return Ok(()),
                Line::TooLong => Err(Refusal::TooLong),
                Line::Request(line) => match watch_request(&line) {
                    Some(format) => return self.stream_watch(session, format).await,
                    None => answer(&self.tree, self.idle_timeout, &line).await,
                },
            };
            let write = protocol::write_answer(session.get_mut(), &answer);
            tokio::time::timeout(self.idle_timeout, write)
                .await
                .map_err(|_| idle("with an answer not taken"))??;
        }
    }
}

impl Sessions {
    /// Sends the watch stream, one framed answer per message, until the client closes or
    /// half-closes its end, leaves a message unacknowledged for the idle timeout (any line
    /// it sends acknowledges every message sent before it; the session then ends with an
    /// `ERR` saying so, if the client still reads), or does not take a message for the
    /// idle timeout.
    async fn stream_watch(
        &self,
        mut session: BufReader<Connection>,
        format: Format,
    ) -> io::Result<()> {
        let closed = |what: &str| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("watch messages {what} for {:?}: closed", self.idle_timeout),
            )
        };
        let mut stream = self.watcher.subscribe();
        // While a message waits for its acknowledgement: the time it must come by.
        let mut ack_by: Option<Instant> = None;
        loop {
            let unacknowledged = async move {
                match ack_by {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let update = tokio::select! {
                update = stream.next_update() => update,
                // Reading all along also sees a client that closes its end at once.
                read = protocol::read_line(&mut session) => match read? {
                    Line::End => return Ok(()),
                    Line::Request(_) | Line::TooLong => {
                        ack_by = None;
                        continue;
                    }
                },
                () = unacknowledged => {
                    let error = closed("not acknowledged");
                    // Told, if it still reads, so the end is not taken for a normal one.
                    let message = error.to_string();
                    let told = protocol::write_frame(session.get_mut(), "ERR", &message);
                    let _ = tokio::time::timeout(TELL_BEFORE_CLOSING, told).await;
                    return Err(error);
                }
            };
            let payload = match format {
                Format::Json => update.json(),
                Format::Text => update.text(),
            };
            let write = protocol::write_frame(session.get_mut(), "OK", payload);
            tokio::time::timeout(self.idle_timeout, write)
                .await
                .map_err(|_| closed("not taken"))??;
            ack_by.get_or_insert_with(|| Instant::now() + self.idle_timeout);
        }
    }
}

/// The format of a `watch` request, or `None` for any other request.
fn watch_request(line: &[u8]) -> Option<Format> {
    let request = Request::parse(std::str::from_utf8(line).ok()?).ok()?;
    (request.command == Command::Watch).then_some(request.format)
}

/// Answers one request line: the payload of an `OK` answer, or why it is refused. A pool
/// command not applied within `idle_timeout` is refused.
async fn answer(
    tree: &SubtreeRoot,
    idle_timeout: Duration,
    line: &[u8],
) -> Result<String, Refusal> {
    let line = std::str::from_utf8(line).map_err(|_| Refusal::NotUtf8)?;
    let Request { command, format } = Request::parse(line)?;
    let find = |path: String| tree.find(&path).ok_or(Refusal::NoThread(path));
    Ok(match command {
        Command::Help => format.help(),
        Command::Tree => format.tree(&tree.snapshot()),
        Command::Watch => unreachable!("a watch request is streamed, not answered once"),
        Command::Stats { path } => {
            let thread = find(path)?;
            format.stats(&thread.snapshot(), thread.pool().map(|p| p.status()))
        }
        Command::Stop { path } => {
            let thread = find(path)?;
            thread.request_stop();
            format.stopping(thread.path())
        }
        Command::Pool { path, action } => {
            let thread = find(path)?;
            let pool = thread
                .pool()
                .ok_or_else(|| Refusal::NotAPool(thread.path().to_owned()))?;
            let status = match action {
                // A pool applies a command between its messages: one that is stopping, or
                // stuck in a long step, may not get to it soon.
                Some(action) => tokio::time::timeout(idle_timeout, pool.command(action))
                    .await
                    .map_err(|_| Refusal::PoolTimedOut {
                        pool: thread.path().to_owned(),
                        after: idle_timeout,
                    })?
                    .map_err(Refusal::Pool)?,
                None => pool.status(),
            };
            format.pool(thread.path(), status)
        }
    })
}
