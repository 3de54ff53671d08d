//! Who waits on whom, and the waits that would never end.
//!
//! A wait that blocks is kept where the waiting thread waits, with its id: a sender waiting
//! for room in a DOWN queue in that queue's list of waiting senders, a child waiting for
//! room UP in its parent's inbound places, an asker in the asked thread's node (its
//! [`Kin`](super::children::Kin)). A thread that starts to wait on another therefore finds,
//! in its own node, queue and places, whether that other thread waits on it: if it does,
//! neither wait could ever end, and the one starting fails at once with the [`WaitCycle`].
//!
//! Nothing of this runs until a wait blocks, and nothing is added to the way of a message:
//!
//! - `Ctx::up` knows its thread (the context) and does it all at once.
//! - A [`ChildRef`](crate::ChildRef) does not know who sends. Its wait [reports](report)
//!   that it blocked (in a thread-local, with the tokio task it runs in) and returns
//!   `Pending`; the loop of the thread, seeing its user code pending with a report of its
//!   own task, [settles](settle) it: lists the wait under the thread's id, looks for a
//!   cycle, and polls the user code again at once with the [`Verdict`], which the wait
//!   takes. Waits outside threads' tasks (`main`, a plain tokio task, a task of
//!   `spawn_task`) are not reported ([`polling_thread`] says which task is a thread's):
//!   nothing in the tree waits on those.
//! - An asker is marked in two steps, so that a mark never outlives its answer: the loop
//!   marks it *pending*, the ask looks at its answer once more and, still waiting,
//!   *confirms* the mark; only confirmed marks count. The answering thread's loop takes the
//!   mark away when a handler of it has answered (`Node::after_handler`), before it runs
//!   anything else.
//!
//! Threads talk along the tree, so two waits that are each on a parent or a child can only
//! form a cycle of two threads (or of one: a thread waiting for room in its own queue, or
//! for its own answer). Those are the cycles found here; a thread that waits on a third
//! thread through an address handed to it is not followed further than that thread.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Node, Queue, Waiting};
use crate::exit::ChildId;
use crate::wait::{WaitCycle, WaitKind};

/// The bit of a mark of an asker that says it is not confirmed yet.
const PENDING: u64 = 1 << 63;

/// A wait of a [`ChildRef`](crate::ChildRef) that has just blocked, for its thread's loop.
struct Blocked {
    task: tokio::task::Id,
    target: Arc<Node>,
    kind: WaitKind,
    /// Its ticket in the target's queue (a wait for room).
    ticket: u64,
}

/// What the loop decided for a reported wait, taken by the wait when polled again.
pub(crate) struct Verdict {
    target: ChildId,
    kind: WaitKind,
    ticket: u64,
    /// The thread that waits.
    pub(crate) me: ChildId,
    /// The cycle the wait closes, if it does: it fails.
    pub(crate) cycle: Option<WaitCycle>,
}

thread_local! {
    static BLOCKED: Cell<Option<Blocked>> = const { Cell::new(None) };
    /// Whether `BLOCKED` holds a report: one look after a poll that is pending.
    static REPORTED: Cell<bool> = const { Cell::new(false) };
    static VERDICT: Cell<Option<Verdict>> = const { Cell::new(None) };
    /// A handler answered an ask since the loop last looked.
    static ANSWERED: Cell<bool> = const { Cell::new(false) };
    /// The tokio task being polled on this OS thread is a thread's.
    static IN_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `poll`, a poll of a thread's task: waits that block inside it are reported (see
/// [`report`]); those of other tasks, which no thread's loop would settle, are not.
///
/// A poll ends with the flag as it found it: polls nest where a thread's poll runs other
/// tasks in place (`block_in_place` around another runtime's `block_on`), and the outer
/// poll is still a thread's once the inner ones end. A poll that panics leaves the flag set
/// until the next thread's poll on this OS thread: the waits of other tasks meanwhile are
/// reported as before the flag existed, and [`settle`] leaves them alone (they are not its
/// task's).
#[inline]
pub(crate) fn polling_thread<R>(poll: impl FnOnce() -> R) -> R {
    let outer = IN_THREAD.replace(true);
    let polled = poll();
    IN_THREAD.set(outer);
    polled
}

/// Whether the tokio task being polled on this OS thread is a thread's (or a thread's poll
/// panicked since, see [`polling_thread`]: then `true` with no thread polled).
#[inline]
pub(crate) fn in_thread_task() -> bool {
    IN_THREAD.get()
}

/// A wait of a `ChildRef` on `target` has just blocked (`ticket`: its place in the target's
/// queue, for a wait for room); whether it was reported. Outside a thread's task (`main`, a
/// `block_on`, a plain tokio task) there is no loop to settle it, and `target` is not even
/// taken (a reference count less per wait).
#[inline]
pub(crate) fn report(target: impl FnOnce() -> Arc<Node>, kind: WaitKind, ticket: u64) -> bool {
    if !IN_THREAD.get() {
        return false;
    }
    let Some(task) = tokio::task::try_id() else {
        return false;
    };
    BLOCKED.set(Some(Blocked {
        task,
        target: target(),
        kind,
        ticket,
    }));
    REPORTED.set(true);
    true
}

/// For a reported wait polled again: the loop's verdict on it, if this poll is the one
/// that brings it.
pub(crate) fn verdict(target: ChildId, kind: WaitKind, ticket: u64) -> Option<Verdict> {
    let verdict = VERDICT.take()?;
    if verdict.target == target && verdict.kind == kind && verdict.ticket == ticket {
        Some(verdict)
    } else {
        VERDICT.set(Some(verdict));
        None
    }
}

/// A handler is about to send an answer.
#[inline]
pub(crate) fn answering() {
    ANSWERED.set(true);
}

/// After a poll of user code of the thread of `node` that is pending: whether a wait of
/// it reported that it blocked. One thread-local look.
#[inline]
pub(crate) fn has_report() -> bool {
    REPORTED.get()
}

/// Settles the reported wait of the thread of `node` (see the module's docs): lists it
/// under the thread's id, and polls the user code again with the verdict (`poll`) when
/// the wait has one to take. `None` if there was nothing to poll again for.
pub(crate) fn settle<R>(node: &Node, poll: impl FnOnce() -> R) -> Option<R> {
    REPORTED.set(false);
    let blocked = BLOCKED.take()?;
    if tokio::task::try_id() != Some(blocked.task) {
        return None; // left by code outside this thread
    }
    let target = &*blocked.target;
    match blocked.kind {
        WaitKind::Answer => target.mark_awaited(node.id, PENDING),
        _ => {
            if !target
                .queue
                .own(blocked.ticket, node.id.as_u64(), &target.listed)
            {
                return None; // promised a place meanwhile
            }
        }
    }
    let cycle = closes_cycle(node, blocked.kind, target);
    if cycle.is_none() && blocked.kind != WaitKind::Answer {
        return None; // listed; it waits
    }
    VERDICT.set(Some(Verdict {
        target: target.id,
        kind: blocked.kind,
        ticket: blocked.ticket,
        me: node.id,
        cycle,
    }));
    let polled = poll();
    if VERDICT.take().is_some() && blocked.kind == WaitKind::Answer {
        // The ask was not polled again (its handler awaits something else first): its
        // mark would never be confirmed nor taken away.
        target.unmark_awaited(node.id);
    }
    Some(polled)
}

impl<Q: ?Sized + Queue> Node<Q> {
    /// Marks the thread `asker` as waiting for an answer of this one (`PENDING`: not
    /// confirmed yet, or 0).
    fn mark_awaited(&self, asker: ChildId, pending: u64) {
        self.kin()
            .awaited_by
            .store(asker.as_u64() | pending, Ordering::SeqCst);
    }

    /// Confirms the pending mark of `asker` (it still waits after the mark was made);
    /// `false` if the mark was taken away meanwhile (the answer came).
    pub(crate) fn confirm_awaited(&self, asker: ChildId) -> bool {
        self.kin_if_any().is_some_and(|kin| {
            kin.awaited_by
                .compare_exchange(
                    asker.as_u64() | PENDING,
                    asker.as_u64(),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
        })
    }

    /// Takes the mark of `asker` away, pending or not, if it is still there.
    pub(crate) fn unmark_awaited(&self, asker: ChildId) {
        let Some(kin) = self.kin_if_any() else {
            return;
        };
        for mark in [asker.as_u64(), asker.as_u64() | PENDING] {
            if kin
                .awaited_by
                .compare_exchange(mark, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    /// After a handler of this thread returned: if it answered an ask, no thread waits for
    /// an answer of this one any more. One thread-local look: the answer was sent by this
    /// handler, in this poll, on this OS thread.
    #[inline]
    pub(crate) fn after_handler(&self) {
        if ANSWERED.get() {
            self.clear_answered();
        }
    }

    #[inline(never)]
    fn clear_answered(&self) {
        ANSWERED.set(false);
        if let Some(kin) = self.kin_if_any() {
            kin.awaited_by.store(0, Ordering::SeqCst);
        }
    }

    /// The id of the thread waiting for an answer of this one (a confirmed mark); 0 if
    /// none.
    fn awaited_by(&self) -> u64 {
        match self
            .kin_if_any()
            .map_or(0, |kin| kin.awaited_by.load(Ordering::SeqCst))
        {
            mark if mark & PENDING != 0 => 0,
            mark => mark,
        }
    }

    /// Whether a thread may wait on this one: `false` (most threads that wait are waited
    /// on by nobody) is two loads.
    #[inline]
    pub(crate) fn may_be_waited_on(&self) -> bool {
        self.kin_if_any().is_some() || self.listed.load(Ordering::SeqCst)
    }

    /// How the thread `other` waits on this one right now, if it does: for room in its
    /// queue, for room UP in its inbound queue, or for its answer.
    fn waited_on_by(&self, other: ChildId) -> Option<WaitKind> {
        let other = other.as_u64();
        if self.queue.has_waiting(other, &self.listed) {
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
    pub(crate) fn waits_on_this(&self) -> Vec<(u64, WaitKind)> {
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
    if me.id == target.id {
        return Some(WaitCycle::new(vec![(me.path().to_string(), kind)]));
    }
    if !me.may_be_waited_on() {
        return None;
    }
    let back = me.waited_on_by(target.id)?;
    Some(WaitCycle::new(vec![
        (me.path().to_string(), kind),
        (target.path().to_string(), back),
    ]))
}

#[cfg(test)]
mod tests {
    use super::{in_thread_task, polling_thread};

    #[test]
    fn a_poll_inside_a_threads_poll_leaves_it_a_threads_poll() {
        assert!(!in_thread_task());
        polling_thread(|| {
            assert!(in_thread_task());
            polling_thread(|| assert!(in_thread_task()));
            assert!(in_thread_task(), "the outer poll is still a thread's");
        });
        assert!(!in_thread_task());
    }
}
