//! [`Ctx`]: a thread's handle on the tree. This module holds the context itself, who the
//! thread is, its way UP and its own stop; each other capability is added next to what it
//! works with: spawning in the loop (`driver/spawn.rs`), supervising in `supervise`, the
//! children's listing and lookups next to [`ChildRef`] (`child/family.rs`), the tasks in
//! `tasks.rs`, streams and background work in `work.rs`.
//!
//! [`ChildRef`]: crate::ChildRef

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{SendError, TrySendError};
use crate::exit::{ChildId, Exit, ExitReport, ThreadState};
use crate::family::{Family, FamilySlot};
use crate::node::{Node, TreeSnapshot, closes_cycle};
use crate::port::UpPort;
use crate::queue::inbound::Take;
use crate::queue::{DownQueue, HoldsOwnPlace};
use crate::record::{self, EventKind, recording};
use crate::reschedule::Timetable;
use crate::thread::{SendsUp, Thread};
use crate::wait::WaitKind;

/// The family of a thread of type `T`.
pub(crate) type FamilyOf<T> = Family<T, <T as Thread>::Event>;

/// The future of [`Ctx::up`]: resolves once the message is in the parent's queue, or gives
/// it back in the error if the parent no longer exists.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct UpFuture<'a, T: Thread> {
    ctx: &'a Ctx<T>,
    msg: Option<T::Up>,
    /// Waiting for a place in the parent's full queue.
    wait: Option<Take<'a>>,
}

// The message is only moved, never pinned.
impl<T: Thread> Unpin for UpFuture<'_, T> {}

impl<T: Thread> Future for UpFuture<'_, T> {
    type Output = Result<(), SendError<T::Up>>;

    /// The fast path, inlined into the handler: a place now, or the parent gone. Only a
    /// full queue goes on to the out-of-line wait.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.wait.is_none()
            && let Some(msg) = this.msg.take()
        {
            let ctx = this.ctx;
            match ctx.up.try_send(ctx.node.id, msg) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(TrySendError::Ended(msg)) => {
                    return Poll::Ready(Err(SendError::new(msg, ctx.up.target())));
                }
                // The parent's queue is full: this thread's own place there, if it is
                // free, or wait for room.
                Err(TrySendError::Full(msg)) => match ctx.up_in_own_place(msg) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(TrySendError::Ended(msg)) => {
                        return Poll::Ready(Err(SendError::new(msg, ctx.up.target())));
                    }
                    Err(TrySendError::Full(msg)) => {
                        this.msg = Some(msg);
                        this.wait = Some(ctx.up.meter().take(ctx.node.id.as_u64()));
                    }
                },
            }
        }
        this.wait(cx)
    }
}

impl<T: Thread> UpFuture<'_, T> {
    /// The slow path: waiting for a place in the parent's full queue.
    #[inline(never)]
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T::Up>>> {
        let Some(wait) = self.wait.as_mut() else {
            unreachable!("an UP send polled after it finished")
        };
        let Poll::Ready(room) = Pin::new(&mut *wait).poll(cx) else {
            return if wait.newly_blocked() {
                self.blocked()
            } else {
                Poll::Pending
            };
        };
        // Woken among greedy senders: this one is likely to go on sending, and takes the
        // places given back until its poll ends.
        let runs = room.is_ok() && crate::queue::inbound::may_run() && wait.will_run();
        self.wait = None;
        let ctx = self.ctx;
        let Some(msg) = self.msg.take() else {
            unreachable!("an UP send polled after it finished")
        };
        Poll::Ready(match room {
            Ok(()) => {
                if runs {
                    crate::queue::inbound::run(ctx.up.places());
                }
                ctx.up.send_permitted(ctx.node.id, msg);
                Ok(())
            }
            Err(_) => Err(SendError::new(msg, ctx.up.target())),
        })
    }
}

impl<T: Thread> UpFuture<'_, T> {
    /// The send has just started to wait for a place in the parent's queue (listed there
    /// with this thread's id): it fails if the parent waits on this thread.
    #[inline(never)]
    fn blocked(&mut self) -> Poll<Result<(), SendError<T::Up>>> {
        let ctx = self.ctx;
        if !ctx.node.may_be_waited_on() {
            return Poll::Pending; // the usual case: nobody waits on this thread
        }
        let Some(parent) = ctx.up.receiver() else {
            return Poll::Pending; // a root's handle is no thread
        };
        let Some(cycle) = closes_cycle(ctx.node(), WaitKind::Up, parent) else {
            return Poll::Pending;
        };
        self.wait = None;
        let Some(msg) = self.msg.take() else {
            unreachable!("an UP send polled after it finished")
        };
        Poll::Ready(Err(SendError::cycle_of(msg, ctx.up.target(), cycle)))
    }
}

impl<T: Thread> fmt::Debug for UpFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpFuture")
            .field("from", &self.ctx.node.path())
            .field("waiting", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

/// A thread's context: everything a handler does to the tree goes through it.
///
/// Every handler, hook and task of a thread `T` receives `&mut Ctx<T>` next to `&mut self`.
/// Through it the thread sends UP to its parent, spawns, finds and addresses its children,
/// starts and cancels its `#[rescheduling]` tasks, and attaches streams and background work
/// whose results come back to its `#[stream]` handlers.
pub struct Ctx<T: Thread> {
    /// Typed (a thin pointer), so the thread's task is a word smaller; [`node`](Self::node)
    /// gives the untyped view.
    node: Arc<Node<DownQueue<T::Down>>>,
    up: Arc<dyn UpPort<T::Up>>,
    family: FamilySlot<T, T::Event>,
    timetable: Timetable<T::Timetable>,
    stopping: bool,
    completed: bool,
    /// Whether the thread's end has been told: reported to its parent, or (a root's)
    /// returned by its task. A context dropped before that belongs to a task cancelled
    /// from outside (its runtime shut down), and reports the end itself.
    ended: bool,
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

impl<T: Thread> Drop for Ctx<T> {
    fn drop(&mut self) {
        if !self.ended {
            report_cancelled(self.node(), &*self.up);
        }
    }
}

/// The end of a thread whose task was dropped before it told its end: cancelled from
/// outside (the runtime it ran on shut down), unless an ancestor aborted it and said so
/// (its state is `Exited` then), or unwinding from a panic outside its handlers. Its
/// parent hears of it as an abort (or a panic); what was queued for it is dropped.
#[cold]
#[inline(never)]
fn report_cancelled<U>(node: &Node, up: &dyn UpPort<U>) {
    if !node.mark_exited() {
        // Aborted by an ancestor, which counted and recorded it.
        return;
    }
    let dropped = node.queue_depth();
    // A panic outside the thread's handlers and hooks (in dropping its state, say)
    // unwinds through the task: the thread did not end by a cancel.
    let exit = if std::thread::panicking() {
        Exit::Panicked("panicked outside its handlers, as its task ended".to_owned())
    } else {
        Exit::Aborted { dropped }
    };
    tracing::debug!(dropped, "thread ended before it could report: {exit}");
    if recording() {
        let detail = if matches!(exit, Exit::Aborted { .. }) {
            "cancelled"
        } else {
            "panicked"
        };
        record::event(&node.lazy_path(), EventKind::Failed, detail);
    }
    up.report(node.id, ExitReport::new(exit, dropped, false));
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
    /// The message is of the thread's up type, declared with `#[taskthread(up = Type)]`.
    /// Fails, giving the message back, if the parent no longer exists.
    ///
    /// The parent's inbound queue has its capacity in places its children share, and one
    /// place of each child's own: a message that finds the shared places all taken, with no
    /// sender waiting for one, goes in the child's own place if its last message there has
    /// been handed to the parent; otherwise it waits. So the queue holds at most one UP
    /// message per child beyond its capacity, a child does not go ahead of senders already
    /// waiting, and many children that each send once (as each starts, say) do not wait
    /// while none does. (A child of a `pass_up` thread or of a worker pool has its own
    /// place in the queue its messages reach.)
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
    pub fn up<M>(&self, msg: M) -> UpFuture<'_, T>
    where
        T: SendsUp<M>,
    {
        // A named future rather than an `async fn`: a message of another type is then
        // reported once, at the call, and not again at the `.await`.
        UpFuture {
            ctx: self,
            msg: Some(T::__into_up(msg)),
            wait: None,
        }
    }

    /// [`up`](Self::up) with a message of the up type itself.
    pub(crate) fn up_raw(&self, msg: T::Up) -> UpFuture<'_, T> {
        UpFuture {
            ctx: self,
            msg: Some(msg),
            wait: None,
        }
    }

    /// Sends a message UP if the parent's queue has room now: a shared place, or else this
    /// thread's own place, free and with nobody waiting (see [`up`](Self::up)).
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
    ///         ctx.try_up(1)?; // the one shared place
    ///         ctx.try_up(2)?; // the sensor's own place
    ///         match ctx.try_up(3) {
    ///             Err(TrySendError::Full(n)) => Ok(Some(n)), // no room: the message comes back
    ///             _ => Ok(None),
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // One shared place for UP messages.
    /// let mut sensor = taskthread::spawn_with(Sensor, ChildOptions::new().capacity(1));
    /// assert_eq!(sensor.ask(Burst).await.unwrap(), Some(3));
    /// assert_eq!(sensor.recv().await, Some(1));
    /// assert_eq!(sensor.recv().await, Some(2));
    /// # }
    /// ```
    pub fn try_up<M>(&self, msg: M) -> Result<(), TrySendError<T::Up>>
    where
        T: SendsUp<M>,
    {
        self.try_up_raw(T::__into_up(msg))
    }

    /// [`try_up`](Self::try_up) of a message of the up type itself.
    pub(crate) fn try_up_raw(&self, msg: T::Up) -> Result<(), TrySendError<T::Up>> {
        match self.up.try_send(self.node.id, msg) {
            Err(TrySendError::Full(msg)) => self.up_in_own_place(msg),
            sent_or_ended => sent_or_ended,
        }
    }

    /// With the metered places of the parent's queue all taken: queues `msg` in this
    /// thread's own place there, if that is free (its last message in it has been handed
    /// out) and no sender waits for a place (it would go ahead of them). `Full` if not,
    /// `Ended` if the parent is gone.
    #[cold]
    #[inline(never)]
    fn up_in_own_place(&self, msg: T::Up) -> Result<(), TrySendError<T::Up>> {
        if self.up.meter().waiting() != 0 || !self.node.up_place().try_take() {
            return Err(TrySendError::Full(msg));
        }
        let owner = Arc::clone(&self.node) as Arc<dyn HoldsOwnPlace>;
        self.up
            .send_own(self.node.id, msg, owner)
            .map_err(TrySendError::Ended)
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

    // ---- the loop's view: what the layers that run a thread use ------------------------

    /// The context of a thread spawned on `runtime`, the one it runs on.
    pub(crate) fn new(
        node: Arc<Node<DownQueue<T::Down>>>,
        up: Arc<dyn UpPort<T::Up>>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        Self {
            node,
            up,
            family: FamilySlot::Unmade(runtime),
            timetable: Timetable::unmade(),
            stopping: false,
            completed: false,
            ended: false,
        }
    }

    /// Makes this the fresh context of the next life of a supervised thread: same node,
    /// same port; the last life's family and timetable are dropped.
    pub(crate) fn renew(&mut self) {
        self.family.renew();
        self.timetable = Timetable::unmade();
        self.stopping = false;
        self.completed = false;
    }

    /// The thread's node.
    #[inline]
    pub(crate) fn node(&self) -> &Node {
        &*self.node
    }

    /// The thread's node, shared.
    #[inline]
    pub(crate) fn node_arc(&self) -> Arc<Node> {
        Arc::clone(&self.node) as Arc<Node>
    }

    /// The thread's way UP.
    pub(crate) fn up_port(&self) -> &Arc<dyn UpPort<T::Up>> {
        &self.up
    }

    /// Reports the thread's exit through its port, once; the context goes with it.
    pub(crate) fn report(mut self, exit: ExitReport) {
        self.ended = true;
        self.up.report(self.node.id, exit);
    }

    /// Marks the end of a root, which its task returns rather than reports.
    pub(crate) fn set_ended(&mut self) {
        self.ended = true;
    }

    /// The family, made on first use.
    pub(crate) fn family(&mut self) -> &mut FamilyOf<T> {
        self.family.made(&self.node)
    }

    /// The family (made on first use) beside this thread's node, borrowed together.
    pub(crate) fn family_and_node(&mut self) -> (&mut FamilyOf<T>, &Node) {
        (self.family.made(&self.node), &*self.node)
    }

    /// The family (made on first use) beside this thread's way UP and id, borrowed together.
    pub(crate) fn family_up_and_id(
        &mut self,
    ) -> (&mut FamilyOf<T>, &Arc<dyn UpPort<T::Up>>, ChildId) {
        let id = self.node.id;
        (self.family.made(&self.node), &self.up, id)
    }

    /// The runtime the thread runs on.
    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.family.runtime()
    }

    /// The family, if the thread has made one, to look at.
    pub(crate) fn family_ref(&self) -> Option<&FamilyOf<T>> {
        self.family.get()
    }

    /// The timetable of its tasks, to look at.
    pub(crate) fn timetable_ref(&self) -> &Timetable<T::Timetable> {
        &self.timetable
    }

    /// The family, if the thread has made one.
    #[inline]
    pub(crate) fn family_if_any(&mut self) -> Option<&mut FamilyOf<T>> {
        self.family.get_mut()
    }

    #[inline]
    pub(crate) fn has_family(&self) -> bool {
        self.family.get().is_some()
    }

    #[inline]
    pub(crate) fn timetable(&mut self) -> &mut Timetable<T::Timetable> {
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
        if recording() {
            self.record_stopping();
        }
        self.timetable.cancel_all();
        if let Some(family) = self.family.get_mut() {
            family.stop_streams();
        }
    }

    #[cold]
    #[inline(never)]
    fn record_stopping(&self) {
        self.node.probe().stop_began();
        let why = if self.completed { "on its own" } else { "" };
        record::event(&self.node.lazy_path(), EventKind::Stopping, why);
    }

    /// Whether nothing of the thread's family is left: no child, no job, no queued event.
    pub(crate) fn family_idle(&self) -> bool {
        self.family.get().is_none_or(|f| f.is_idle())
    }
}
