//! The model's one thread type, [`Node`], its messages, and the [`Ledger`] where every node
//! and the test driver write down what happened to each message and each thread.
//!
//! Every message of the model (DOWN: [`Cmd`], [`Spawn`], [`Query`]; UP: [`Report`]) carries
//! a sequence number unique in the case, so the ledger can tell *which* messages a thread
//! accepted and handled, not only how many: a message lost and another handled twice would
//! cancel out in a count, never in a set.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use taskthread::TrySendError;
use taskthread::prelude::*;

/// The most threads a tree grows to, root included; spawns past it are skipped.
pub(crate) const MAX_THREADS: usize = 500;
/// The deepest level below the root (at depth 0); spawns below it are skipped.
pub(crate) const MAX_DEPTH: usize = 6;

/// In every deliberate panic message; the panic hook keeps these panics out of the output.
pub(crate) const PANIC_MARKER: &str = "deliberate panic";
/// The error of every deliberate failure.
pub(crate) const FAILURE: &str = "deliberate failure";

/// Who sent a message: `None` for the test driver, `Some(i)` for node `i`.
pub(crate) type Origin = Option<usize>;

/// How a message is sent: [`ChildRef::send`] (waits for room) or [`ChildRef::try_send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Send,
    TrySend,
}

/// How a node's `enter` or `exit` hook ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Ok,
    Fail,
    Panic,
}

/// A child to spawn: its queue capacity, its stop stage, and how its hooks end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Child {
    pub(crate) capacity: usize,
    pub(crate) stage: u32,
    pub(crate) enter: Hook,
    pub(crate) exit: Hook,
}

/// What a [`Cmd`] does once it reaches its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sleeps that long (virtual time) in the handler, then returns.
    Work { sleep_ms: u8 },
    /// Sends a [`Report`] UP with `try_up`.
    Up,
    /// Panics in the handler.
    Panic,
    /// Returns `Err` from the handler.
    Fail,
    /// `ctx.stop()`: the node ends as `Completed`.
    StopSelf,
    /// `ctx.stop_child(id)` of the target's child with this index.
    StopChild { child: usize },
    /// Spawns a child (unless the tree is full or the target at the deepest level); the
    /// driver finds its address in the ledger.
    Spawn(Child),
}

/// A command for the node at the end of `hops`: each node on the way takes the next hop off
/// the front and forwards the rest to that child, with the same [`Mode`].
#[derive(Debug)]
pub(crate) struct Cmd {
    pub(crate) seq: u64,
    pub(crate) from: Origin,
    pub(crate) hops: VecDeque<usize>,
    pub(crate) op: Op,
    pub(crate) mode: Mode,
}

/// Asks a node to spawn a child; the answer is the child's index, or `None` if the tree is
/// full or the node at the deepest level.
#[derive(Debug)]
pub(crate) struct Spawn {
    pub(crate) seq: u64,
    pub(crate) child: Child,
}

/// Asks a node how many messages it has handled.
#[derive(Debug)]
pub(crate) struct Query {
    pub(crate) seq: u64,
}

/// The UP message: a child reporting to its parent.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) seq: u64,
    pub(crate) from: usize,
}

/// The first deliberate failure of a node: a command it handled, or one of its hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fatal {
    Panic,
    Fail,
}

/// How a thread's end was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeardBy {
    /// The parent's `#[up]` handler for `ChildExit`.
    Handler,
    /// The runtime's log: a failed parent no longer runs handlers, its children's exits are
    /// only logged (see `exit_log.rs`).
    Log,
    /// `Handle::join`, for the root.
    Join,
}

/// An exit as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExitKind {
    Completed,
    Stopped,
    Failed(String),
    Panicked(String),
    Aborted,
    /// A logged exit whose message the test could not read.
    Unknown(String),
}

impl ExitKind {
    pub(crate) fn of(exit: &Exit) -> Self {
        match exit {
            Exit::Completed => Self::Completed,
            Exit::Stopped => Self::Stopped,
            Exit::Failed(e) => Self::Failed(e.to_string()),
            Exit::Panicked(m) => Self::Panicked(m.clone()),
            Exit::Aborted { .. } => Self::Aborted,
            other => Self::Unknown(other.to_string()),
        }
    }

    pub(crate) fn is_graceful(&self) -> bool {
        matches!(self, Self::Completed | Self::Stopped)
    }
}

/// One report of a thread's end.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    pub(crate) by: HeardBy,
    pub(crate) kind: ExitKind,
    /// `ChildExit::dropped`, when the report carries it (not for a logged exit, nor for the
    /// root's `Exit` from `join` unless it was aborted).
    pub(crate) dropped: Option<usize>,
}

/// What the ledger knows of one node.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    pub(crate) parent: Option<usize>,
    pub(crate) depth: usize,
    pub(crate) path: String,
    pub(crate) id: Option<ChildId>,
    /// Its address, for the driver.
    pub(crate) addr: Option<ChildRef<Node>>,
    /// Messages a send to this node accepted (DOWN, and UP from its children).
    pub(crate) accepted: BTreeSet<u64>,
    /// Messages whose handler started (the message of a handler that then failed included).
    pub(crate) handled: BTreeSet<u64>,
    /// The last message handled from each sender, to check FIFO order per sender.
    last_from: HashMap<Origin, u64>,
    /// Asks to this node answered with `AskError::NoReply`.
    pub(crate) no_reply: Vec<u64>,
    pub(crate) enters: u32,
    pub(crate) exits: u32,
    pub(crate) fatal: Option<Fatal>,
    pub(crate) stopped_itself: bool,
    pub(crate) heard: Vec<Heard>,
}

/// Everything written down during one case.
#[derive(Debug, Default)]
pub(crate) struct Book {
    next_seq: u64,
    pub(crate) nodes: Vec<Entry>,
    /// Invariants broken on the spot (a duplicate, an order inversion, a message given back
    /// that is not the one sent...), checked again at the end with the rest.
    pub(crate) violations: Vec<String>,
    /// UP messages of the root its handle accepted, and those the driver received.
    pub(crate) root_up_accepted: BTreeSet<u64>,
    pub(crate) root_up_received: BTreeSet<u64>,
    /// Sends whose message came back in the error.
    pub(crate) returned: u64,
}

/// The shared [`Book`] of a case. The runtime is current-thread, so the lock is never
/// contended; it is never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger(Arc<Mutex<Book>>);

impl Ledger {
    pub(crate) fn book(&self) -> MutexGuard<'_, Book> {
        // A deliberate panic never happens with the lock held, so it is never poisoned.
        self.0.lock().unwrap()
    }

    pub(crate) fn next_seq(&self) -> u64 {
        let mut book = self.book();
        book.next_seq += 1;
        book.next_seq
    }

    /// A new node under `parent` (`None`: the root); returns its index.
    pub(crate) fn add_node(&self, parent: Option<usize>) -> usize {
        let mut book = self.book();
        let depth = parent.map_or(0, |p| book.nodes[p].depth + 1);
        book.nodes.push(Entry {
            parent,
            depth,
            ..Entry::default()
        });
        book.nodes.len() - 1
    }

    pub(crate) fn spawned(&self, idx: usize, addr: &ChildRef<Node>) {
        let mut book = self.book();
        let entry = &mut book.nodes[idx];
        entry.id = Some(addr.id());
        entry.path = addr.path().to_owned();
        entry.addr = Some(addr.clone());
    }

    /// How many threads were spawned so far.
    pub(crate) fn len(&self) -> usize {
        self.book().nodes.len()
    }

    pub(crate) fn addr(&self, idx: usize) -> ChildRef<Node> {
        self.book().nodes[idx].addr.clone().expect("spawned")
    }

    pub(crate) fn depth(&self, idx: usize) -> usize {
        self.book().nodes[idx].depth
    }

    pub(crate) fn violation(&self, what: String) {
        self.book().violations.push(what);
    }

    /// A send to node `idx` accepted message `seq`.
    pub(crate) fn accepted(&self, idx: usize, seq: u64) {
        self.book().nodes[idx].accepted.insert(seq);
    }

    /// A send of message `sent` to node `idx` failed and gave back message `back`.
    pub(crate) fn returned(&self, idx: usize, sent: u64, back: u64) {
        let mut book = self.book();
        book.returned += 1;
        if sent != back {
            book.violations.push(format!(
                "n{idx}: a failed send of #{sent} gave back #{back}"
            ));
        }
    }

    pub(crate) fn no_reply(&self, idx: usize, seq: u64) {
        self.book().nodes[idx].no_reply.push(seq);
    }

    /// Node `idx` starts handling message `seq` from `from`.
    pub(crate) fn handled(&self, idx: usize, seq: u64, from: Origin) {
        self.running(idx, &format!("the handler of #{seq}"));
        let mut book = self.book();
        let entry = &mut book.nodes[idx];
        let mut broken = Vec::new();
        if !entry.handled.insert(seq) {
            broken.push(format!("n{idx}: handled #{seq} twice"));
        }
        if let Some(last) = entry.last_from.insert(from, seq)
            && last > seq
        {
            broken.push(format!(
                "n{idx}: handled #{seq} after #{last}, both from {from:?}: not in the order sent"
            ));
        }
        book.violations.extend(broken);
    }

    /// A handler of node `idx` runs: the node has neither failed nor ended.
    pub(crate) fn running(&self, idx: usize, what: &str) {
        let mut book = self.book();
        let entry = &book.nodes[idx];
        let broken = if !entry.heard.is_empty() {
            Some(format!("n{idx}: {what} ran after its exit was reported"))
        } else {
            entry
                .fatal
                .map(|fatal| format!("n{idx}: {what} ran after it failed ({fatal:?})"))
        };
        book.violations.extend(broken);
    }

    pub(crate) fn entered(&self, idx: usize) {
        self.book().nodes[idx].enters += 1;
    }

    pub(crate) fn exit_hook(&self, idx: usize) {
        self.book().nodes[idx].exits += 1;
    }

    pub(crate) fn fatal(&self, idx: usize, fatal: Fatal) {
        let mut book = self.book();
        // A second fatal op is caught by `handled` (no handler runs after a failure).
        book.nodes[idx].fatal.get_or_insert(fatal);
    }

    pub(crate) fn stopped_itself(&self, idx: usize) {
        self.book().nodes[idx].stopped_itself = true;
    }

    pub(crate) fn heard(&self, idx: usize, heard: Heard) {
        self.book().nodes[idx].heard.push(heard);
    }

    pub(crate) fn handled_count(&self, idx: usize) -> usize {
        self.book().nodes[idx].handled.len()
    }

    pub(crate) fn parent_of(&self, idx: usize) -> Option<usize> {
        self.book().nodes[idx].parent
    }

    pub(crate) fn root_up_received(&self, seq: u64) {
        self.book().root_up_received.insert(seq);
    }
}

/// Sends `cmd` to node `idx` with the command's [`Mode`] and writes down the outcome: the
/// message was accepted, or it came back in the error.
pub(crate) async fn deliver(ledger: &Ledger, to: &ChildRef<Node>, idx: usize, cmd: Cmd) {
    let seq = cmd.seq;
    let outcome = match cmd.mode {
        Mode::Send => to.send(cmd).await.map_err(|e| e.into_inner()),
        Mode::TrySend => to.try_send(cmd).map_err(TrySendError::into_inner),
    };
    match outcome {
        Ok(()) => ledger.accepted(idx, seq),
        Err(back) => ledger.returned(idx, seq, back.seq),
    }
}

/// The model's thread: spawns children of its own type on request, forwards commands down
/// the tree, runs them, and reports UP.
#[derive(Debug)]
pub(crate) struct Node {
    idx: usize,
    ledger: Ledger,
    enter: Hook,
    exit: Hook,
    /// Every child it spawned, by index, ended ones included: a command routed through an
    /// ended child is sent anyway and must come back in the error.
    children: HashMap<usize, ChildRef<Node>>,
    ids: HashMap<ChildId, usize>,
}

impl Node {
    pub(crate) fn new(idx: usize, ledger: Ledger, enter: Hook, exit: Hook) -> Self {
        Self {
            idx,
            ledger,
            enter,
            exit,
            children: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// Ends a hook as `how` says.
    fn hook(&self, how: Hook, which: &str) -> Result<()> {
        match how {
            Hook::Ok => Ok(()),
            Hook::Fail => {
                self.ledger.fatal(self.idx, Fatal::Fail);
                Err(Error::msg(FAILURE))
            }
            Hook::Panic => {
                self.ledger.fatal(self.idx, Fatal::Panic);
                panic!("{PANIC_MARKER} in the {which} hook of n{}", self.idx)
            }
        }
    }

    /// Spawns a child, unless the tree is full or this node at the deepest level.
    fn spawn_child(&mut self, ctx: &mut Ctx<Self>, child: Child) -> Option<usize> {
        if self.ledger.len() >= MAX_THREADS || self.ledger.depth(self.idx) >= MAX_DEPTH {
            return None;
        }
        let idx = self.ledger.add_node(Some(self.idx));
        let options = ChildOptions::new()
            .name(format!("n{idx}"))
            .capacity(child.capacity)
            .stop_stage(child.stage);
        let node = Node::new(idx, self.ledger.clone(), child.enter, child.exit);
        let addr = ctx.spawn_with(node, options);
        self.ledger.spawned(idx, &addr);
        self.ids.insert(addr.id(), idx);
        self.children.insert(idx, addr);
        Some(idx)
    }

    /// Sends a [`Report`] UP without waiting (so a child never waits on its parent, and the
    /// model has no cycle of full queues), and writes down where it went.
    fn report_up(&self, ctx: &Ctx<Self>) {
        let seq = self.ledger.next_seq();
        match ctx.try_up(Report {
            seq,
            from: self.idx,
        }) {
            Ok(()) => match self.ledger.parent_of(self.idx) {
                Some(parent) => self.ledger.accepted(parent, seq),
                None => {
                    self.ledger.book().root_up_accepted.insert(seq);
                }
            },
            Err(e) => self.ledger.returned(self.idx, seq, e.into_inner().seq),
        }
    }
}

#[taskthread(up = Report)]
impl Node {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        self.ledger.entered(self.idx);
        self.hook(self.enter, "enter")
    }

    #[down]
    async fn cmd(&mut self, ctx: &mut Ctx<Self>, mut cmd: Cmd) -> Result<()> {
        self.ledger.handled(self.idx, cmd.seq, cmd.from);
        if let Some(next) = cmd.hops.pop_front() {
            let Some(child) = self.children.get(&next) else {
                self.ledger
                    .violation(format!("n{}: no child n{next} to forward to", self.idx));
                return Ok(());
            };
            let forward = Cmd {
                seq: self.ledger.next_seq(),
                from: Some(self.idx),
                hops: cmd.hops,
                op: cmd.op,
                mode: cmd.mode,
            };
            deliver(&self.ledger, child, next, forward).await;
            return Ok(());
        }
        match cmd.op {
            Op::Work { sleep_ms } => {
                if sleep_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(sleep_ms.into())).await;
                }
            }
            Op::Up => self.report_up(ctx),
            Op::Panic => {
                self.ledger.fatal(self.idx, Fatal::Panic);
                panic!("{PANIC_MARKER} in n{}", self.idx);
            }
            Op::Fail => {
                self.ledger.fatal(self.idx, Fatal::Fail);
                return Err(Error::msg(FAILURE));
            }
            Op::StopSelf => {
                self.ledger.stopped_itself(self.idx);
                ctx.stop();
            }
            Op::StopChild { child } => {
                if let Some(child) = self.children.get(&child) {
                    // `false` once the child has ended: stopping it then does nothing.
                    ctx.stop_child(child.id());
                }
            }
            Op::Spawn(child) => {
                self.spawn_child(ctx, child);
            }
        }
        Ok(())
    }

    #[down]
    async fn spawn(&mut self, ctx: &mut Ctx<Self>, s: Spawn) -> Result<Option<usize>> {
        self.ledger.handled(self.idx, s.seq, None);
        Ok(self.spawn_child(ctx, s.child))
    }

    #[down]
    async fn query(&mut self, _ctx: &mut Ctx<Self>, q: Query) -> Result<usize> {
        self.ledger.handled(self.idx, q.seq, None);
        Ok(self.ledger.handled_count(self.idx))
    }

    #[up]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, r: Report) {
        self.ledger.handled(self.idx, r.seq, Some(r.from));
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit) {
        self.ledger
            .running(self.idx, &format!("the exit handler for {from}"));
        let Some(&child) = self.ids.get(&from) else {
            self.ledger.violation(format!(
                "n{}: heard the exit of {from}, not one of its children ({exit})",
                self.idx
            ));
            return;
        };
        if exit.id != from || exit.path().rsplit('/').next() != Some(&format!("n{child}")) {
            self.ledger.violation(format!(
                "n{}: the exit of n{child} ({from}) is reported as {} at `{}`",
                self.idx,
                exit.id,
                exit.path()
            ));
        }
        self.ledger.heard(
            child,
            Heard {
                by: HeardBy::Handler,
                kind: ExitKind::of(&exit.exit),
                dropped: Some(exit.dropped),
            },
        );
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.ledger.exit_hook(self.idx);
        // UP messages sent while stopping still reach the parent.
        self.report_up(ctx);
        self.hook(self.exit, "exit")
    }
}
