//! [`DownReceiver`]: a thread's own end of the DOWN queue in its node.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::Node;
use crate::queue::DownQueue;

/// The thread's end of its queue, held by its loop. Dropping it closes the queue and drops
/// what is left in it, so sends fail from then on and give their message back.
pub(crate) struct DownReceiver<D: Send + 'static> {
    node: Arc<Node<DownQueue<D>>>,
}

impl<D: Send + 'static> DownReceiver<D> {
    pub(crate) fn new(node: Arc<Node<DownQueue<D>>>) -> Self {
        Self { node }
    }

    /// The next message; a sampled one (the thread is watched) tells the probe when it
    /// was queued.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        let node = &self.node;
        node.queue
            .poll_recv_sampled(cx, |queued| node.record_sample(queued))
    }

    /// Takes the next message, holding its place until [`release_held`](Self::release_held).
    pub(crate) fn poll_recv_held(&mut self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        self.node.queue.poll_recv_held(cx)
    }

    pub(crate) fn try_recv_held(&mut self) -> Option<D> {
        self.node.queue.try_recv_held()
    }

    pub(crate) fn release_held(&self, n: usize) {
        self.node.queue.release_held(n);
    }

    pub(crate) fn held(&self) -> usize {
        self.node.queue.held()
    }

    pub(crate) fn len(&self) -> usize {
        self.node.queue.len()
    }

    #[inline]
    pub(crate) fn try_recv(&mut self) -> Option<D> {
        let node = &self.node;
        node.queue
            .try_recv_sampled(|queued| node.record_sample(queued))
    }

    /// Closes the queue; returns whether nothing is left to receive.
    pub(crate) fn close(&mut self) -> bool {
        self.node.queue.close()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.node.queue.is_closed()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.node.queue.is_empty()
    }
}

impl<D: Send + 'static> Drop for DownReceiver<D> {
    fn drop(&mut self) {
        self.node.queue.close_for_good();
    }
}
