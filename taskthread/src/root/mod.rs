//! Starting a tree: [`spawn`] a root and get a [`Handle`], or [`run`] one until it exits or
//! the process is asked to stop.
//!
//! - `mod.rs`: [`spawn`], [`spawn_with`], [`run`].
//! - `handle.rs`: [`Handle`], a root's address, UP messages and exit.
//! - `signals.rs`: Ctrl-C and SIGTERM, for [`run`] and [`Handle::stop_on_signals`].

mod handle;
mod signals;

pub use handle::Handle;

use std::borrow::Cow;
use std::sync::Arc;

use std::future::poll_fn;

use tokio::task::{AbortHandle, JoinHandle};

use crate::child::{ChildOptions, DEFAULT_STOP_DEADLINE};
use crate::driver::{Prepared, panic_message, prepare};
use crate::error::{Error, Result};
use crate::exit::{ChildId, Exit, ThreadState};
use crate::family::wait_gone;
use crate::node::{Node, NodeInit, ThreadMeta};
use crate::port::{Inbound, RootPort};
use crate::queue::{Inbox, inbox};
use crate::thread::Thread;

use signals::{Signals, stop_on};

/// Starts `thread` as the root of a new tree on the current tokio runtime.
///
/// ```
/// use taskthread::prelude::*;
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// #[taskthread]
/// impl Counter {
///     #[down]
///     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
///         self.total += n;
///         Ok(())
///     }
///     #[down]
///     async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
///         Ok(self.total)
///     }
/// }
/// struct Total;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = taskthread::spawn(Counter::default());
/// handle.send(2u64).await.unwrap();
/// handle.send(3u64).await.unwrap();
/// assert_eq!(handle.ask(Total).await.unwrap(), 5);
/// handle.stop();
/// assert!(matches!(handle.join().await, Exit::Stopped));
/// # }
/// ```
///
/// # Panics
/// If called outside a tokio runtime.
pub fn spawn<T: Thread>(thread: T) -> Handle<T> {
    spawn_with(thread, ChildOptions::new())
}

/// Starts `thread` as a root with [`ChildOptions`]; [`spawn`] is this with the defaults
/// ([`ChildOptions::new`] lists them).
///
/// The options, and what each means for a root:
///
/// - [`name`](ChildOptions::name): its name, which is also its path (default: the type's
///   snake-case name).
/// - [`capacity`](ChildOptions::capacity): the capacity of its DOWN queue and of its inbound
///   queue (default: the type's, [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY) unless
///   `#[taskthread(capacity = N)]` says otherwise).
/// - [`stop_stage`](ChildOptions::stop_stage): the stage in which a parent stops the
///   thread; a root has no parent, so it has no effect here (see it on
///   [`Ctx::spawn_with`](crate::Ctx::spawn_with)).
/// - [`stop_deadline`](ChildOptions::stop_deadline): how long a stop of the tree may take
///   before what remains is aborted (default:
///   [`DEFAULT_STOP_DEADLINE`](crate::DEFAULT_STOP_DEADLINE)); its descendants inherit it.
/// - [`no_stop_deadline`](ChildOptions::no_stop_deadline): no deadline, a stop waits as long
///   as it takes.
/// - [`blocking_limit`](ChildOptions::blocking_limit): how many of its
///   [`spawn_blocking`](crate::Ctx::spawn_blocking) jobs run at once (default:
///   [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskthread::prelude::*;
/// # struct Ping;
/// # struct Echo;
/// # #[taskthread]
/// # impl Echo {
/// #     #[down]
/// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // `Echo` answers a `Ping` with "pong".
/// let options = ChildOptions::new()
///     .name("front")
///     .capacity(8)
///     .stop_stage(0) // no effect on a root
///     .stop_deadline(Duration::from_secs(5))
///     .blocking_limit(2);
/// let echo = taskthread::spawn_with(Echo, options);
/// let snapshot = echo.snapshot();
/// assert_eq!((snapshot.path.as_str(), snapshot.queue_capacity), ("front", 8));
/// assert_eq!(echo.ask(Ping).await.unwrap(), "pong");
/// echo.stop();
/// assert!(matches!(echo.join().await, Exit::Stopped));
///
/// // A root whose stop may take as long as it needs.
/// let patient = taskthread::spawn_with(Echo, ChildOptions::new().no_stop_deadline());
/// patient.stop();
/// assert!(matches!(patient.join().await, Exit::Stopped));
/// # }
/// ```
///
/// A stop that takes longer than the deadline is aborted:
///
/// ```
/// use std::time::Duration;
/// use taskthread::prelude::*;
///
/// struct Stuck;
///
/// #[taskthread]
/// impl Stuck {
///     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
///         std::future::pending::<()>().await; // never finishes
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stuck = taskthread::spawn_with(Stuck, ChildOptions::new().stop_deadline(Duration::from_secs(1)));
/// stuck.stop();
/// assert!(matches!(stuck.join().await, Exit::Aborted { .. }));
/// # }
/// ```
pub fn spawn_with<T: Thread>(thread: T, options: ChildOptions) -> Handle<T> {
    spawn_root(options, |prepared| prepared.launch(thread, false))
}

/// Starts a root with `options`, its task launched by `launch`.
pub(crate) fn spawn_root<T: Thread>(
    options: ChildOptions,
    launch: impl FnOnce(Prepared<'_, T>) -> JoinHandle<Exit>,
) -> Handle<T> {
    let capacity = options.capacity.unwrap_or(T::CAPACITY);
    let (up_tx, up_rx) = inbox(capacity);
    let init = NodeInit {
        parent: None,
        name: options.name.unwrap_or(Cow::Borrowed(T::DEFAULT_NAME)),
        suffix: 0,
        meta: ThreadMeta::of::<T>(),
        capacity,
        stop_deadline: options.stop_deadline.resolve(Some(DEFAULT_STOP_DEADLINE)),
        blocking_limit: options
            .blocking_limit
            .unwrap_or(crate::blocking::DEFAULT_BLOCKING_LIMIT),
    };
    let port = Arc::new(RootPort { tx: up_tx });
    let (child, prepared) = prepare::<T>(ChildId::next(), init, port, options.runtime.as_ref());
    let join = launch(prepared);
    let task = join.abort_handle();
    child.node.set_task(task.clone(), false);
    Handle {
        child,
        up: up_rx,
        join,
        task,
    }
}

/// The next UP message of a root; `None` once the root's port is gone and all is read.
pub(super) async fn recv_up<U>(up: &mut Inbox<Inbound<U>>) -> Option<U> {
    loop {
        match poll_fn(|cx| up.poll_recv(cx)).await? {
            Inbound::Event(msg) | Inbound::Unmetered(msg) => return Some(msg),
            // A root has no parent to report to: its port never sends these.
            Inbound::Exit(..) | Inbound::Restart(..) => {}
        }
    }
}

/// Cancels the root's task and every task below it; waits until they are gone. `join` is
/// the root's task or the one watching it for signals. Returns how the tree ended, and
/// whether this aborted it (not if the root had ended first).
pub(super) async fn abort_tree(
    root: &Node,
    task: &AbortHandle,
    join: &mut JoinHandle<Exit>,
) -> (Exit, bool) {
    // The root may have ended first, and whatever watches it for signals not have seen
    // it yet: then it is joined, not cancelled, and gives how it ended. Its descendants are
    // gone already, unless a panic escaped its loop and left them cancelled but listed.
    let ended = task.is_finished();
    let mut aborted = Vec::new();
    let dropped = root.abort_descendants(&mut aborted) + root.queue_depth();
    if !ended {
        // Before the cancel, so that the root's task, dropped, does not report a cancel
        // of its own.
        root.set_state(ThreadState::Exited);
        task.abort();
        aborted.push(task.clone());
        join.abort();
    }
    let joined = join.await;
    wait_gone(&aborted).await;
    root.forget_aborted();
    match joined {
        // With the UP messages and stream items the root's family dropped as it went.
        Err(e) if e.is_cancelled() => (
            Exit::Aborted {
                dropped: dropped + root.take_unread(),
            },
            true,
        ),
        other => (exit_of(other), false),
    }
}

pub(super) fn exit_of(joined: Result<Exit, tokio::task::JoinError>) -> Exit {
    match joined {
        Ok(exit) => exit,
        Err(e) if e.is_panic() => Exit::Panicked(panic_message(&*e.into_panic())),
        Err(_) => Exit::Aborted { dropped: 0 },
    }
}

/// Runs `thread` as the root of a tree until it ends, or until Ctrl-C / SIGTERM, which stop
/// it gracefully. A second signal during the graceful stop aborts the tree at once (see
/// [`Handle::abort`]). The stop has the root's default stop deadline,
/// [`DEFAULT_STOP_DEADLINE`] (30 s); past it, what remains of the tree is aborted.
///
/// Returns `Ok` if the root completed or was stopped, the failure otherwise (an error that
/// names the second signal if one aborted the stop). UP messages from the root have no
/// receiver here; each is logged at `WARN` and dropped.
///
/// `run` gives no handle and takes no options. For either, start the root with [`spawn`]
/// or [`spawn_with`] (a name, a queue capacity, another stop deadline) and call
/// [`Handle::stop_on_signals`]: the same signal handling, and the handle kept. From
/// synchronous code, [`Background::stop_on_signals`](crate::sync::Background::stop_on_signals)
/// does the same for a tree on its own OS thread.
///
/// ```no_run
/// use taskthread::prelude::*;
///
/// #[derive(Default)]
/// struct Hello;
///
/// #[taskthread]
/// impl Hello {
///     #[rescheduling(every = "1s")]
///     async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
///         tracing::info!("hello");
///         Ok(Reschedule::Again)
///     }
/// }
///
/// #[tokio::main]
/// async fn main() -> taskthread::Result<()> {
///     taskthread::run(Hello).await
/// }
/// ```
pub async fn run<T: Thread>(thread: T) -> Result<()> {
    let Handle {
        child,
        mut up,
        join,
        task,
    } = spawn(thread);
    let signals = Signals::listen();
    let watched = stop_on(signals, &child, &task, join);
    tokio::pin!(watched);
    let (exit, by_signal) = loop {
        tokio::select! {
            ended = &mut watched => break ended,
            Some(_) = recv_up(&mut up) => {
                tracing::warn!(root = %child.path(), "the root sent a message UP and nobody receives it; dropped");
            }
        }
    };
    while up.try_recv().is_some() {
        tracing::warn!(root = %child.path(), "the root sent a message UP and nobody receives it; dropped");
    }
    if by_signal {
        return Err(Error::msg(format!(
            "the graceful stop was interrupted by a second signal: {exit}"
        )));
    }
    exit.into_result()
}

#[cfg(all(test, feature = "macros"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use taskthread_macros::taskthread;

    use crate::child::ChildRef;
    use crate::ctx::Ctx;
    use crate::error::Result;
    use crate::exit::{ChildExit, ChildId};

    /// A child that ends as soon as it has entered.
    struct Brief;

    #[taskthread(crate = "crate")]
    impl Brief {
        async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            ctx.stop();
            Ok(())
        }
    }

    /// Starts a `Brief` child, lends its address to the test, and says UP once it has
    /// handled the child's exit.
    struct Parent {
        child: Arc<Mutex<Option<ChildRef<Brief>>>>,
    }

    #[taskthread(crate = "crate", up = ())]
    impl Parent {
        async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            let child = ctx.spawn(Brief);
            *self.child.lock().expect("no panic") = Some(child);
            Ok(())
        }

        #[up]
        async fn exited(
            &mut self,
            ctx: &mut Ctx<Self>,
            _from: ChildId,
            _e: ChildExit,
        ) -> Result<()> {
            ctx.up(()).await?;
            Ok(())
        }
    }

    /// Runs a parent whose child ends at once; whether the child's node still holds its
    /// task's handle once the parent has handled the child's exit.
    async fn child_keeps_its_task_handle() -> bool {
        let slot = Arc::new(Mutex::new(None));
        let mut parent = super::spawn(Parent {
            child: Arc::clone(&slot),
        });
        parent.recv().await.expect("the child's exit is handled");
        let child = slot.lock().expect("no panic").take().expect("spawned");
        let kept = child.node.task().is_some();
        parent.stop();
        parent.join().await;
        kept
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_an_ended_childs_task_drops_its_own_handle() {
        assert!(!child_keeps_its_task_handle().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_runtime_an_ended_childs_handle_is_kept_for_its_parent() {
        assert!(child_keeps_its_task_handle().await);
    }
}
