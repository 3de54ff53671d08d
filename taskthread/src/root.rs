//! Starting a tree: [`spawn`] a root and get a [`Handle`], or [`run`] one until it exits or
//! the process is asked to stop.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use std::future::poll_fn;

use tokio::task::{AbortHandle, JoinHandle};

use crate::child::{AskFuture, ChildOptions, ChildRef, DEFAULT_STOP_DEADLINE, SendFuture};
use crate::driver::{panic_message, prepare, wait_gone};
use crate::error::{Error, Result, TrySendError};
use crate::exit::{ChildId, Exit, ThreadState};
use crate::node::{Node, NodeInit, ThreadMeta, TreeSnapshot};
use crate::port::{Inbound, RootPort};
use crate::queue::{Inbox, inbox};
use crate::thread::{Accepts, Asks, Thread};

/// The handle of a root thread: its address, its UP messages and its exit.
///
/// Dropping the handle does not stop the tree (like a tokio `JoinHandle`); call
/// [`stop`](Self::stop) and [`join`](Self::join), or let Ctrl-C and SIGTERM stop it with
/// [`stop_on_signals`](Self::stop_on_signals).
pub struct Handle<T: Thread> {
    child: ChildRef<T>,
    up: Inbox<Inbound<T::Up>>,
    /// The root's task, or the task that watches for signals and ends with it.
    join: JoinHandle<Exit>,
    /// The root's own task (`join` may be the watcher's).
    task: AbortHandle,
}

impl<T: Thread> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("root", &self.child).finish()
    }
}

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
    let (child, prepared) = prepare::<T>(ChildId::next(), init, port);
    let join = prepared.launch(thread, false);
    let task = join.abort_handle();
    child.node.set_task(task.clone());
    Handle {
        child,
        up: up_rx,
        join,
        task,
    }
}

impl<T: Thread> Handle<T> {
    /// The root's address, to hand to other code that sends to it.
    ///
    /// # Examples
    ///
    /// ```
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
    /// let echo = taskthread::spawn(Echo);
    /// let addr = echo.child_ref(); // cheap to clone, `Send`: give it to other tasks
    /// let asker = tokio::spawn(async move { addr.ask(Ping).await.unwrap() });
    /// assert_eq!(asker.await.unwrap(), "pong");
    /// # }
    /// ```
    pub fn child_ref(&self) -> ChildRef<T> {
        self.child.clone()
    }

    /// The root's id.
    ///
    /// # Examples
    ///
    /// ```
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
    /// let echo = taskthread::spawn(Echo);
    /// assert_eq!(echo.id(), echo.child_ref().id());
    /// assert_eq!(echo.id(), echo.snapshot().id);
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.child.id()
    }

    /// Sends a message DOWN to the root, waiting while its queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Printer;
    ///
    /// #[taskthread(up = String)]
    /// impl Printer {
    ///     #[down]
    ///     async fn print(&mut self, ctx: &mut Ctx<Self>, text: String) -> Result<()> {
    ///         ctx.up(format!("printed {text}")).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut printer = taskthread::spawn(Printer);
    /// printer.send("hello".to_owned()).await.unwrap();
    /// assert_eq!(printer.recv().await.unwrap(), "printed hello");
    /// # }
    /// ```
    pub fn send<M>(&self, msg: M) -> SendFuture<'_, T, M>
    where
        T: Accepts<M>,
    {
        self.child.send(msg)
    }

    /// Sends a message DOWN to the root if its queue has room now.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::TrySendError;
    /// # struct Sink;
    /// # #[taskthread]
    /// # impl Sink {
    /// #     #[down]
    /// #     async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {}
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Sink` takes `u32`s.
    /// // A queue of one, and the root has not run yet.
    /// let sink = taskthread::spawn_with(Sink, ChildOptions::new().capacity(1));
    /// assert!(sink.try_send(1u32).is_ok());
    /// assert!(matches!(sink.try_send(2u32), Err(TrySendError::Full(2))));
    /// # }
    /// ```
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        self.child.try_send(msg)
    }

    /// Asks the root a question and waits for the answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Double(u64);
    /// struct Calculator;
    ///
    /// #[taskthread]
    /// impl Calculator {
    ///     #[down]
    ///     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    ///         Ok(n * 2)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let calc = taskthread::spawn(Calculator);
    /// assert_eq!(calc.ask(Double(21)).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn ask<Q, R>(&self, question: Q) -> AskFuture<'_, T, Q, R>
    where
        T: Asks<Q, Reply = R>,
    {
        self.child.ask(question)
    }

    /// Receives the next message the root sent UP; `None` once the root has ended and every
    /// message it sent has been received.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Countdown;
    ///
    /// #[taskthread(up = u32)]
    /// impl Countdown {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         for n in (1..=3).rev() {
    ///             ctx.up(n).await?;
    ///         }
    ///         ctx.stop();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut countdown = taskthread::spawn(Countdown);
    /// let mut heard = Vec::new();
    /// while let Some(n) = countdown.recv().await {
    ///     heard.push(n);
    /// }
    /// assert_eq!(heard, [3, 2, 1]); // then `None`: ended, and all received
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<T::Up> {
        recv_up(&mut self.up).await
    }

    /// Asks the root to stop gracefully (and with it the whole tree). Returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Saver;
    ///
    /// #[taskthread(up = &'static str)]
    /// impl Saver {
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up("saved").await?; // cleanup runs on a graceful stop
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut saver = taskthread::spawn(Saver);
    /// saver.stop();
    /// assert_eq!(saver.recv().await, Some("saved"));
    /// assert!(matches!(saver.join().await, Exit::Stopped));
    /// # }
    /// ```
    pub fn stop(&self) {
        self.child.stop();
    }

    /// Lets Ctrl-C and SIGTERM stop the tree gracefully, as [`stop`](Self::stop) does, and
    /// keeps the handle: the program still sends to the root, receives its UP messages and
    /// joins it. A second signal during the graceful stop aborts the tree at once (see
    /// [`abort`](Self::abort)); [`join`](Self::join) then returns [`Exit::Aborted`]. This is
    /// what [`run`] does, for a root whose handle you need.
    ///
    /// The signals are listened for from the moment this returns: one that arrives later is
    /// never missed, and no longer ends the process at once (Ctrl-C is SIGINT on Unix; on
    /// other systems only Ctrl-C is listened for). The listening ends with the tree. Call it
    /// once per process: every tree listening would stop on the same signal.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// A server that stops on Ctrl-C, and still talks to its root (compiled only: it
    /// waits for a signal).
    ///
    /// ```no_run
    /// use taskthread::prelude::*;
    ///
    /// struct Server;
    ///
    /// #[taskthread(up = &'static str)]
    /// impl Server {
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up("connections closed").await?; // runs on the signal's graceful stop
    ///         Ok(())
    ///     }
    /// }
    ///
    /// #[tokio::main]
    /// async fn main() -> taskthread::Result<()> {
    ///     let mut server = taskthread::spawn(Server).stop_on_signals();
    ///     // Ctrl-C: the tree stops gracefully; the root's UP messages still arrive.
    ///     while let Some(line) = server.recv().await {
    ///         println!("{line}");
    ///     }
    ///     server.join().await.into_result()
    /// }
    /// ```
    pub fn stop_on_signals(self) -> Self {
        let Handle {
            child,
            up,
            join,
            task,
        } = self;
        let signals = Signals::listen();
        let (watched, root_task) = (child.clone(), task.clone());
        let watcher = tokio::spawn(async move {
            let (exit, _) = stop_on(signals, &watched, &root_task, join).await;
            exit
        });
        Handle {
            child,
            up,
            join: watcher,
            task,
        }
    }

    /// Aborts the whole tree at once: every task of it is cancelled, no `exit` hook runs,
    /// and queued messages are dropped. Returns [`Exit::Aborted`] with how many were dropped
    /// (or how the root ended, if it ended first). When it returns, no task of the tree is
    /// alive. Prefer [`stop`](Self::stop) and [`join`](Self::join): a stop past its deadline
    /// (see [`ChildOptions::stop_deadline`]) ends in an abort anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Stuck;
    ///
    /// #[taskthread]
    /// impl Stuck {
    ///     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
    ///         std::future::pending::<()>().await; // never finishes cleaning up
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stuck = taskthread::spawn(Stuck);
    /// stuck.stop(); // would wait for `exit` until the stop deadline
    /// assert!(matches!(stuck.abort().await, Exit::Aborted { .. }));
    /// # }
    /// ```
    pub async fn abort(self) -> Exit {
        let Handle {
            child,
            mut join,
            task,
            ..
        } = self;
        abort_tree(&*child.node, &task, &mut join).await
    }

    /// A snapshot of the whole tree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Ready;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn(Worker);
    ///         ctx.spawn(Worker);
    ///         Ok(())
    ///     }
    ///
    ///     #[down]
    ///     async fn ready(&mut self, _ctx: &mut Ctx<Self>, _r: Ready) -> Result<bool> {
    ///         Ok(true)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// team.ask(Ready).await.unwrap(); // answered after `enter`
    /// let snapshot = team.snapshot();
    /// assert_eq!(snapshot.len(), 3);
    /// assert!(snapshot.find("team/worker-2").is_some());
    /// println!("{snapshot}"); // one thread per line, children indented
    /// # }
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.child.snapshot()
    }

    /// Waits until the root has ended and returns how. When it returns, no task of the tree
    /// is alive.
    ///
    /// While waiting, UP messages from the root that nobody receives any more are taken off
    /// its queue, so the root never blocks on (or fails at) sending UP during its stop; they
    /// are counted and reported in one warning. To keep them, call [`stop`](Self::stop) and
    /// [`recv`](Self::recv) until `None` before joining.
    ///
    /// # Panics
    /// If called from a thread of this very tree: it would wait for itself forever. (The
    /// panic ends that thread as `Panicked`, with this explanation, instead of a hang.) A
    /// task a thread started with `spawn_task` is not a thread and is not detected: such a
    /// join waits until the tree is stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Fail;
    /// struct Fragile;
    ///
    /// #[taskthread]
    /// impl Fragile {
    ///     #[down]
    ///     async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
    ///         Err(Error::msg("disk full"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let fragile = taskthread::spawn(Fragile);
    /// fragile.send(Fail).await.unwrap();
    /// match fragile.join().await {
    ///     Exit::Failed(e) => assert_eq!(e.to_string(), "disk full"),
    ///     other => panic!("expected a failure, got {other}"),
    /// }
    /// # }
    /// ```
    pub async fn join(self) -> Exit {
        if let Some(me) = tokio::task::try_id()
            && let Some(path) = self.child.node.path_of_task(me)
        {
            panic!(
                "Handle::join called from `{path}`, a thread of the tree it joins: it would \
                 wait for itself forever; stop the tree and let its owner join it"
            );
        }
        let Handle {
            child,
            mut up,
            mut join,
            ..
        } = self;
        let mut dropped = 0usize;
        let joined = loop {
            tokio::select! {
                biased;
                joined = &mut join => break joined,
                Some(_) = recv_up(&mut up) => dropped += 1,
            }
        };
        while up.try_recv().is_some() {
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(root = %child.path(), dropped, "join: dropped UP messages that nobody received");
        }
        exit_of(joined)
    }
}

/// The next UP message of a root; `None` once the root's port is gone and all is read.
async fn recv_up<U>(up: &mut Inbox<Inbound<U>>) -> Option<U> {
    loop {
        match poll_fn(|cx| up.poll_recv(cx)).await? {
            Inbound::Event(msg) | Inbound::Output(msg) => return Some(msg),
            // A root has no parent to report to: its port never sends one.
            Inbound::Exit(..) => {}
        }
    }
}

/// Cancels the root's task and every task below it; waits until they are gone. `join` is
/// the root's task or the one watching it for signals.
async fn abort_tree(root: &Node, task: &AbortHandle, join: &mut JoinHandle<Exit>) -> Exit {
    let mut aborted = Vec::new();
    let dropped = root.abort_descendants(&mut aborted) + root.queue_depth();
    task.abort();
    aborted.push(task.clone());
    join.abort();
    let joined = join.await;
    wait_gone(&aborted).await;
    root.set_state(ThreadState::Exited);
    match joined {
        Err(e) if e.is_cancelled() => Exit::Aborted { dropped },
        other => exit_of(other),
    }
}

fn exit_of(joined: Result<Exit, tokio::task::JoinError>) -> Exit {
    match joined {
        Ok(exit) => exit,
        Err(e) if e.is_panic() => Exit::Panicked(panic_message(e.into_panic())),
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

/// Watches the root `child` (whose task is `task`, joined through `join`) until it ends: the
/// first signal stops it gracefully, a second aborts the tree. Returns how it ended, and
/// whether a second signal aborted it.
async fn stop_on<T: Thread>(
    mut signals: Signals,
    child: &ChildRef<T>,
    task: &AbortHandle,
    mut join: JoinHandle<Exit>,
) -> (Exit, bool) {
    let mut stopping = false;
    loop {
        tokio::select! {
            joined = &mut join => {
                let exit = exit_of(joined);
                tracing::info!(root = %child.path(), "tree ended: {exit}");
                return (exit, false);
            }
            signal = signals.recv() => {
                if stopping {
                    tracing::warn!(root = %child.path(), "second signal ({signal}): aborting the tree");
                    let exit = abort_tree(&*child.node, task, &mut join).await;
                    tracing::warn!(root = %child.path(), "tree ended: {exit}");
                    return (exit, true);
                }
                stopping = true;
                tracing::info!(root = %child.path(), "{signal} received: stopping the tree gracefully (signal again to give up)");
                child.stop();
            }
        }
    }
}

/// The process's stop signals: Ctrl-C, and SIGTERM on Unix. Listened for from the moment
/// they are made, so that a signal between that and the first wait is not missed.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(sig) => Some(sig),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                None
            }
        };
        Self {
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    #[cfg(not(unix))]
    fn listen() -> Self {
        Self {}
    }

    /// Waits for the next signal and returns its name.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            let received = match signal {
                Some(sig) => sig.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => "SIGINT",
            () = next(&mut self.terminate) => "SIGTERM",
        }
    }

    /// Waits for the next signal and returns its name.
    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    }
}
