//! One life of a thread, in four steps: [start](Life::start) (`enter`), the
//! [turns](Life::wait) of the loop, the [stop sequence](Life::stop_sequence) run at the top
//! of every turn once a stop has begun, and [finish](Life::finish) (`exit`, then waiting for
//! or aborting what remains).

use std::future::Future;
use std::pin::pin;

use tokio::time::Instant;

use super::user::{StopWatch, run_user};
use super::{LifeRules, Rules};
use crate::ctx::Ctx;
use crate::exit::{Exit, ThreadState};
use crate::family::wait_gone;
use crate::node::{DownReceiver, StopPhase};
use crate::record::recording;
use crate::thread::Thread;

/// The loop of one life, from `start` to `finish`, in the future of the block it is
/// written in: [`run_thread`]'s, or a plain thread's own task ([`run_owned`]).
macro_rules! live {
    ($life:ident) => {{
        $life.start().await;
        while !$life.aborted && $life.stop_sequence() {
            if $life.tasks_go_first() {
                $life.run_due_task().await;
                continue;
            }
            // Handed on whole, and dropped before the run: what came is not kept in the
            // loop's future across a task's run.
            if let Some(next) = $life.wait().await.unless_task() {
                $life.handle(next).await;
                continue;
            }
            $life.task_ran();
            $life.run_due_task().await;
        }
        $life.finish().await
    }};
}

/// One life of a thread, from `enter` to its exit value and the number of queued messages
/// it dropped.
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
    let mut life = Life::<T, R>::new(thread, ctx, down, rules);
    async move { live!(life) }
}

/// A thread's only life, run in the future that owns the thread, its context and its queue:
/// the task of a thread that is not started again. No future is nested around the loop's,
/// so a wake-up (a timer's, a message's) goes through one future less, and the context
/// sits beside the life rather than past the loop's state: with thousands of threads, each
/// cache line of its task a wake-up touches is a miss. `then` is given the context and how
/// the life ended, once the thread is dropped.
///
/// A plain `fn` returning an `async move` block that uses the arguments in place, so each
/// is stored once in the task rather than twice (argument and local) as an `async fn`
/// would.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_owned<T: Thread, R: Rules, O>(
    mut thread: T,
    ctx: Ctx<T>,
    down: DownReceiver<T::Down>,
    rules: R,
    then: impl FnOnce(Ctx<T>, Exit, usize) -> O + Send,
) -> impl Future<Output = O> + Send {
    let mut owned = Owned { ctx, down };
    async move {
        let (exit, dropped) = {
            let Owned { ctx, down } = &mut owned;
            let mut life = Life::<T, R>::new(&mut thread, ctx, down, &rules);
            live!(life)
        };
        drop(thread);
        then(owned.ctx, exit, dropped)
    }
}

/// A thread's context and the receiving end of its DOWN queue, held by its task as one
/// value: a task dropped unfinished (cancelled from outside) drops the context first, which
/// reports the end with the number of messages still queued, and then the receiver, which
/// empties the queue. Kept as two values, their order of drop in an unfinished task would
/// be the compiler's choice.
pub(crate) struct Owned<T: Thread> {
    pub(crate) ctx: Ctx<T>,
    pub(crate) down: DownReceiver<T::Down>,
}

/// What the loop holds during one life: the thread, its context and its queue, lent by the
/// task that runs it, and the loop's own bookkeeping.
pub(super) struct Life<'a, T: Thread, R: Rules> {
    pub(super) thread: &'a mut T,
    pub(super) ctx: &'a mut Ctx<T>,
    pub(super) down: &'a mut DownReceiver<T::Down>,
    pub(super) stop: StopWatch,
    /// The first failure. Boxed: rare, and it would otherwise size every thread's task.
    pub(super) failure: Option<Box<Exit>>,
    /// The stop deadline passed: what remains is aborted.
    pub(super) aborted: bool,
    pub(super) down_open: bool,
    /// Messages dropped unhandled after a failure.
    pub(super) dropped: usize,
    /// Whether a due task may run before the next message.
    tasks_turn: bool,
    /// Whether DOWN is polled before the inbound queue next turn (they take turns).
    pub(super) family_turns: bool,
    /// The rules, if they are told of each DOWN message (a worker pool's done signal, a
    /// supervisor's log); nothing for a plain thread, `R` = [`Plain`](super::Plain), whose
    /// loop then has no check at all.
    watch: R::Watch<'a>,
}

impl<'a, T: Thread, R: Rules> Life<'a, T, R> {
    fn new(
        thread: &'a mut T,
        ctx: &'a mut Ctx<T>,
        down: &'a mut DownReceiver<T::Down>,
        rules: &'a R,
    ) -> Self {
        Self {
            thread,
            ctx,
            down,
            stop: StopWatch::new(rules.get().keep_queue),
            failure: None,
            aborted: false,
            down_open: true,
            dropped: 0,
            tasks_turn: true,
            family_turns: false,
            watch: rules.watch(),
        }
    }

    /// The rules, if they are told of each DOWN message.
    #[inline]
    pub(super) fn watch(&self) -> Option<&'a LifeRules> {
        R::watching(self.watch)
    }

    /// Records the first failure and starts stopping: the queue closes, what is queued is
    /// dropped (and counted), children are stopped.
    pub(super) fn fail(&mut self, exit: Box<Exit>) {
        if let Exit::Aborted { .. } = *exit {
            self.aborted = true;
        } else if self.failure.is_none() {
            self.failure = Some(exit);
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
                let enter = pin!(self.thread.__enter(self.ctx));
                run_user(enter, self.down, false, &mut self.stop).await
            };
            match outcome {
                Ok(()) => self.down.node().set_state(ThreadState::Running),
                Err(exit) => self.fail(exit),
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
            if self.dropped > 0 {
                tracing::warn!(
                    dropped = self.dropped,
                    "dropped messages that arrived after the thread failed"
                );
            }
            if !self.aborted {
                if recording() {
                    self.down.node().record_phase(StopPhase::ExitHook);
                }
                let outcome = {
                    let exit_hook = pin!(self.thread.__exit(self.ctx));
                    run_user(exit_hook, self.down, true, &mut self.stop).await
                };
                if recording() {
                    self.down.node().record_phase(StopPhase::Reaping);
                }
                match outcome {
                    Ok(()) => {}
                    Err(exit) if matches!(*exit, Exit::Aborted { .. }) => self.aborted = true,
                    Err(exit) if self.failure.is_none() => self.failure = Some(exit),
                    // The exit hook runs after a failure too, so resources are released; its own
                    // error cannot replace the first failure.
                    Err(exit) => tracing::warn!("exit hook after failure: {exit}"),
                }
            }
            self.down.node().forget_waker();
            if self.aborted {
                if let Some(failure) = self.failure.take() {
                    tracing::warn!("aborted while stopping after: {failure}");
                }
                // Boxed: rare, and its timer would otherwise size every thread's task.
                let dropped = self.dropped + Box::pin(abort_rest(self.ctx, self.down)).await;
                tracing::warn!(
                    deadline = ?self.down.node().stop_deadline.unwrap_or_default(),
                    dropped,
                    "the stop took longer than its deadline: aborted what remained"
                );
                return (Exit::Aborted { dropped }, dropped);
            }
            if let Some(family) = self.ctx.family_if_any()
                && !family.is_reaped()
            {
                // Boxed: only a thread whose children's or jobs' tasks are still running
                // has anything to wait for.
                Box::pin(family.reap_all()).await;
            }
            let exit = match self.failure.take() {
                Some(failure) => *failure,
                None if self.ctx.is_completed() => Exit::Completed,
                None => Exit::Stopped,
            };
            (exit, self.dropped)
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
    if let Some(family) = ctx.family_if_any() {
        dropped += family.abort();
    }
    wait_gone(&aborted).await;
    if let Some(family) = ctx.family_if_any() {
        family.reap_all().await;
    }
    dropped
}
