//! The serial loop that drives one thread from `enter` to its exit report, and the ports
//! through which a thread talks to its parent.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use crate::child::ChildRef;
use crate::ctx::Ctx;
use crate::down::{DownQueue, DownReceiver};
use crate::error::{Result, TrySendError};
use crate::inbox::{ExitReport, Inbound, InboxSender, Meter};
use crate::thread::{ChildExit, ChildId, Exit, HandlesUp, Thread};
use crate::tree::{Node, NodeInit, ThreadState};

/// The way UP, type-erased over the parent's type so `Ctx<T>` does not name its parent.
///
/// One per parent (its [`ParentSink`]) shared by all its children, not one per child: a
/// child's `Ctx` holds an `Arc` of it and says who it is (`from`) on each send, so spawning
/// a child allocates no port.
pub(crate) trait UpPort<U>: Send + Sync {
    fn try_send(&self, from: ChildId, msg: U) -> Result<(), TrySendError<U>>;
    /// The places of the receiver's queue, for the slow path of a send when it is full:
    /// wait for one, then [`send_permitted`](Self::send_permitted).
    fn meter(&self) -> &Meter;
    /// Sends with a place taken from [`meter`](Self::meter).
    fn send_permitted(&self, from: ChildId, msg: U);
    /// Reports the exit; never waits.
    fn report(&self, from: ChildId, exit: ExitReport);
    fn target(&self) -> &str;
}

/// A parent's end of its children's UP messages and exit reports.
pub(crate) struct ParentSink<P: Thread> {
    pub(crate) tx: InboxSender<P::Event>,
    pub(crate) parent: Arc<Node>,
}

impl<P, U> UpPort<U> for ParentSink<P>
where
    P: HandlesUp<U>,
    U: Send + 'static,
{
    #[inline]
    fn try_send(&self, from: ChildId, msg: U) -> Result<(), TrySendError<U>> {
        self.tx
            .try_send_with(msg, |m| P::__wrap_up(from, m))
            .map_err(|(refused, m)| refused.with(m))
    }

    fn meter(&self) -> &Meter {
        self.tx.meter()
    }

    fn send_permitted(&self, from: ChildId, msg: U) {
        self.tx.send_permitted(P::__wrap_up(from, msg));
    }

    fn report(&self, from: ChildId, exit: ExitReport) {
        // Fails only if the parent itself was aborted: nobody is left to tell.
        self.tx.send_unmetered(Inbound::Exit(from, exit));
    }

    fn target(&self) -> &str {
        self.parent.path()
    }
}

/// The port of a worker pool's workers: their UP messages go straight to the pool's own
/// port, as if the pool sent them (from the pool), and their exits to the pool.
pub(crate) struct ForwardPort<P: Thread> {
    pub(crate) up: Arc<dyn UpPort<P::Up>>,
    /// The pool's id: what the pool's parent sees as the sender.
    pub(crate) pool: ChildId,
    pub(crate) exits: InboxSender<P::Event>,
}

impl<P: Thread> UpPort<P::Up> for ForwardPort<P> {
    fn try_send(&self, _from: ChildId, msg: P::Up) -> Result<(), TrySendError<P::Up>> {
        self.up.try_send(self.pool, msg)
    }

    fn meter(&self) -> &Meter {
        self.up.meter()
    }

    fn send_permitted(&self, _from: ChildId, msg: P::Up) {
        self.up.send_permitted(self.pool, msg);
    }

    fn report(&self, from: ChildId, exit: ExitReport) {
        self.exits.send_unmetered(Inbound::Exit(from, exit));
    }

    fn target(&self) -> &str {
        self.up.target()
    }
}

/// The port of a root: UP messages go to its [`Handle`](crate::Handle); the exit is the
/// root task's output.
pub(crate) struct RootPort<U> {
    pub(crate) tx: InboxSender<U>,
}

impl<U: Send + 'static> UpPort<U> for RootPort<U> {
    fn try_send(&self, _from: ChildId, msg: U) -> Result<(), TrySendError<U>> {
        self.tx
            .try_send_with(msg, |m| m)
            .map_err(|(refused, m)| refused.with(m))
    }

    fn meter(&self) -> &Meter {
        self.tx.meter()
    }

    fn send_permitted(&self, _from: ChildId, msg: U) {
        self.tx.send_permitted(msg);
    }

    fn report(&self, _from: ChildId, _exit: ExitReport) {}

    fn target(&self) -> &str {
        "the root's handle"
    }
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Polls user code once, turning its error or panic into the exit it causes.
fn poll_user<R>(
    fut: Pin<&mut impl Future<Output = Result<R>>>,
    cx: &mut Context<'_>,
) -> Poll<Result<R, Exit>> {
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(Ok(r))) => Poll::Ready(Ok(r)),
        Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(Exit::Failed(e))),
        Err(payload) => Poll::Ready(Err(Exit::Panicked(panic_message(payload)))),
    }
}

/// The loop's stop signal and stop deadline: the node's flag and waker slot, and the
/// deadline's timer, made the first time the thread has to wait after its stop began (a
/// thread that stops without waiting never makes one).
struct StopWatch {
    registered: bool,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl StopWatch {
    /// Whether a stop was requested; if not, makes sure this task will be woken by one.
    ///
    /// A thread's future only ever runs as its own tokio task, so its waker never changes:
    /// once registered with the node, later calls need only the flag (one atomic load). A
    /// request takes the waker, but it also sets the flag for the rest of this life.
    #[inline]
    fn requested(&mut self, node: &Node, cx: &mut Context<'_>) -> bool {
        if node.is_stop_requested() {
            return true;
        }
        if !self.registered {
            self.registered = true;
            return node.poll_stop_requested(cx).is_ready();
        }
        false
    }

    /// For a stopping thread about to wait: whether its stop deadline has passed. The first
    /// call starts the deadline.
    fn deadline_passed(&mut self, node: &Node, cx: &mut Context<'_>) -> bool {
        let Some(after) = node.stop_deadline else {
            return false;
        };
        self.deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// Runs a handler, hook or task, pinned by the caller so it is stored once. While it
/// awaits, the thread still reacts to a stop: it stops accepting DOWN messages at once and
/// shows as stopping; the handler itself is let finish (the framework never drops user code
/// half-way on a graceful stop) unless the stop deadline passes, which ends the run with
/// [`Exit::Aborted`] (and drops the handler).
///
/// `stopping`: whether the thread is stopping already. `stop` is the loop's own stop
/// signal. A plain `poll_fn` rather than an `async fn`: it adds no state of its own to the
/// thread's task.
fn run_user<'a, R, D: Send + 'static>(
    mut fut: Pin<&'a mut impl Future<Output = Result<R>>>,
    node: &'a Node,
    down: &'a mut DownReceiver<D>,
    stopping: bool,
    stop: &'a mut StopWatch,
) -> impl Future<Output = Result<R, Exit>> + 'a {
    let mut stopping = stopping;
    poll_fn(move |cx| {
        if let Poll::Ready(done) = poll_user(fut.as_mut(), cx) {
            return Poll::Ready(done);
        }
        // Most handlers finish on their first poll; the stop signal is only looked at for
        // those that wait.
        if !stopping && stop.requested(node, cx) {
            stopping = true;
            if node.stop_closes_queue(false) {
                down.close();
            }
            node.set_state(ThreadState::Stopping);
        }
        if stopping && stop.deadline_passed(node, cx) {
            return Poll::Ready(Err(Exit::Aborted { dropped: 0 }));
        }
        Poll::Pending
    })
}

/// Everything needed to start a thread, made before its task is spawned.
pub(crate) struct Prepared<T: Thread> {
    ctx: Ctx<T>,
    rx: DownReceiver<T::Down>,
}

pub(crate) fn prepare<T: Thread>(
    id: ChildId,
    init: NodeInit,
    up: Arc<dyn UpPort<T::Up>>,
) -> (ChildRef<T>, Prepared<T>) {
    let queue = DownQueue::new(init.capacity);
    let node = Arc::new(Node::new(id, init, queue));
    let prepared = Prepared {
        ctx: Ctx::new(Arc::clone(&node) as Arc<Node>, up),
        rx: DownReceiver::new(Arc::clone(&node)),
    };
    (ChildRef { node }, prepared)
}

/// Spawns the thread's task. A child's task reports its exit UP; a root's returns it.
pub(crate) fn launch<T: Thread>(
    thread: T,
    prepared: Prepared<T>,
    report: bool,
) -> JoinHandle<Exit> {
    let Prepared { ctx, rx } = prepared;
    // `parent: None`: the path already says where the thread sits; nesting the spawner's
    // span would repeat it on every line.
    let span = tracing::info_span!(parent: None, "thread", path = %ctx.node.path());
    spawn_in(span, drive(thread, ctx, rx, report))
}

/// Spawns a thread's task inside its span, or bare when no subscriber wants the span: a
/// disabled span would still be entered and left on every poll, and take room in the task.
fn spawn_in<F>(span: tracing::Span, task: F) -> JoinHandle<Exit>
where
    F: Future<Output = Exit> + Send + 'static,
{
    if span.is_disabled() {
        tokio::spawn(task)
    } else {
        tokio::spawn(task.instrument(span))
    }
}

/// Spawns a supervised thread's task (see [`crate::supervise`]).
pub(crate) fn launch_supervised<T: Thread, F>(
    factory: F,
    prepared: Prepared<T>,
    policy: crate::supervise::RestartPolicy,
) -> JoinHandle<Exit>
where
    F: FnMut() -> T + Send + 'static,
{
    let Prepared { ctx, rx } = prepared;
    let span = tracing::info_span!(parent: None, "thread", path = %ctx.node.path());
    spawn_in(span, crate::supervise::supervise(factory, ctx, rx, policy))
}

/// How many DOWN messages (or inbound events) a thread handles back to back before a full
/// loop turn.
const DOWN_BATCH: usize = 16;

/// What woke the loop.
enum Next<T: Thread> {
    Inbound(Inbound<T::Event>),
    Down(Option<T::Down>),
    Task,
    Job(Result<(), JoinError>),
    Stop,
    /// The stop deadline passed while the thread waited.
    Deadline,
}

/// One turn of the loop's wait, in priority order: DOWN and children (taking turns), then
/// the timer (due tasks also get their turn at the
/// top of the loop), then finished jobs, and the stop signal last — it is also checked with
/// one atomic load at the top of every turn, so it is only waited on when there is nothing
/// else to do. A hand-written poll rather than `select!`: it builds no futures per message.
fn poll_next<T: Thread>(
    cx: &mut Context<'_>,
    ctx: &mut Ctx<T>,
    down: &mut DownReceiver<T::Down>,
    down_open: bool,
    down_first: bool,
    stop: &mut StopWatch,
) -> Poll<Next<T>> {
    // DOWN and inbound take turns being polled first, so a busy inbound queue cannot keep
    // a stopping thread from seeing its DOWN queue drained (and so from stopping its
    // children), and neither queue starves the other.
    if down_first
        && down_open
        && let Poll::Ready(msg) = down.poll_recv(cx)
    {
        return Poll::Ready(Next::Down(msg));
    }
    if let Some(family) = ctx.family.as_mut()
        && let Poll::Ready(Some(inbound)) = family.inbox.poll_recv(cx)
    {
        return Poll::Ready(Next::Inbound(inbound));
    }
    if !down_first
        && down_open
        && let Poll::Ready(msg) = down.poll_recv(cx)
    {
        return Poll::Ready(Next::Down(msg));
    }
    // A task due now is taken without waiting for the timer wheel, whose resolution (1 ms)
    // would otherwise delay every `Now` and period-less `Again`.
    if !ctx.stopping && ctx.timetable.is_armed() {
        if ctx.timetable.is_due(Instant::now()) {
            // Taking a due task without the timer bypasses tokio's cooperative budget, so
            // spend it explicitly: a task returning `Now` must not starve the runtime.
            if let Poll::Ready(progress) = tokio::task::coop::poll_proceed(cx) {
                progress.made_progress();
                return Poll::Ready(Next::Task);
            }
        } else if ctx.timetable.poll_wait(cx).is_ready() {
            return Poll::Ready(Next::Task);
        }
    }
    if let Some(family) = ctx.family.as_mut()
        && !family.jobs.is_empty()
        && let Poll::Ready(Some(joined)) = family.jobs.poll_join_next(cx)
    {
        return Poll::Ready(Next::Job(joined));
    }
    if !ctx.stopping && stop.requested(&ctx.node, cx) {
        return Poll::Ready(Next::Stop);
    }
    if ctx.stopping && stop.deadline_passed(&ctx.node, cx) {
        return Poll::Ready(Next::Deadline);
    }
    Poll::Pending
}

/// The thread's task. A plain `fn` returning an `async move` block, so the arguments are
/// stored once in the task rather than twice (argument and local) as an `async fn` would.
#[allow(clippy::manual_async_fn)]
fn drive<T: Thread>(
    mut thread: T,
    mut ctx: Ctx<T>,
    mut down: DownReceiver<T::Down>,
    report: bool,
) -> impl Future<Output = Exit> + Send {
    // The block uses the arguments in place (no `let mut x = x;`), so each is stored once.
    async move {
        let (exit, dropped) = run_thread(&mut thread, &mut ctx, &mut down).await;
        drop(thread);
        if report {
            report_exit(ctx, exit, dropped, false);
            Exit::Stopped
        } else {
            ctx.node.set_state(ThreadState::Exited);
            exit
        }
    }
}

/// Tells the parent how the thread ended, once.
pub(crate) fn report_exit<T: Thread>(ctx: Ctx<T>, exit: Exit, dropped: usize, escalated: bool) {
    // DEBUG only: the parent hears of the exit and decides how loud it is (its default
    // exit handling logs failures at ERROR); a root's exit is returned by `join`.
    tracing::debug!("thread {exit}");
    ctx.node.set_state(ThreadState::Exited);
    let from = ctx.node.id;
    ctx.into_port()
        .report(from, ExitReport::new(exit, dropped, escalated));
}

/// One life of a thread, from `enter` to its exit value: the loop, the stop sequence (or the
/// abort past the stop deadline), the `exit` hook, and waiting for its children and jobs.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_thread<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
) -> impl Future<Output = (Exit, usize)> + Send + 'a {
    async move {
        let node = Arc::clone(&ctx.node);
        let mut state = LoopState::default();
        let mut stop = StopWatch {
            registered: false,
            deadline: None,
        };

        // Scheduled before `enter` (they cannot run before it returns) so that `enter` can
        // cancel or reschedule them by name.
        if !ctx.timetable.is_empty() {
            ctx.timetable.start_automatic(Instant::now());
        }
        let outcome = {
            let enter = pin!(thread.__enter(ctx));
            run_user(enter, &node, down, false, &mut stop).await
        };
        if let Err(exit) = outcome {
            state.fail(ctx, down, exit);
        } else {
            node.set_state(ThreadState::Running);
        }

        loop {
            if state.aborted {
                break;
            }
            if !ctx.stopping && (ctx.completed || node.is_stop_requested()) {
                ctx.begin_stopping();
                if node.stop_closes_queue(ctx.completed) {
                    down.close();
                } else {
                    // Supervised, and starting again: what is queued waits for the next life.
                    state.down_open = false;
                }
            }
            if ctx.stopping {
                if !state.down_open && ctx.family_idle() {
                    break;
                }
                if !state.down_open {
                    ctx.stop_next_stage();
                }
            } else if !ctx.timetable.is_empty() {
                ctx.timetable.rearm();
                // Tasks and messages take turns: a due task runs before the next message,
                // but not twice in a row while messages wait, so a task returning `Now`
                // cannot starve the queues and a busy queue cannot starve the tasks.
                if state.tasks_turn
                    && ctx.timetable.is_armed()
                    && ctx.timetable.is_due(Instant::now())
                {
                    state.tasks_turn = false;
                    run_due_task(thread, ctx, down, &mut state, &mut stop, &node).await;
                    continue;
                }
                state.tasks_turn = true;
            }

            let down_open = state.down_open;
            let down_first = state.family_turns && ctx.family.is_some();
            state.family_turns = !state.family_turns;
            let next =
                poll_fn(|cx| poll_next(cx, ctx, down, down_open, down_first, &mut stop)).await;
            match next {
                Next::Down(Some(first)) => {
                    // Dereferenced once for the batch: `Node` ends in its (unsized) queue,
                    // so each deref of the `Arc` computes where the node starts.
                    let node: &Node = &node;
                    let mut msg = first;
                    let mut left = DOWN_BATCH;
                    // A short batch: while only DOWN has work (no due task, no inbound
                    // event, no stop), take the next message without a full loop turn.
                    // Bounded so the runtime's cooperative budget still applies.
                    loop {
                        if state.failure.is_some() {
                            state.dropped += 1;
                            break;
                        }
                        node.count_handled();
                        let outcome = {
                            let stopping = ctx.stopping;
                            let handler = pin!(thread.__down(ctx, msg));
                            run_user(handler, node, down, stopping, &mut stop).await
                        };
                        if let Some(done) = node.done.as_deref() {
                            done.finish_one();
                        }
                        if let Err(exit) = outcome {
                            state.fail(ctx, down, exit);
                            break;
                        }
                        left -= 1;
                        if left == 0
                            || ctx.stopping
                            || ctx.completed
                            || node.is_stop_requested()
                            || ctx.timetable.is_armed()
                            || ctx.family.is_some()
                        {
                            break;
                        }
                        match down.try_recv() {
                            Some(next) => msg = next,
                            None => break,
                        }
                    }
                }
                Next::Down(None) => state.down_open = false,
                Next::Inbound(first) => {
                    let node: &Node = &node;
                    let mut inbound = first;
                    let mut left = DOWN_BATCH;
                    // The same short batch for UP messages and exits from children, while
                    // DOWN has nothing waiting (the queues keep taking turns).
                    loop {
                        handle_inbound(thread, ctx, down, &mut state, inbound, &mut stop, node)
                            .await;
                        left -= 1;
                        if left == 0
                            || state.failure.is_some()
                            || ctx.stopping
                            || ctx.completed
                            || node.is_stop_requested()
                            || ctx.timetable.is_armed()
                            || (state.down_open && !down.is_empty())
                        {
                            break;
                        }
                        match ctx.family.as_mut().and_then(|f| f.inbox.try_recv()) {
                            Some(next) => inbound = next,
                            None => break,
                        }
                    }
                }
                Next::Task => {
                    state.tasks_turn = false;
                    run_due_task(thread, ctx, down, &mut state, &mut stop, &node).await;
                }
                Next::Job(joined) => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        let exit = Exit::Panicked(panic_message(e.into_panic()));
                        state.fail(ctx, down, exit);
                    }
                }
                Next::Stop => {}
                Next::Deadline => state.aborted = true,
            }
        }

        if state.dropped > 0 {
            tracing::warn!(
                dropped = state.dropped,
                "dropped messages that arrived after the thread failed"
            );
        }
        if !state.aborted {
            let outcome = {
                let exit_hook = pin!(thread.__exit(ctx));
                run_user(exit_hook, &node, down, true, &mut stop).await
            };
            match outcome {
                Ok(()) => {}
                Err(Exit::Aborted { .. }) => state.aborted = true,
                Err(exit) if state.failure.is_none() => state.failure = Some(Box::new(exit)),
                // The exit hook runs after a failure too, so resources are released; its own
                // error cannot replace the first failure.
                Err(exit) => tracing::warn!("exit hook after failure: {exit}"),
            }
        }
        node.forget_waker();
        if state.aborted {
            if let Some(failure) = state.failure.take() {
                tracing::warn!("aborted while stopping after: {failure}");
            }
            // Boxed: rare, and its timer would otherwise size every thread's task.
            let dropped = state.dropped + Box::pin(abort_rest(ctx, down)).await;
            tracing::warn!(
                deadline = ?node.stop_deadline.unwrap_or_default(),
                dropped,
                "the stop took longer than its deadline: aborted what remained"
            );
            (Exit::Aborted { dropped }, dropped)
        } else {
            if ctx.family.is_some() {
                // Boxed: only a thread that had children or jobs has anything to wait for.
                Box::pin(ctx.reap_all()).await;
            }
            let exit = match state.failure.take() {
                Some(failure) => *failure,
                None if ctx.completed => Exit::Completed,
                None => Exit::Stopped,
            };
            (exit, state.dropped)
        }
    }
}

/// The loop's own bookkeeping.
struct LoopState {
    /// Boxed: rare, and it would otherwise size every thread's task.
    failure: Option<Box<Exit>>,
    /// The stop deadline passed: what remains is aborted.
    aborted: bool,
    down_open: bool,
    dropped: usize,
    tasks_turn: bool,
    family_turns: bool,
}

impl Default for LoopState {
    fn default() -> Self {
        Self {
            failure: None,
            aborted: false,
            down_open: true,
            dropped: 0,
            tasks_turn: true,
            family_turns: false,
        }
    }
}

impl LoopState {
    /// Records the first failure and starts stopping: the queue closes, what is queued is
    /// dropped (and counted), children are stopped.
    fn fail<T: Thread>(&mut self, ctx: &mut Ctx<T>, down: &mut DownReceiver<T::Down>, exit: Exit) {
        if let Exit::Aborted { .. } = exit {
            self.aborted = true;
        } else if self.failure.is_none() {
            self.failure = Some(Box::new(exit));
        }
        ctx.begin_stopping();
        if ctx.node.failure_closes_queue() {
            down.close();
        } else {
            // Supervised, and restarted on failure: what is queued waits for the next life.
            self.down_open = false;
        }
    }
}

/// A plain `fn` returning an `async move` block (not an `async fn`), so its arguments are
/// stored once in the thread's task.
#[allow(clippy::manual_async_fn)]
fn handle_inbound<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    inbound: Inbound<T::Event>,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        match inbound {
            Inbound::Event(event) | Inbound::Output(event) => {
                if state.failure.is_some() {
                    state.dropped += 1;
                    return;
                }
                node.count_handled();
                let outcome = {
                    let stopping = ctx.stopping;
                    let handler = pin!(thread.__event(ctx, event));
                    run_user(handler, node, down, stopping, stop).await
                };
                if let Err(exit) = outcome {
                    state.fail(ctx, down, exit);
                }
            }
            Inbound::Exit(from, report) => {
                let exit = {
                    let Some(child) = ctx.on_child_exit(from) else {
                        // Forgotten already (an abort of this thread is under way).
                        return;
                    };
                    let (exit, dropped, escalated) = report.into_parts();
                    let child = child.node();
                    ChildExit {
                        id: from,
                        type_name: child.meta.type_name,
                        path: child.lazy_path(),
                        exit,
                        dropped,
                        escalated,
                    }
                };
                if exit.escalated {
                    // A supervised child past its restart limit: this thread fails with it.
                    crate::tree::log_exit(node.path(), &exit);
                    state.fail(ctx, down, exit.exit);
                    return;
                }
                if state.failure.is_some() {
                    crate::tree::log_exit(node.path(), &exit);
                    return;
                }
                let outcome = {
                    let stopping = ctx.stopping;
                    let handler = pin!(thread.__exited(ctx, from, exit));
                    run_user(handler, node, down, stopping, stop).await
                };
                if let Err(exit) = outcome {
                    state.fail(ctx, down, exit);
                }
            }
        }
    }
}

/// Like [`handle_inbound`], a plain `fn` so its arguments are stored once.
#[allow(clippy::manual_async_fn)]
fn run_due_task<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        let Some((index, due)) = ctx.timetable.take_due(Instant::now()) else {
            return;
        };
        node.count_handled();
        let outcome = {
            let stopping = ctx.stopping;
            let task = pin!(thread.__task(ctx, index));
            run_user(task, node, down, stopping, stop).await
        };
        match outcome {
            Ok(decision) => {
                if ctx.timetable.finish(index, due, Instant::now(), decision) {
                    ctx.stop();
                }
            }
            Err(exit) => state.fail(ctx, down, exit),
        }
    }
}

/// Aborts what remains of a thread whose stop deadline passed: its queued messages are
/// dropped and counted, its descendants' tasks and its jobs cancelled (and waited for, so no
/// task outlives the tree). Returns how many queued messages were dropped in the subtree.
async fn abort_rest<T: Thread>(ctx: &mut Ctx<T>, down: &mut DownReceiver<T::Down>) -> usize {
    down.close();
    let mut dropped = 0;
    while down.try_recv().is_some() {
        dropped += 1;
    }
    let mut aborted = Vec::new();
    dropped += ctx.node.abort_descendants(&mut aborted);
    dropped += ctx.abort_family();
    wait_gone(&aborted).await;
    ctx.reap_all().await;
    dropped
}

/// Waits until cancelled tasks are gone: the runtime drops each when it next gets to it, or
/// when its current poll returns if it is running on another worker.
pub(crate) async fn wait_gone(aborted: &[tokio::task::AbortHandle]) {
    let mut turns = 0u32;
    while !aborted.iter().all(tokio::task::AbortHandle::is_finished) {
        turns += 1;
        if turns <= 64 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if turns == 64 + 5_000 {
            tracing::warn!(
                "aborted threads are still running after about 5 s: stuck in blocking code?"
            );
        }
    }
}
