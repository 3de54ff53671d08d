//! [`Family`]: what only a thread with children, streams or background jobs needs — its
//! inbound queue, the sink its children send UP through, children's names and stop stages,
//! its jobs, and the tasks of ended children still to be waited for.
//!
//! Made on first use and boxed, so a leaf thread stays small. The children themselves are
//! listed once, in the thread's node (see [`Node::add_child`]), where snapshots and aborts
//! from other threads find them.

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::{AbortHandle, JoinError, JoinHandle, JoinSet};

use crate::blocking::BlockingLimit;
use crate::exit::{ChildExit, ChildId, Exit, ExitReport, log_exit, log_restart};
use crate::node::{ChildEntry, ChildNode, Node, Queue};
use crate::port::{Inbound, ParentSink, UpPort};
use crate::queue::{Inbox, InboxSender, inbox};
use crate::record::recording;

/// An input that is drained, not dropped, when its thread stops: its forwarding task runs
/// until its stream ends, and the thread waits for it (and handles every item) before `exit`.
/// The source is told when the stop begins, so that it ends its stream, and when the stop
/// turns into an abort, so that nothing it runs outlives the thread.
pub(crate) trait Drained: Send + Sync {
    /// The thread starts stopping: take nothing new, and end the stream once what is in
    /// hand is reported.
    fn stop(&mut self);
    /// The thread is aborted: cancel what is still running (its items are no longer read).
    fn abort(&mut self);
}

/// A family's jobs and inputs, and the other runtimes its children were placed on: what
/// most families never need.
struct Work {
    /// The other runtimes the thread's children were placed on, in the order first used: a
    /// child's [`ChildEntry::place`] counts from 1 in it.
    elsewhere: Vec<tokio::runtime::Handle>,
    jobs: JoinSet<()>,
    blocking: Option<BlockingLimit>,
    stream_aborts: Vec<AbortHandle>,
    /// The drained inputs whose forwarding task may still run: an input whose stream has
    /// ended (a closed, idle pool) is forgotten as the next one comes.
    drained: Vec<(AbortHandle, Box<dyn Drained>)>,
}

impl Work {
    /// See [`Family::stop_streams`].
    #[inline(never)]
    fn stop_streams(&mut self) {
        for abort in self.stream_aborts.drain(..) {
            abort.abort();
        }
        for (_, source) in &mut self.drained {
            source.stop();
        }
    }
}

/// A thread's family; `P` is the thread's type and `E` its event type.
pub(crate) struct Family<P, E> {
    inbox: Inbox<Inbound<E>>,
    /// The children's way UP, shared by all of them.
    sink: Arc<ParentSink<P, E>>,
    /// The port through which children send UP as the thread itself (a
    /// [`ForwardPort`](crate::port::ForwardPort)), made for the first child that does.
    forward: Option<Arc<dyn Any + Send + Sync>>,
    /// How many children each stop stage has.
    stages: StageCounts,
    children: usize,
    signalled_stage: Option<u32>,
    /// The last `'static` name given and how many children have had it.
    last_name: Option<(&'static str, u32)>,
    /// The other names given and how many children have had each: made when a second name
    /// comes (most families name all their children alike). Boxed so that a family without
    /// it keeps one pointer, not the map's 48 bytes.
    #[allow(clippy::box_collection)]
    names: Option<Box<HashMap<Cow<'static, str>, u32>>>,
    /// Made with the first job, stream, drained input or child placed on another runtime:
    /// most families have none, and their stop and drop then look at one pointer for them
    /// all.
    work: Option<Box<Work>>,
    /// The runtime the thread runs on, which its children's tasks are spawned on through
    /// it: `tokio::spawn` would look it up in a thread-local for each child, and pass the
    /// task's future by value through more calls (each a copy of the whole future).
    runtime: Option<tokio::runtime::Handle>,
    /// Whether its children keep their task's `JoinHandle` (see [`ChildEntry::join`]): on a
    /// multi-thread runtime, where a child's task may still be in its last step on another
    /// worker when its report is handled.
    keeps_joins: bool,
    /// The tasks of ended children still running, to be waited for.
    reaping: Vec<JoinHandle<Exit>>,
    /// The tasks of aborted children, and of ended ones that kept no handle but were still
    /// running when their reports were handled: waited for until they are gone.
    finishing: Vec<AbortHandle>,
    /// UP messages and task results taken after the `exit` hook ran, while the thread waited
    /// for what the hook started (see [`poll_late`](Self::poll_late)): counted in with the
    /// rest as the thread finishes.
    unheard: usize,
}

/// Where a thread keeps its family: until the family is made, the runtime the thread runs
/// on (known when it is spawned, whatever runtime a handler enters later), which the family
/// takes when it is made. A word more than the family's box alone: the handle's niche says
/// which of the two the slot holds.
pub(crate) enum FamilySlot<P, E> {
    /// No family yet; the runtime the thread runs on.
    Unmade(Option<tokio::runtime::Handle>),
    /// The family, which holds the runtime.
    Made(Box<Family<P, E>>),
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<FamilySlot<(), ()>>() == 16);

impl<P, E> FamilySlot<P, E> {
    /// The family, made on first use.
    pub(crate) fn made<Q: Queue + 'static>(&mut self, node: &Arc<Node<Q>>) -> &mut Family<P, E>
    where
        E: Send + 'static,
    {
        if let Self::Unmade(runtime) = self {
            let family = Family::new(Arc::clone(node) as Arc<Node>, runtime.take());
            *self = Self::Made(Box::new(family));
        }
        match self {
            Self::Made(family) => family,
            Self::Unmade(_) => unreachable!("the family was made above"),
        }
    }

    /// The runtime the thread runs on.
    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        match self {
            Self::Unmade(runtime) => runtime.as_ref(),
            Self::Made(family) => family.runtime(),
        }
    }

    /// The family, if it has been made.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Family<P, E>> {
        match self {
            Self::Made(family) => Some(family),
            Self::Unmade(_) => None,
        }
    }

    /// The family, if it has been made.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> Option<&mut Family<P, E>> {
        match self {
            Self::Made(family) => Some(family),
            Self::Unmade(_) => None,
        }
    }

    /// Drops the family, for the thread's next life; the runtime stays.
    pub(crate) fn renew(&mut self) {
        if let Self::Made(family) = self {
            let runtime = family.runtime.take();
            *self = Self::Unmade(runtime);
        }
    }
}

impl<P, E> Family<P, E> {
    fn new(node: Arc<Node>, runtime: Option<tokio::runtime::Handle>) -> Self
    where
        E: Send + 'static,
    {
        let (inbox_tx, inbox) = inbox(node.capacity());
        node.set_inbound(inbox.places());
        let keeps_joins = !matches!(
            runtime.as_ref().map(tokio::runtime::Handle::runtime_flavor),
            Some(tokio::runtime::RuntimeFlavor::CurrentThread)
        );
        Self {
            inbox,
            sink: Arc::new(ParentSink::new(inbox_tx, node)),
            forward: None,
            stages: StageCounts::default(),
            children: 0,
            signalled_stage: None,
            last_name: None,
            names: None,
            work: None,
            runtime,
            keeps_joins,
            reaping: Vec::new(),
            finishing: Vec::new(),
            unheard: 0,
        }
    }

    fn node(&self) -> &Node {
        &self.sink.parent
    }

    /// The jobs and inputs, made on first use.
    fn work(&mut self) -> &mut Work {
        self.work_and_runtime().0
    }

    /// The jobs and inputs (made on first use) beside the runtime the thread runs on, which
    /// its jobs are spawned on.
    fn work_and_runtime(&mut self) -> (&mut Work, Option<&tokio::runtime::Handle>) {
        let work = self.work.get_or_insert_with(|| {
            Box::new(Work {
                elsewhere: Vec::new(),
                jobs: JoinSet::new(),
                blocking: None,
                stream_aborts: Vec::new(),
                drained: Vec::new(),
            })
        });
        (work, self.runtime.as_ref())
    }

    pub(crate) fn has_jobs(&self) -> bool {
        self.work.as_ref().is_some_and(|work| !work.jobs.is_empty())
    }

    /// The sink the children send UP through.
    pub(crate) fn sink(&self) -> &Arc<ParentSink<P, E>> {
        &self.sink
    }

    /// The port through which children send UP as the thread itself, made once by `make`.
    pub(crate) fn forward_port<U: 'static>(
        &mut self,
        make: impl FnOnce(InboxSender<Inbound<E>>) -> Arc<dyn UpPort<U>>,
    ) -> Arc<dyn UpPort<U>>
    where
        E: Send + 'static,
    {
        if let Some(port) = self
            .forward
            .as_ref()
            .and_then(|any| any.downcast_ref::<Arc<dyn UpPort<U>>>())
        {
            return Arc::clone(port);
        }
        let port = make(self.sender());
        self.forward = Some(Arc::new(Arc::clone(&port)));
        port
    }

    /// A sender into the thread's inbound queue, for a stream or a job.
    pub(crate) fn sender(&self) -> InboxSender<Inbound<E>> {
        self.sink.tx.clone()
    }

    /// The suffix that makes `base` unique among the siblings: 0 (none) for the first of a
    /// name, then 2, 3, ...
    pub(crate) fn name_suffix(&mut self, base: Cow<'static, str>) -> (Cow<'static, str>, u32) {
        // The usual case, many children of one type in a row, is counted without hashing:
        // the last name is kept aside with its count (and out of `names` while it is).
        if let Some((last, count)) = &mut self.last_name
            && **last == *base
        {
            *count += 1;
            return (base, *count);
        }
        if let Some((last, count)) = self.last_name.take() {
            self.names
                .get_or_insert_default()
                .insert(Cow::Borrowed(last), count);
        }
        let count = match self.names.as_mut().and_then(|names| names.get_mut(&*base)) {
            Some(count) => {
                *count += 1;
                *count
            }
            None => 1,
        };
        match base {
            Cow::Borrowed(name) => {
                // Moved aside; `names` gets it back when another name comes.
                if let Some(names) = &mut self.names {
                    names.remove(name);
                }
                self.last_name = Some((name, count));
            }
            Cow::Owned(_) if count == 1 => {
                self.names.get_or_insert_default().insert(base.clone(), 1);
            }
            Cow::Owned(_) => {}
        }
        (base, if count == 1 { 0 } else { count })
    }

    /// Adds a spawned child. One spawned while the thread stops, in a stage already
    /// stopped, is stopped at once.
    pub(crate) fn add_child(&mut self, entry: ChildEntry, stopping: bool) {
        let stage = entry.stage;
        if stopping && self.signalled_stage.is_some_and(|s| stage <= s) {
            tracing::warn!(
                child = %entry.node().path(),
                "spawned while stopping, in a stage already stopped: it is stopped at once"
            );
            entry.node().request_stop();
        }
        self.node().add_child(entry);
        self.stages.add(stage);
        self.children += 1;
    }

    /// The runtime the thread runs on, to spawn its children's tasks on.
    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref()
    }

    /// Where a child placed on `runtime` runs, for its [`ChildEntry::place`]: 0 if that
    /// is the thread's own runtime, else its place (from 1) among the other runtimes the
    /// thread's children were placed on, listed on first use.
    pub(crate) fn place_of(&mut self, runtime: &tokio::runtime::Handle) -> u32 {
        let id = runtime.id();
        if self.runtime.as_ref().is_some_and(|own| own.id() == id) {
            return 0;
        }
        let elsewhere = &mut self.work().elsewhere;
        let at = match elsewhere.iter().position(|r| r.id() == id) {
            Some(at) => at,
            None => {
                elsewhere.push(runtime.clone());
                elsewhere.len() - 1
            }
        };
        u32::try_from(at + 1).unwrap_or(u32::MAX)
    }

    /// Whether a child spawned now keeps its task's `JoinHandle` (see
    /// [`ChildEntry::join`]).
    pub(crate) fn keeps_join(&self, stopping: bool) -> bool {
        stopping || self.keeps_joins
    }

    /// The number of live children.
    pub(crate) fn child_count(&self) -> usize {
        self.children
    }

    /// Whether nothing is left: no child, no job, no queued event.
    pub(crate) fn is_idle(&self) -> bool {
        self.children == 0 && !self.has_jobs() && self.inbox.is_empty()
    }

    /// Spawns a job whose output comes back through the inbound queue.
    pub(crate) fn spawn_job(&mut self, job: impl Future<Output = ()> + Send + 'static) {
        let (work, runtime) = self.work_and_runtime();
        spawn_job_on(&mut work.jobs, runtime, job);
    }

    /// Spawns a stream's forwarding task, cancelled when the thread starts stopping.
    pub(crate) fn spawn_stream(&mut self, forward: impl Future<Output = ()> + Send + 'static) {
        let (work, runtime) = self.work_and_runtime();
        let abort = spawn_job_on(&mut work.jobs, runtime, forward);
        work.stream_aborts.retain(|a| !a.is_finished());
        work.stream_aborts.push(abort);
    }

    /// Spawns the forwarding task of a drained input: a job, waited for at stop, whose
    /// source is told when the thread stops (at once if it is stopping already).
    pub(crate) fn spawn_drained(
        &mut self,
        forward: impl Future<Output = ()> + Send + 'static,
        mut source: Box<dyn Drained>,
        stopping: bool,
    ) {
        let (work, runtime) = self.work_and_runtime();
        let forwarding = spawn_job_on(&mut work.jobs, runtime, forward);
        if stopping {
            source.stop();
        }
        // An input forgotten is told to abort: nothing of a closed, idle pool, but what
        // still runs of one whose forwarding task panicked.
        work.drained.retain_mut(|(forwarding, source)| {
            let ended = forwarding.is_finished();
            if ended {
                source.abort();
            }
            !ended
        });
        work.drained.push((forwarding, source));
    }

    /// Runs `job` on tokio's blocking pool, at most `limit` of this thread's at once.
    pub(crate) fn spawn_blocking(&mut self, limit: usize, job: impl FnOnce() + Send + 'static) {
        let (work, runtime) = self.work_and_runtime();
        work.blocking
            .get_or_insert_with(|| BlockingLimit::new(limit))
            .spawn(&mut work.jobs, runtime, job);
    }

    /// Cancels the attached streams (inputs end when the thread starts stopping) and tells
    /// the drained inputs' sources to end theirs.
    #[inline]
    pub(crate) fn stop_streams(&mut self) {
        if let Some(work) = &mut self.work {
            work.stop_streams();
        }
    }

    #[inline]
    pub(crate) fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound<E>>> {
        self.inbox.poll_recv(cx)
    }

    #[inline]
    pub(crate) fn try_inbound(&mut self) -> Option<Inbound<E>> {
        self.inbox.try_recv()
    }

    /// The next finished job, if any has finished.
    pub(crate) fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(), JoinError>>> {
        match &mut self.work {
            Some(work) if !work.jobs.is_empty() => work.jobs.poll_join_next(cx),
            _ => Poll::Pending,
        }
    }

    /// Signals the lowest stage that still has children, once per stage.
    pub(crate) fn stop_next_stage(&mut self) {
        let Some(stage) = self.stages.lowest() else {
            return;
        };
        if self.signalled_stage == Some(stage) {
            return;
        }
        self.signalled_stage = Some(stage);
        if recording() {
            self.node().record_stop_stage(stage);
        }
        let elsewhere = self
            .work
            .as_deref()
            .map_or(&[][..], |w| w.elsewhere.as_slice());
        self.node().stop_stage(stage, elsewhere);
    }

    /// Forgets an ended child; its node, if it was still known. `released`: the report is a
    /// graceful end, made after the child dropped its task's handle if it keeps no join
    /// handle here (see [`ExitReport::released_task`](crate::exit::ExitReport::released_task)).
    pub(crate) fn on_child_exit(
        &mut self,
        id: ChildId,
        released: bool,
    ) -> Option<Arc<dyn ChildNode>> {
        let entry = self.node().remove_child(id)?;
        self.children -= 1;
        self.stages.remove(entry.stage);
        // A child reports as its task's last step, so its task has usually finished by
        // the time its report is handled; only the others are kept to be waited for. A
        // child that kept no handle runs on this thread's current-thread runtime and has
        // dropped its task's handle as it reported; one that still has it reported from
        // elsewhere (its context dropped outside its task) and is waited for.
        match entry.join {
            Some(join) => {
                if !join.is_finished() {
                    if self.reaping.len() >= 32 {
                        self.reaping.retain(|j| !j.is_finished());
                    }
                    self.reaping.push(join);
                }
            }
            // A graceful report: the handle is gone already, and the child's node is cold
            // by now, so it is not looked for.
            None if released => {}
            None => {
                if let Some(task) = entry.child.node().task()
                    && !task.is_finished()
                {
                    if self.finishing.len() >= 32 {
                        self.finishing.retain(|t| !t.is_finished());
                    }
                    self.finishing.push(task);
                }
            }
        }
        Some(entry.child)
    }

    /// For an abort: forgets the children (their tasks are being cancelled), cancels the
    /// jobs, and returns how many events were still queued in the inbox, or taken after the
    /// `exit` hook (dropped).
    pub(crate) fn abort(&mut self) -> usize {
        let mut dropped = std::mem::take(&mut self.unheard);
        while let Some(inbound) = self.inbox.try_recv() {
            if !matches!(inbound, Inbound::Exit(..) | Inbound::Restart(..)) {
                dropped += 1;
            }
        }
        for entry in self.node().take_children() {
            self.finishing.extend(entry.node().abort_task());
            self.reaping.extend(entry.join);
        }
        self.children = 0;
        self.stages = StageCounts::default();
        if let Some(work) = &mut self.work {
            for (_, mut source) in work.drained.drain(..) {
                source.abort();
            }
            // `spawn_task` jobs are cancelled; `spawn_blocking` jobs cannot be, and are left
            // to finish on their own rather than holding up the abort.
            work.jobs.abort_all();
            work.jobs.detach_all();
        }
        dropped
    }

    /// Whether [`reap_all`](Self::reap_all) has nothing to wait for: no child or job left,
    /// and every ended child's task finished (their handles are dropped).
    pub(crate) fn is_reaped(&mut self) -> bool {
        if self.children > 0 || self.has_jobs() {
            return false;
        }
        self.reaping.retain(|join| !join.is_finished());
        self.finishing.retain(|task| !task.is_finished());
        self.reaping.is_empty() && self.finishing.is_empty()
    }

    /// Waits for every task this thread owns to be gone, so that after a root is joined no
    /// task of the tree is alive. Returns how many UP messages and task results reached the
    /// thread after its `exit` hook: see [`drop_unheard`](Self::drop_unheard).
    pub(crate) async fn reap_all(&mut self) -> usize {
        // Children still listed: none once the thread has waited, within its deadline, for
        // those its `exit` hook spawned, or an abort has taken them. Any other is stopped
        // and waited for here like the rest, its exit logged.
        let late = self.node().take_children();
        let mut late_children = Vec::with_capacity(late.len());
        for entry in late {
            entry.node().request_stop();
            match entry.join {
                Some(join) => self.reaping.push(join),
                None => self.finishing.extend(entry.node().task()),
            }
            late_children.push(entry.child);
        }
        self.children = 0;
        if let Some(work) = &mut self.work {
            work.jobs.shutdown().await;
        }
        for join in self.reaping.drain(..) {
            let _ = join.await;
        }
        wait_gone(&self.finishing).await;
        self.finishing.clear();
        self.drop_unheard(&late_children)
    }

    /// Asks the children the `exit` hook spawned to stop (those of a stage already stopped
    /// are stopping already).
    pub(crate) fn stop_late_children(&self) {
        if self.children > 0 {
            for child in self.node().children_now() {
                child.node().request_stop();
            }
        }
    }

    /// Takes one item from the inbox while the thread waits, after its `exit` hook, for the
    /// children and tasks the hook started: a late child's exit is handled (the child leaves
    /// the list, its task is waited for later, its exit logged, as those of a failed
    /// thread are); an UP message or a task result, which no handler can take any more, is
    /// dropped and counted as [`drop_unheard`](Self::drop_unheard) reports it. Taking them
    /// as they come keeps the places free that late children wait for to send UP.
    pub(crate) fn poll_late(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let inbound = match self.inbox.poll_recv(cx) {
            Poll::Ready(Some(inbound)) => inbound,
            Poll::Ready(None) => {
                debug_assert!(false, "the family holds a sender of its own inbox");
                return Poll::Pending;
            }
            Poll::Pending => return Poll::Pending,
        };
        match inbound {
            Inbound::Event(_) | Inbound::Unmetered(_) => self.unheard += 1,
            Inbound::Exit(from, report) => {
                if let Some(child) = self.on_child_exit(from, report.released_task()) {
                    self.log_late_exit(from, &child, report);
                }
            }
            Inbound::Restart(_, restart) => log_restart(self.node().path(), &restart),
        }
        Poll::Ready(())
    }

    /// Empties the inbox once the thread's tasks are gone: what is left came after the
    /// `exit` hook ran, from children and tasks it started, and no handler runs any more.
    /// UP messages and results are dropped and counted, with those
    /// [`poll_late`](Self::poll_late) took, in one warning, and their number returned; the
    /// exits of `late_children` are logged, as those of a failed thread are.
    pub(crate) fn drop_unheard(&mut self, late_children: &[Arc<dyn ChildNode>]) -> usize {
        let mut unheard = std::mem::take(&mut self.unheard);
        while let Some(inbound) = self.inbox.try_recv() {
            match inbound {
                Inbound::Event(_) | Inbound::Unmetered(_) => unheard += 1,
                Inbound::Exit(from, report) => {
                    if let Some(child) = late_children.iter().find(|c| c.node().id == from) {
                        self.log_late_exit(from, child, report);
                    }
                }
                Inbound::Restart(_, restart) => log_restart(self.node().path(), &restart),
            }
        }
        if unheard > 0 {
            tracing::warn!(
                unheard,
                "dropped UP messages and task results that came after the thread's last \
                 handler ran"
            );
        }
        unheard
    }

    /// Logs the exit of a child the `exit` hook spawned: no handler hears it.
    fn log_late_exit(&self, from: ChildId, child: &Arc<dyn ChildNode>, report: ExitReport) {
        let (exit, dropped, escalated) = report.into_parts();
        let exit = ChildExit {
            id: from,
            type_name: child.node().meta.type_name,
            at: Arc::clone(child) as Arc<dyn ChildNode>,
            exit,
            dropped,
            escalated,
        };
        log_exit(self.node().path(), &exit);
    }
}

/// Waits until tasks that are ending (cancelled, or in their last step) are gone: the
/// runtime drops a cancelled task when it next gets to it, or when its current poll returns
/// if it is running on another worker.
pub(crate) async fn wait_gone(tasks: &[AbortHandle]) {
    let mut turns = 0u32;
    while !tasks.iter().all(AbortHandle::is_finished) {
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

/// How many live children each stop stage has. Stage 0, every child's unless told
/// otherwise, is counted in place: a family whose children all stop together keeps no map.
#[derive(Default)]
struct StageCounts {
    zero: usize,
    /// The later stages; a stage with no child left is not listed.
    later: BTreeMap<u32, usize>,
}

impl StageCounts {
    fn add(&mut self, stage: u32) {
        if stage == 0 {
            self.zero += 1;
        } else {
            *self.later.entry(stage).or_default() += 1;
        }
    }

    fn remove(&mut self, stage: u32) {
        if stage == 0 {
            self.zero = self.zero.saturating_sub(1);
        } else if let Some(count) = self.later.get_mut(&stage) {
            *count -= 1;
            if *count == 0 {
                self.later.remove(&stage);
            }
        }
    }

    /// The lowest stage that still has children.
    fn lowest(&self) -> Option<u32> {
        if self.zero > 0 {
            Some(0)
        } else {
            self.later.keys().next().copied()
        }
    }
}

/// Spawns a job of the thread into `jobs` on `runtime`, the one the thread runs on (not on
/// one a handler has entered), or without one on the current runtime.
fn spawn_job_on(
    jobs: &mut JoinSet<()>,
    runtime: Option<&tokio::runtime::Handle>,
    job: impl Future<Output = ()> + Send + 'static,
) -> AbortHandle {
    match runtime {
        Some(runtime) => jobs.spawn_on(job, runtime),
        None => jobs.spawn(job),
    }
}

impl<P, E> Drop for Family<P, E> {
    fn drop(&mut self) {
        // No child is left after a stop; after an abort of this thread's task, its
        // children must not outlive it.
        if self.children > 0 {
            self.node().abort_children();
        }
        // Nor those it had taken off its list to wait for as it finished (children spawned
        // by its `exit` hook): an abort that lands meanwhile no longer finds them there.
        for join in &self.reaping {
            join.abort();
        }
        for task in &self.finishing {
            task.abort();
        }
        // Likewise the work of its drained inputs (none is left after a stop).
        if let Some(work) = &mut self.work {
            for (_, mut source) in work.drained.drain(..) {
                source.abort();
            }
        }
        // What the inbox still holds (nothing after a stop, which empties it) is dropped
        // unread with it, with what was taken after the `exit` hook: counted, for an abort
        // from the root to report.
        let mut unread = std::mem::take(&mut self.unheard);
        while let Some(inbound) = self.inbox.try_recv() {
            if matches!(inbound, Inbound::Event(_) | Inbound::Unmetered(_)) {
                unread += 1;
            }
        }
        if unread > 0 {
            self.node().count_unread(unread);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Family, FamilySlot};
    use crate::node::Node;
    use crate::node::testing::node;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_family_takes_the_runtime_given_at_spawn_and_a_new_life_keeps_it() {
        let (own, other) = (current_thread(), current_thread());
        let node = node(None);
        let mut slot = FamilySlot::<(), ()>::Unmade(Some(own.handle().clone()));
        let _entered = other.enter();
        for life in 0..2 {
            assert!(
                slot.get().is_none(),
                "life {life}: no family before first use"
            );
            let family = slot.made(&node);
            let runtime = family.runtime().map(tokio::runtime::Handle::id);
            assert_eq!(runtime, Some(own.handle().id()), "life {life}");
            assert!(slot.get_mut().is_some());
            slot.renew();
        }
    }

    /// A drained input that only holds a count of its holders.
    struct Source(#[allow(dead_code, reason = "held for its count")] Arc<()>);

    impl super::Drained for Source {
        fn stop(&mut self) {}
        fn abort(&mut self) {}
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_drained_input_whose_stream_ended_is_forgotten_as_the_next_comes() {
        let node: Arc<Node> = node(None);
        let mut family = Family::<(), ()>::new(node, Some(tokio::runtime::Handle::current()));
        let first = Arc::new(());
        family.spawn_drained(async {}, Box::new(Source(Arc::clone(&first))), false);
        // Its forwarding task runs to its end (a pool's results stream ended).
        while family.has_jobs() {
            std::future::poll_fn(|cx| family.poll_job(cx)).await;
        }
        let second = Arc::new(());
        family.spawn_drained(
            std::future::pending(),
            Box::new(Source(Arc::clone(&second))),
            false,
        );
        assert_eq!(Arc::strong_count(&first), 1, "the ended input is forgotten");
        assert_eq!(Arc::strong_count(&second), 2, "the running one is kept");
        family.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_runtimes_are_placed_in_the_order_first_used_and_the_own_one_at_zero() {
        let node: Arc<Node> = node(None);
        let own = tokio::runtime::Handle::current();
        let mut family = Family::<(), ()>::new(node, Some(own.clone()));
        let (a, b) = (current_thread(), current_thread());
        assert_eq!(family.place_of(&own), 0);
        assert_eq!(family.place_of(a.handle()), 1);
        assert_eq!(family.place_of(b.handle()), 2);
        assert_eq!(
            family.place_of(&a.handle().clone()),
            1,
            "the same runtime, by its id"
        );
        assert_eq!(family.place_of(&own), 0);
        let listed: Vec<_> = family
            .work
            .iter()
            .flat_map(|w| w.elsewhere.iter().map(|r| r.id()))
            .collect();
        assert_eq!(listed, [a.handle().id(), b.handle().id()]);
        drop(family);
        a.shutdown_background();
        b.shutdown_background();
    }
}
