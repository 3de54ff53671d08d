//! Threads whose work is done elsewhere: the seams a crate that carries part of a tree to
//! another process or machine builds on. The runtime itself carries nothing across a
//! process boundary.
//!
//! - [`Ctx::spawn_proxy`] starts a child whose life a [`Proxy`] runs: it stands in the tree
//!   for a thread that runs elsewhere. Its [`ChildRef`] is an ordinary one (`send`,
//!   `try_send`, `ask`, `stop`), it shows in snapshots, its UP messages reach the parent's
//!   `#[up]` handlers, and its end reaches the parent as a [`ChildExit`](crate::ChildExit)
//!   — [`Exit::Lost`] when contact with the other side was lost.
//! - [`spawn_hosted`] starts, on the other side, a root for a parent that is elsewhere, and
//!   counts the DOWN messages it takes ([`Taken`]), so that its sender can be told when
//!   there is room again.
//!
//! - `Remote` (feature `remote`): a thread whose messages can cross a process boundary,
//!   implemented by `#[taskthread(remote)]`, which checks at compile time that each of its
//!   messages is serialisable.
//!
//! A proxy takes its DOWN messages *held*: a message taken from the queue keeps its place
//! until the proxy [releases](Proxy::release) it (once the other side has taken it in
//! turn), so the queue's capacity bounds everything sent and not yet taken, here and there
//! together, and senders wait in arrival order while it is used up.
//!
//! ```
//! use taskthread::prelude::*;
//! use taskthread::ThreadState;
//! use taskthread::proxy::{Proxy, ProxyEnd};
//!
//! /// The type the proxy stands in for: it counts what it is sent.
//! struct Counter;
//!
//! #[taskthread(up = u64)]
//! impl Counter {
//!     #[down]
//!     async fn number(&mut self, ctx: &mut Ctx<Self>, _n: u64) -> Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! /// A proxy that counts the messages itself, where a real one would send each elsewhere.
//! async fn stand_in(mut proxy: Proxy<Counter>) -> ProxyEnd<Counter> {
//!     proxy.set_state(ThreadState::Running);
//!     let mut count = 0;
//!     while let Some(_message) = proxy.recv().await {
//!         count += 1;
//!         proxy.release(1); // the other side has taken it
//!         if proxy.up(count).await.is_err() {
//!             break;
//!         }
//!     }
//!     proxy.end(Exit::Stopped, 0)
//! }
//!
//! struct App;
//!
//! #[taskthread(up = u64)]
//! impl App {
//!     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
//!         let counter: ChildRef<Counter> = ctx.spawn_proxy(ChildOptions::new(), stand_in);
//!         counter.send(7u64).await?;
//!         counter.send(8u64).await?;
//!         Ok(())
//!     }
//!
//!     #[up]
//!     async fn counted(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, n: u64) -> Result<()> {
//!         ctx.up(n).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut app = taskthread::spawn(App);
//! assert_eq!(app.recv().await, Some(1));
//! assert_eq!(app.recv().await, Some(2));
//! # }
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(feature = "remote")]
mod wire;

#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use wire::{
    MessageVisitor, ReadDown, ReadUp, Remote, TakeQuestion, WireMessage, WriteDown, WriteUp,
};

pub use crate::reply::{Answer, NoAnswer, Reply};

use crate::child::{ChildOptions, ChildRef};
use crate::ctx::{Ctx, UpFuture};
use crate::driver::{DoneSignal, LifeRules, parent_port, report_exit};
use crate::error::TrySendError;
use crate::exit::{ChildId, ChildRestart, Exit, ThreadState};
use crate::node::{DownReceiver, RemoteLink, RemoteView, TreeSnapshot};
use crate::root::{Handle, spawn_root};
use crate::thread::{HandlesUp, Thread};

impl<T: Thread> Ctx<T> {
    /// Starts a child of type `C` whose life `run` carries out: `run` is given the child's
    /// [`Proxy`] and ends it with [`Proxy::end`], whose exit the parent receives as its
    /// [`ChildExit`](crate::ChildExit). The child is named, listed, stopped (in its stop
    /// stage) and shown in snapshots as any other child; its stop deadline is the one
    /// `options` give, else the parent's.
    ///
    /// `run` runs as the child's task: an abort of the parent's subtree cancels it.
    ///
    /// See the [module](crate::proxy) for an example.
    pub fn spawn_proxy<C, F, Fut>(&mut self, options: ChildOptions, run: F) -> ChildRef<C>
    where
        C: Thread,
        T: HandlesUp<C::Up>,
        F: FnOnce(Proxy<C>) -> Fut,
        Fut: Future<Output = ProxyEnd<C>> + Send + 'static,
    {
        self.launch_child(options, parent_port::<T, C>, |prepared| {
            prepared.launch_with(|ctx, down| {
                let life = run(Proxy { ctx, down });
                async move {
                    let end = life.await;
                    report_exit(end.ctx, end.exit, end.dropped, end.escalated);
                    Exit::Stopped
                }
            })
        })
    }
}

/// The other side of a proxy: a thread's DOWN messages arrive already made into its DOWN
/// type (read with `Remote::read_down`, feature `remote`), and are queued
/// as they are.
impl<T: Thread> ChildRef<T> {
    /// Queues a message of the thread's DOWN type, waiting while the queue is full; gives it
    /// back if the thread no longer accepts messages.
    pub async fn send_down(&self, down: T::Down) -> Result<(), T::Down> {
        self.node.queue.send(down).await
    }

    /// Queues a message of the thread's DOWN type if there is room now.
    pub fn try_send_down(&self, down: T::Down) -> Result<(), TrySendError<T::Down>> {
        self.node.queue.try_send(down)
    }
}

/// The stand-in of a child that runs elsewhere: its end of the child's DOWN queue, its way
/// UP to the parent, its stop signal and its state. Made by [`Ctx::spawn_proxy`].
pub struct Proxy<C: Thread> {
    ctx: Ctx<C>,
    down: DownReceiver<C::Down>,
}

impl<C: Thread> fmt::Debug for Proxy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("path", &self.path())
            .field("type", &C::TYPE_NAME)
            .finish_non_exhaustive()
    }
}

impl<C: Thread> Proxy<C> {
    /// The child's id.
    pub fn id(&self) -> ChildId {
        self.ctx.node().id
    }

    /// The child's path in the tree.
    pub fn path(&self) -> &str {
        self.ctx.node().path()
    }

    /// Shows the child in snapshots (and the control endpoint's `tree`) as running
    /// elsewhere: `link` says where and how the link is, `subtree` holds the threads below
    /// the child as the other side last reported them (made with
    /// [`TreeSnapshot::reported`](crate::TreeSnapshot::reported)). Each call replaces the
    /// last; the parent's snapshots read it as plain data.
    pub fn show_remote(&self, link: RemoteLink, subtree: Vec<TreeSnapshot>) {
        if let Some(view) = self.ctx.node().attachment_or_init(RemoteView::default) {
            view.set(link, subtree);
        }
    }

    /// The capacity of the child's DOWN queue: how many messages may be queued or held at
    /// once.
    pub fn capacity(&self) -> usize {
        self.ctx.node().capacity()
    }

    /// How long a stop of the child may take before it is to be aborted, if it has a
    /// deadline.
    pub fn stop_deadline(&self) -> Option<Duration> {
        self.ctx.node().stop_deadline
    }

    /// Sets the state the child shows (its `ChildRef::state` and snapshots). It starts as
    /// [`ThreadState::Starting`]; [`end`](Self::end) makes it
    /// [`Exited`](ThreadState::Exited).
    ///
    /// # Panics
    ///
    /// If `state` is [`Exited`](ThreadState::Exited): a child ends through
    /// [`end`](Self::end), which also tells its parent. Shown as exited before that, the
    /// child would be taken for one that has told its end already, and an end by a cancel
    /// (its runtime shutting down) would never reach its parent.
    #[track_caller]
    pub fn set_state(&self, state: ThreadState) {
        assert!(
            state != ThreadState::Exited,
            "Proxy::set_state(ThreadState::Exited): a proxied child ends through Proxy::end"
        );
        self.ctx.node().set_state(state);
    }

    /// Takes the next DOWN message, holding its place in the queue until
    /// [`release`](Self::release); `Ready(None)` once the queue is closed and empty.
    ///
    /// Once the child is asked to stop, the queue closes, as a thread's does when it starts
    /// stopping: senders get their messages back, what was queued before still comes, then
    /// `None`.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<C::Down>> {
        if !self.down.is_closed() && self.ctx.node().poll_stop_requested(cx).is_ready() {
            self.down.close();
        }
        let polled = self.down.poll_recv_held(cx);
        if let Poll::Ready(Some(_)) = polled {
            self.ctx.node().count_handled();
        }
        polled
    }

    /// Takes the next DOWN message, as [`poll_recv`](Self::poll_recv) does.
    pub async fn recv(&mut self) -> Option<C::Down> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes the next DOWN message if one is queued now, holding its place as
    /// [`poll_recv`](Self::poll_recv) does: for a proxy that carries several messages at
    /// once.
    pub fn try_recv(&mut self) -> Option<C::Down> {
        let taken = self.down.try_recv_held();
        if taken.is_some() {
            self.ctx.node().count_handled();
        }
        taken
    }

    /// Frees the places of `n` held messages (the other side has taken them): as many
    /// waiting senders may go on, in arrival order.
    pub fn release(&self, n: usize) {
        self.down.release_held(n);
    }

    /// How many taken messages still hold their place.
    pub fn held(&self) -> usize {
        self.down.held()
    }

    /// How many messages wait in the queue, not taken yet.
    pub fn queued(&self) -> usize {
        self.down.len()
    }

    /// Stops accepting DOWN messages: sends fail from now on and give their message back;
    /// what is queued can still be taken.
    pub fn close(&mut self) {
        self.down.close();
    }

    /// Whether the child was asked to stop (its parent stopping, its `ChildRef::stop`, its
    /// restart group).
    pub fn is_stop_requested(&self) -> bool {
        self.ctx.node().is_stop_requested()
    }

    /// Ready once the child was asked to stop; else the task is woken by the request.
    pub fn poll_stop_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ctx.node().poll_stop_requested(cx)
    }

    /// Sends an UP message to the parent, waiting while the parent's queue is full; gives it
    /// back if the parent is gone. The child has its own place in the parent's queue, as a
    /// local child has (see [`Ctx::up`](crate::Ctx::up)).
    pub fn up(&self, msg: C::Up) -> UpFuture<'_, C> {
        self.ctx.up_raw(msg)
    }

    /// Sends an UP message to the parent if its queue has room now: a shared place, or the
    /// child's own (see [`Ctx::up`](crate::Ctx::up)).
    pub fn try_up(&self, msg: C::Up) -> Result<(), TrySendError<C::Up>> {
        self.ctx.try_up_raw(msg)
    }

    /// One of the child's lives ended with `exit` and another will start after
    /// `backoff` (see [`Restarts`](crate::supervise::Restarts)): the parent receives a
    /// [`ChildRestart`] (its `message` is `None`: which message a life elsewhere failed on
    /// is not known here), and the child shows as
    /// [`Restarting`](ThreadState::Restarting). Its queue stays open: what is sent
    /// meanwhile waits for the next life.
    pub fn report_restart(&self, exit: Exit, backoff: Duration, restarts_left: u32) {
        let node = self.ctx.node();
        node.set_state(ThreadState::Restarting);
        let restart = ChildRestart {
            id: node.id,
            path: node.lazy_path(),
            type_name: node.meta.type_name,
            life: node.restarts().saturating_add(1),
            exit,
            message: None,
            backoff,
            restarts_left,
            by_group: false,
        };
        tracing::debug!("{restart}");
        self.ctx
            .up_port()
            .report_restart(node.id, Box::new(restart));
    }

    /// The next life starts: counted in the child's restarts (its snapshot), and the child
    /// shows as [`Starting`](ThreadState::Starting).
    pub fn restarted(&self) {
        let node = self.ctx.node();
        node.count_restart();
        node.set_state(ThreadState::Starting);
    }

    /// Ends the child with `exit`; `dropped` counts the messages it took and never
    /// delivered. The queue closes: what is still queued is dropped and counted too, and
    /// senders get their messages back from now on. The parent receives the exit once the
    /// returned value is returned from the proxy's future.
    pub fn end(self, exit: Exit, dropped: usize) -> ProxyEnd<C> {
        self.finish(exit, dropped, false)
    }

    /// Ends the child for good past its restart limit
    /// ([`AfterLife::Escalate`](crate::supervise::AfterLife::Escalate)), as
    /// [`end`](Self::end) does, with its exit [escalated](crate::ChildExit::escalated): once
    /// the parent's handler has seen it, the parent fails with it.
    pub fn end_escalated(self, exit: Exit, dropped: usize) -> ProxyEnd<C> {
        self.finish(exit, dropped, true)
    }

    fn finish(mut self, exit: Exit, dropped: usize, escalated: bool) -> ProxyEnd<C> {
        self.down.close();
        let mut left = 0;
        while self.down.try_recv().is_some() {
            left += 1;
        }
        ProxyEnd {
            ctx: self.ctx,
            exit,
            dropped: dropped + left,
            escalated,
        }
    }
}

/// How a proxied child ended: made by [`Proxy::end`], returned by the proxy's future.
pub struct ProxyEnd<C: Thread> {
    ctx: Ctx<C>,
    exit: Exit,
    dropped: usize,
    escalated: bool,
}

impl<C: Thread> ProxyEnd<C> {
    /// The exit the parent will receive.
    pub fn exit(&self) -> &Exit {
        &self.exit
    }

    /// The messages the child dropped.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

impl<C: Thread> fmt::Debug for ProxyEnd<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyEnd")
            .field("exit", &self.exit)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// How many DOWN messages a thread started by [`spawn_hosted`] has taken from its queue to
/// handle. Cheap to clone; every clone reads the same count.
#[derive(Clone, Default)]
pub struct Taken(Arc<DoneSignal>);

impl Taken {
    /// How many messages the thread has taken so far.
    pub fn count(&self) -> u64 {
        self.0.count()
    }

    /// Ready with the count once it is above `seen`; else the task is woken by the next
    /// message taken.
    pub fn poll_above(&self, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        self.0
            .poll_finished(seen.saturating_add(1), cx)
            .map(|()| self.0.count())
    }

    /// Waits until the count is above `seen`, and gives it.
    pub async fn above(&self, seen: u64) -> u64 {
        poll_fn(|cx| self.poll_above(seen, cx)).await
    }
}

impl fmt::Debug for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Taken").field(&self.count()).finish()
    }
}

/// Starts `thread` as a root, as [`spawn_with`](crate::spawn_with) does, for a parent that
/// is elsewhere, and counts the DOWN messages it takes from its queue: a message taken no
/// longer takes a place, so whoever feeds the queue from afar can be told there is room.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread::proxy::spawn_hosted;
///
/// struct Sink;
///
/// #[taskthread]
/// impl Sink {
///     #[down]
///     async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (sink, taken) = spawn_hosted(Sink, ChildOptions::new().capacity(2));
/// sink.send(1u32).await.unwrap();
/// sink.send(2u32).await.unwrap();
/// assert_eq!(taken.above(1).await, 2);
/// # }
/// ```
///
/// # Panics
/// If called outside a tokio runtime.
pub fn spawn_hosted<T: Thread>(thread: T, options: ChildOptions) -> (Handle<T>, Taken) {
    let taken = Taken::default();
    let rules = LifeRules {
        taken: Some(Arc::clone(&taken.0)),
        ..LifeRules::default()
    };
    let handle = spawn_root(options, |prepared| prepared.launch_root_by(thread, rules));
    (handle, taken)
}
