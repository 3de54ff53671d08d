//! One turn of a thread's loop: what it waits for, in which order ([`poll_next`]), and the
//! handling of what came — a short batch of DOWN messages, of inbound events, a finished
//! job — and the run of a due task, which the loop awaits on its own.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use tokio::task::JoinError;

use super::Rules;
use super::life::Life;
use super::user::{StopWatch, panic_message, run_user};
use crate::ctx::Ctx;
use crate::exit::{ChildExit, ChildId, ChildRestart, Exit, ExitReport, log_exit, log_restart};
use crate::node::{DownReceiver, Kind, Node};
use crate::port::Inbound;
use crate::record::recording;
use crate::thread::Thread;

/// How many DOWN messages (or inbound events) a thread handles back to back before a full
/// loop turn.
const DOWN_BATCH: usize = 16;

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

impl<T: Thread> Next<T> {
    /// What the loop hands to [`Life::handle`]: anything but a due task, which it runs
    /// itself. By value: a borrow would keep the loop's variable in its future.
    #[inline]
    pub(super) fn unless_task(self) -> Option<Self> {
        match self {
            Self::Task => None,
            next => Some(next),
        }
    }
}

/// One turn of the loop's wait, in priority order: DOWN and children (taking turns), then
/// the timer (due tasks also get their turn at the top of the loop), then finished jobs,
/// and the stop signal last — it is also checked with one atomic load at the top of every
/// turn, so it is only waited on when there is nothing else to do. A hand-written poll
/// rather than `select!`: it builds no futures per message.
#[inline(always)]
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
    if let Some(family) = ctx.family_if_any()
        && let Poll::Ready(Some(inbound)) = family.poll_inbound(cx)
    {
        return Poll::Ready(Next::Inbound(inbound));
    }
    if !down_first
        && down_open
        && let Poll::Ready(msg) = down.poll_recv(cx)
    {
        return Poll::Ready(Next::Down(msg));
    }
    let stopping = ctx.stop_begun();
    // A task due now is taken without waiting for the timer wheel, whose resolution (1 ms)
    // would otherwise delay every `Now` and period-less `Again`.
    if !stopping && ctx.timetable().is_armed() {
        if ctx.timetable().is_due() {
            // Taking a due task without the timer bypasses tokio's cooperative budget, so
            // spend it explicitly: a task returning `Now` must not starve the runtime.
            if let Poll::Ready(progress) = tokio::task::coop::poll_proceed(cx) {
                progress.made_progress();
                return Poll::Ready(Next::Task);
            }
        } else if ctx.timetable().poll_wait(cx).is_ready() {
            return Poll::Ready(Next::Task);
        }
    }
    if let Some(family) = ctx.family_if_any()
        && let Poll::Ready(Some(joined)) = family.poll_job(cx)
    {
        return Poll::Ready(Next::Job(joined));
    }
    if !stopping && stop.requested(ctx.node(), cx) {
        return Poll::Ready(Next::Stop);
    }
    if stopping && stop.deadline_passed(ctx.node(), cx) {
        return Poll::Ready(Next::Deadline);
    }
    Poll::Pending
}

/// The wait of one turn of the loop, for [`poll_next`], awaited by the loop itself: a
/// timer's or a message's wake-up goes through no future of the turn's. It holds what the
/// wait reads rather than the life, so a wake-up reaches the context and the queue with one
/// dependent load less. Its poll is inlined into the loop's: called apart, it would return
/// what came through memory, for the loop to read back at once.
pub(super) struct Waiting<'w, T: Thread> {
    ctx: &'w mut Ctx<T>,
    down: &'w mut DownReceiver<T::Down>,
    stop: &'w mut StopWatch,
    down_open: bool,
    down_first: bool,
}

impl<T: Thread> Future for Waiting<'_, T> {
    type Output = Next<T>;

    #[inline(always)]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next<T>> {
        let this = self.get_mut();
        poll_next(
            cx,
            this.ctx,
            this.down,
            this.down_open,
            this.down_first,
            this.stop,
        )
    }
}

/// A child's exit report: forgets the child and makes its [`ChildExit`], and gives the
/// future of the `#[up]` handler of `ChildExit` (or of its default, a log line) to run, if
/// there is one to run. The exit of a supervised child past its limit goes to `escalated`
/// instead; after a failure of this thread, the exit is logged.
///
/// A plain `fn`, so that the report is made straight into the handler's future: made in the
/// loop's future, it would be kept there beside the handler's copy, in every thread's task.
fn on_child_exit<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    node: &Node,
    failed: bool,
    from: ChildId,
    report: ExitReport,
    escalated: &mut Option<Box<ChildExit>>,
) -> Option<impl Future<Output = crate::error::Result<()>> + Send + 'a> {
    let released = report.released_task();
    // `None`: forgotten already (an abort of this thread is under way).
    let child = ctx
        .family_if_any()
        .and_then(|f| f.on_child_exit(from, released))?;
    let (exit, dropped, escalates) = report.into_parts();
    let exit = ChildExit {
        id: from,
        type_name: child.node().meta.type_name,
        // The node itself, not a copy of its path: the node goes with the report.
        at: child,
        exit,
        dropped,
        escalated: escalates,
    };
    if failed {
        log_exit(node.path(), &exit);
        return None;
    }
    if exit.escalated {
        *escalated = Some(Box::new(exit));
        return None;
    }
    Some(thread.__exited(ctx, from, exit))
}

impl<'a, T: Thread, R: Rules> Life<'a, T, R> {
    /// The wait of one turn: for the next thing to do, in [`poll_next`]'s order. What
    /// comes is handled by the loop: a due task's run, or [`handle`](Self::handle).
    #[inline]
    pub(super) fn wait(&mut self) -> Waiting<'_, T> {
        let down_first = self.family_turns && self.ctx.has_family();
        self.family_turns = !self.family_turns;
        Waiting {
            ctx: self.ctx,
            down: self.down,
            stop: &mut self.stop,
            down_open: self.down_open,
            down_first,
        }
    }

    /// Handles what came in a turn's wait, except a due task (the loop runs it): a short
    /// batch of DOWN messages or of inbound events, the end of the DOWN queue, a finished
    /// job, a stop or the stop deadline. The argument is the loop's variable, handed on
    /// whole: a copy of it would be kept beside it in the future.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn handle(&mut self, next: Next<T>) -> impl Future<Output = ()> + '_ {
        async move {
            match next {
                Next::Down(Some(first)) => {
                    // A short batch: while only DOWN has work (no due task, no inbound
                    // event, no stop), the next message is taken without a full loop turn.
                    // Bounded so the runtime's cooperative budget still applies.
                    let mut msg = first;
                    let mut left = DOWN_BATCH;
                    loop {
                        if self.failure.is_some() {
                            self.dropped += 1;
                            break;
                        }
                        self.down.node().count_handled();
                        if recording() {
                            self.down
                                .node()
                                .record_begin(Kind::Down(T::__down_index(&msg)));
                        }
                        // Passed through by value, not borrowed: a borrow would keep the
                        // message's place alive across the handler in every thread's task.
                        if let Some(watch) = self.watch() {
                            msg = watch.taking::<T>(msg);
                        }
                        let outcome = {
                            let stopping = self.ctx.stop_begun();
                            let handler = pin!(self.thread.__down(self.ctx, msg));
                            run_user(handler, self.down, stopping, &mut self.stop).await
                        };
                        if recording() {
                            self.down.node().record_end();
                        }
                        if let Some(watch) = self.watch() {
                            watch.handled(outcome.is_err());
                        }
                        if let Err(exit) = outcome {
                            self.fail(exit);
                            break;
                        }
                        left -= 1;
                        if left == 0
                            || self.ctx.stop_begun()
                            || self.ctx.is_completed()
                            || self.down.node().is_stop_requested()
                            || self.ctx.timetable().is_due()
                            || self.ctx.has_family()
                        {
                            break;
                        }
                        match self.down.try_recv() {
                            Some(next) => msg = next,
                            None => break,
                        }
                    }
                }
                Next::Down(None) => self.down_open = false,
                Next::Inbound(first) => self.inbound_batch(first).await,
                Next::Job(joined) => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        self.fail(Box::new(Exit::Panicked(panic_message(e.into_panic()))));
                    }
                }
                Next::Deadline => self.aborted = true,
                // The next turn's stop sequence takes it from here.
                Next::Stop => {}
                // Never handed here: the loop runs a due task itself (`Next::unless_task`).
                Next::Task => {}
            }
        }
    }

    /// A short batch of inbound events, from `inbound`: UP messages and exits from children
    /// are taken without a full loop turn while DOWN has nothing waiting (the queues keep
    /// taking turns) and nothing else is due. A future of its own, made once per batch in
    /// [`handle`](Self::handle)'s. The argument is the batch's loop variable: a copy of it
    /// would be kept beside it in the future, in every thread's task.
    #[allow(clippy::manual_async_fn)]
    fn inbound_batch(&mut self, mut inbound: Inbound<T::Event>) -> impl Future<Output = ()> + '_ {
        async move {
            let mut left = DOWN_BATCH;
            loop {
                // An UP message or stream item is handled here, not in a future of its
                // own: made and dropped for every event, that future would cost more than
                // the dispatch itself.
                match inbound {
                    Inbound::Event(event) | Inbound::Unmetered(event) => {
                        if self.failure.is_some() {
                            self.dropped += 1;
                            break;
                        }
                        self.down.node().count_handled();
                        if recording() {
                            self.down.node().record_begin(Kind::Up);
                        }
                        let outcome = {
                            let stopping = self.ctx.stop_begun();
                            let handler = pin!(self.thread.__event(self.ctx, event));
                            run_user(handler, self.down, stopping, &mut self.stop).await
                        };
                        if recording() {
                            self.down.node().record_end();
                        }
                        if let Err(exit) = outcome {
                            self.fail(exit);
                            break;
                        }
                    }
                    // Apart, in futures of their own: their locals would otherwise take
                    // room beside an UP handler's future here.
                    Inbound::Exit(from, report) => {
                        if let Some(exit) = self.handle_exit(from, report).await {
                            // Boxed, and apart: rare, and the copy it keeps of the exit
                            // would otherwise size every thread's task.
                            Box::pin(self.handle_escalation(from, *exit)).await;
                        }
                    }
                    Inbound::Restart(from, restart) => {
                        // Boxed: rare, and its handler would otherwise size every
                        // thread's task.
                        Box::pin(self.handle_restart(from, restart)).await;
                    }
                }
                left -= 1;
                if left == 0
                    || self.failure.is_some()
                    || self.ctx.stop_begun()
                    || self.ctx.is_completed()
                    || self.down.node().is_stop_requested()
                    || self.ctx.timetable().is_due()
                    || (self.down_open && !self.down.is_empty())
                {
                    break;
                }
                match self.ctx.family_if_any().and_then(|f| f.try_inbound()) {
                    Some(next) => inbound = next,
                    None => break,
                }
            }
        }
    }

    /// A child's exit report: the `#[up]` handler of `ChildExit` (or its default, a log
    /// line) runs on it. Gives the exit back if it is escalated: the caller then ends this
    /// thread with it (apart, so that nothing of this future is kept across that).
    #[allow(clippy::manual_async_fn)]
    fn handle_exit(
        &mut self,
        from: ChildId,
        report: ExitReport,
    ) -> impl Future<Output = Option<Box<ChildExit>>> + '_ {
        async move {
            let failed = self.failure.is_some();
            let stopping = self.ctx.stop_begun();
            let mut escalated = None;
            let outcome = {
                // The handler's future holds the one copy of the report: made in place,
                // with nothing of it left in this future beside it.
                let mut handler = pin!(on_child_exit(
                    &mut *self.thread,
                    &mut *self.ctx,
                    self.down.node(),
                    failed,
                    from,
                    report,
                    &mut escalated,
                ));
                match handler.as_mut().as_pin_mut() {
                    Some(handler) => {
                        if recording() {
                            self.down.node().record_begin(Kind::Exit);
                        }
                        let outcome = run_user(handler, self.down, stopping, &mut self.stop).await;
                        if recording() {
                            self.down.node().record_end();
                        }
                        outcome
                    }
                    None => Ok(()),
                }
            };
            if let Err(exit) = outcome {
                self.fail(exit);
                return None;
            }
            escalated
        }
    }

    /// A supervised child past its restart limit: once the `#[up]` handler of its exit has
    /// seen it, this thread fails with it (or with the handler's own error).
    #[allow(clippy::manual_async_fn)]
    fn handle_escalation(
        &mut self,
        from: ChildId,
        exit: ChildExit,
    ) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let escalation = exit.escalation();
            let outcome = {
                let stopping = self.ctx.stop_begun();
                let handler = pin!(self.thread.__exited(self.ctx, from, exit));
                run_user(handler, self.down, stopping, &mut self.stop).await
            };
            self.fail(outcome.err().unwrap_or_else(|| Box::new(escalation)));
        }
    }

    /// Hands a supervised child's restart to the `__restarted` hook (an `#[up]` handler of
    /// `ChildRestart`, or a log line).
    #[allow(clippy::manual_async_fn)]
    fn handle_restart(
        &mut self,
        from: ChildId,
        restart: Box<ChildRestart>,
    ) -> impl Future<Output = ()> + Send + '_ {
        async move {
            if self.failure.is_some() {
                log_restart(self.down.node().path(), &restart);
                return;
            }
            if recording() {
                self.down.node().record_begin(Kind::Restart);
            }
            let outcome = {
                let stopping = self.ctx.stop_begun();
                let handler = pin!(self.thread.__restarted(self.ctx, from, *restart));
                run_user(handler, self.down, stopping, &mut self.stop).await
            };
            if recording() {
                self.down.node().record_end();
            }
            if let Err(exit) = outcome {
                self.fail(exit);
            }
        }
    }

    #[cold]
    fn record_task_start(&self, index: usize, due: tokio::time::Instant) {
        self.down.node().probe().begin_task(index, due);
    }

    #[cold]
    fn record_task_next(&mut self) {
        let index = self.ctx.timetable().running_task();
        let next = self.ctx.timetable().next_due(index);
        self.down.node().probe().task_scheduled(index, next);
    }

    /// Runs the task that is due, if one still is, and schedules its next run as it says.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run_due_task(&mut self) -> impl Future<Output = ()> + '_ {
        async move {
            let Some(index) = self.ctx.timetable().take_due() else {
                return;
            };
            self.down.node().count_handled();
            if recording()
                && let Some(at) = self.ctx.timetable().due_at()
            {
                self.record_task_start(index, at);
            }
            // In a block of its own, so the outcome is not kept across the yield below.
            let ends = {
                let outcome = {
                    let stopping = self.ctx.stop_begun();
                    let task = pin!(self.thread.__task(self.ctx, index));
                    run_user(task, self.down, stopping, &mut self.stop).await
                };
                if recording() {
                    self.down.node().record_end();
                }
                match outcome {
                    Ok(decision) => {
                        let ends = self.ctx.timetable().finish(decision);
                        if ends {
                            self.ctx.stop();
                            self.down.give_back();
                        }
                        if recording() {
                            self.record_task_next();
                        }
                        ends
                    }
                    Err(exit) => {
                        self.fail(exit);
                        false
                    }
                }
            };
            if ends {
                // The thread ends with this run. Its ending (the stop sequence, the exit
                // report) waits behind the other tasks ready to run: when many periodic
                // tasks end together, each would otherwise delay the runs due after it by
                // its thread's ending.
                tokio::task::yield_now().await;
            }
        }
    }
}
