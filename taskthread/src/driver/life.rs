//! One life of a thread, in four steps: [start](Life::start) (`enter`), the
//! [turns](Life::wait) of the loop (`live!`), the [stop sequence](Life::stop_sequence) run at
//! the top of every turn once a stop has begun, and [finish](Life::finish) (`exit`, then
//! waiting for or aborting what remains). The life holds the thread, its context and its
//! queue: in place for a plain thread's only life ([`Own`]), lent for a supervised one's
//! ([`Lent`]).

use std::future::Future;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::task::Poll;

use tokio::task::JoinError;
use tokio::time::Instant;

use super::user::{StopWatch, panic_message, run_user};
use super::{LifeRules, Rules};
use crate::ctx::Ctx;
use crate::exit::{Exit, ThreadState};
use crate::family::wait_gone;
use crate::node::{DownReceiver, StopPhase};
use crate::port::Inbound;
use crate::record::recording;
use crate::thread::Thread;

/// The loop of one life, from `start` to `finish`, in the future of the block it is
/// written in: [`run_thread`]'s, or a plain thread's own task ([`run_owned`]).
macro_rules! live {
    ($life:ident) => {{
        $life.start().await;
        while !$life.aborted && $life.stop_sequence() {
            if !$life.tasks_go_first() {
                // What came is handed on whole (by value) once checked, so nothing of it is
                // kept in the loop's future across the handlers below.
                let next = $life.wait().await;
                if matches!(next, Next::Down(Some(_))) {
                    // A short batch of DOWN messages, their handlers' futures right past
                    // the life in the loop's own future.
                    let mut msg = next.into_message();
                    if $life.drops_message() {
                        continue;
                    }
                    let mut left = DOWN_BATCH;
                    loop {
                        $life.count_message(&msg);
                        msg = $life.watched(msg);
                        let outcome = {
                            let stopping = $life.ctx.stop_begun();
                            let handler = pin!($life.thread.__down(&mut *$life.ctx, msg));
                            run_user(handler, &mut *$life.down, stopping, &mut $life.stop).await
                        };
                        left -= 1;
                        match $life.message_done(outcome, left) {
                            Some(next) => msg = next,
                            None => break,
                        }
                    }
                    continue;
                }
                if matches!(next, Next::Inbound(_)) {
                    $life.inbound_batch(next.into_inbound()).await;
                    continue;
                }
                if $life.handle_rest(next) {
                    continue;
                }
                $life.task_ran();
            }
            // The due task's run, in the loop's own future rather than one nested in it:
            // the task's future sits right past the life, and a run goes through one
            // future less. The outcome, in a block of its own, is not kept across the
            // yield that follows a thread's last run.
            let Some(index) = $life.take_due_task() else {
                continue;
            };
            let ends = {
                let outcome = {
                    let stopping = $life.ctx.stop_begun();
                    let task = pin!($life.thread.__task(&mut *$life.ctx, index));
                    run_user(task, &mut *$life.down, stopping, &mut $life.stop).await
                };
                $life.task_done(outcome)
            };
            if ends {
                // The thread ends with this run. Its ending (the stop sequence, the exit
                // report) waits behind the other tasks ready to run: when many periodic
                // tasks end together, each would otherwise delay the runs due after it by
                // its thread's ending.
                tokio::task::yield_now().await;
            }
        }
        $life.finish().await
    }};
}

/// What woke the loop.
pub(super) enum Next<T: Thread> {
    Inbound(Inbound<T::Event>),
    Down(Option<T::Down>),
    Task,
    Job(Result<(), JoinError>),
    Stop,
    /// The stop deadline passed while the thread waited.
    Deadline,
}

// The loop checks what came by its pattern, then hands it on whole (by value), so that
// nothing of its variable is kept in the loop's future across the handlers that follow: a
// borrow of it, or a message or event moved out of it in place, would keep the variable's
// room in the future, beside the handler's.
impl<T: Thread> Next<T> {
    /// The DOWN message that came (`Next::Down(Some(_))`).
    #[inline]
    pub(super) fn into_message(self) -> T::Down {
        match self {
            Self::Down(Some(msg)) => msg,
            _ => unreachable!("the loop checks for a message first"),
        }
    }

    /// The inbound event that came (`Next::Inbound(_)`).
    #[inline]
    pub(super) fn into_inbound(self) -> Inbound<T::Event> {
        match self {
            Self::Inbound(inbound) => inbound,
            _ => unreachable!("the loop checks for an inbound event first"),
        }
    }
}

/// How many DOWN messages (or inbound events) a thread handles back to back before a full
/// loop turn.
pub(super) const DOWN_BATCH: usize = 16;

/// One life of a thread, from `enter` to its exit value and the number of queued messages
/// it dropped, with the thread, its context and its queue lent by the supervisor that runs
/// one life after another.
///
/// The steps are plain `fn`s returning `async move` blocks (not `async fn`s), and the life
/// is made before the block: each future stores what it captures once — here the life,
/// in the steps one pointer to it — instead of its arguments and their copies, which keeps
/// every thread's task small.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_thread<'a, T: Thread, R: Rules>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    rules: &'a R,
) -> impl Future<Output = (Exit, usize)> + Send + 'a {
    let mut life = Life::<T, R, Lent<'a>>::new(thread, ctx, down, rules);
    async move { live!(life) }
}

/// A thread's only life, run in the future that owns it: the task of a thread that is not
/// started again. The life holds the thread, its context, its queue and its rules itself,
/// so the loop reaches each at a fixed place beside its own bookkeeping, with no pointer to
/// follow, and no future is nested around the loop's: with thousands of threads, each
/// cache line of its task a wake-up touches is a miss. `then` is given the context and how
/// the life ended, once the thread is dropped.
///
/// A plain `fn` returning an `async move` block that uses the life in place, so it is
/// stored once in the task rather than twice (argument and local) as an `async fn` would.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_owned<T: Thread, R: Rules, O>(
    thread: T,
    ctx: Ctx<T>,
    down: DownReceiver<T::Down>,
    rules: R,
    then: impl FnOnce(Ctx<T>, Exit, usize) -> O + Send,
) -> impl Future<Output = O> + Send {
    let mut life = Life::<T, R, Own>::new(Inline(thread), Inline(ctx), Inline(down), Inline(rules));
    async move {
        let (exit, dropped) = live!(life);
        let Life { thread, ctx, .. } = life;
        drop(thread);
        then(ctx.0, exit, dropped)
    }
}

/// A thread's context and the receiving end of its DOWN queue, held by a supervisor's task
/// as one value: a task dropped unfinished (cancelled from outside) drops the context
/// first, which reports the end with the number of messages still queued, and then the
/// receiver, which empties the queue. Kept as two values, their order of drop in an
/// unfinished task would be the compiler's choice.
pub(crate) struct Owned<T: Thread> {
    pub(crate) ctx: Ctx<T>,
    pub(crate) down: DownReceiver<T::Down>,
}

/// Where a life finds the thread, its context, its queue and its rules: in itself
/// ([`Own`]: a thread's only life) or lent by the task that runs one life after another
/// ([`Lent`]: a supervised thread's). Either way the loop uses them as fields of the life.
pub(super) trait Hold<T: Thread, R: Rules> {
    type Thread: DerefMut<Target = T> + Send;
    type Ctx: DerefMut<Target = Ctx<T>> + Send;
    type Down: DerefMut<Target = DownReceiver<T::Down>> + Send;
    type Rules: Deref<Target = R> + Send + Sync;
}

/// A life that holds the thread and its parts itself.
pub(super) struct Own;

impl<T: Thread, R: Rules> Hold<T, R> for Own {
    type Thread = Inline<T>;
    type Ctx = Inline<Ctx<T>>;
    type Down = Inline<DownReceiver<T::Down>>;
    type Rules = Inline<R>;
}

/// A life that borrows the thread and its parts for `'a`.
pub(super) struct Lent<'a>(PhantomData<&'a ()>);

impl<'a, T: Thread, R: Rules> Hold<T, R> for Lent<'a> {
    type Thread = &'a mut T;
    type Ctx = &'a mut Ctx<T>;
    type Down = &'a mut DownReceiver<T::Down>;
    type Rules = &'a R;
}

/// A value held in place, used through `Deref` like the borrows of [`Lent`].
#[repr(transparent)]
pub(super) struct Inline<V>(V);

impl<V> Deref for Inline<V> {
    type Target = V;

    #[inline(always)]
    fn deref(&self) -> &V {
        &self.0
    }
}

impl<V> DerefMut for Inline<V> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut V {
        &mut self.0
    }
}

/// A life's first failure, and the messages dropped unhandled after it.
pub(super) struct Failure {
    exit: Exit,
    /// Messages dropped unhandled after the failure.
    pub(super) dropped: usize,
}

impl Failure {
    fn new(exit: Exit) -> Box<Self> {
        Box::new(Self { exit, dropped: 0 })
    }
}

/// What the loop holds during one life: the thread, its context, its queue and its rules
/// (held as `H` says), and the loop's own bookkeeping.
///
/// For a life that holds them ([`Own`]), fields drop in the order written: a task dropped
/// unfinished drops the thread, then the context (which reports the end with the number of
/// messages still queued), then the queue's receiver (which empties the queue). A lent
/// life's are dropped by their owner (the supervisor's [`Owned`]).
pub(super) struct Life<T: Thread, R: Rules, H: Hold<T, R>> {
    pub(super) thread: H::Thread,
    pub(super) ctx: H::Ctx,
    pub(super) down: H::Down,
    /// The rules: a supervised thread's, or a worker's; nothing for a plain thread,
    /// `R` = [`Plain`](super::Plain), whose loop then checks nothing for them.
    rules: H::Rules,
    pub(super) stop: StopWatch,
    /// The first failure, and the messages dropped unhandled after it. Boxed: rare, and
    /// it would otherwise size every thread's task.
    pub(super) failure: Option<Box<Failure>>,
    /// The stop deadline passed: what remains is aborted.
    pub(super) aborted: bool,
    pub(super) down_open: bool,
    /// Whether a due task may run before the next message.
    tasks_turn: bool,
    /// Whether DOWN is polled before the inbound queue next turn (they take turns).
    pub(super) family_turns: bool,
}

impl<T: Thread, R: Rules, H: Hold<T, R>> Life<T, R, H> {
    fn new(thread: H::Thread, ctx: H::Ctx, down: H::Down, rules: H::Rules) -> Self {
        let stop = StopWatch::new(rules.get().keep_queue);
        Self {
            thread,
            ctx,
            down,
            rules,
            stop,
            failure: None,
            aborted: false,
            down_open: true,
            tasks_turn: true,
            family_turns: false,
        }
    }

    /// The rules, if they are told of each DOWN message (a worker pool's done signal, a
    /// supervisor's log).
    #[inline]
    pub(super) fn watch(&self) -> Option<&LifeRules> {
        self.rules.watching()
    }

    /// Messages dropped unhandled after a failure.
    fn dropped(&self) -> usize {
        self.failure.as_ref().map_or(0, |failure| failure.dropped)
    }

    /// Records the first failure and starts stopping: the queue closes, what is queued is
    /// dropped (and counted), children are stopped.
    pub(super) fn fail(&mut self, exit: Exit) {
        if let Exit::Aborted { .. } = exit {
            self.aborted = true;
        } else if self.failure.is_none() {
            self.failure = Some(Failure::new(exit));
        }
        self.ctx.begin_stopping();
        if self.stop.failure_closes_queue(self.down.node()) {
            // Nothing queued: no turn is needed to find the queue's end.
            if self.down.close() {
                self.down_open = false;
            }
        } else {
            // Restarted on failure: what is queued waits for the next life, and places freed
            // by what this one took go to waiting senders at once.
            self.down.give_back();
            self.down_open = false;
        }
    }

    /// Runs `enter`; the thread is running once it returns, failed if it fails.
    #[allow(clippy::manual_async_fn)]
    fn start(&mut self) -> impl Future<Output = ()> + '_ {
        async move {
            // The timetable is made here, by the thread's own task, and its tasks scheduled
            // before `enter` (they cannot run before it returns) so that `enter` can cancel or
            // reschedule them by name.
            if !T::TASKS.is_empty() {
                self.ctx.timetable().make(T::TASKS);
                self.ctx.timetable().start_automatic(Instant::now());
                if recording() {
                    self.publish_schedule();
                }
            }
            let outcome = {
                let enter = pin!(self.thread.__enter(&mut *self.ctx));
                run_user(enter, &mut *self.down, false, &mut self.stop).await
            };
            match outcome {
                Ok(()) => self.down.node().set_state(ThreadState::Running),
                Err(exit) => self.fail(*exit),
            }
        }
    }

    /// The stop sequence, one step per turn: a requested stop (or the thread's own) begins
    /// it — the DOWN queue closes and what is queued is still handled — then its children
    /// are stopped stage by stage while their UP messages are still handled; once the queue
    /// is drained and nothing of the family is left, the loop ends (`false`).
    ///
    /// Inline for the common case, a thread nobody stopped: three loads, at the top of
    /// every turn and task run.
    #[inline]
    fn stop_sequence(&mut self) -> bool {
        if !self.ctx.stop_begun()
            && !self.ctx.is_completed()
            && !self.down.node().is_stop_requested()
        {
            return true;
        }
        self.stop_step()
    }

    /// A step of the stop sequence, once a stop is requested or under way.
    #[inline(never)]
    fn stop_step(&mut self) -> bool {
        let ctx = &mut *self.ctx;
        if !ctx.stop_begun() && (ctx.is_completed() || self.down.node().is_stop_requested()) {
            ctx.begin_stopping();
            if self
                .stop
                .stop_closes_queue(self.down.node(), ctx.is_completed())
            {
                // Nothing queued: no turn is needed to find the queue's end.
                if self.down.close() {
                    self.down_open = false;
                }
            } else {
                // Starting again: what is queued waits for the next life, and places freed
                // by what this one took go to waiting senders at once.
                self.down.give_back();
                self.down_open = false;
            }
        }
        if ctx.stop_begun() && !self.down_open {
            if ctx.family_idle() {
                return false;
            }
            if let Some(family) = ctx.family_if_any() {
                family.stop_next_stage();
            }
        }
        true
    }

    /// Tasks and messages take turns: a due task runs before the next message, but not
    /// twice in a row while messages wait, so a task returning `Now` cannot starve the
    /// queues and a busy queue cannot starve the tasks. After a turn without a run this
    /// reads the clock (a task fell due while messages were handled); after a run it does
    /// not look, so a run costs no clock reading beyond the one as it ends (if any).
    fn tasks_go_first(&mut self) -> bool {
        if self.ctx.stop_begun() || self.ctx.timetable().is_empty() {
            return false;
        }
        let timetable = self.ctx.timetable();
        timetable.rearm();
        let go = self.tasks_turn && timetable.is_due_now();
        self.tasks_turn = !go;
        go
    }

    /// Tells the probe when each task is due next.
    #[cold]
    fn publish_schedule(&mut self) {
        let probe = self.down.node().probe();
        for index in 0..T::TASKS.len() {
            probe.task_scheduled(index, self.ctx.timetable().next_due(index));
        }
    }

    /// A task ran in its own turn: the next due task waits for a message's turn first.
    pub(super) fn task_ran(&mut self) {
        self.tasks_turn = false;
    }

    /// Ends the life: runs `exit` (unless aborted), then waits for the thread's children and
    /// jobs to be gone — or, past the stop deadline, aborts what remains — and gives the
    /// exit.
    #[allow(clippy::manual_async_fn)]
    fn finish(&mut self) -> impl Future<Output = (Exit, usize)> + '_ {
        async move {
            let dropped = self.dropped();
            let mut late_work = false;
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "dropped messages that arrived after the thread failed"
                );
            }
            if !self.aborted {
                if recording() {
                    self.down.node().record_phase(StopPhase::ExitHook);
                }
                let outcome = {
                    let exit_hook = pin!(self.thread.__exit(&mut *self.ctx));
                    run_user(exit_hook, &mut *self.down, true, &mut self.stop).await
                };
                if recording() {
                    self.down.node().record_phase(StopPhase::Reaping);
                }
                match outcome {
                    Ok(()) => {}
                    Err(exit) if matches!(*exit, Exit::Aborted { .. }) => self.aborted = true,
                    Err(exit) if self.failure.is_none() => self.failure = Some(Failure::new(*exit)),
                    // The exit hook runs after a failure too, so resources are released; its own
                    // error cannot replace the first failure.
                    Err(exit) => tracing::warn!("exit hook after failure: {exit}"),
                }
                if !self.aborted
                    && self
                        .ctx
                        .family_if_any()
                        .is_some_and(|f| f.has_jobs() || f.child_count() > 0)
                {
                    late_work = true;
                    // Boxed: only an `exit` hook that started tasks or spawned children has
                    // any to wait for.
                    Box::pin(self.wait_for_late_work()).await;
                }
            }
            self.down.node().forget_waker();
            if self.aborted {
                if let Some(failure) = self.failure.take() {
                    tracing::warn!("aborted while stopping after: {}", failure.exit);
                }
                // Boxed: rare, and its timer would otherwise size every thread's task.
                let dropped = dropped + Box::pin(abort_rest(&mut *self.ctx, &mut *self.down)).await;
                tracing::warn!(
                    deadline = ?self.down.node().stop_deadline.unwrap_or_default(),
                    dropped,
                    "the stop took longer than its deadline: aborted what remained"
                );
                return (Exit::Aborted { dropped }, dropped);
            }
            let mut unheard = 0;
            if let Some(family) = self.ctx.family_if_any() {
                if !family.is_reaped() {
                    // Boxed: only a thread whose children's or jobs' tasks are still running
                    // has anything to wait for (those started by the `exit` hook, in their
                    // last step by now); what they send is counted as dropped.
                    unheard = Box::pin(family.reap_all()).await;
                } else if late_work {
                    unheard = family.drop_unheard(&[]);
                }
            }
            match self.failure.take() {
                Some(failure) => (failure.exit, failure.dropped + unheard),
                None if self.ctx.is_completed() => (Exit::Completed, unheard),
                None => (Exit::Stopped, unheard),
            }
        }
    }
}

impl<T: Thread, R: Rules, H: Hold<T, R>> Life<T, R, H> {
    /// Waits, within the stop deadline, for the tasks the `exit` hook started and the
    /// children it spawned, which are asked to stop: they belong to the thread like the
    /// others, so they run to their end (and a panic in a task fails the thread), but no
    /// handler runs after the hook to take what they send, which is dropped and counted as
    /// the thread finishes. Past the deadline, what remains is aborted.
    async fn wait_for_late_work(&mut self) {
        let (ctx, stop, failure) = (&mut *self.ctx, &mut self.stop, &mut self.failure);
        let node = self.down.node();
        // Children the hook spawned stop meanwhile, not after.
        if let Some(family) = ctx.family_if_any() {
            family.stop_late_children();
        }
        let passed = poll_fn(|cx| {
            let Some(family) = ctx.family_if_any() else {
                return Poll::Ready(false);
            };
            // First, while the task's budget is whole: a late child that keeps sending UP
            // would otherwise use it up below each time, and the timer, which spends it
            // too, would never be seen to fire.
            if stop.deadline_passed(node, cx) {
                return Poll::Ready(true);
            }
            loop {
                let mut took = false;
                if family.has_jobs() {
                    match family.poll_job(cx) {
                        Poll::Ready(Some(Err(e))) if e.is_panic() => {
                            took = true;
                            let exit = Exit::Panicked(panic_message(&*e.into_panic()));
                            match failure {
                                None => *failure = Some(Failure::new(exit)),
                                Some(_) => {
                                    tracing::warn!("task of the exit hook after failure: {exit}")
                                }
                            }
                        }
                        Poll::Ready(_) => took = true,
                        Poll::Pending => {}
                    }
                }
                // Results, UP messages and the late children's exits, as they come.
                if family.poll_late(cx).is_ready() {
                    took = true;
                }
                if !family.has_jobs() && family.child_count() == 0 {
                    return Poll::Ready(false);
                }
                if !took {
                    // The timer's waker is registered above.
                    return Poll::Pending;
                }
            }
        })
        .await;
        if passed {
            self.aborted = true;
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
    dropped += ctx.node().abort_descendants(&mut aborted);
    // `family.abort` takes this thread's own list; the children's are emptied once every
    // task is gone.
    let children = ctx.node().children_now();
    if let Some(family) = ctx.family_if_any() {
        dropped += family.abort();
    }
    wait_gone(&aborted).await;
    for child in children {
        child.node().forget_aborted();
    }
    if let Some(family) = ctx.family_if_any() {
        dropped += family.reap_all().await;
    }
    dropped
}
