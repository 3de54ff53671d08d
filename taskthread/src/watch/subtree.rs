//! The way into a tree for watchers and the control endpoint: a subtree's root node, and
//! the few things they do with a node (find one by path, snapshot it, stop it, reach its
//! pool).

use std::sync::Arc;

use crate::child::ChildRef;
use crate::ctx::Ctx;
use crate::node::{Node, TreeSnapshot};
use crate::pool::PoolHandle;
use crate::root::Handle;
use crate::thread::Thread;

/// Anything that gives access to a subtree: a [`Handle`] (the whole tree), a [`ChildRef`]
/// or a [`Ctx`] (that thread's subtree).
pub trait Subtree {
    #[doc(hidden)]
    fn __root(&self) -> SubtreeRoot;
}

/// The root of a subtree, as [`Subtree`] gives it. Not public API.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct SubtreeRoot(pub(crate) Arc<Node>);

impl Subtree for SubtreeRoot {
    fn __root(&self) -> SubtreeRoot {
        self.clone()
    }
}

impl<T: Thread> Subtree for Handle<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(Arc::clone(&self.child_ref().node) as Arc<Node>)
    }
}

impl<T: Thread> Subtree for ChildRef<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(Arc::clone(&self.node) as Arc<Node>)
    }
}

impl<T: Thread> Subtree for Ctx<T> {
    fn __root(&self) -> SubtreeRoot {
        SubtreeRoot(self.node_arc())
    }
}

#[cfg_attr(not(feature = "control"), allow(dead_code))]
impl SubtreeRoot {
    /// Its path in the tree.
    pub(crate) fn path(&self) -> &str {
        self.0.path()
    }

    /// A snapshot of the subtree.
    pub(crate) fn snapshot(&self) -> TreeSnapshot {
        self.0.snapshot()
    }

    /// The live thread of the subtree at `path`, as the root of its own subtree.
    pub(crate) fn find(&self, path: &str) -> Option<Self> {
        self.0.find(path).map(Self)
    }

    /// Asks the thread to stop gracefully.
    pub(crate) fn request_stop(&self) {
        self.0.request_stop();
    }

    /// The resize handle of the thread, if it is a worker pool.
    pub(crate) fn pool(&self) -> Option<PoolHandle> {
        PoolHandle::of(&self.0)
    }
}
