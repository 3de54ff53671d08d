//! Addresses of threads ([`ChildRef`]), the options a thread is spawned with
//! ([`ChildOptions`]), and a parent's typed access to its children ([`Ctx::child`],
//! [`Ctx::children_of`], [`Ctx::broadcast`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ctx::Ctx;
use crate::error::{AskError, SendError, TrySendError};
use crate::exit::{ChildId, ThreadState};
use crate::node::{ChildNode, Node, TreeSnapshot};
use crate::queue::DownQueue;
use crate::thread::{Accepts, Asks, Reply, Thread};

/// The address of a running thread: send it messages, ask it questions, stop it.
///
/// Cheap to clone (one reference count: the thread's node, which holds its queue). It stays
/// valid after the thread ends: sends then fail and give the message back.
pub struct ChildRef<T: Thread> {
    pub(crate) node: Arc<Node<DownQueue<T::Down>>>,
}

impl<T: Thread> Clone for ChildRef<T> {
    fn clone(&self) -> Self {
        Self {
            node: Arc::clone(&self.node),
        }
    }
}

impl<T: Thread> fmt::Debug for ChildRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.node.id)
            .field("path", self.node.path())
            .field("type", &T::TYPE_NAME)
            .finish()
    }
}

impl<T: Thread> ChildRef<T> {
    /// The thread's id.
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
    /// let one = taskthread::spawn(Echo).child_ref();
    /// let two = taskthread::spawn(Echo).child_ref();
    /// assert_eq!(one.id(), one.clone().id()); // clones address the same thread
    /// assert_ne!(one.id(), two.id()); // ids are unique in the process
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.node.id
    }

    /// The thread's name among its siblings, e.g. `tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Conn;
    /// # #[taskthread] impl Conn {}
    ///
    /// struct Names;
    /// struct Server;
    ///
    /// #[taskthread]
    /// impl Server {
    ///     #[down]
    ///     async fn names(&mut self, ctx: &mut Ctx<Self>, _n: Names) -> Result<Vec<String>> {
    ///         let first = ctx.spawn(Conn);
    ///         let second = ctx.spawn(Conn);
    ///         Ok(vec![first.name().to_owned(), second.name().to_owned()])
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(Server);
    /// assert_eq!(server.ask(Names).await.unwrap(), ["conn", "conn-2"]);
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The thread's path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct TcpServer;
    /// # #[taskthread] impl TcpServer {}
    ///
    /// struct Start;
    /// struct Master;
    ///
    /// #[taskthread]
    /// impl Master {
    ///     #[down]
    ///     async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<String> {
    ///         let server = ctx.spawn(TcpServer);
    ///         Ok(server.path().to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let master = taskthread::spawn(Master);
    /// assert_eq!(master.ask(Start).await.unwrap(), "master/tcp_server");
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Where the thread is in its lifecycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::ThreadState;
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
    /// let child = echo.child_ref();
    /// echo.ask(Ping).await.unwrap(); // answered: it has started
    /// assert_eq!(child.state(), ThreadState::Running);
    /// echo.stop();
    /// echo.join().await;
    /// assert_eq!(child.state(), ThreadState::Exited);
    /// # }
    /// ```
    pub fn state(&self) -> ThreadState {
        self.node.state()
    }

    /// Whether the thread has stopped accepting messages (it is stopping or has ended).
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
    /// let child = echo.child_ref();
    /// assert!(!child.is_closed());
    /// echo.stop();
    /// echo.join().await;
    /// assert!(child.is_closed());
    /// assert!(child.send(Ping).await.is_err());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.node.queue.is_closed()
    }

    /// Sends a message DOWN, waiting while the queue is full (backpressure).
    ///
    /// Fails, giving the message back, if the thread no longer accepts messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Total;
    ///
    /// #[derive(Default)]
    /// struct Counter { total: u64 }
    ///
    /// #[taskthread]
    /// impl Counter {
    ///     #[down]
    ///     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) {
    ///         self.total += n;
    ///     }
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> {
    /// #         Ok(self.total)
    /// #     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = taskthread::spawn(Counter::default());
    /// let counter = handle.child_ref();
    /// counter.send(2u64).await.unwrap();
    /// counter.send(3u64).await.unwrap();
    /// assert_eq!(counter.ask(Total).await.unwrap(), 5); // `Total` asks for the sum
    ///
    /// handle.stop();
    /// handle.join().await;
    /// let err = counter.send(4u64).await.unwrap_err(); // ended: the message comes back
    /// assert_eq!(err.into_inner(), 4);
    /// # }
    /// ```
    pub async fn send<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        T: Accepts<M>,
    {
        match self.node.queue.send(T::__wrap(msg)).await {
            Ok(()) => Ok(()),
            Err(down) => Err(SendError::new(T::__unwrap(down), self.node.path())),
        }
    }

    /// Sends a message DOWN if there is room now, without waiting.
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
    /// // A queue of one, and the thread has not run yet.
    /// let sink = taskthread::spawn_with(Sink, ChildOptions::new().capacity(1)).child_ref();
    /// assert!(sink.try_send(1u32).is_ok());
    /// match sink.try_send(2u32) {
    ///     Err(TrySendError::Full(n)) => assert_eq!(n, 2), // the message comes back
    ///     other => panic!("expected a full queue, got {other:?}"),
    /// }
    /// # }
    /// ```
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        match self.node.queue.try_send(T::__wrap(msg)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(d)) => Err(TrySendError::Full(T::__unwrap(d))),
            Err(TrySendError::Ended(d)) => Err(TrySendError::Ended(T::__unwrap(d))),
        }
    }

    /// Sends a question DOWN and waits for the handler's answer.
    ///
    /// The handler for `Q` must return a value (`-> Result<Answer>`).
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
    /// let calc = taskthread::spawn(Calculator).child_ref();
    /// assert_eq!(calc.ask(Double(21)).await.unwrap(), 42);
    /// # }
    /// ```
    pub async fn ask<Q>(&self, question: Q) -> Result<T::Reply, AskError<Q>>
    where
        T: Asks<Q>,
    {
        let (reply, answer) = oneshot::channel();
        let down = T::__wrap_ask(question, Reply(reply));
        if let Err(down) = self.node.queue.send(down).await {
            return Err(AskError::Ended(T::__unwrap(down)));
        }
        answer.await.map_err(|_| AskError::NoReply)
    }

    /// Asks the thread to stop gracefully. Returns at once; the parent hears of the exit.
    ///
    /// The thread takes the stop at its loop's next turn; until then it still accepts
    /// messages, and it handles every message it accepted before it ends. Stopping a thread
    /// that is already stopping or has ended does nothing.
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
    /// let child = echo.child_ref();
    /// child.stop();
    /// child.stop(); // already stopping: nothing more happens
    /// assert!(matches!(echo.join().await, Exit::Stopped));
    /// # }
    /// ```
    pub fn stop(&self) {
        self.node.request_stop();
    }

    /// A snapshot of the thread's subtree.
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
    /// echo.ask(Ping).await.unwrap();
    /// let snapshot = echo.child_ref().snapshot();
    /// assert_eq!(snapshot.type_name, "Echo");
    /// assert_eq!(snapshot.down_types, ["Ping"]);
    /// assert_eq!(snapshot.path, "echo");
    /// # }
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.node.snapshot()
    }
}

/// Options for spawning a thread: name, queue capacity, stop stage, stop deadline, blocking
/// limit.
///
/// ```
/// use taskthread::prelude::*;
/// # struct Conn;
/// # #[taskthread] impl Conn {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let options = ChildOptions::new().name("conn").capacity(16).stop_stage(1);
/// let conn = taskthread::spawn_with(Conn, options).child_ref();
/// assert_eq!(conn.name(), "conn");
/// assert_eq!(conn.snapshot().queue_capacity, 16);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) capacity: Option<usize>,
    pub(crate) stage: u32,
    pub(crate) stop_deadline: StopDeadline,
    pub(crate) blocking_limit: Option<usize>,
}

/// A thread's stop deadline as given in its options.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum StopDeadline {
    /// The parent's (for a root: [`DEFAULT_STOP_DEADLINE`]).
    #[default]
    Inherit,
    After(Duration),
    Never,
}

impl StopDeadline {
    pub(crate) fn resolve(self, inherited: Option<Duration>) -> Option<Duration> {
        match self {
            Self::Inherit => inherited,
            Self::After(d) => Some(d),
            Self::Never => None,
        }
    }
}

/// The stop deadline of a root unless its options say otherwise; children inherit their
/// parent's.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

impl ChildOptions {
    /// The defaults: the type's snake-case name, the type's capacity, stop stage 0, the
    /// parent's stop deadline (a root's: [`DEFAULT_STOP_DEADLINE`]) and a blocking limit of
    /// [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct TcpServer;
    /// # #[taskthread] impl TcpServer {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn_with(TcpServer, ChildOptions::new()).child_ref();
    /// assert_eq!(server.name(), "tcp_server");
    /// assert_eq!(server.snapshot().queue_capacity, taskthread::DEFAULT_CAPACITY);
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The base name; siblings with the same name get a numeric suffix (`conn`, `conn-2`, ...).
    ///
    /// # Panics
    /// If the name is empty or contains `/` (the path separator).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Conn;
    /// # #[taskthread] impl Conn {}
    ///
    /// struct Accept;
    /// struct Server;
    ///
    /// #[taskthread]
    /// impl Server {
    ///     #[down]
    ///     async fn accept(&mut self, ctx: &mut Ctx<Self>, _a: Accept) -> Result<String> {
    ///         let conn = ctx.spawn_with(Conn, ChildOptions::new().name("client"));
    ///         Ok(conn.path().to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(Server);
    /// assert_eq!(server.ask(Accept).await.unwrap(), "server/client");
    /// assert_eq!(server.ask(Accept).await.unwrap(), "server/client-2");
    /// # }
    /// ```
    #[track_caller]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && !name.contains('/'),
            "a thread name must be non-empty and must not contain `/`, got {name:?}"
        );
        self.name = Some(name);
        self
    }

    /// The capacity of the thread's DOWN queue and of its inbound queue.
    ///
    /// # Panics
    /// If `capacity` is 0: a queue must hold at least one message.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
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
    /// let sink = taskthread::spawn_with(Sink, ChildOptions::new().capacity(2)).child_ref();
    /// assert_eq!(sink.snapshot().queue_capacity, 2);
    /// assert!(sink.try_send(1u32).is_ok());
    /// assert!(sink.try_send(2u32).is_ok());
    /// assert!(sink.try_send(3u32).is_err()); // full (the thread has not run yet)
    /// # }
    /// ```
    #[track_caller]
    pub fn capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "a queue capacity must be at least 1");
        self.capacity = Some(capacity);
        self
    }

    /// The stage in which the parent stops this child. On a graceful stop, a parent stops its
    /// children stage by stage in ascending order, all children of one stage concurrently,
    /// waiting for every child of a stage to exit before stopping the next. All children are
    /// in stage 0 unless told otherwise, so by default they stop concurrently.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Db;
    /// # #[taskthread] impl Db {}
    /// # struct Web;
    /// # #[taskthread] impl Web {}
    ///
    /// struct App;
    ///
    /// #[taskthread(up = String)]
    /// impl App {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn_with(Db, ChildOptions::new().stop_stage(1)); // stops after `web`
    ///         ctx.spawn(Web);
    ///         Ok(())
    ///     }
    ///
    ///     #[up]
    ///     async fn exited(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
    ///         ctx.up(exit.name().to_owned()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut app = taskthread::spawn(App);
    /// app.stop();
    /// assert_eq!(app.recv().await.unwrap(), "web");
    /// assert_eq!(app.recv().await.unwrap(), "db");
    /// # }
    /// ```
    pub fn stop_stage(mut self, stage: u32) -> Self {
        self.stage = stage;
        self
    }

    /// How long a stop of this thread may take, counted from when it first has to wait for
    /// something (a handler, a child, a job) after the stop began. Past it, the thread and
    /// what remains of its subtree are aborted — their tasks cancelled, their `exit` hooks not
    /// run — and the thread reports [`Exit::Aborted`](crate::Exit::Aborted) with the number
    /// of queued messages dropped.
    ///
    /// By default a child inherits its parent's deadline, and a root has
    /// [`DEFAULT_STOP_DEADLINE`] (30 s). A deadline of zero aborts at the first wait.
    ///
    /// # Examples
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
    ///         std::future::pending::<()>().await; // never finishes cleaning up
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let options = ChildOptions::new().stop_deadline(Duration::from_secs(5));
    /// let stuck = taskthread::spawn_with(Stuck, options);
    /// stuck.stop();
    /// assert!(matches!(stuck.join().await, Exit::Aborted { .. }));
    /// # }
    /// ```
    pub fn stop_deadline(mut self, deadline: Duration) -> Self {
        self.stop_deadline = StopDeadline::After(deadline);
        self
    }

    /// No stop deadline: a stop waits as long as it takes. Children inherit this too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    ///
    /// struct Slow;
    ///
    /// #[taskthread]
    /// impl Slow {
    ///     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
    ///         tokio::time::sleep(Duration::from_secs(60)).await; // past the default 30 s
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let slow = taskthread::spawn_with(Slow, ChildOptions::new().no_stop_deadline());
    /// slow.stop();
    /// assert!(matches!(slow.join().await, Exit::Stopped));
    /// # }
    /// ```
    pub fn no_stop_deadline(mut self) -> Self {
        self.stop_deadline = StopDeadline::Never;
        self
    }

    /// How many [`spawn_blocking`](crate::Ctx::spawn_blocking) jobs of this thread run at
    /// once; more wait their turn, in order. By default
    /// [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT); not inherited by children.
    ///
    /// # Panics
    /// If `limit` is 0: no job could ever run.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Squares;
    ///
    /// #[taskthread(up = u64)]
    /// impl Squares {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         for n in 1..=3u64 {
    ///             ctx.spawn_blocking(move || n * n); // one at a time, in order
    ///         }
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn square(&mut self, ctx: &mut Ctx<Self>, sq: u64) -> Result<()> {
    ///         ctx.up(sq).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut squares = taskthread::spawn_with(Squares, ChildOptions::new().blocking_limit(1));
    /// for expected in [1, 4, 9] {
    ///     assert_eq!(squares.recv().await, Some(expected));
    /// }
    /// # }
    /// ```
    #[track_caller]
    pub fn blocking_limit(mut self, limit: usize) -> Self {
        assert!(limit > 0, "a blocking limit must be at least 1");
        self.blocking_limit = Some(limit);
        self
    }
}

impl<T: Thread> ChildRef<T> {
    /// The address of a child if it is a `T`.
    pub(crate) fn downcast(child: Arc<dyn ChildNode>) -> Option<Self> {
        let node = child
            .into_any()
            .downcast::<Node<DownQueue<T::Down>>>()
            .ok()?;
        Some(Self { node })
    }
}

impl<T: Thread> Ctx<T> {
    /// The address of the child with this id, if it is alive and of type `C`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Find;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn find(&mut self, ctx: &mut Ctx<Self>, _f: Find) -> Result<(bool, bool)> {
    ///         let id = ctx.spawn(Worker).id();
    ///         Ok((ctx.child::<Worker>(id).is_some(), ctx.child::<Team>(id).is_some()))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Find).await.unwrap(), (true, false)); // a `Worker`, not a `Team`
    /// # }
    /// ```
    pub fn child<C: Thread>(&self, id: ChildId) -> Option<ChildRef<C>> {
        ChildRef::downcast(self.node().child(id)?)
    }

    /// The addresses of all live children of type `C`, in spawn order.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Db;
    /// # #[taskthread] impl Db {}
    /// # struct Web;
    /// # #[taskthread] impl Web {}
    ///
    /// struct Webs;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn webs(&mut self, ctx: &mut Ctx<Self>, _w: Webs) -> Result<Vec<String>> {
    ///         ctx.spawn(Web);
    ///         ctx.spawn(Db);
    ///         ctx.spawn(Web);
    ///         Ok(ctx.children_of::<Web>().iter().map(|w| w.name().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(Webs).await.unwrap(), ["web", "web-2"]);
    /// # }
    /// ```
    pub fn children_of<C: Thread>(&self) -> Vec<ChildRef<C>> {
        self.node()
            .children_now()
            .into_iter()
            .filter_map(ChildRef::downcast)
            .collect()
    }

    /// Sends a clone of `msg` to every live child of type `C`; returns how many accepted it.
    ///
    /// Children that are stopping refuse it and are not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread]
    /// # impl Worker {
    /// #     #[down]
    /// #     async fn reload(&mut self, _ctx: &mut Ctx<Self>, _r: Reload) {}
    /// # }
    ///
    /// #[derive(Clone)]
    /// struct Reload;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn reload(&mut self, ctx: &mut Ctx<Self>, r: Reload) -> Result<usize> {
    ///         for _ in 0..3 {
    ///             ctx.spawn(Worker);
    ///         }
    ///         Ok(ctx.broadcast::<Worker, _>(r).await)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Reload).await.unwrap(), 3);
    /// # }
    /// ```
    pub async fn broadcast<C, M>(&self, msg: M) -> usize
    where
        C: Accepts<M>,
        M: Clone,
    {
        let mut accepted = 0;
        for child in self.node().children_now() {
            if let Some(queue) = child
                .node()
                .queue
                .as_any()
                .downcast_ref::<DownQueue<C::Down>>()
                && queue.send(C::__wrap(msg.clone())).await.is_ok()
            {
                accepted += 1;
            }
        }
        accepted
    }
}
