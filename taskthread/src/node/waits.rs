//! Who waits on whom, and the waits that would never end.
//!
//! A wait is kept where the waiting thread waits, with its id: a sender waiting for room in
//! a DOWN queue in that queue's list of waiting senders, a child waiting for room UP in its
//! parent's inbound places, an asker in the asked thread's node. A
//! thread that starts to wait on another therefore finds, in its own node, queue and
//! places, whether that other thread waits on it: if it does, neither wait could ever end,
//! and the one starting fails at once with the [`WaitCycle`].
//!
//! Nothing of this runs until a wait blocks: a send that finds room, an `up` that finds a
//! place and an answer that is there at the first look never get here. The one cost on the
//! way of every handler is the mark of which thread's code runs ([`run_as`]): a pointer in
//! a thread-local, set and put back around each poll of user code, which is how a
//! [`ChildRef`](crate::ChildRef) learns who waits without taking the sender's context.
//!
//! Threads talk along the tree, so two waits that are each on a parent or a child can only
//! form a cycle of two threads (or of one: a thread waiting for room in its own queue).
//! Those are the cycles found here; a thread that waits on a third thread through an
//! address handed to it is not followed further than that thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Node, Queue, Waiting};
use crate::exit::ChildId;
use crate::wait::{WaitCycle, WaitKind};

scoped_tls::scoped_thread_local!(static CURRENT: Arc<Node>);

/// Runs `f` (a poll of user code) as the code of the thread of `node`.
#[inline]
pub(crate) fn run_as<R>(node: &Arc<Node>, f: impl FnOnce() -> R) -> R {
    CURRENT.set(node, f)
}

/// `f` of the thread whose user code runs now, if any (not outside threads: `main`, a
/// background task).
pub(crate) fn current<R>(f: impl FnOnce(&Arc<Node>) -> R) -> Option<R> {
    CURRENT.is_set().then(|| CURRENT.with(f))
}

/// The thread whose code runs now sent an answer: a thread waiting for one from it no
/// longer waits on it. Called for every answer, so it looks before it writes.
#[inline]
pub(crate) fn answered() {
    if CURRENT.is_set() {
        CURRENT.with(|node| {
            // SeqCst, like the asker's mark: an asker that marks after the answer was sent
            // sees the answer when it looks again, or this sees the mark.
            if let Some(kin) = node.kin_if_any()
                && kin.awaited_by.load(Ordering::SeqCst) != 0
            {
                kin.awaited_by.store(0, Ordering::SeqCst);
            }
        });
    }
}

impl<Q: ?Sized + Queue> Node<Q> {
    /// Marks the thread `asker` as waiting for an answer of this one.
    pub(crate) fn mark_awaited(&self, asker: ChildId) {
        self.kin()
            .awaited_by
            .store(asker.as_u64(), Ordering::SeqCst);
    }

    /// Takes the mark of `asker` away, if it is still there.
    pub(crate) fn unmark_awaited(&self, asker: ChildId) {
        let Some(kin) = self.kin_if_any() else {
            return;
        };
        let _ =
            kin.awaited_by
                .compare_exchange(asker.as_u64(), 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The id of the thread waiting for an answer of this one; 0 if none.
    fn awaited_by(&self) -> u64 {
        self.kin_if_any()
            .map_or(0, |kin| kin.awaited_by.load(Ordering::SeqCst))
    }

    /// How the thread `other` waits on this one right now, if it does: for room in its
    /// queue, for room UP in its inbound queue, or for its answer.
    fn waited_on_by(&self, other: ChildId) -> Option<WaitKind> {
        let other = other.as_u64();
        if self.queue.has_waiting(other) {
            Some(WaitKind::Down)
        } else if self.inbound().is_some_and(|m| m.has_waiting(other)) {
            Some(WaitKind::Up)
        } else if self.awaited_by() == other {
            Some(WaitKind::Answer)
        } else {
            None
        }
    }

    /// The waits on this thread right now: who waits, and how.
    pub(super) fn waits_on_this(&self) -> Vec<(u64, WaitKind)> {
        let mut waits: Vec<_> = self
            .queue
            .waiting_owners()
            .into_iter()
            .map(|o| (o, WaitKind::Down))
            .collect();
        if let Some(meter) = self.inbound() {
            waits.extend(
                meter
                    .waiting_owners()
                    .into_iter()
                    .map(|o| (o, WaitKind::Up)),
            );
        }
        match self.awaited_by() {
            0 => {}
            asker => waits.push((asker, WaitKind::Answer)),
        }
        waits
    }

    /// As [`Waiting`], a wait on this thread.
    pub(super) fn as_waited_on(&self, kind: WaitKind) -> Waiting {
        Waiting {
            kind,
            on: self.id,
            path: self.path().to_string(),
        }
    }
}

/// The thread `me` has started to wait on `target` (`kind`) and now waits where `target`
/// can see it. If `target` waits on `me`, neither wait can end: the cycle, starting with
/// `me`, for the error of the wait that closed it.
pub(crate) fn closes_cycle<Q: ?Sized + Queue>(
    me: &Node,
    kind: WaitKind,
    target: &Node<Q>,
) -> Option<WaitCycle> {
    let me_link = (me.path().to_string(), kind);
    if me.id == target.id {
        return Some(WaitCycle::new(vec![me_link]));
    }
    let back = me.waited_on_by(target.id)?;
    Some(WaitCycle::new(vec![
        me_link,
        (target.path().to_string(), back),
    ]))
}
