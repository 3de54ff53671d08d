//! [`Ctx`]: a thread's handle on the tree — send UP, address and stop its children,
//! schedule its tasks, attach streams and background work. Spawning and supervising
//! children are added by the layers that run them (`Ctx::spawn` in the loop's module,
//! `Ctx::supervise` in `supervise`), and addressing children by type next to [`ChildRef`].
//!
//! [`ChildRef`]: crate::ChildRef

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{SendError, TrySendError};
use crate::exit::{ChildId, ThreadState};
use crate::family::{Drained, Family};
use crate::node::{ChildNode, Node, TreeSnapshot};
use crate::port::{Inbound, UpPort};
use crate::queue::{InboxSender, Refused};
use crate::reschedule::{TaskRef, Timetable};
use crate::thread::{HandlesStream, Thread};

/// The family of a thread of type `T`.
pub(crate) type FamilyOf<T> = Family<T, <T as Thread>::Event>;

/// A brief description of a child, from [`Ctx::children`].
#[derive(Clone)]
pub struct ChildInfo {
    child: Arc<dyn ChildNode>,
}

impl ChildInfo {
    /// The child's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Check;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn check(&mut self, ctx: &mut Ctx<Self>, _c: Check) -> Result<bool> {
    ///         let worker = ctx.spawn(Worker);
    ///         let info = ctx.children().next().unwrap();
    ///         Ok(info.id() == worker.id())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert!(team.ask(Check).await.unwrap());
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.child.node().id
    }

    /// Its name among its siblings, e.g. `tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Names;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn names(&mut self, ctx: &mut Ctx<Self>, _n: Names) -> Result<Vec<String>> {
    ///         ctx.spawn(Worker);
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.name().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Names).await.unwrap(), ["worker", "worker-2"]);
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.child.node().name()
    }

    /// Its path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Paths;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn paths(&mut self, ctx: &mut Ctx<Self>, _p: Paths) -> Result<Vec<String>> {
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.path().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Paths).await.unwrap(), ["team/worker"]);
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        self.child.node().path()
    }

    /// Its type, e.g. `"TcpConnection"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Types;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn types(&mut self, ctx: &mut Ctx<Self>, _t: Types) -> Result<Vec<&'static str>> {
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.type_name()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Types).await.unwrap(), ["Worker"]);
    /// # }
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.child.node().meta.type_name
    }

    /// Where it is in its lifecycle now.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::ThreadState;
    /// # struct Ping;
    /// # struct Worker;
    /// # #[taskthread]
    /// # impl Worker {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<bool> { Ok(true) }
    /// # }
    ///
    /// struct States;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn states(&mut self, ctx: &mut Ctx<Self>, _s: States) -> Result<Vec<ThreadState>> {
    ///         let worker = ctx.spawn(Worker);
    ///         worker.ask(Ping).await?; // answered: it has started
    ///         Ok(ctx.children().map(|c| c.state()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(States).await.unwrap(), [ThreadState::Running]);
    /// # }
    /// ```
    pub fn state(&self) -> ThreadState {
        self.child.node().state()
    }
}

impl fmt::Debug for ChildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildInfo")
            .field("id", &self.id())
            .field("path", &self.path())
            .field("type_name", &self.type_name())
            .field("state", &self.state())
            .finish()
    }
}

/// A thread's context: everything a handler does to the tree goes through it.
///
/// Every handler, hook and task of a thread `T` receives `&mut Ctx<T>` next to `&mut self`.
/// Through it the thread sends UP to its parent, spawns, finds and addresses its children,
/// starts and cancels its `#[rescheduling]` tasks, and attaches streams and background work
/// whose results come back to its `#[stream]` handlers.
pub struct Ctx<T: Thread> {
    node: Arc<Node>,
    up: Arc<dyn UpPort<T::Up>>,
    family: Option<Box<FamilyOf<T>>>,
    timetable: Timetable,
    stopping: bool,
    completed: bool,
}

impl<T: Thread> fmt::Debug for Ctx<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("path", self.node.path())
            .field("children", &self.child_count())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl<T: Thread> Ctx<T> {
    /// This thread's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct WhoAmI;
    /// struct Server;
    ///
    /// #[taskthread]
    /// impl Server {
    ///     #[down]
    ///     async fn who(&mut self, ctx: &mut Ctx<Self>, _q: WhoAmI) -> Result<ChildId> {
    ///         Ok(ctx.id())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(Server);
    /// assert_eq!(server.ask(WhoAmI).await.unwrap(), server.id());
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.node.id
    }

    /// This thread's name among its siblings.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Name;
    /// struct TcpServer;
    ///
    /// #[taskthread]
    /// impl TcpServer {
    ///     #[down]
    ///     async fn name(&mut self, ctx: &mut Ctx<Self>, _q: Name) -> Result<String> {
    ///         Ok(ctx.name().to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(TcpServer);
    /// assert_eq!(server.ask(Name).await.unwrap(), "tcp_server"); // the type in snake case
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// This thread's path in the tree, e.g. `master/tcp_server/conn-17`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Conn;
    ///
    /// #[taskthread(up = String)]
    /// impl Conn {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up(ctx.path().to_owned()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # struct Master;
    /// # #[taskthread(up = String)]
    /// # impl Master {
    /// #     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    /// #         ctx.spawn(Conn);
    /// #         Ok(())
    /// #     }
    /// #     #[up]
    /// #     async fn path(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, p: String) -> Result<()> {
    /// #         ctx.up(p).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Master` spawns a `Conn` and sends what it hears UP.
    /// let mut master = taskthread::spawn(Master);
    /// assert_eq!(master.recv().await.unwrap(), "master/conn");
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Whether this thread is stopping (draining its queue, stopping its children).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Finish;
    /// struct Job;
    ///
    /// #[taskthread(up = bool)]
    /// impl Job {
    ///     #[down]
    ///     async fn finish(&mut self, ctx: &mut Ctx<Self>, _f: Finish) -> Result<()> {
    ///         ctx.up(ctx.is_stopping()).await?;
    ///         ctx.stop();
    ///         ctx.up(ctx.is_stopping()).await?; // stops once this handler returns
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut job = taskthread::spawn(Job);
    /// job.send(Finish).await.unwrap();
    /// assert_eq!(job.recv().await, Some(false));
    /// assert_eq!(job.recv().await, Some(true));
    /// # }
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.stopping || self.completed
    }

    /// A snapshot of this thread's subtree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::TreeSnapshot;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Census;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn census(&mut self, ctx: &mut Ctx<Self>, _c: Census) -> Result<TreeSnapshot> {
    ///         ctx.spawn(Worker);
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.snapshot())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// let snapshot = team.ask(Census).await.unwrap();
    /// assert_eq!(snapshot.len(), 3); // the team and its two workers
    /// assert!(snapshot.find("team/worker-2").is_some());
    /// # }
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.node.snapshot()
    }

    // ---- UP -------------------------------------------------------------------------------

    /// Sends a message UP to the parent, waiting while the parent's queue is full.
    ///
    /// Fails, giving the message back, if the parent no longer exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Squarer;
    ///
    /// #[taskthread(up = u64)]
    /// impl Squarer {
    ///     #[down]
    ///     async fn square(&mut self, ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
    ///         ctx.up(n * n).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A root's UP messages go to its handle.
    /// let mut squarer = taskthread::spawn(Squarer);
    /// squarer.send(7u64).await.unwrap();
    /// assert_eq!(squarer.recv().await, Some(49));
    /// # }
    /// ```
    pub async fn up(&self, msg: T::Up) -> Result<(), SendError<T::Up>> {
        let from = self.node.id;
        match self.up.try_send(from, msg) {
            Ok(()) => Ok(()),
            // The parent's queue is full: wait for room.
            Err(TrySendError::Full(msg)) => match self.up.meter().take().await {
                Ok(()) => {
                    self.up.send_permitted(from, msg);
                    Ok(())
                }
                Err(_) => Err(SendError::new(msg, self.up.target())),
            },
            Err(TrySendError::Ended(msg)) => Err(SendError::new(msg, self.up.target())),
        }
    }

    /// Sends a message UP if the parent's queue has room now.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::TrySendError;
    ///
    /// struct Burst;
    /// struct Sensor;
    ///
    /// #[taskthread(up = u32)]
    /// impl Sensor {
    ///     #[down]
    ///     async fn burst(&mut self, ctx: &mut Ctx<Self>, _b: Burst) -> Result<Option<u32>> {
    ///         ctx.try_up(1)?;
    ///         match ctx.try_up(2) {
    ///             Err(TrySendError::Full(n)) => Ok(Some(n)), // no room: the message comes back
    ///             _ => Ok(None),
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Room for one UP message only.
    /// let mut sensor = taskthread::spawn_with(Sensor, ChildOptions::new().capacity(1));
    /// assert_eq!(sensor.ask(Burst).await.unwrap(), Some(2));
    /// assert_eq!(sensor.recv().await, Some(1));
    /// # }
    /// ```
    pub fn try_up(&self, msg: T::Up) -> Result<(), TrySendError<T::Up>> {
        self.up.try_send(self.node.id, msg)
    }

    // ---- children -------------------------------------------------------------------------

    /// All live children, in spawn order.
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
    /// struct List;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn list(&mut self, ctx: &mut Ctx<Self>, _l: List) -> Result<Vec<String>> {
    ///         ctx.spawn(Db);
    ///         ctx.spawn(Web);
    ///         Ok(ctx.children().map(|c| format!("{} {}", c.type_name(), c.path())).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(List).await.unwrap(), ["Db app/db", "Web app/web"]);
    /// # }
    /// ```
    pub fn children(&self) -> impl ExactSizeIterator<Item = ChildInfo> + use<T> {
        self.node
            .children_now()
            .into_iter()
            .map(|child| ChildInfo { child })
    }

    /// The number of live children.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Count;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn count(&mut self, ctx: &mut Ctx<Self>, _c: Count) -> Result<usize> {
    ///         for _ in 0..3 {
    ///             ctx.spawn(Worker);
    ///         }
    ///         Ok(ctx.child_count())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Count).await.unwrap(), 3);
    /// # }
    /// ```
    pub fn child_count(&self) -> usize {
        self.family.as_ref().map_or(0, |f| f.child_count())
    }

    /// Asks the child with this id to stop gracefully; `false` if there is no such child.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Fire;
    /// struct Boss;
    ///
    /// #[taskthread(up = String)]
    /// impl Boss {
    ///     #[down]
    ///     async fn fire(&mut self, ctx: &mut Ctx<Self>, _f: Fire) -> Result<bool> {
    ///         let worker = ctx.spawn(Worker);
    ///         Ok(ctx.stop_child(worker.id()))
    ///     }
    ///
    ///     #[up]
    ///     async fn exited(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
    ///         ctx.up(exit.to_string()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut boss = taskthread::spawn(Boss);
    /// assert!(boss.ask(Fire).await.unwrap());
    /// assert_eq!(boss.recv().await.unwrap(), "`boss/worker` (Worker) stopped");
    /// # }
    /// ```
    pub fn stop_child(&self, id: ChildId) -> bool {
        match self.node.child(id) {
            Some(child) => {
                child.node().request_stop();
                true
            }
            None => false,
        }
    }

    // ---- lifecycle ----------------------------------------------------------------------

    /// Stops this thread gracefully once the current handler returns; it will end as
    /// [`Exit::Completed`](crate::Exit::Completed).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Quit;
    /// struct Session;
    ///
    /// #[taskthread]
    /// impl Session {
    ///     #[down]
    ///     async fn quit(&mut self, ctx: &mut Ctx<Self>, _q: Quit) {
    ///         ctx.stop();
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let session = taskthread::spawn(Session);
    /// session.send(Quit).await.unwrap();
    /// assert!(matches!(session.join().await, Exit::Completed));
    /// # }
    /// ```
    pub fn stop(&mut self) {
        if !self.stopping {
            self.completed = true;
        }
    }

    // ---- tasks ------------------------------------------------------------------------

    /// Starts a `#[rescheduling]` task that is not scheduled (a `manual` one, or one that
    /// returned [`Done`](crate::Reschedule::Done)); it first runs after its `delay`.
    /// Starting a scheduled task does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Go;
    /// struct Backup;
    ///
    /// #[taskthread(up = String)]
    /// impl Backup {
    ///     #[down]
    ///     async fn go(&mut self, ctx: &mut Ctx<Self>, _g: Go) {
    ///         ctx.start_task(Self::RUN);
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up("backed up".to_owned()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut backup = taskthread::spawn(Backup);
    /// backup.send(Go).await.unwrap();
    /// assert_eq!(backup.recv().await.unwrap(), "backed up");
    /// # }
    /// ```
    pub fn start_task(&mut self, task: TaskRef<T>) {
        if !self.stopping {
            self.timetable.start(task.index(), Instant::now());
        }
    }

    /// Schedules the task's next run `after` from now, replacing its schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use tokio::time::Instant;
    ///
    /// struct Snooze(u64);
    /// struct Alarm;
    ///
    /// #[taskthread(up = Instant)]
    /// impl Alarm {
    ///     #[down]
    ///     async fn snooze(&mut self, ctx: &mut Ctx<Self>, Snooze(secs): Snooze) {
    ///         ctx.reschedule_task(Self::RING, Duration::from_secs(secs));
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn ring(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up(Instant::now()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut alarm = taskthread::spawn(Alarm);
    /// let start = Instant::now();
    /// alarm.send(Snooze(60)).await.unwrap();
    /// assert_eq!((alarm.recv().await.unwrap() - start).as_secs(), 60);
    /// # }
    /// ```
    pub fn reschedule_task(&mut self, task: TaskRef<T>, after: Duration) {
        if !self.stopping {
            self.timetable
                .schedule(task.index(), Instant::now() + after);
        }
    }

    /// Schedules the task's next run at `at`, replacing its schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use tokio::time::Instant;
    ///
    /// struct RingAt(Instant);
    /// struct Alarm;
    ///
    /// #[taskthread(up = Instant)]
    /// impl Alarm {
    ///     #[down]
    ///     async fn ring_at(&mut self, ctx: &mut Ctx<Self>, RingAt(at): RingAt) {
    ///         ctx.reschedule_task_at(Self::RING, at);
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn ring(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up(Instant::now()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut alarm = taskthread::spawn(Alarm);
    /// let at = Instant::now() + Duration::from_secs(3600);
    /// alarm.send(RingAt(at)).await.unwrap();
    /// assert!(alarm.recv().await.unwrap() >= at);
    /// # }
    /// ```
    pub fn reschedule_task_at(&mut self, task: TaskRef<T>, at: Instant) {
        if !self.stopping {
            self.timetable.schedule(task.index(), at);
        }
    }

    /// Cancels the task's next run. A run in progress finishes; its return value is then
    /// ignored. Start it again with [`start_task`](Self::start_task).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Pause;
    /// struct Heartbeat;
    ///
    /// #[taskthread]
    /// impl Heartbeat {
    ///     #[rescheduling(every = "1s")]
    ///     async fn beat(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
    ///         Reschedule::Again
    ///     }
    ///
    ///     #[down]
    ///     async fn pause(&mut self, ctx: &mut Ctx<Self>, _p: Pause) -> Result<(bool, bool)> {
    ///         let before = ctx.is_task_scheduled(Self::BEAT);
    ///         ctx.cancel_task(Self::BEAT);
    ///         Ok((before, ctx.is_task_scheduled(Self::BEAT)))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let heart = taskthread::spawn(Heartbeat);
    /// assert_eq!(heart.ask(Pause).await.unwrap(), (true, false));
    /// # }
    /// ```
    pub fn cancel_task(&mut self, task: TaskRef<T>) {
        self.timetable.cancel(task.index());
    }

    /// Whether the task has a next run scheduled.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Arm;
    /// struct Alarm;
    ///
    /// #[taskthread]
    /// impl Alarm {
    ///     #[down]
    ///     async fn arm(&mut self, ctx: &mut Ctx<Self>, _a: Arm) -> Result<(bool, bool)> {
    ///         let before = ctx.is_task_scheduled(Self::RING); // `manual`: not yet
    ///         ctx.start_task(Self::RING);
    ///         Ok((before, ctx.is_task_scheduled(Self::RING)))
    ///     }
    ///
    ///     #[rescheduling(manual, delay = "1h")]
    ///     async fn ring(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
    ///         Reschedule::Done
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let alarm = taskthread::spawn(Alarm);
    /// assert_eq!(alarm.ask(Arm).await.unwrap(), (false, true));
    /// # }
    /// ```
    pub fn is_task_scheduled(&self, task: TaskRef<T>) -> bool {
        self.timetable.is_scheduled(task.index())
    }

    /// How many times the task has run (or started running).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Poller;
    ///
    /// #[taskthread(up = u64)]
    /// impl Poller {
    ///     #[rescheduling]
    ///     async fn poll(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         let runs = ctx.task_runs(Self::POLL); // this run included
    ///         if runs == 3 {
    ///             ctx.up(runs).await?;
    ///             return Ok(Reschedule::Done);
    ///         }
    ///         Ok(Reschedule::Now)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut poller = taskthread::spawn(Poller);
    /// assert_eq!(poller.recv().await, Some(3));
    /// # }
    /// ```
    pub fn task_runs(&self, task: TaskRef<T>) -> u64 {
        self.timetable.runs(task.index())
    }

    // ---- streams and background work ---------------------------------------------------

    /// Forwards every item of `stream` to this thread's `#[stream]` handler for its type.
    ///
    /// The stream is polled on its own task, so waiting for it never blocks the loop; items
    /// wait in the inbound queue (backpressure). When the thread starts stopping, attached
    /// streams are dropped: they are inputs, like the DOWN queue. Every item the stream has
    /// produced is still handled: an item is never held back waiting for room (with no
    /// room, it is queued anyway and the stream is read again only once there is room), so
    /// none is lost when the stream is dropped. (A [`JobPool`](crate::jobs::JobPool) whose
    /// results must all be handled at stop is made with
    /// [`JobPool::new_in`](crate::jobs::JobPool::new_in) instead.)
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # use std::pin::Pin;
    /// # use std::task::{Context, Poll};
    /// # /// Any iterator as a `Stream` (in real code: tokio-stream, a socket, a channel).
    /// # struct IterStream<I>(I);
    /// # impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    /// #     type Item = I::Item;
    /// #     fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
    /// #         Poll::Ready(self.get_mut().0.next())
    /// #     }
    /// # }
    ///
    /// struct Lines;
    ///
    /// #[taskthread(up = String)]
    /// impl Lines {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.attach(IterStream(["alpha", "beta"].into_iter().map(String::from)));
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn line(&mut self, ctx: &mut Ctx<Self>, line: String) -> Result<()> {
    ///         ctx.up(line.to_uppercase()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut lines = taskthread::spawn(Lines);
    /// assert_eq!(lines.recv().await.unwrap(), "ALPHA");
    /// assert_eq!(lines.recv().await.unwrap(), "BETA");
    /// # }
    /// ```
    pub fn attach<S>(&mut self, stream: S)
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: HandlesStream<S::Item>,
    {
        if self.stopping {
            tracing::warn!("attach called while stopping: the stream is dropped unread");
            return;
        }
        let family = self.family();
        let forward = forward_stream::<T, S>(family.sender(), stream);
        family.spawn_stream(forward.in_current_span());
    }

    /// Like [`attach`](Self::attach), but the input is drained rather than dropped when the
    /// thread stops: `source` is told to end its stream, and the thread handles every item
    /// until the stream ends, before `exit`. The seam for extensions whose work belongs to
    /// the thread, such as a [`JobPool`](crate::jobs::JobPool) made with
    /// [`JobPool::new_in`](crate::jobs::JobPool::new_in).
    pub(crate) fn attach_drained<S>(&mut self, stream: S, source: Box<dyn Drained>)
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: HandlesStream<S::Item>,
    {
        let stopping = self.stopping;
        let family = self.family();
        let forward = forward_stream::<T, S>(family.sender(), stream);
        family.spawn_drained(forward.in_current_span(), source, stopping);
    }

    /// Runs `future` on its own task and delivers its output to this thread's `#[stream]`
    /// handler for its type.
    ///
    /// The task belongs to the thread: a stopping thread waits for it (and handles its
    /// result) before running `exit`. A panic in it fails the thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    ///
    /// /// The result of a slow fetch.
    /// struct Fetched(u32);
    /// struct Fetcher;
    ///
    /// #[taskthread(up = u32)]
    /// impl Fetcher {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn_task(async {
    ///             tokio::time::sleep(Duration::from_secs(5)).await; // the loop goes on meanwhile
    ///             Fetched(42)
    ///         });
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn fetched(&mut self, ctx: &mut Ctx<Self>, Fetched(n): Fetched) -> Result<()> {
    ///         ctx.up(n).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut fetcher = taskthread::spawn(Fetcher);
    /// assert_eq!(fetcher.recv().await, Some(42));
    /// # }
    /// ```
    pub fn spawn_task<F>(&mut self, future: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        T: HandlesStream<F::Output>,
    {
        let family = self.family();
        let tx = family.sender();
        let task = async move {
            let output = future.await;
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family.spawn_job(task.in_current_span());
    }

    /// Runs blocking code on tokio's blocking pool and delivers its result to this thread's
    /// `#[stream]` handler for its type.
    ///
    /// At most [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT) jobs of this thread
    /// run at once (or the thread's [`ChildOptions::blocking_limit`](crate::ChildOptions::blocking_limit)); the others wait their
    /// turn, in order, without holding up the loop, and start as earlier ones finish.
    ///
    /// Blocking code cannot be interrupted: a stopping thread waits for it, and for the jobs
    /// still waiting their turn. An abort cancels the jobs that have not started and leaves
    /// the running ones to finish on their own.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// /// The result of a blocking computation.
    /// struct Checksum(u32);
    /// struct Hasher;
    ///
    /// #[taskthread(up = u32)]
    /// impl Hasher {
    ///     #[down]
    ///     async fn hash(&mut self, ctx: &mut Ctx<Self>, data: Vec<u8>) {
    ///         ctx.spawn_blocking(move || Checksum(data.iter().map(|&b| u32::from(b)).sum()));
    ///     }
    ///
    ///     #[stream]
    ///     async fn checksum(&mut self, ctx: &mut Ctx<Self>, Checksum(sum): Checksum) -> Result<()> {
    ///         ctx.up(sum).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut hasher = taskthread::spawn(Hasher);
    /// hasher.send(vec![1u8, 2, 3]).await.unwrap();
    /// assert_eq!(hasher.recv().await, Some(6));
    /// # }
    /// ```
    pub fn spawn_blocking<F, R>(&mut self, f: F)
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
        T: HandlesStream<R>,
    {
        let limit = self.node.blocking_limit;
        let family = self.family();
        let tx = family.sender();
        let span = tracing::Span::current();
        let job = move || {
            let _entered = span.enter();
            let output = f();
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family.spawn_blocking(limit, job);
    }

    // ---- the loop's view: what the layers that run a thread use ------------------------

    pub(crate) fn new(node: Arc<Node>, up: Arc<dyn UpPort<T::Up>>) -> Self {
        Self {
            node,
            up,
            family: None,
            timetable: Timetable::new(T::TASKS),
            stopping: false,
            completed: false,
        }
    }

    /// A fresh context for the next life of a supervised thread: same node, same port.
    pub(crate) fn renew(self) -> Self {
        Self::new(self.node, self.up)
    }

    /// The thread's node.
    #[inline]
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The thread's way UP.
    pub(crate) fn up_port(&self) -> &Arc<dyn UpPort<T::Up>> {
        &self.up
    }

    /// Gives up the context for its port, to report the exit through it.
    pub(crate) fn into_port(self) -> Arc<dyn UpPort<T::Up>> {
        self.up
    }

    /// The family, made on first use.
    pub(crate) fn family(&mut self) -> &mut FamilyOf<T> {
        Family::made(&mut self.family, &self.node)
    }

    /// The family (made on first use) beside this thread's node, borrowed together.
    pub(crate) fn family_and_node(&mut self) -> (&mut FamilyOf<T>, &Arc<Node>) {
        (Family::made(&mut self.family, &self.node), &self.node)
    }

    /// The family, if the thread has made one.
    #[inline]
    pub(crate) fn family_if_any(&mut self) -> Option<&mut FamilyOf<T>> {
        self.family.as_deref_mut()
    }

    #[inline]
    pub(crate) fn has_family(&self) -> bool {
        self.family.is_some()
    }

    #[inline]
    pub(crate) fn timetable(&mut self) -> &mut Timetable {
        &mut self.timetable
    }

    /// Whether the stop sequence has begun.
    #[inline]
    pub(crate) fn stop_begun(&self) -> bool {
        self.stopping
    }

    /// Whether the thread asked to end ([`stop`](Self::stop) or a task's `Stop`).
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        self.completed
    }

    /// Begins the stop sequence: the tasks are cancelled and the streams dropped.
    pub(crate) fn begin_stopping(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.node.set_state(ThreadState::Stopping);
        self.timetable.cancel_all();
        if let Some(family) = &mut self.family {
            family.stop_streams();
        }
    }

    /// Whether nothing of the thread's family is left: no child, no job, no queued event.
    pub(crate) fn family_idle(&self) -> bool {
        self.family.as_ref().is_none_or(|f| f.is_idle())
    }
}

/// The task that forwards a stream's items into a thread's inbound queue, each to the
/// `#[stream]` handler of its type.
async fn forward_stream<T, S>(tx: InboxSender<Inbound<T::Event>>, stream: S)
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    T: Thread + HandlesStream<S::Item>,
{
    let mut stream = pin!(stream);
    // An item is never held while waiting, so stopping (which cancels this task)
    // never loses one that was already read, and an idle stream holds no room in
    // the queue. With no room when an item comes, it is queued anyway (one over the
    // capacity at most, per stream) and the stream is read again only once there
    // is room.
    while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match tx.meter().try_take() {
            Ok(()) => tx.send_permitted(Inbound::Event(T::__wrap_item(item))),
            Err(Refused::Closed) => break,
            Err(Refused::Full) => {
                tx.send_unmetered(Inbound::Output(T::__wrap_item(item)));
                if tx.meter().wait_for_room().await.is_err() {
                    break;
                }
            }
        }
    }
}
