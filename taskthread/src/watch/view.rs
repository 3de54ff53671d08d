//! What a watch stream carries: [`WatchMessage`]s of [`ThreadView`]s and [`WatchEvent`]s,
//! as JSON (serde) and as text.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// One message of a watch stream: the first is a [`Snapshot`](Self::Snapshot) of the whole
/// subtree, the ones after it [`Changes`](Self::Changes) since the message before. A
/// watcher that falls behind is sent a fresh snapshot.
///
/// As JSON, the variant is the `kind` field: `{"kind":"snapshot","seq":1,...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WatchMessage {
    /// Every thread of the subtree, and the recent events.
    Snapshot(Snapshot),
    /// What changed since the message with the sequence number before this one's.
    Changes(Changes),
}

impl WatchMessage {
    /// Its sequence number: each sampling of the tree has the next one. A snapshot has the
    /// number of the sampling it shows; the changes that follow it go on from there, one
    /// by one.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Snapshot(s) => s.seq,
            Self::Changes(c) => c.seq,
        }
    }

    /// The message as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .expect("a watch message holds only strings, numbers and lists: it serialises")
    }
}

/// The whole subtree at one sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The sampling's sequence number.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Every thread, each after its parent, children in the order they were spawned.
    pub threads: Vec<ThreadView>,
    /// The recent events of the subtree, oldest first (at most
    /// [`RECENT_EVENTS`](super::RECENT_EVENTS)).
    pub events: Vec<WatchEvent>,
}

/// What changed between two samplings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Changes {
    /// The sampling's sequence number: one more than the message before.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The threads that are new or whose figures changed, each in full, parents first.
    pub threads: Vec<ThreadView>,
    /// The ids of the threads gone since.
    pub removed: Vec<u64>,
    /// The events since, oldest first.
    pub events: Vec<WatchEvent>,
    /// Events that happened since but were not kept (more than the process's event ring
    /// holds between two samplings).
    pub missed_events: u64,
}

/// One thread as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadView {
    /// Its id ([`ChildId::get`](crate::ChildId::get)).
    pub id: u64,
    /// Its parent's id; `None` for the root of the watched subtree.
    pub parent: Option<u64>,
    /// Its name among its siblings.
    pub name: String,
    /// Its path in the tree.
    pub path: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The types it takes DOWN.
    pub down: Vec<String>,
    /// The type it sends UP.
    pub up: Option<String>,
    /// Where it is in its lifecycle: `starting`, `running`, `stopping`, `restarting` or
    /// `exited` (as [`ThreadState`](crate::ThreadState) displays).
    pub state: String,
    /// Everything it has handled: DOWN and UP messages, stream items, task runs.
    pub handled: u64,
    /// Its DOWN queue.
    pub queue: Fill,
    /// Its inbound queue (UP messages and stream items), once it has one. Its depth counts
    /// the shared places taken, not the messages in children's own places.
    pub inbound: Option<Fill>,
    /// How often its supervisor has started it again.
    pub restarts: u32,
    /// For a supervised thread: how many restarts its policy still allows.
    pub budget: Option<RestartBudget>,
    /// What it handled while watched, by kind of message.
    pub messages: Vec<MessageView>,
    /// Its `#[rescheduling]` tasks.
    pub tasks: Vec<TaskView>,
    /// For a worker pool: its workers.
    pub pool: Option<PoolView>,
    /// While it stops: how far the stop is.
    pub stop: Option<StopView>,
    /// What it waits on now, if anything (empty if it waits for nothing known).
    pub waits: Vec<WaitView>,
    /// For a child that runs in another process: where, and how the link to it is. The
    /// threads below it are then as its host last reported them (names, types, states and
    /// counters; no message figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<LinkView>,
}

/// Where a remote child runs, and its link's round-trip time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LinkView {
    /// The name of the host that runs it.
    pub host: String,
    /// The link's round-trip time in microseconds, as its heartbeats last measured it.
    pub rtt_us: Option<u64>,
    /// Which life of the child the link carries: 1 for the first.
    pub epoch: u32,
}

/// How full a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Fill {
    /// Messages queued.
    pub depth: usize,
    /// The most it holds.
    pub capacity: usize,
    /// Senders waiting for room (the queue is full).
    pub waiting: usize,
}

/// A supervised thread's restart budget: `used` of `max` restarts in the last `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestartBudget {
    /// Restarts within the window now.
    pub used: u32,
    /// The most its policy allows within the window; one more failure escalates.
    pub max: u32,
    /// The window, in milliseconds.
    pub window_ms: u64,
}

/// What a handler handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageKind {
    /// A DOWN message, by type.
    Down,
    /// UP messages from children, stream items and job outputs.
    Up,
    /// Children's exit reports.
    Exit,
    /// Supervised children's restarts.
    Restart,
    /// Runs of a `#[rescheduling]` task, by name.
    Task,
}

/// What a thread handled of one kind of message while watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageView {
    /// The kind.
    pub kind: MessageKind,
    /// The message type, or the task's name.
    pub name: String,
    /// How many it handled while watched.
    pub handled: u64,
    /// How long its handler took (sampled).
    pub handler: Option<Timing>,
    /// How long it waited in the queue (sampled; DOWN messages only).
    pub wait: Option<Timing>,
}

impl MessageView {
    /// What it counts, in words: `DOWN Packet`, `UP messages`, `task report`, `child exits`,
    /// `child restarts`.
    pub fn label(&self) -> String {
        match self.kind {
            MessageKind::Down => format!("DOWN {}", self.name),
            MessageKind::Task => format!("task {}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Percentiles of a sampled duration, in microseconds (each the top of a half-octave
/// bucket, so within about 20 % above the true value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timing {
    /// How many samples they come from.
    pub samples: u64,
    /// The median.
    pub p50_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
}

/// A `#[rescheduling]` task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskView {
    /// The method's name.
    pub name: String,
    /// Its period, if it has one.
    pub every_ms: Option<u64>,
    /// When it runs next, from now (negative: overdue); `None` if not scheduled.
    pub due_in_ms: Option<i64>,
    /// How late its last run started after it was due.
    pub late_last_us: u64,
    /// The latest any run started while watched.
    pub late_max_us: u64,
}

/// A worker pool's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolView {
    /// Workers taking jobs.
    pub running: usize,
    /// The most it may run.
    pub max: usize,
    /// Workers handling a job or holding one: `busy / running` is the utilisation.
    pub busy: usize,
}

/// Where a thread's stop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopStage {
    /// Handling what is queued; its queue takes nothing new.
    Draining,
    /// Stopping its children, stage by stage.
    Children,
    /// Running its `exit` hook.
    ExitHook,
    /// Waiting for its children's and jobs' tasks to be gone.
    Reaping,
    /// Its stop began before the watch did.
    Unknown,
}

/// A stop under way, and what holds it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StopView {
    /// Where the stop is.
    pub stage: StopStage,
    /// The stop stage of the children being stopped (see
    /// [`ChildOptions::stop_stage`](crate::ChildOptions::stop_stage)).
    pub children_stage: Option<u32>,
    /// How long it has been stopping.
    pub for_ms: Option<u64>,
    /// How long until the stop deadline aborts what remains (negative: past).
    pub deadline_left_ms: Option<i64>,
    /// Messages still queued, to be handled first.
    pub queued: usize,
    /// The children it waits for (paths).
    pub holding: Vec<String>,
}

/// What a thread waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitKind {
    /// A handler (or task run) that has not returned since the last sampling: it awaits
    /// something.
    Handler,
    /// A child's stop (the target).
    Child,
    /// Its `exit` hook.
    ExitHook,
    /// Room in the target's DOWN queue (a `send`, `broadcast` or the question of an `ask`).
    Down,
    /// Room in its parent's inbound queue, the target (`ctx.up`).
    Up,
    /// An answer from the target (`ask`).
    Answer,
}

/// One thing a thread waits on. With a `target`, an edge from this thread to another:
/// following targets shows a wait chain, and a chain that comes back is a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaitView {
    /// What kind of wait.
    pub on: WaitKind,
    /// The thread waited on (its path), if it is one.
    pub target: Option<String>,
    /// What the kind alone does not say (the handler's message type).
    pub detail: String,
    /// How long it has waited, at least (known to the sampling interval).
    pub for_ms: Option<u64>,
}

/// Something that happened to a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WatchEvent {
    /// Its place in the process's events, from 1.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The thread's path.
    pub path: String,
    /// What happened.
    pub kind: EventKind,
    /// The type spawned, how it ended, or the restart.
    pub detail: String,
}

/// What happened to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Spawned.
    Spawned,
    /// Began stopping.
    Stopping,
    /// Ended without failing (completed or stopped).
    Exited,
    /// Ended by an error, a panic or an abort: an error.
    Failed,
    /// Started again by its supervisor.
    Restarted,
}

impl EventKind {
    /// The kind as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spawned => "spawned",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Failed => "failed",
            Self::Restarted => "restarted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for StopStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Draining => "draining its queue",
            Self::Children => "stopping its children",
            Self::ExitHook => "running its exit hook",
            Self::Reaping => "waiting for its tasks to end",
            Self::Unknown => "stopping",
        })
    }
}

impl fmt::Display for WaitView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.on {
            WaitKind::Handler => write!(f, "in its handler of {}", self.detail)?,
            WaitKind::Child => write!(
                f,
                "on the stop of {}",
                self.target.as_deref().unwrap_or("a child")
            )?,
            WaitKind::ExitHook => f.write_str("in its exit hook")?,
            WaitKind::Down => write!(
                f,
                "for room in the queue of {}",
                self.target.as_deref().unwrap_or("a child")
            )?,
            WaitKind::Up => write!(
                f,
                "for room UP in {}",
                self.target.as_deref().unwrap_or("its parent")
            )?,
            WaitKind::Answer => write!(
                f,
                "for an answer from {}",
                self.target.as_deref().unwrap_or("a thread")
            )?,
        }
        if let Some(ms) = self.for_ms {
            write!(f, " for {}", Millis(ms))?;
        }
        Ok(())
    }
}

/// Milliseconds as a short duration: `850 ms`, `3.2 s`, `4 min`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Millis(pub(crate) u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms < 1_000 {
            write!(f, "{ms} ms")
        } else if ms < 60_000 {
            write!(f, "{:.1} s", ms as f64 / 1_000.0)
        } else {
            write!(f, "{} min", ms / 60_000)
        }
    }
}

/// Microseconds as a short duration: `12 µs`, `3.4 ms`, `1.2 s`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Micros(pub(crate) u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us < 1_000 {
            write!(f, "{us} µs")
        } else if us < 1_000_000 {
            write!(f, "{:.1} ms", us as f64 / 1_000.0)
        } else {
            write!(f, "{:.1} s", us as f64 / 1_000_000.0)
        }
    }
}

impl ThreadView {
    /// One line of text: path, type, state, queues and what stands out.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} ({}) {}, queue {}/{}",
            self.path, self.type_name, self.state, self.queue.depth, self.queue.capacity
        );
        if self.queue.waiting > 0 {
            let _ = write!(out, " +{} waiting", self.queue.waiting);
        }
        if let Some(inbound) = &self.inbound {
            let _ = write!(out, ", inbound {}/{}", inbound.depth, inbound.capacity);
        }
        let _ = write!(out, ", handled {}", self.handled);
        if let Some(link) = &self.remote {
            let _ = write!(out, ", on {}", link.host);
            if let Some(rtt) = link.rtt_us {
                let _ = write!(out, ", rtt {:.2} ms", rtt as f64 / 1e3);
            }
        }
        if let Some(b) = &self.budget {
            let _ = write!(
                out,
                ", restarts {} of {} in {}",
                b.used,
                b.max,
                Millis(b.window_ms)
            );
        } else if self.restarts > 0 {
            let _ = write!(out, ", restarts {}", self.restarts);
        }
        if let Some(p) = &self.pool {
            let _ = write!(
                out,
                ", workers {} busy of {} (max {})",
                p.busy, p.running, p.max
            );
        }
        if let Some(stop) = &self.stop {
            let _ = write!(out, ", {}", stop.stage);
            if let Some(left) = stop.deadline_left_ms {
                let _ = write!(out, " (deadline in {})", Millis(left.max(0).unsigned_abs()));
            }
        }
        for wait in &self.waits {
            let _ = write!(out, ", waits {wait}");
        }
        out
    }

    /// The figures per message kind and per task, one per line, indented by `indent`.
    pub fn details(&self, indent: &str) -> String {
        let mut out = String::new();
        for m in &self.messages {
            let _ = write!(out, "{indent}{}: {} handled", m.label(), m.handled);
            if let Some(t) = m.handler {
                let _ = write!(
                    out,
                    ", handler p50 {} p99 {}",
                    Micros(t.p50_us),
                    Micros(t.p99_us)
                );
            }
            if let Some(t) = m.wait {
                let _ = write!(
                    out,
                    ", queued p50 {} p99 {}",
                    Micros(t.p50_us),
                    Micros(t.p99_us)
                );
            }
            out.push('\n');
        }
        for t in &self.tasks {
            let _ = write!(out, "{indent}task {}", t.name);
            match t.due_in_ms {
                Some(ms) if ms >= 0 => {
                    let _ = write!(out, ": due in {}", Millis(ms.unsigned_abs()));
                }
                Some(ms) => {
                    let _ = write!(out, ": overdue by {}", Millis(ms.unsigned_abs()));
                }
                None => out.push_str(": not scheduled"),
            }
            let _ = writeln!(
                out,
                ", last run {} late (at most {})",
                Micros(t.late_last_us),
                Micros(t.late_max_us)
            );
        }
        out
    }
}

impl fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.seq, self.path, self.kind)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The text form, for people: a snapshot as the tree (indented by depth), changes as one
/// line per changed thread, then the events.
impl fmt::Display for WatchMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Snapshot(s) => {
                writeln!(f, "snapshot #{} ({} threads)", s.seq, s.threads.len())?;
                let mut depth = std::collections::HashMap::new();
                for t in &s.threads {
                    let d = t.parent.and_then(|p| depth.get(&p)).map_or(0, |d| d + 1);
                    depth.insert(t.id, d);
                    let indent = "    ".repeat(d);
                    writeln!(f, "{indent}{}", t.summary())?;
                    f.write_str(&t.details(&format!("{indent}  · ")))?;
                }
                for e in &s.events {
                    writeln!(f, "event {e}")?;
                }
            }
            Self::Changes(c) => {
                writeln!(f, "changes #{}", c.seq)?;
                for t in &c.threads {
                    writeln!(f, "  {}", t.summary())?;
                }
                for id in &c.removed {
                    writeln!(f, "  gone #{id}")?;
                }
                for e in &c.events {
                    writeln!(f, "event {e}")?;
                }
                if c.missed_events > 0 {
                    writeln!(f, "missed {} events", c.missed_events)?;
                }
            }
        }
        Ok(())
    }
}
