//! [`TreeSnapshot`]: a picture of a subtree at one moment, and its rendering in the
//! hierarchical notation of the original TaskThread docs.

use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use super::{Node, Queue};
use crate::exit::{ChildId, ThreadState};
use crate::lock::lock;
use crate::wait::WaitKind;

impl<Q: ?Sized + Queue> Node<Q> {
    /// A snapshot of this thread's subtree, with the waits between its threads.
    pub(crate) fn snapshot(&self) -> TreeSnapshot {
        let mut waits = Vec::new();
        let mut snapshot = self.snapshot_taking(&mut waits);
        if !waits.is_empty() {
            for (waiter, wait) in waits {
                if let Some(entry) = snapshot.find_id_mut(waiter) {
                    entry.waiting.push(wait);
                }
            }
        }
        snapshot
    }

    /// The subtree's snapshot without its waits, which are added to `waits` (by the id of
    /// the thread that waits).
    fn snapshot_taking(&self, waits: &mut Vec<(u64, Waiting)>) -> TreeSnapshot {
        let children = self.children_now();
        waits.extend(
            self.waits_on_this()
                .into_iter()
                .map(|(waiter, kind)| (waiter, self.as_waited_on(kind))),
        );
        let (remote, reported) = match self.attachment::<RemoteView>() {
            Some(view) => view.get(),
            None => (None, Vec::new()),
        };
        let mut children: Vec<TreeSnapshot> = children
            .iter()
            .map(|c| c.node().snapshot_taking(waits))
            .collect();
        children.extend(reported);
        TreeSnapshot {
            id: self.id,
            name: self.name().to_owned(),
            path: self.path().to_string(),
            type_name: self.meta.type_name,
            down_types: self.meta.down_types,
            up_type: self.meta.up_type,
            state: self.state(),
            queue_depth: self.queue_depth(),
            queue_capacity: self.capacity(),
            handled: self.handled(),
            restarts: self.restarts(),
            waiting: Vec::new(),
            remote,
            children,
        }
    }
}

/// What a remote child's proxy shows in place of the child's subtree, kept on the proxy's
/// node: the link to the host, and the threads below the child as the host last reported
/// them.
#[derive(Debug, Default)]
pub(crate) struct RemoteView(Mutex<Option<(RemoteLink, Vec<TreeSnapshot>)>>);

impl RemoteView {
    pub(crate) fn set(&self, link: RemoteLink, subtree: Vec<TreeSnapshot>) {
        *lock(&self.0) = Some((link, subtree));
    }

    pub(crate) fn get(&self) -> (Option<RemoteLink>, Vec<TreeSnapshot>) {
        match &*lock(&self.0) {
            Some((link, subtree)) => (Some(link.clone()), subtree.clone()),
            None => (None, Vec::new()),
        }
    }
}

/// Where a remote child runs, as its [`TreeSnapshot`] shows it: the host, the round-trip
/// time of the link to it, and which life of the child the link carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteLink {
    /// The name of the host that runs the child.
    pub host: String,
    /// The link's round-trip time, as its heartbeats last measured it (`None` before the
    /// first measure).
    pub rtt: Option<Duration>,
    /// The child's life the link carries: 1 for the first, one more for each restart.
    pub epoch: u32,
}

impl RemoteLink {
    /// A link to the host named `host`, carrying life `epoch` of the child, with the
    /// round-trip time `rtt` if measured.
    pub fn new(host: impl Into<String>, rtt: Option<Duration>, epoch: u32) -> Self {
        Self {
            host: host.into(),
            rtt,
            epoch,
        }
    }
}

impl fmt::Display for RemoteLink {
    /// `on worker-1, rtt 0.42 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on {}", self.host)?;
        if let Some(rtt) = self.rtt {
            write!(f, ", rtt {:.2} ms", rtt.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}

/// A picture of a subtree at one moment: names, types, states, queue depths, message counts,
/// and what each thread waits on.
///
/// Its `Display` renders the hierarchical notation of the original TaskThread docs, one
/// thread per line, children indented by four spaces:
///
/// ```text
/// Master [master] running, queue 0/64, handled 0
///     TcpServer: UP: Frame [master/tcp_server] running, queue 0/64, handled 0, waits for room UP in master
///         TcpConnection: UP: Frame [master/tcp_server/tcp_connection] running, queue 0/64, handled 3
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeSnapshot {
    /// The thread's id.
    pub id: ChildId,
    /// Its name among its siblings.
    pub name: String,
    /// Its path in the tree, e.g. `master/tcp_server/conn-17`.
    pub path: String,
    /// Its type, e.g. `TcpServer`.
    pub type_name: &'static str,
    /// The message types it takes DOWN.
    pub down_types: &'static [&'static str],
    /// The type it sends UP, if any.
    pub up_type: Option<&'static str>,
    /// Where it is in its lifecycle.
    pub state: ThreadState,
    /// Messages waiting in its DOWN queue.
    pub queue_depth: usize,
    /// The capacity of its DOWN queue.
    pub queue_capacity: usize,
    /// DOWN messages, UP messages, stream items and task runs it has handled.
    pub handled: u64,
    /// How often its supervisor has started it again (see [`Ctx::supervise`](crate::Ctx::supervise)).
    pub restarts: u32,
    /// What it waits on right now: a thread whose queue has no room, or whose answer has
    /// not come. Usually empty, or one wait; more if a handler awaits several at once.
    /// Only waits that block show (a send that finds room never does).
    pub waiting: Vec<Waiting>,
    /// For a remote child (see [`proxy`](crate::proxy)): where it runs and how the link to
    /// its host is. Its `children` are then the threads below it as its host last
    /// reported them, their counters as the host counts them.
    pub remote: Option<RemoteLink>,
    /// Its live children, in the order they were spawned.
    pub children: Vec<TreeSnapshot>,
}

impl TreeSnapshot {
    /// The number of threads in this subtree, itself included.
    pub fn len(&self) -> usize {
        1 + self.children.iter().map(TreeSnapshot::len).sum::<usize>()
    }

    /// Always `false`: a snapshot holds at least its root. Present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Finds a thread of this subtree by path.
    pub fn find(&self, path: &str) -> Option<&TreeSnapshot> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(path))
    }

    /// A thread that runs in another process, as its host reports it, for a remoting
    /// crate to show below a remote child ([`Proxy::show_remote`](crate::proxy::Proxy::show_remote)):
    /// `id` is its id there. It takes no messages and has no counters, no waits and no
    /// children until they are set.
    pub fn reported(
        id: u64,
        name: String,
        path: String,
        type_name: &'static str,
        state: ThreadState,
    ) -> Self {
        Self {
            id: ChildId::from_raw(id),
            name,
            path,
            type_name,
            down_types: &[],
            up_type: None,
            state,
            queue_depth: 0,
            queue_capacity: 0,
            handled: 0,
            restarts: 0,
            waiting: Vec::new(),
            remote: None,
            children: Vec::new(),
        }
    }

    fn find_id_mut(&mut self, id: u64) -> Option<&mut TreeSnapshot> {
        if self.id.as_u64() == id {
            return Some(self);
        }
        if self.remote.is_some() {
            // The threads below a remote child have ids of their host's: none is a waiter
            // here.
            return None;
        }
        self.children.iter_mut().find_map(|c| c.find_id_mut(id))
    }

    /// Renders only the hierarchy and the types, exactly in the original's notation
    /// (`TcpServer: UP: Frame`), without names or counters.
    pub fn render_types(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0, false);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize, stats: bool) {
        for _ in 0..depth {
            out.push_str("    ");
        }
        out.push_str(self.type_name);
        let mut parts = Vec::new();
        if !self.down_types.is_empty() {
            parts.push(format!("IN: {}", self.down_types.join(", ")));
        }
        if let Some(up) = self.up_type {
            parts.push(format!("UP: {up}"));
        }
        if !parts.is_empty() {
            let _ = write!(out, ": {}", parts.join(", "));
        }
        if stats {
            let _ = write!(
                out,
                " [{}] {}, queue {}/{}, handled {}",
                self.path, self.state, self.queue_depth, self.queue_capacity, self.handled
            );
            if self.restarts > 0 {
                let _ = write!(out, ", restarts {}", self.restarts);
            }
            if let Some(remote) = &self.remote {
                let _ = write!(out, ", {remote}");
            }
            for wait in &self.waiting {
                let _ = write!(out, ", waits for {wait}");
            }
        }
        out.push('\n');
        for child in &self.children {
            child.render_into(out, depth + 1, stats);
        }
    }
}

impl fmt::Display for TreeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render_into(&mut out, 0, true);
        f.write_str(out.trim_end_matches('\n'))
    }
}

/// One wait of a thread on another, as a [`TreeSnapshot`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiting {
    /// How it waits: for room in a queue, or for an answer.
    pub kind: WaitKind,
    /// The id of the thread it waits on.
    pub on: ChildId,
    /// The path of the thread it waits on.
    pub path: String,
}

impl fmt::Display for Waiting {
    /// `an answer from boss/chatty`, `room in the queue of boss/chatty`, `room UP in boss`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.describe(), self.path)
    }
}
