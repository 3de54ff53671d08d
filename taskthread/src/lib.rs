//! Organise an async program on tokio as a **tree of long-lived threads** that talk only
//! parent↔child over typed, bounded queues, with self-rescheduling tasks and ordered,
//! lossless shutdown.
//!
//! A *thread* here is not an OS thread: it is one unit of state with its own serial event
//! loop (one tokio task), its own `#[rescheduling]` tasks and its own children. Data flows
//! only along the tree — DOWN from a parent to a child's queue, UP from a child to its
//! parent's — so spawning, waiting, stopping and cleaning up belong to the tree, not to
//! scattered `tokio::spawn`, `select!` and `JoinSet`s.
//!
//! - **Typed messages**: `#[down]` handlers are dispatched by argument type, so
//!   `child.send(packet)` just works; handlers that return a value can be
//!   [`ask`](ChildRef::ask)ed. Queues are bounded: a full queue applies backpressure, and a
//!   send to an ended thread gives the message back.
//! - **Typed UP**: a child declares one `up` type; spawning it under a parent with no
//!   `#[up]` handler for it is a compile error naming both types.
//! - **Rescheduling tasks**: `#[rescheduling(every = "5s")]` methods that decide when they
//!   run next, started, rescheduled and cancelled by compile-time checked name.
//! - **Streams and background work**: [`Ctx::attach`], [`Ctx::spawn_task`] and
//!   [`Ctx::spawn_blocking`] deliver to `#[stream]` handlers without blocking the loop;
//!   blocking jobs run a bounded number at a time per thread.
//! - **Ordered, graceful stop**: a stop drains the queue, stops children (concurrently or in
//!   declared [stages](ChildOptions::stop_stage)) while still handling their UP messages,
//!   runs `exit`, and reports exactly once. Errors and panics end the thread and are
//!   always reported to the parent.
//! - **Observability**: a tracing span per thread carrying its path in the tree, and
//!   [snapshots](TreeSnapshot) rendered in the original TaskThread's notation.
//!
//! # Cargo features
//!
//! - `macros` (default): the `#[taskthread]` attribute.
//! - `watch`: the `taskthread::watch` module, a live stream of the tree's figures (adds
//!   `serde` and `serde_json`).
//! - `control`: the `taskthread::control` module (adds tokio's `net` and `io-util`, and
//!   `watch`).
//! - `web`: the `taskthread::web` module, a live page of the tree served on loopback (adds
//!   hyper's HTTP/1 server, and `watch`).
//! - `metrics`: the `taskthread::metrics` module, the tree's figures through the `metrics`
//!   crate (adds `metrics`, and `watch`).
//! - `remote`: `proxy::Remote` and `#[taskthread(remote)]`, threads whose messages can be
//!   carried to another process (adds `serde`).
//!
//! # Example
//!
//! ```
//! use taskthread::prelude::*;
//!
//! /// A child that turns numbers into their squares and sends them UP.
//! #[derive(Default)]
//! struct Squarer;
//!
//! #[taskthread(up = u64)]
//! impl Squarer {
//!     #[down]
//!     async fn number(&mut self, ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
//!         ctx.up(n * n).await?;
//!         Ok(())
//!     }
//! }
//!
//! /// The root: spawns the child, feeds it, and sums what comes back UP.
//! #[derive(Default)]
//! struct Summer { child: Option<ChildRef<Squarer>>, sum: u64, seen: usize }
//!
//! #[taskthread(up = u64)]
//! impl Summer {
//!     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
//!         let child = ctx.spawn(Squarer);
//!         for n in 1..=3u64 {
//!             child.send(n).await?;
//!         }
//!         self.child = Some(child);
//!         Ok(())
//!     }
//!
//!     #[up]
//!     async fn square(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, sq: u64) -> Result<()> {
//!         self.sum += sq;
//!         self.seen += 1;
//!         if self.seen == 3 {
//!             ctx.up(self.sum).await?; // to whoever holds the root's handle
//!             ctx.stop();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let mut root = taskthread::spawn(Summer::default());
//!     assert_eq!(root.recv().await, Some(1 + 4 + 9));
//!     assert!(matches!(root.join().await, Exit::Completed));
//! }
//! ```
//!
//! # Modules
//!
//! The core is at the crate root; the [`prelude`] brings what a thread's module needs.
//!
//! - **Starting a tree**: [`spawn`] and [`spawn_with`] start a root and return its
//!   [`Handle`]; [`run`] runs one until it ends or the process is asked to stop.
//! - **Writing a thread**: the [`#[taskthread]`](macro@taskthread) attribute implements
//!   [`Thread`] for an `impl` block; every handler, hook and task gets the thread's [`Ctx`].
//! - **Addressing threads**: a [`ChildRef`] sends, asks and stops; [`ChildOptions`] name a
//!   child and set its capacity, stop stage and stop deadline; [`ChildInfo`] lists one.
//! - **Rescheduling tasks**: what a run returns, [`Reschedule`], and a task's name,
//!   [`TaskRef`].
//! - **Endings and errors**: [`Exit`], [`ChildExit`], [`ChildRestart`] (with its
//!   [`FailedMessage`]), [`ThreadState`]; [`Error`], and the
//!   send errors that give the message back: [`SendError`], [`TrySendError`],
//!   [`AskError`].
//! - **Looking into a tree**: [`TreeSnapshot`].
//!
//! Everything built on the core is a module:
//!
//! - [`supervise`]: restart a child when it fails, with backoff, limits and restart groups
//!   ([`Ctx::supervise`]).
//! - [`pool`]: a [`WorkerPool`](pool::WorkerPool) of identical worker threads with
//!   work-queue dispatch, resized at run time through a [`PoolHandle`](pool::PoolHandle).
//! - [`jobs`]: a [`JobPool`](jobs::JobPool) for ad-hoc async jobs (apply, lazy map with a
//!   concurrency limit, named groups, cancellation, a results stream, close and join).
//! - [`sync`]: drive a tree from synchronous code — [`background`](sync::background) runs
//!   it on its own OS thread and runtime, and its
//!   [`BackgroundHandle`](sync::BackgroundHandle) (`Send + Sync + Clone`) sends, asks,
//!   receives UP messages, snapshots and stops it from any thread, blocking or async.
//! - `watch` (feature `watch`): watch a running tree — one snapshot, then the changes of
//!   each sampling: queues against their capacity, handler and queue-wait times per
//!   message type, restart budgets, task lateness, pool utilisation, what each thread waits
//!   on and what holds a stop up. Recorded only while someone watches.
//! - `control` (feature `control`): a control endpoint on a Unix socket or loopback TCP to
//!   look into a running tree, watch it, and stop or resize parts of it, driven by the
//!   `taskthread-ctl` tool (`tree`, `watch`, `top`).
//! - `web` (feature `web`): one page that shows the tree live in a browser, with the watch
//!   stream as server-sent events, a JSON snapshot and Prometheus metrics.
//! - `metrics` (feature `metrics`): the same figures through the `metrics` crate, for any
//!   exporter.
//! - [`guide`]: the user's guide, chapter by chapter: the
//!   [introduction](guide::introduction), [the anatomy of a
//!   thread](guide::anatomy_of_a_thread), [rescheduling tasks](guide::rescheduling_tasks),
//!   [messages up and down](guide::messages_up_and_down), [stopping](guide::stopping),
//!   [failure and supervision](guide::failure_and_supervision), [pools and
//!   control](guide::pools_and_control), [driving a tree from synchronous
//!   code](guide::sync_interop), and [observing a tree](guide::observing_a_tree).
//!
//! The repository's `ARCHITECTURE.md` draws how the modules are layered and traces a
//! message, a stop and a restart through them.

#![cfg_attr(docsrs, feature(doc_cfg))]

// The runtime's modules are layered: each names only modules of the layers below it
// (`thread` and `ctx` name each other: a thread's hooks take its context). ARCHITECTURE.md
// draws the layers.
mod blocking;
mod child;
mod cores;
mod ctx;
mod driver;
mod error;
mod exit;
mod family;
mod lock;
mod node;
mod path;
mod port;
mod queue;
mod record;
mod reply;
mod reschedule;
mod root;
mod tasks;
mod thread;
mod wait;
mod work;

pub mod supervise;

#[cfg(feature = "control")]
#[cfg_attr(docsrs, doc(cfg(feature = "control")))]
pub mod control;
pub mod jobs;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod sync;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub mod watch;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;

pub mod guide;

pub use crate::blocking::DEFAULT_BLOCKING_LIMIT;
pub use crate::child::{
    AskFuture, BroadcastFuture, ChildInfo, ChildOptions, ChildRef, DEFAULT_STOP_DEADLINE,
    SendFuture,
};
pub use crate::cores::Cores;
pub use crate::ctx::{Ctx, UpFuture};
pub use crate::error::{AskError, Error, Result, SendError, TrySendError};
pub use crate::exit::{ChildExit, ChildId, ChildRestart, Exit, FailedMessage, ThreadState};
pub use crate::node::{RemoteLink, TreeSnapshot, Waiting};
pub use crate::reschedule::{Reschedule, TaskRef};
pub use crate::root::{Handle, run, spawn, spawn_with};
pub use crate::thread::{
    Accepts, Asks, DEFAULT_CAPACITY, HandlesStream, HandlesUp, NoUp, SendsUp, Thread, UpHandledBy,
};
pub use crate::wait::{WaitCycle, WaitKind};

// The traits of the generated code's diagnostics, also at the root so that the compiler
// names them without the hidden module's path ("the trait `HandlerError` is not
// implemented for `String`").
#[doc(hidden)]
pub use crate::__private::{AnswerOutput, HandlerError, SentByValue, TaskOutput, UnitOutput};

/// The `#[taskthread]` attribute: turns an annotated `impl` block into a thread.
#[cfg(feature = "macros")]
#[doc(inline)]
pub use taskthread_macros::taskthread;

/// Everything a thread's module needs: `use taskthread::prelude::*;`.
///
/// Brings [`Result`] into scope, which shadows `std`'s `Result` with one whose error type
/// defaults to [`Error`] (`Result<T, E>` still works).
pub mod prelude {
    #[cfg(feature = "macros")]
    pub use crate::taskthread;
    pub use crate::{
        ChildExit, ChildId, ChildOptions, ChildRef, ChildRestart, Ctx, Error, Exit, Handle,
        Reschedule, Result, TaskRef, Thread,
    };
}

#[doc(hidden)]
pub mod __private;
