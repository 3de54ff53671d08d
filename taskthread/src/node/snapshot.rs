//! [`TreeSnapshot`]: a picture of a subtree at one moment, and its rendering in the
//! hierarchical notation of the original TaskThread docs.

use std::fmt::{self, Write as _};

use super::{Node, Queue};
use crate::exit::{ChildId, ThreadState};

impl<Q: ?Sized + Queue> Node<Q> {
    /// A snapshot of this thread's subtree.
    pub(crate) fn snapshot(&self) -> TreeSnapshot {
        let children = self.children_now();
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
            children: children.iter().map(|c| c.node().snapshot()).collect(),
        }
    }
}

/// A picture of a subtree at one moment: names, types, states, queue depths, message counts.
///
/// Its `Display` renders the hierarchical notation of the original TaskThread docs, one
/// thread per line, children indented by four spaces:
///
/// ```text
/// Master [master] running, queue 0/64, handled 0
///     TcpServer: UP: Frame [master/tcp_server] running, queue 0/64, handled 0
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
