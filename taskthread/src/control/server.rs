//! Binding a control endpoint, and the server thread: it accepts sessions, each on its own
//! task, and answers their requests against its subtree.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::connection::Connection;
use super::protocol::{self, Command, Line, Refusal, Request};
use super::subtree::{Subtree, SubtreeRoot};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::exit::{ChildExit, ChildId};
use crate::reschedule::Reschedule;
use crate::thread::{NoUp, Thread};

/// The most sessions served at once; one more is answered with an error and closed.
pub const MAX_SESSIONS: usize = 64;

/// Where a control endpoint listens, before it is bound:
/// `ControlEndpoint::unix(path)` or `ControlEndpoint::tcp(addr)`, then
/// [`bind`](Self::bind) it to a subtree to get the [`ControlServer`].
#[derive(Debug, Clone)]
pub struct ControlEndpoint {
    address: Address,
    allow_remote: bool,
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
        }
    }

    /// A control endpoint on TCP at `addr` (port 0 picks a free port: see
    /// [`ControlServer::local_addr`]). Only loopback addresses are accepted unless
    /// [`allow_remote`](Self::allow_remote) is set.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            address: Address::Tcp(addr),
            allow_remote: false,
        }
    }

    /// Accepts a TCP address that is not loopback. The protocol has no authentication:
    /// anyone who can connect can stop threads.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// Binds the endpoint for the subtree of `tree`; spawn the server to serve it.
    pub async fn bind(self, tree: &impl Subtree) -> Result<ControlServer, ControlError> {
        let mut server = ControlServer {
            listener: None,
            socket_file: None,
            local_addr: None,
            tree: tree.__root(),
            tasks: JoinSet::new(),
            stop: Arc::new(Notify::new()),
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
    tasks: JoinSet<()>,
    stop: Arc<Notify>,
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
    type Down = Infallible;
    type Up = NoUp;
    type Event = Infallible;

    const TYPE_NAME: &'static str = "ControlServer";
    const DEFAULT_NAME: &'static str = "control";
    const DOWN_TYPES: &'static [&'static str] = &[];
    const UP_TYPE: Option<&'static str> = None;

    async fn __enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.listener.take() {
            let (tree, stop) = (self.tree.clone(), Arc::clone(&self.stop));
            self.tasks.spawn(accept_loop(listener, tree, stop));
        }
        Ok(())
    }

    async fn __exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        // The accept loop ends its sessions and waits for them before it returns.
        self.stop.notify_one();
        while self.tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn __down(&mut self, _ctx: &mut Ctx<Self>, msg: Infallible) -> Result<()> {
        match msg {}
    }

    async fn __event(&mut self, _ctx: &mut Ctx<Self>, event: Infallible) -> Result<()> {
        match event {}
    }

    async fn __exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        _exit: ChildExit,
    ) -> Result<()> {
        // It has no children.
        Ok(())
    }

    async fn __task(&mut self, _ctx: &mut Ctx<Self>, _task: usize) -> Result<Reschedule> {
        Ok(Reschedule::Done)
    }
}

/// Accepts sessions, each on its own task, until `stop`; then ends them all before
/// returning, so none outlives the server.
async fn accept_loop(listener: Listener, tree: SubtreeRoot, stop: Arc<Notify>) {
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = stop.notified() => break,
            accepted = listener.accept() => accepted,
        };
        let mut connection = match accepted {
            Ok(connection) => connection,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, do not spin.
                tracing::warn!("control endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if sessions.len() >= MAX_SESSIONS {
            sessions.spawn(async move {
                let refusal = Refusal::TooManySessions { max: MAX_SESSIONS };
                let _ = protocol::write_answer(&mut connection, &Err(refusal)).await;
            });
            continue;
        }
        let tree = tree.clone();
        sessions.spawn(async move {
            if let Err(e) = serve(connection, &tree).await {
                tracing::debug!("control session ended: {e}");
            }
        });
    }
    drop(listener);
    sessions.shutdown().await;
}

/// Answers a session's requests, one after the other, until it ends.
async fn serve(connection: Connection, tree: &SubtreeRoot) -> io::Result<()> {
    let mut session = BufReader::new(connection);
    loop {
        let answer = match protocol::read_line(&mut session).await? {
            Line::End => return Ok(()),
            Line::TooLong => Err(Refusal::TooLong),
            Line::Request(line) => answer(tree, &line).await,
        };
        protocol::write_answer(session.get_mut(), &answer).await?;
    }
}

/// Answers one request line: the payload of an `OK` answer, or why it is refused.
async fn answer(tree: &SubtreeRoot, line: &[u8]) -> Result<String, Refusal> {
    let line = std::str::from_utf8(line).map_err(|_| Refusal::NotUtf8)?;
    let Request { command, format } = Request::parse(line)?;
    let find = |path: String| tree.find(&path).ok_or(Refusal::NoThread(path));
    Ok(match command {
        Command::Help => format.help(),
        Command::Tree => format.tree(&tree.snapshot()),
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
                Some(action) => pool.command(action).await.map_err(Refusal::Pool)?,
                None => pool.status(),
            };
            format.pool(thread.path(), status)
        }
    })
}
