//! [`ChildOptions`]: the options a thread is spawned with.

use std::borrow::Cow;
use std::time::Duration;

/// Options for spawning a thread: name, queue capacity, stop stage, stop deadline, blocking
/// limit, runtime.
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
    pub(crate) runtime: Option<tokio::runtime::Handle>,
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
    /// Names are not reused: a parent keeps each name it has given, and how many children
    /// had it, for as long as it runs. A parent that gives each child a name of its own
    /// (`format!("conn-{id}")`) keeps one entry per child it ever had; give such children
    /// one shared name, and the suffix numbers them for free.
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

    /// The capacity of the thread's DOWN queue and of its inbound queue. A DOWN queue holds
    /// at most 2³¹ − 1 messages: a larger capacity (`usize::MAX`, say) is taken as that.
    /// The inbound queue's capacity is in places its children and streams share; each
    /// child also has one place of its own there (see [`Ctx::up`](crate::Ctx::up)).
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

    /// The capacity set with [`capacity`](Self::capacity), or `None` when the thread takes
    /// its type's (`#[taskthread(capacity = N)]`, else [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY)).
    ///
    /// ```
    /// use taskthread::ChildOptions;
    ///
    /// assert_eq!(ChildOptions::new().chosen_capacity(), None);
    /// assert_eq!(ChildOptions::new().capacity(8).chosen_capacity(), Some(8));
    /// ```
    pub fn chosen_capacity(&self) -> Option<usize> {
        self.capacity
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

    /// The tokio runtime the thread's task runs on. By default a child runs on its parent's
    /// runtime, and a root on the runtime it is spawned from. Its own children run on the
    /// runtime it runs on unless their options say otherwise, and so do its jobs (from
    /// [`spawn_task`](crate::Ctx::spawn_task), [`spawn_blocking`](crate::Ctx::spawn_blocking),
    /// a [`JobPool::new_in`](crate::jobs::JobPool::new_in)) and the tasks that forward its
    /// streams, even when started from code that has entered another runtime
    /// ([`Handle::enter`](tokio::runtime::Handle::enter)). [`Cores`](crate::Cores) gives one
    /// current-thread runtime per core to spread threads over.
    ///
    /// A thread on another runtime is a thread like any other: its messages, stop, exit
    /// report and supervision work as they do on its parent's runtime. Its timers are that
    /// runtime's, which must have tokio's time driver enabled (`enable_time` or
    /// `enable_all`; [`Cores`](crate::Cores) does). A paused clock (`start_paused`) holds
    /// only its own runtime: it does not hold the thread's timers, and a parent on it, when
    /// idle, moves its clock on to its own next timer (a stop deadline, say) while the thread
    /// on the other runtime still works, so keep paused clocks for trees on one runtime.
    ///
    /// The runtime must run until the thread has ended. One shut down first cancels the
    /// thread's task: the thread ends as [`Exit::Aborted`](crate::Exit::Aborted), without its
    /// exit hook, and its parent hears of it so.
    ///
    /// A root spawned with a runtime may be spawned from outside any runtime. A
    /// [pool](crate::pool) placed on a runtime starts its workers on that runtime, unless
    /// [`spread_over`](crate::pool::WorkerPool::spread_over) spreads them over others.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Where;
    ///
    /// #[taskthread]
    /// impl Where {
    ///     #[down]
    ///     async fn name(&mut self, _ctx: &mut Ctx<Self>, _q: ()) -> Result<String> {
    ///         Ok(std::thread::current().name().unwrap_or_default().to_owned())
    ///     }
    /// }
    ///
    /// let cores = taskthread::Cores::new(2).unwrap();
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(async {
    ///     let options = ChildOptions::new().runtime(cores.next_handle());
    ///     let on_core = taskthread::spawn_with(Where, options);
    ///     assert_eq!(on_core.ask(()).await.unwrap(), "tt-core-0");
    ///     on_core.stop();
    ///     assert!(matches!(on_core.join().await, Exit::Stopped));
    /// });
    /// ```
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }
}
