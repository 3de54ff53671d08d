//! For tests: nodes made without a thread, and a waker that counts its wakes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use super::{Node, NodeInit, ThreadMeta};
use crate::exit::ChildId;
use crate::queue::DownQueue;

static META: ThreadMeta = ThreadMeta {
    type_name: "T",
    down_types: &[],
    up_type: None,
    tasks: &[],
};

/// A node of its own (no parent, a queue of one), with `stop_deadline`.
pub(crate) fn node(stop_deadline: Option<Duration>) -> Arc<Node<DownQueue<u8>>> {
    let init = NodeInit {
        parent: None,
        name: "t".into(),
        suffix: 0,
        meta: &META,
        capacity: 1,
        stop_deadline,
        blocking_limit: 1,
    };
    Arc::new(Node::new(ChildId::next(), init, DownQueue::new(1)))
}

/// A waker that counts its wakes.
pub(crate) struct Counted(AtomicUsize);

impl Counted {
    /// How many times it was woken.
    pub(crate) fn wakes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// A new one, and its waker.
    pub(crate) fn new() -> (Arc<Self>, Waker) {
        let counted = Arc::new(Self(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counted));
        (counted, waker)
    }
}

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Registers a counted waker on `node` for its stop request, which is not made yet.
pub(crate) fn waiting(node: &Node<DownQueue<u8>>) -> Arc<Counted> {
    let (counted, waker) = Counted::new();
    let pending = node.poll_stop_requested(&mut Context::from_waker(&waker));
    assert!(pending.is_pending(), "no stop asked yet");
    counted
}
