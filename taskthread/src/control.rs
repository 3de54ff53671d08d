//! The control endpoint: a small line protocol on a Unix socket (or loopback TCP) to look
//! into a running tree and act on it, and the client that speaks it.
//!
//! Opt-in: the `control` feature, off by default. Bind a [`ControlServer`] to a subtree
//! (usually the whole tree) and spawn it as a thread, anywhere in the tree:
//!
//! ```no_run
//! # // `no_run`: it would wait for Ctrl-C. The guide's chapter on pools and control runs a
//! # // complete session.
//! use taskthread::control::{Control, ControlServer};
//! # use taskthread::prelude::*;
//! # #[derive(Default)] struct App;
//! # #[taskthread] impl App {}
//!
//! # #[tokio::main] async fn main() -> taskthread::Result<()> {
//! let app = taskthread::spawn(App::default());
//! let server: ControlServer = Control::unix("/run/app/control.sock").bind(&app).await?;
//! let control = taskthread::spawn(server); // or `ctx.spawn(server)` inside the tree
//! # Ok(()) }
//! ```
//!
//! and drive it with `taskthread-ctl --unix /run/app/control.sock tree`, or with a
//! [`ControlClient`].
//!
//! # Protocol
//!
//! A request is one line of UTF-8 (at most [`MAX_LINE`] bytes, ended by `\n`); words are
//! separated by spaces. Command words are matched without regard to case; paths are taken
//! as written.
//!
//! | request | answer |
//! |---|---|
//! | `help` | the commands |
//! | `tree` | the [snapshot](crate::TreeSnapshot) of the tree, in the hierarchical notation |
//! | `stats PATH` | the counters of the thread at `PATH` (and its pool's, for a worker pool) |
//! | `stop PATH` | stops the thread at `PATH` gracefully |
//! | `pool PATH start N` / `stop N` / `size N` | resizes the [worker pool](crate::pool::WorkerPool) at `PATH` |
//! | `pool PATH running` | how many workers it runs, and its maximum |
//!
//! Any request may carry `--json` to get the answer as JSON.
//!
//! Every answer is framed, so one of any size arrives whole: a header line `OK <len>` or
//! `ERR <len>`, then exactly `<len>` bytes of payload (UTF-8, ending with `\n`). A malformed
//! or unknown request, or one too long, gets an `ERR` answer and the session goes on. Each
//! session runs on its own task, so a slow one never holds up another; all of them end
//! with the server's thread.
//!
//! # Security
//!
//! A Unix socket is made readable and writable by its owner only (mode 0600) right after it
//! is bound, and removed when the server stops; a stale socket file left by a dead process is
//! replaced, a live one (something answers on it) or a file that is not a socket is refused.
//! TCP is refused on any address but loopback unless [`Control::allow_remote`] says
//! otherwise: the protocol has no authentication.

use std::fmt::{self, Write as _};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::child::ChildRef;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::exit::{ChildExit, ChildId};
use crate::node::{Node, TreeSnapshot};
use crate::pool::{PoolCommand, PoolHandle};
use crate::reschedule::Reschedule;
use crate::root::Handle;
use crate::thread::{NoUp, Thread};

/// The longest request line a session accepts, in bytes (the `\n` not counted).
pub const MAX_LINE: usize = 4096;

/// The most sessions served at once; one more is answered with an error and closed.
pub const MAX_SESSIONS: usize = 64;

/// Where a control endpoint listens, before it is bound: `Control::unix(path)` or
/// `Control::tcp(addr)`, then [`bind`](Self::bind).
#[derive(Debug, Clone)]
pub struct Control {
    endpoint: Endpoint,
    allow_remote: bool,
}

#[derive(Debug, Clone)]
enum Endpoint {
    #[cfg(unix)]
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// Anything that gives access to a subtree: a [`Handle`] (the whole tree), a [`ChildRef`]
/// or a [`Ctx`] (that thread's subtree).
pub trait Subtree {
    #[doc(hidden)]
    fn __root(&self) -> SubtreeRoot;
}

/// The root of a subtree, as [`Subtree`] gives it. Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct SubtreeRoot(Arc<Node>);

impl<T: Thread> Subtree for Handle<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(Arc::clone(&self.child_ref().node) as Arc<Node>)
    }
}

impl<T: Thread> Subtree for ChildRef<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(Arc::clone(&self.node) as Arc<Node>)
    }
}

impl<T: Thread> Subtree for Ctx<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(Arc::clone(self.node()))
    }
}

impl Control {
    /// A control endpoint on a Unix socket at `path`.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: Endpoint::Unix(path.into()),
            allow_remote: false,
        }
    }

    /// A control endpoint on TCP at `addr` (port 0 picks a free port: see
    /// [`ControlServer::local_addr`]). Only loopback addresses are accepted unless
    /// [`allow_remote`](Self::allow_remote) is set.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            endpoint: Endpoint::Tcp(addr),
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
            tree: tree.__root().0,
            tasks: JoinSet::new(),
            stop: Arc::new(Notify::new()),
        };
        match self.endpoint {
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                server.listener = Some(Listener::Unix(bind_unix(&path).await?));
                let id = socket_id(&path);
                server.socket_file = Some((path, id));
            }
            Endpoint::Tcp(addr) => {
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
    /// A TCP address that is not loopback, without [`Control::allow_remote`].
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
    tree: Arc<Node>,
    tasks: JoinSet<()>,
    stop: Arc<Notify>,
}

impl fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlServer")
            .field("tree", self.tree.path())
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

async fn accept(listener: &Listener) -> io::Result<Session> {
    match listener {
        #[cfg(unix)]
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Session::Unix(s)),
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Session::Tcp(s)),
    }
}

/// Accepts sessions, each on its own task, until `stop`; then ends them all before
/// returning, so none outlives the server.
async fn accept_loop(listener: Listener, tree: Arc<Node>, stop: Arc<Notify>) {
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = stop.notified() => break,
            accepted = accept(&listener) => accepted,
        };
        let session = match accepted {
            Ok(session) => session,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, do not spin.
                tracing::warn!("control endpoint: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if sessions.len() >= MAX_SESSIONS {
            sessions.spawn(async move {
                let mut session = session;
                let _ = write_answer(
                    &mut session,
                    &Err(format!(
                        "too many sessions (at most {MAX_SESSIONS}): try again later"
                    )),
                )
                .await;
            });
            continue;
        }
        let tree = Arc::clone(&tree);
        sessions.spawn(async move {
            if let Err(e) = serve(session, &tree).await {
                tracing::debug!("control session ended: {e}");
            }
        });
    }
    drop(listener);
    sessions.shutdown().await;
}

enum Session {
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Session {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Self::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Session {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            #[cfg(unix)]
            Self::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Self::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Self::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One line from the peer: a request, one too long (skipped up to its end), or the end.
enum Line {
    Request(Vec<u8>),
    TooLong,
    End,
}

/// Reads one line of at most [`MAX_LINE`] bytes without ever buffering more.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            // The end: a last line without `\n` is still a request.
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Request(line),
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Request(line)
            });
        }
    }
}

async fn serve(session: Session, tree: &Arc<Node>) -> io::Result<()> {
    let mut session = BufReader::new(session);
    loop {
        let answer = match read_line(&mut session).await? {
            Line::End => return Ok(()),
            Line::TooLong => Err(format!(
                "request too long: at most {MAX_LINE} bytes per line"
            )),
            Line::Request(bytes) => match String::from_utf8(bytes) {
                Ok(line) => answer(tree, line.trim_end_matches('\r')).await,
                Err(_) => Err("request is not UTF-8".to_owned()),
            },
        };
        write_answer(session.get_mut(), &answer).await?;
    }
}

async fn write_answer(
    out: &mut (impl AsyncWrite + Unpin),
    answer: &Result<String, String>,
) -> io::Result<()> {
    let (status, payload) = match answer {
        Ok(p) => ("OK", p),
        Err(p) => ("ERR", p),
    };
    let mut framed = format!("{status} {}\n", payload.len() + 1);
    framed.push_str(payload);
    framed.push('\n');
    out.write_all(framed.as_bytes()).await?;
    out.flush().await
}

const HELP: &str = "\
commands (add --json to any for JSON):
  help                       this text
  tree                       the tree, one thread per line
  stats PATH                 the counters of the thread at PATH
  stop PATH                  stop the thread at PATH gracefully
  pool PATH start N          start N more workers in the pool at PATH
  pool PATH stop N           stop its N newest workers, gracefully
  pool PATH size N           start or stop workers until N run
  pool PATH running          how many workers run, and the most that may";

/// Answers one request line: `Ok(payload)` or `Err(message)`.
async fn answer(tree: &Arc<Node>, line: &str) -> Result<String, String> {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let json = words.contains(&"--json");
    words.retain(|w| *w != "--json");
    let Some((command, args)) = words.split_first() else {
        return Err("empty request: try `help`".to_owned());
    };
    let command = command.to_ascii_lowercase();
    let no_args = |payload: String| {
        if args.is_empty() {
            Ok(payload)
        } else {
            Err(format!("`{command}` takes no arguments"))
        }
    };
    match command.as_str() {
        "help" if json => no_args(json_string(HELP)),
        "help" => no_args(HELP.to_owned()),
        "tree" if json => no_args(tree_json(&tree.snapshot())),
        "tree" => no_args(tree.snapshot().to_string()),
        "stats" => {
            let node = find(tree, args, "stats PATH")?;
            Ok(stats(&node, json))
        }
        "stop" => {
            let node = find(tree, args, "stop PATH")?;
            node.request_stop();
            Ok(if json {
                format!("{{\"stopping\":{}}}", json_string(node.path()))
            } else {
                format!("stopping `{}`", node.path())
            })
        }
        "pool" => pool(tree, args, json).await,
        _ => Err(format!("unknown command `{command}`: try `help`")),
    }
}

fn find(tree: &Arc<Node>, path: &[&str], usage: &str) -> Result<Arc<Node>, String> {
    if path.is_empty() {
        return Err(format!("missing path: usage `{usage}`"));
    }
    let path = path.join(" ");
    tree.find(&path)
        .ok_or_else(|| format!("no thread at `{path}`"))
}

async fn pool(tree: &Arc<Node>, args: &[&str], json: bool) -> Result<String, String> {
    const USAGE: &str = "pool PATH start N | stop N | size N | running";
    let usage = || format!("usage: `{USAGE}`");
    let (command, path) = match args {
        [path @ .., last] if last.eq_ignore_ascii_case("running") => (None, path),
        [path @ .., action, n] => {
            let n: usize = n
                .parse()
                .map_err(|_| format!("`{n}` is not a number of workers; {}", usage()))?;
            let command = match action.to_ascii_lowercase().as_str() {
                "start" => PoolCommand::Start(n),
                "stop" => PoolCommand::Stop(n),
                "size" => PoolCommand::Resize(n),
                other => return Err(format!("unknown pool action `{other}`; {}", usage())),
            };
            (Some(command), path)
        }
        _ => return Err(usage()),
    };
    let node = find(tree, path, USAGE)?;
    let handle =
        PoolHandle::of(&node).ok_or_else(|| format!("`{}` is not a worker pool", node.path()))?;
    let status = match command {
        Some(command) => handle.command(command).await.map_err(|e| e.to_string())?,
        None => handle.status(),
    };
    Ok(if json {
        format!(
            "{{\"pool\":{},\"running\":{},\"max\":{}}}",
            json_string(node.path()),
            status.running,
            status.max
        )
    } else {
        format!(
            "pool `{}`: {} running, at most {}",
            node.path(),
            status.running,
            status.max
        )
    })
}

fn stats(node: &Node, json: bool) -> String {
    let s = node.snapshot();
    let pool = PoolHandle::of(node).map(|p| p.status());
    if json {
        let mut out = String::from("{");
        write_fields(&mut out, &s);
        if let Some(p) = pool {
            let _ = write!(
                out,
                ",\"pool\":{{\"running\":{},\"max\":{}}}",
                p.running, p.max
            );
        }
        out.push('}');
        return out;
    }
    let mut out = format!(
        "path: {}\nid: {}\ntype: {}\nstate: {}\nqueue: {}/{}\nhandled: {}\nrestarts: {}\nchildren: {}",
        s.path,
        s.id.get(),
        s.type_name,
        s.state,
        s.queue_depth,
        s.queue_capacity,
        s.handled,
        s.restarts,
        s.children.len()
    );
    if let Some(p) = pool {
        let _ = write!(out, "\nworkers: {} running, at most {}", p.running, p.max);
    }
    out
}

fn write_fields(out: &mut String, s: &TreeSnapshot) {
    let down: Vec<_> = s.down_types.iter().map(|t| json_string(t)).collect();
    let _ = write!(
        out,
        "\"id\":{},\"name\":{},\"path\":{},\"type\":{},\"down\":[{}],\"up\":{},\"state\":{},\"queue_depth\":{},\"queue_capacity\":{},\"handled\":{},\"restarts\":{}",
        s.id.get(),
        json_string(&s.name),
        json_string(&s.path),
        json_string(s.type_name),
        down.join(","),
        s.up_type.map_or_else(|| "null".to_owned(), json_string),
        json_string(&s.state.to_string()),
        s.queue_depth,
        s.queue_capacity,
        s.handled,
        s.restarts,
    );
}

fn tree_json(s: &TreeSnapshot) -> String {
    let mut out = String::from("{");
    write_fields(&mut out, s);
    out.push_str(",\"children\":[");
    let children: Vec<_> = s.children.iter().map(tree_json).collect();
    out.push_str(&children.join(","));
    out.push_str("]}");
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The server's DOWN messages: it takes none.
#[doc(hidden)]
#[derive(Debug)]
pub enum ControlDown {}

impl Thread for ControlServer {
    type Down = ControlDown;
    type Up = NoUp;
    type Event = ControlDown;

    const TYPE_NAME: &'static str = "ControlServer";
    const DEFAULT_NAME: &'static str = "control";
    const DOWN_TYPES: &'static [&'static str] = &[];
    const UP_TYPE: Option<&'static str> = None;

    async fn __enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.listener.take() {
            let (tree, stop) = (Arc::clone(&self.tree), Arc::clone(&self.stop));
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

    async fn __down(&mut self, _ctx: &mut Ctx<Self>, msg: ControlDown) -> Result<()> {
        match msg {}
    }

    async fn __event(&mut self, _ctx: &mut Ctx<Self>, event: ControlDown) -> Result<()> {
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

/// An answer of the control endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// Whether the request succeeded (`OK`) or not (`ERR`).
    pub ok: bool,
    /// The payload: the answer, or the error message (the final `\n` removed).
    pub payload: String,
}

/// The largest answer a [`ControlClient`] accepts, in bytes.
pub const MAX_ANSWER: usize = 64 << 20;

/// A client of the control endpoint: sends request lines and reads framed answers. The
/// `taskthread-ctl` tool is built on it.
///
/// ```no_run
/// # // `no_run`: it needs a live endpoint; the tests and the guide run one.
/// use taskthread::control::ControlClient;
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let mut client = ControlClient::connect_unix("/run/app/control.sock").await?;
/// let tree = client.request("tree").await?;
/// println!("{}", tree.payload);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ControlClient {
    session: BufReader<Session>,
}

impl ControlClient {
    /// Connects to an endpoint on a Unix socket.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Ok(Self {
            session: BufReader::new(Session::Unix(stream)),
        })
    }

    /// Connects to an endpoint on TCP.
    pub async fn connect_tcp(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self {
            session: BufReader::new(Session::Tcp(stream)),
        })
    }

    /// Sends one request line (without its `\n`) and reads the answer.
    ///
    /// Fails on I/O errors, on a line that holds a `\n`, and on an answer that is not
    /// framed as the protocol says.
    pub async fn request(&mut self, line: &str) -> io::Result<Answer> {
        if line.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request is one line: it must not contain `\\n`",
            ));
        }
        let mut request = Vec::with_capacity(line.len() + 1);
        request.extend_from_slice(line.as_bytes());
        request.push(b'\n');
        let out = self.session.get_mut();
        out.write_all(&request).await?;
        out.flush().await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> io::Result<Answer> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let header = match read_line(&mut self.session).await? {
            Line::Request(header) => header,
            Line::End => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the control endpoint closed the session",
                ));
            }
            Line::TooLong => return Err(bad("answer header too long".to_owned())),
        };
        let header = String::from_utf8_lossy(&header);
        let (ok, len) = match header.split_once(' ') {
            Some(("OK", len)) => (true, len),
            Some(("ERR", len)) => (false, len),
            _ => return Err(bad(format!("malformed answer header `{header}`"))),
        };
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("malformed answer length in `{header}`")))?;
        if len > MAX_ANSWER {
            return Err(bad(format!("answer of {len} bytes is too large")));
        }
        let mut payload = vec![0; len];
        tokio::io::AsyncReadExt::read_exact(&mut self.session, &mut payload).await?;
        let mut payload =
            String::from_utf8(payload).map_err(|_| bad("answer is not UTF-8".to_owned()))?;
        if payload.ends_with('\n') {
            payload.pop();
        }
        Ok(Answer { ok, payload })
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            #[cfg(unix)]
            Self::Unix(_) => "Session::Unix",
            Self::Tcp(_) => "Session::Tcp",
        })
    }
}
