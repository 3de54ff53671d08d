//! A thread's inbound queue: UP messages from its children, items of attached streams, the
//! outputs of its background jobs, and its children's exit reports, in one FIFO.
//!
//! Only UP messages and stream items are metered: each holds one of `capacity` permits
//! until the thread takes it off the queue, which gives children and streams backpressure.
//! Exit reports and job outputs are not metered — there is at most one per child or job, so
//! they are bounded anyway — and so sending them never waits. That matters when many
//! children stop at once: none of them parks on a full queue to say it has ended, and its
//! report still comes after every UP message it sent before it.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use crate::error::TrySendError;
use crate::thread::ChildExit;

/// What arrives on a thread's inbound queue.
pub(crate) enum Inbound<E> {
    /// An UP message from a child or an item from an attached stream (metered).
    Event(E),
    /// The output of a `spawn_task` / `spawn_blocking` job (not metered: one per job).
    Output(E),
    /// A child's exit report (boxed: rare, and it would otherwise size every slot).
    Exit(Box<ChildExit>),
}

/// The receiving side, owned by the thread (or, for a root's UP messages, by its handle).
pub(crate) struct Inbox<E> {
    rx: mpsc::UnboundedReceiver<Inbound<E>>,
    permits: Arc<Semaphore>,
}

/// A sending side: held by each child's port and by stream and job tasks.
pub(crate) struct InboxSender<E> {
    tx: mpsc::UnboundedSender<Inbound<E>>,
    permits: Arc<Semaphore>,
}

impl<E> Clone for InboxSender<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            permits: Arc::clone(&self.permits),
        }
    }
}

/// Why a metered send did not happen now.
pub(crate) enum Refused {
    Full,
    Closed,
}

impl Refused {
    /// The error a caller of `try_send` sees, with its message back.
    pub(crate) fn with<M>(self, msg: M) -> TrySendError<M> {
        match self {
            Self::Full => TrySendError::Full(msg),
            Self::Closed => TrySendError::Ended(msg),
        }
    }
}

/// A queue with `capacity` permits for metered events. The receiver sees the end (`None`)
/// once every sender is gone.
pub(crate) fn inbox<E>(capacity: usize) -> (InboxSender<E>, Inbox<E>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(capacity));
    let sender = InboxSender {
        tx,
        permits: Arc::clone(&permits),
    };
    (sender, Inbox { rx, permits })
}

impl<E> Inbox<E> {
    #[inline]
    fn taken(&self, inbound: &Inbound<E>) {
        if let Inbound::Event(_) = inbound {
            self.permits.add_permits(1);
        }
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound<E>>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(inbound)) = &polled {
            self.taken(inbound);
        }
        polled
    }

    pub(crate) fn try_recv(&mut self) -> Option<Inbound<E>> {
        let inbound = self.rx.try_recv().ok()?;
        self.taken(&inbound);
        Some(inbound)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<E> Drop for Inbox<E> {
    fn drop(&mut self) {
        // Wakes anyone waiting for room: the queue is gone.
        self.permits.close();
    }
}

impl<E> InboxSender<E> {
    /// Queues a metered event if there is room now; `make` runs only then.
    #[inline]
    pub(crate) fn try_send_with<M>(
        &self,
        msg: M,
        make: impl FnOnce(M) -> E,
    ) -> Result<(), (Refused, M)> {
        match self.permits.try_acquire() {
            Ok(permit) => {
                permit.forget();
                // The receiver only goes away after closing the permits, so this fails only
                // in a race with it; the thread is gone then and there is no one to tell.
                let _ = self.tx.send(Inbound::Event(make(msg)));
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err((Refused::Full, msg)),
            Err(TryAcquireError::Closed) => Err((Refused::Closed, msg)),
        }
    }

    /// The permits of the metered part, for a caller that waits for one itself.
    pub(crate) fn permits(&self) -> &Semaphore {
        &self.permits
    }

    /// Queues a metered event for which the caller has acquired (and forgotten) a permit.
    pub(crate) fn send_permitted(&self, event: E) {
        let _ = self.tx.send(Inbound::Event(event));
    }

    /// Queues a job's output or an exit report; never waits.
    pub(crate) fn send_unmetered(&self, inbound: Inbound<E>) -> bool {
        self.tx.send(inbound).is_ok()
    }
}
