//! The control endpoint: a small line protocol on a Unix socket (or loopback TCP) to look
//! into a running tree and act on it, and the client that speaks it.
//!
//! Opt-in: the `control` feature, off by default. Bind a [`ControlEndpoint`] to a subtree
//! (usually the whole tree) and spawn the [`ControlServer`] it gives as a thread, anywhere
//! in the tree:
//!
//! ```no_run
//! # // `no_run`: it would wait for Ctrl-C. The guide's chapter on pools and control runs a
//! # // complete session.
//! use taskthread::control::{ControlEndpoint, ControlServer};
//! # use taskthread::prelude::*;
//! # #[derive(Default)] struct App;
//! # #[taskthread] impl App {}
//!
//! # #[tokio::main] async fn main() -> taskthread::Result<()> {
//! let app = taskthread::spawn(App::default());
//! let server: ControlServer = ControlEndpoint::unix("/run/app/control.sock").bind(&app).await?;
//! let control = taskthread::spawn(server); // or `ctx.spawn(server)` inside the tree
//! # Ok(()) }
//! ```
//!
//! and drive it with `taskthread-ctl --unix /run/app/control.sock tree`, or with a
//! [`ControlClient`]. The client waits at most [`DEFAULT_REQUEST_TIMEOUT`] (30 seconds; see
//! [`ControlClient::timeout`]) for each answer, so an endpoint that has stopped answering
//! cannot hang it.
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
//! | `watch` | a stream: a snapshot, then the changes of each sampling (see [`crate::watch`]), one framed answer each, until the client closes the session; the client acknowledges what it has taken by sending a line (see [Sessions](#sessions)) |
//! | `stats PATH` | the counters of the thread at `PATH` (and its pool's, for a worker pool) |
//! | `stop PATH` | stops the thread at `PATH` gracefully |
//! | `pool PATH start N` / `stop N` / `size N` | resizes the [worker pool](crate::pool::WorkerPool) at `PATH` |
//! | `pool PATH running` | how many workers it runs, and its maximum |
//!
//! Any request may carry [`--json`](JSON_FLAG) to get the answer as JSON: `help` as a
//! string; `tree` as an object per thread (`id` as a number, [`ChildId::get`](crate::ChildId::get); `name`, `path`, `type`, `down`, `up`,
//! `state`, `queue_depth`, `queue_capacity`, `handled`, `restarts`, `children`, and for a
//! remote child `remote`: `host`, `rtt_us`, `epoch`, its `children` as its host reported
//! them); `stats`
//! as the same object without `children`, with `pool` (`running`, `max`) for a worker
//! pool; `stop` as `{"stopping": PATH}`; `pool` as `{"pool": PATH, "running": N, "max": N}`;
//! each message of `watch` as a [`WatchMessage`](crate::watch::WatchMessage) (text: its
//! `Display`).
//!
//! Every answer is framed, so one of any size arrives whole: a header line `OK <len>` or
//! `ERR <len>`, then exactly `<len>` bytes of payload (UTF-8, ending with `\n`). A malformed
//! or unknown request, or one too long, gets an `ERR` answer and the session goes on. A
//! pool command the pool has not applied within the idle timeout (a pool that is
//! stopping applies none) gets an `ERR` answer too; the command stays with the pool.
//!
//! # Sessions
//!
//! Each session runs on its own task, so a slow one never holds up another; at most
//! [`MAX_SESSIONS`] run at once (a session frees its place as soon as it is closed), and
//! all of them end with the server's thread. A session idle for
//! [`DEFAULT_IDLE_TIMEOUT`] (one minute; see [`ControlEndpoint::idle_timeout`]) is closed,
//! so forgotten sessions cannot hold every place: idle is sending no request for that
//! long, or not taking an answer. A connection over the limit waits up to a second for a
//! place, then is answered `ERR` with the refusal and closed.
//!
//! A `watch` session is idle when its client does not show that it takes the messages:
//! the client acknowledges them by sending a line (any line: an empty one will do; what a
//! watching client sends is otherwise ignored), which acknowledges every message sent
//! before it. A message left unacknowledged for the idle timeout, or not taken from the
//! socket for that long, ends the watch (the first with a last `ERR` frame saying why, if
//! the client still reads), and so does the client closing (or half-closing) its end. A client that takes each message and acknowledges it keeps the watch for as
//! long as it likes. [`ControlClient::watch`] acknowledges each message as it reads it, and
//! so do `taskthread-ctl watch` and `top`.
//!
//! # Security
//!
//! A Unix socket is made readable and writable by its owner only (mode 0600) right after it
//! is bound, and removed when the server stops; a stale socket file left by a dead process is
//! replaced, a live one (something answers on it) or a file that is not a socket is refused.
//! TCP is refused on any address but loopback unless [`ControlEndpoint::allow_remote`] says
//! otherwise: the protocol has no authentication.

// `server` binds the endpoint, accepts sessions and answers their requests; `protocol`
// holds the line protocol (requests, answers and their JSON, refusals, framing); `client`
// is `ControlClient`; `connection` is the socket both ends talk over. The endpoint reaches
// the tree only through `watch`'s `SubtreeRoot` and `Watcher`.
mod client;
mod connection;
mod protocol;
mod server;

pub use self::client::{Answer, ControlClient, ControlWatch, DEFAULT_REQUEST_TIMEOUT, MAX_ANSWER};
pub use self::protocol::{JSON_FLAG, MAX_LINE};
pub use self::server::{
    ControlEndpoint, ControlError, ControlServer, DEFAULT_IDLE_TIMEOUT, MAX_SESSIONS,
};
pub use crate::watch::{Subtree, SubtreeRoot};
