//! [`DownReceiver`]: a thread's own end of the DOWN queue in its node.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::Node;
use crate::queue::{Batch, DownQueue};

/// The thread's end of its queue, held by its loop, with the batch of messages it took out
/// at once and has not handed out yet. Dropping it closes the queue and drops what is left
/// in it, so sends fail from then on and give their message back.
pub(crate) struct DownReceiver<D: Send + 'static> {
    node: Arc<Node<DownQueue<D>>>,
    batch: Batch<D>,
}

impl<D: Send + 'static> DownReceiver<D> {
    pub(crate) fn new(node: Arc<Node<DownQueue<D>>>) -> Self {
        Self {
            node,
            batch: Batch::default(),
        }
    }

    /// The thread's node, which holds the queue.
    #[inline]
    pub(crate) fn node(&self) -> &Node {
        &*self.node
    }

    /// The next message; a sampled one (the thread is watched) tells the probe when it
    /// was queued.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        let node = &self.node;
        node.queue
            .poll_recv_sampled(&mut self.batch, cx, |queued| node.record_sample(queued))
    }

    /// Takes the next message, holding its place until [`release_held`](Self::release_held).
    pub(crate) fn poll_recv_held(&mut self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        self.node.queue.poll_recv_held(&mut self.batch, cx)
    }

    pub(crate) fn try_recv_held(&mut self) -> Option<D> {
        self.node.queue.try_recv_held(&mut self.batch)
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
            .try_recv_sampled(&mut self.batch, |queued| node.record_sample(queued))
    }

    /// Closes the queue; returns whether nothing is left to receive.
    pub(crate) fn close(&mut self) -> bool {
        self.give_back();
        self.node.queue.close()
    }

    /// Gives back the places of the messages handed out of the batch, promising them to the
    /// senders waiting for them (see [`DownQueue::give_back`]): before the thread's task
    /// waits, or its life ends, with messages handed out of its batch.
    #[inline]
    pub(crate) fn give_back(&mut self) {
        self.node.queue.give_back(&mut self.batch);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.node.queue.is_closed()
    }

    #[inline]
    pub(crate) fn is_empty(&mut self) -> bool {
        self.batch.is_empty() && self.node.queue.is_empty()
    }
}

impl<D: Send + 'static> Drop for DownReceiver<D> {
    #[inline]
    fn drop(&mut self) {
        self.node.queue.close_for_good();
    }
}
