//! The sampler: walks a subtree and turns each thread's node and probe into a
//! [`ThreadView`]; it keeps what it showed last, to tell what changed, and what each
//! thread was doing, to tell how long a handler has been running.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::view::{
    Changes, EventKind, Fill, LinkView, MessageKind, MessageView, PoolView, RestartBudget,
    Snapshot, StopStage, StopView, TaskView, ThreadView, Timing, WaitKind, WaitView, WatchEvent,
};
use crate::TreeSnapshot;
use crate::exit::ThreadState;
use crate::node::{Kind, Node, Percentiles, ProbeReading, RemoteView, StopPhase};
use crate::pool::PoolHandle;
use crate::record::{self, Event};

/// How many recent events a watch keeps for the snapshots it sends.
pub const RECENT_EVENTS: usize = 256;

/// A handler seen running: which one (by its kind and how many messages the thread had
/// handled when it was seen: the count goes up as each begins) and since when.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Running {
    handled: u64,
    kind: Kind,
    since: Instant,
}

pub(super) struct Sampler {
    root: Arc<Node>,
    root_path: Arc<str>,
    seq: u64,
    /// The threads of the last sampling, in tree order, and where each is in it.
    last: Vec<ThreadView>,
    index: HashMap<u64, usize>,
    running: HashMap<u64, Running>,
    event_seq: u64,
    recent: VecDeque<WatchEvent>,
}

impl Sampler {
    /// A sampler of the subtree of `root`, with one sampling taken.
    pub(super) fn new(root: Arc<Node>) -> Self {
        let root_path = Arc::clone(root.path());
        let mut sampler = Self {
            root,
            root_path,
            seq: 0,
            last: Vec::new(),
            index: HashMap::new(),
            running: HashMap::new(),
            event_seq: record::last_event(),
            recent: VecDeque::new(),
        };
        sampler.sample();
        sampler
    }

    /// The last sampling, in full.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.seq,
            at_ms: unix_ms(SystemTime::now()),
            threads: self.last.clone(),
            events: self.recent.iter().cloned().collect(),
        }
    }

    /// Samples the subtree again: what changed since the last sampling.
    pub(super) fn sample(&mut self) -> Changes {
        let now = Instant::now();
        let mut running = HashMap::new();
        let mut threads = Vec::with_capacity(self.last.len());
        let root = Arc::clone(&self.root);
        let mut blocked = Vec::new();
        self.visit(&root, None, now, &mut running, &mut blocked, &mut threads);
        self.running = running;
        add_blocked_waits(&mut threads, blocked);

        let index: HashMap<u64, usize> =
            threads.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let changed = threads
            .iter()
            .filter(|t| self.index.get(&t.id).is_none_or(|&i| self.last[i] != **t))
            .cloned()
            .collect();
        let removed = self
            .last
            .iter()
            .filter(|t| !index.contains_key(&t.id))
            .map(|t| t.id)
            .collect();
        self.last = threads;
        self.index = index;

        let root_path = Arc::clone(&self.root_path);
        let found = record::events_after(self.event_seq, |path| under(path, &root_path));
        self.event_seq = found.last;
        let events: Vec<WatchEvent> = found.events.into_iter().map(to_event).collect();
        for e in &events {
            if self.recent.len() == RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back(e.clone());
        }
        self.seq += 1;
        Changes {
            seq: self.seq,
            at_ms: unix_ms(SystemTime::now()),
            threads: changed,
            removed,
            events,
            missed_events: found.missed,
        }
    }

    /// Adds the view of `node` and of its subtree to `out`, and sets how often each thread
    /// times its messages from how many it handled since the last sampling; whether the
    /// thread is busy (in a handler, or with messages queued).
    fn visit(
        &self,
        node: &Node,
        parent: Option<u64>,
        now: Instant,
        running: &mut HashMap<u64, Running>,
        blocked: &mut Vec<Blocked>,
        out: &mut Vec<ThreadView>,
    ) -> bool {
        let children = node.children_staged();
        let reading = node.probe_if_any().map(|p| p.read());
        let state = node.state();
        let at = out.len();
        let mut view = base_view(node, parent);
        view.messages = reading
            .as_ref()
            .map(|r| messages(node, r))
            .unwrap_or_default();
        view.tasks = tasks(node, reading.as_ref(), now);
        if state == ThreadState::Stopping {
            view.stop = Some(stop_view(node, reading.as_ref(), &children, now));
        }
        view.budget = node.budget().map(|b| RestartBudget {
            used: b.used(now),
            max: b.max,
            window_ms: millis(b.window),
        });
        let live = !matches!(state, ThreadState::Exited | ThreadState::Restarting);
        let current = reading.as_ref().and_then(|r| r.current).filter(|_| live);
        if let Some(kind) = current {
            let handled = view.handled;
            let running_since = match self.running.get(&view.id) {
                Some(before) if before.handled == handled && before.kind == kind => before.since,
                _ => now,
            };
            running.insert(
                view.id,
                Running {
                    handled,
                    kind,
                    since: running_since,
                },
            );
            if running_since < now {
                view.waits.push(WaitView {
                    on: WaitKind::Handler,
                    target: None,
                    detail: kind_name(node, kind),
                    for_ms: Some(millis(now - running_since)),
                });
            }
        }
        view.waits.extend(stop_waits(view.stop.as_ref()));
        blocked.extend(
            node.waits_on_this()
                .into_iter()
                .map(|(waiter, kind)| Blocked {
                    waiter,
                    kind,
                    target: view.path.clone(),
                }),
        );
        if let Some(probe) = node.probe_if_any() {
            let before = self
                .index
                .get(&view.id)
                .map_or(0, |&i| self.last[i].handled);
            let every = record::sample_every(view.handled.saturating_sub(before));
            probe.sample_every(every);
            node.queue.sample_every(every);
        }
        let busy = current.is_some() || view.queue.depth > 0;
        let id = view.id;
        out.push(view);
        let mut busy_children = 0;
        for (child, _) in &children {
            if self.visit(child, Some(id), now, running, blocked, out) {
                busy_children += 1;
            }
        }
        if let Some(pool) = &mut out[at].pool {
            pool.busy = busy_children.min(pool.running);
        }
        add_remote(node, out, at);
        busy
    }
}

/// The figures every thread has, from its node alone.
fn base_view(node: &Node, parent: Option<u64>) -> ThreadView {
    ThreadView {
        id: node.id.get(),
        parent,
        name: node.name().to_owned(),
        path: node.path().to_string(),
        type_name: node.meta.type_name.to_owned(),
        down: node
            .meta
            .down_types
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        up: node.meta.up_type.map(str::to_owned),
        state: node.state().to_string(),
        handled: node.handled(),
        queue: Fill {
            depth: node.queue_depth(),
            capacity: node.capacity(),
            waiting: node.queue.waiting(),
        },
        inbound: node.inbound().map(|m| Fill {
            depth: m.depth(),
            capacity: m.capacity(),
            waiting: m.waiting(),
        }),
        restarts: node.restarts(),
        budget: None,
        messages: Vec::new(),
        tasks: Vec::new(),
        pool: PoolHandle::of(node).map(|p| {
            let status = p.status();
            PoolView {
                running: status.running,
                max: status.max,
                busy: 0,
            }
        }),
        stop: None,
        waits: Vec::new(),
        remote: None,
    }
}

/// A remote child's link, and the threads below it as its host last reported them, added
/// to `out` below the child's view.
fn add_remote(node: &Node, out: &mut Vec<ThreadView>, at: usize) {
    let Some(view) = node.attachment::<RemoteView>() else {
        return;
    };
    let (Some(link), reported) = view.get() else {
        return;
    };
    out[at].remote = Some(LinkView {
        host: link.host,
        rtt_us: link
            .rtt
            .map(|rtt| u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX)),
        epoch: link.epoch,
    });
    let parent = out[at].id;
    for thread in &reported {
        add_reported(thread, parent, out);
    }
}

/// A thread reported by another process, and its subtree. Its id there may be any
/// thread's here, so it is shown under one made from its path, with bit 52 set: local ids
/// count up from 1 and never reach it, and it stays an exact number in JavaScript.
fn add_reported(thread: &TreeSnapshot, parent: u64, out: &mut Vec<ThreadView>) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    thread.path.hash(&mut hasher);
    let id = (hasher.finish() & ((1 << 52) - 1)) | 1 << 52;
    out.push(ThreadView {
        id,
        parent: Some(parent),
        name: thread.name.clone(),
        path: thread.path.clone(),
        type_name: thread.type_name.to_owned(),
        down: thread.down_types.iter().map(|t| (*t).to_owned()).collect(),
        up: thread.up_type.map(str::to_owned),
        state: thread.state.to_string(),
        handled: thread.handled,
        queue: Fill {
            depth: thread.queue_depth,
            capacity: thread.queue_capacity,
            waiting: 0,
        },
        inbound: None,
        restarts: thread.restarts,
        budget: None,
        messages: Vec::new(),
        tasks: Vec::new(),
        pool: None,
        stop: None,
        waits: Vec::new(),
        remote: None,
    });
    for child in &thread.children {
        add_reported(child, id, out);
    }
}

fn kind_name(node: &Node, kind: Kind) -> String {
    kind.name(node.meta).to_owned()
}

fn messages(node: &Node, reading: &ProbeReading) -> Vec<MessageView> {
    reading
        .kinds
        .iter()
        .map(|k| MessageView {
            kind: match k.kind {
                Kind::Down(_) => MessageKind::Down,
                Kind::Up => MessageKind::Up,
                Kind::Exit => MessageKind::Exit,
                Kind::Restart => MessageKind::Restart,
                Kind::Task(_) => MessageKind::Task,
            },
            name: kind_name(node, k.kind),
            handled: k.handled,
            handler: k.handler.map(timing),
            wait: k.wait.map(timing),
        })
        .collect()
}

fn tasks(node: &Node, reading: Option<&ProbeReading>, now: Instant) -> Vec<TaskView> {
    node.meta
        .tasks
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let task = reading.and_then(|r| r.tasks.get(i));
            TaskView {
                name: spec.name.to_owned(),
                every_ms: spec.every.map(millis),
                due_in_ms: task.and_then(|t| t.next).map(|next| signed_ms(next, now)),
                late_last_us: task.map_or(0, |t| micros(t.late_last)),
                late_max_us: task.map_or(0, |t| micros(t.late_max)),
            }
        })
        .collect()
}

fn stop_view(
    node: &Node,
    reading: Option<&ProbeReading>,
    children: &[(Arc<Node>, u32)],
    now: Instant,
) -> StopView {
    let phase = reading.map_or(StopPhase::None, |r| r.stop_phase);
    let stage = match phase {
        StopPhase::None => StopStage::Unknown,
        StopPhase::Draining => StopStage::Draining,
        StopPhase::Children => StopStage::Children,
        StopPhase::ExitHook => StopStage::ExitHook,
        StopPhase::Reaping => StopStage::Reaping,
    };
    let children_stage = (stage == StopStage::Children)
        .then(|| reading.map(|r| r.stop_stage))
        .flatten();
    let holding = match stage {
        StopStage::Draining | StopStage::ExitHook => Vec::new(),
        _ => children
            .iter()
            .filter(|(c, s)| {
                c.state() != ThreadState::Exited && children_stage.is_none_or(|at| *s <= at)
            })
            .map(|(c, _)| c.path().to_string())
            .collect(),
    };
    StopView {
        stage,
        children_stage,
        for_ms: reading
            .and_then(|r| r.stop_began)
            .map(|at| millis(now.saturating_duration_since(at))),
        deadline_left_ms: reading
            .and_then(|r| r.stop_deadline)
            .map(|at| signed_ms(at, now)),
        queued: node.queue_depth(),
        holding,
    }
}

/// A thread blocked on another: in the queue of `target` (or waiting for its answer).
pub(super) struct Blocked {
    waiter: u64,
    kind: crate::WaitKind,
    target: String,
}

/// Adds each blocked wait to its waiter's view, if the waiter is in the subtree.
fn add_blocked_waits(threads: &mut [ThreadView], blocked: Vec<Blocked>) {
    if blocked.is_empty() {
        return;
    }
    let index: HashMap<u64, usize> = threads.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    for wait in blocked {
        let Some(&i) = index.get(&wait.waiter) else {
            continue;
        };
        threads[i].waits.push(WaitView {
            on: match wait.kind {
                crate::WaitKind::Down => WaitKind::Down,
                crate::WaitKind::Up => WaitKind::Up,
                crate::WaitKind::Answer => WaitKind::Answer,
            },
            target: Some(wait.target),
            detail: String::new(),
            for_ms: None,
        });
    }
}

/// What a stop waits on: its children (one wait each, with the child as target), or its
/// exit hook.
fn stop_waits(stop: Option<&StopView>) -> Vec<WaitView> {
    let Some(stop) = stop else {
        return Vec::new();
    };
    match stop.stage {
        StopStage::ExitHook => vec![WaitView {
            on: WaitKind::ExitHook,
            target: None,
            detail: String::new(),
            for_ms: None,
        }],
        StopStage::Children | StopStage::Unknown | StopStage::Reaping => stop
            .holding
            .iter()
            .map(|child| WaitView {
                on: WaitKind::Child,
                target: Some(child.clone()),
                detail: String::new(),
                for_ms: stop.for_ms,
            })
            .collect(),
        StopStage::Draining => Vec::new(),
    }
}

fn to_event(e: Event) -> WatchEvent {
    WatchEvent {
        seq: e.seq,
        at_ms: unix_ms(e.at),
        path: e.path.get().to_string(),
        kind: match e.kind {
            record::EventKind::Spawned => EventKind::Spawned,
            record::EventKind::Stopping => EventKind::Stopping,
            record::EventKind::Exited => EventKind::Exited,
            record::EventKind::Failed => EventKind::Failed,
            record::EventKind::Restarted => EventKind::Restarted,
        },
        detail: e.detail.into_owned(),
    }
}

/// Whether `path` is `root` or below it.
fn under(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn timing(p: Percentiles) -> Timing {
    Timing {
        samples: p.samples,
        p50_us: micros(p.p50),
        p99_us: micros(p.p99),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `at - now` in milliseconds, negative if `at` is past.
fn signed_ms(at: Instant, now: Instant) -> i64 {
    if at >= now {
        i64::try_from(millis(at - now)).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(millis(now - at)).unwrap_or(i64::MAX)
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, millis)
}
