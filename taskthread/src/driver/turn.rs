//! One turn of a thread's loop: what it waits for, in which order ([`poll_next`]), and what
//! it does with what came — the bookkeeping before and after a DOWN message's handler and a
//! due task's run (the loop awaits those itself), a short batch of inbound events in a
//! future of its own, a finished job, a stop.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use super::Rules;
use super::life::{DOWN_BATCH, Hold, Life, Next};
use super::user::{StopWatch, panic_message, run_user};
use crate::ctx::Ctx;
use crate::exit::{ChildExit, ChildId, ChildRestart, Exit, ExitReport, log_exit, log_restart};
use crate::node::{DownReceiver, Kind, Node};
use crate::port::Inbound;
use crate::record::recording;
use crate::reschedule::Reschedule;
use crate::thread::Thread;

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
    // Once its deadline runs, a stopping thread looks at it first: UP messages that keep
    // coming would otherwise hold it off, the deadline being looked at below only when
    // nothing else is ready (and the runtime's budget, which they use up, is spent by the
    // timer too).
    if stop.deadline_runs() && stop.deadline_passed(ctx.node(), cx) {
        return Poll::Ready(Next::Deadline);
    }
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

impl<T: Thread, R: Rules, H: Hold<T, R>> Life<T, R, H> {
    /// The wait of one turn: for the next thing to do, in [`poll_next`]'s order. What
    /// comes is handled by the loop: a batch of DOWN messages, a batch of inbound events
    /// ([`inbound_batch`](Self::inbound_batch)), a due task's run, or the rest
    /// ([`handle_rest`](Self::handle_rest)).
    #[inline]
    pub(super) fn wait(&mut self) -> Waiting<'_, T> {
        let down_first = self.family_turns && self.ctx.has_family();
        self.family_turns = !self.family_turns;
        Waiting {
            ctx: &mut *self.ctx,
            down: &mut *self.down,
            stop: &mut self.stop,
            down_open: self.down_open,
            down_first,
        }
    }

    /// Handles what came in a turn's wait, other than a DOWN message, an inbound event and
    /// a due task (the loop handles those): the end of the DOWN queue, a finished job, a
    /// stop or the stop deadline. Whether a due task came instead (`false`), for the loop
    /// to run.
    #[inline]
    pub(super) fn handle_rest(&mut self, next: Next<T>) -> bool {
        match next {
            Next::Task => return false,
            Next::Down(None) => self.down_open = false,
            Next::Job(joined) => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    self.fail(Exit::Panicked(panic_message(&*e.into_panic())));
                }
            }
            Next::Deadline => self.aborted = true,
            // The next turn's stop sequence takes it from here.
            Next::Stop => {}
            Next::Down(Some(_)) | Next::Inbound(_) => {
                unreachable!("the loop handles messages and inbound events")
            }
        }
        true
    }

    /// Whether a DOWN message that came is dropped rather than handled: it is once the
    /// thread has failed (and counted). A batch starts only with a message that is not: a
    /// failure during the batch ends it.
    #[inline]
    pub(super) fn drops_message(&mut self) -> bool {
        match &mut self.failure {
            Some(failure) => {
                failure.dropped += 1;
                true
            }
            None => false,
        }
    }

    /// Before a DOWN message's handler: counts it (and records it, if recording).
    #[inline]
    pub(super) fn count_message(&mut self, msg: &T::Down) {
        self.down.node().count_handled();
        if recording() {
            self.down
                .node()
                .record_begin(Kind::Down(T::__down_index(msg)));
        }
    }

    /// A DOWN message about to be handled, told to the rules that watch DOWN messages (if
    /// any): passed through by value (nothing, for a plain thread's rules).
    #[inline]
    pub(super) fn watched(&self, msg: T::Down) -> T::Down {
        match self.watch() {
            Some(watch) => watch.taking::<T>(msg),
            None => msg,
        }
    }

    /// After a DOWN message's handler: its failure, if it failed, and the batch's next
    /// message. A short batch: while only DOWN has work (no due task, no inbound event, no
    /// stop), the next message is taken without a full loop turn, `left` more at most, so
    /// the runtime's cooperative budget still applies.
    #[inline]
    pub(super) fn message_done(
        &mut self,
        outcome: Result<(), Box<Exit>>,
        left: usize,
    ) -> Option<T::Down> {
        if recording() {
            self.down.node().record_end();
        }
        if let Some(watch) = self.watch() {
            watch.handled(outcome.is_err());
        }
        if let Err(exit) = outcome {
            self.fail(*exit);
            return None;
        }
        if left == 0
            || self.ctx.stop_begun()
            || self.ctx.is_completed()
            || self.down.node().is_stop_requested()
            || self.ctx.timetable().is_due()
            || self.ctx.has_family()
        {
            return None;
        }
        self.down.try_recv()
    }

    /// A short batch of inbound events, from `inbound`: UP messages and exits from children
    /// are taken without a full loop turn while DOWN has nothing waiting (the queues keep
    /// taking turns) and nothing else is due. A future of its own, made once per batch in
    /// the loop's: its four waits (an UP handler, an exit's handler, an escalation, a
    /// restart) would otherwise keep its variables in every state of the loop's future. The
    /// argument is the batch's loop variable: a copy of it would be kept beside it in the
    /// future, in every thread's task.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn inbound_batch(
        &mut self,
        mut inbound: Inbound<T::Event>,
    ) -> impl Future<Output = ()> + '_ {
        async move {
            let mut left = DOWN_BATCH;
            loop {
                // An UP message or stream item is handled here, not in a future of its
                // own: made and dropped for every event, that future would cost more than
                // the dispatch itself.
                match inbound {
                    Inbound::Event(event) | Inbound::Unmetered(event) => {
                        if let Some(failure) = &mut self.failure {
                            failure.dropped += 1;
                            break;
                        }
                        self.down.node().count_handled();
                        if recording() {
                            self.down.node().record_begin(Kind::Up);
                        }
                        let outcome = {
                            let stopping = self.ctx.stop_begun();
                            let handler = pin!(self.thread.__event(&mut *self.ctx, event));
                            run_user(handler, &mut *self.down, stopping, &mut self.stop).await
                        };
                        if recording() {
                            self.down.node().record_end();
                        }
                        if let Err(exit) = outcome {
                            self.fail(*exit);
                            break;
                        }
                    }
                    // Apart, in futures of their own: their locals would otherwise take
                    // room beside an UP handler's future here.
                    Inbound::Exit(from, report) => {
                        if let Some(exit) = self.handle_exit(from, report).await {
                            // Boxed, and apart: rare, and the copy it keeps of the exit
                            // would otherwise size every thread's task. The child's id
                            // comes with its exit: kept apart, it would take room beside
                            // the exit handler's future here.
                            Box::pin(self.handle_escalation(*exit)).await;
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
                        let outcome =
                            run_user(handler, &mut *self.down, stopping, &mut self.stop).await;
                        if recording() {
                            self.down.node().record_end();
                        }
                        outcome
                    }
                    None => Ok(()),
                }
            };
            if let Err(exit) = outcome {
                self.fail(*exit);
                return None;
            }
            escalated
        }
    }

    /// A supervised child past its restart limit: once the `#[up]` handler of its exit has
    /// seen it, this thread fails with it (or with the handler's own error).
    #[allow(clippy::manual_async_fn)]
    fn handle_escalation(&mut self, exit: ChildExit) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let escalation = exit.escalation();
            let outcome = {
                let stopping = self.ctx.stop_begun();
                let handler = pin!(self.thread.__exited(&mut *self.ctx, exit.id, exit));
                run_user(handler, &mut *self.down, stopping, &mut self.stop).await
            };
            self.fail(outcome.map_or_else(|exit| *exit, |()| escalation));
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
                let handler = pin!(self.thread.__restarted(&mut *self.ctx, from, *restart));
                run_user(handler, &mut *self.down, stopping, &mut self.stop).await
            };
            if recording() {
                self.down.node().record_end();
            }
            if let Err(exit) = outcome {
                self.fail(*exit);
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

    /// Takes the task that is due to run, if one still is (its index).
    #[inline]
    pub(super) fn take_due_task(&mut self) -> Option<usize> {
        let index = self.ctx.timetable().take_due()?;
        self.down.node().count_handled();
        if recording()
            && let Some(at) = self.ctx.timetable().due_at()
        {
            self.record_task_start(index, at);
        }
        Some(index)
    }

    /// After a task's run: schedules its next run as it says, or fails the thread with
    /// the run's error. Whether the thread ends with this run (its last task stopped).
    #[inline]
    pub(super) fn task_done(&mut self, outcome: Result<Reschedule, Box<Exit>>) -> bool {
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
                self.fail(*exit);
                false
            }
        }
    }
}
