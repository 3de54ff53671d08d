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
//!   anything else. A thread that started to wait on the asker between the mark and its
//!   confirmation saw no mark that counts, so the loop looks for a cycle a second time once
//!   the mark is confirmed, and polls once more with a second verdict if it finds one.
//!
//! Threads talk along the tree, so two waits that are each on a parent or a child can only
//! form a cycle of two threads (or of one: a thread waiting for room in its own queue, or
//! for its own answer). Those are the cycles found here; a thread that waits on a third
//! thread through an address handed to it is not followed further than that thread, nor
//! is a child of a `pass_up` thread, which waits for room UP in its grandparent (or
//! higher): a ring through the thread that passes is three threads long.

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
    /// The tokio task whose code answered an ask last on this OS thread, since a thread's
    /// loop last looked.
    static ANSWERED: Cell<Option<tokio::task::Id>> = const { Cell::new(None) };
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

/// An answer is about to be sent, by the task being polled on this OS thread: a thread's
/// handler, or other code (a proxy's, answering for a thread elsewhere).
#[inline]
pub(crate) fn answering() {
    ANSWERED.set(tokio::task::try_id());
}

/// After a poll of user code of the thread of `node` that is pending: whether a wait of
/// it reported that it blocked. One thread-local look.
#[inline]
pub(crate) fn has_report() -> bool {
    REPORTED.get()
}

/// The ticket of the second verdict on an ask (see [`settle`]): its mark is confirmed.
pub(crate) const CONFIRMED: u64 = 1;

/// Settles the reported wait of the thread of `node` (see the module's docs): lists it
/// under the thread's id, and polls the user code again with the verdict (`poll`) when
/// the wait has one to take. `None` if there was nothing to poll again for.
///
/// An ask is looked at twice. The first look comes before its mark counts: the asked
/// thread may start to wait on this one after it and, seeing the mark still pending, wait
/// all the same. So once the ask has confirmed its mark (`pending` says the user code is
/// still pending), a wait on this thread by the asked one is looked for again, and a
/// cycle found now is a second verdict (ticket [`CONFIRMED`]), for one more poll. At least
/// one of the two threads sees the other: each makes its own wait count before it looks
/// for the other's.
pub(crate) fn settle<R>(
    node: &Node,
    mut poll: impl FnMut() -> R,
    pending: impl Fn(&R) -> bool,
) -> Option<R> {
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
    // A place the target freed as it handed a message out, and has not given back yet (see
    // `DownQueue::give_back`), may be this sender's: the look promises such places, and a
    // wait that has one is no cycle. The target counts the message handed out before it
    // starts to wait on this thread, so a look that sees it wait sees the place.
    let cycle = closes_cycle(node, blocked.kind, target).filter(|_| {
        blocked.kind != WaitKind::Down || target.queue.has_waiting(node.id.as_u64(), &target.listed)
    });
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
    if blocked.kind != WaitKind::Answer {
        return Some(polled);
    }
    if VERDICT.take().is_some() {
        // The ask was not polled again (its handler awaits something else first): its
        // mark would never be confirmed nor taken away.
        target.unmark_awaited(node.id);
        return Some(polled);
    }
    if !pending(&polled) || target.awaited_by() != node.id.as_u64() {
        return Some(polled); // answered, failed, or not confirmed
    }
    let Some(cycle) = closes_cycle(node, WaitKind::Answer, target) else {
        return Some(polled);
    };
    VERDICT.set(Some(Verdict {
        target: target.id,
        kind: WaitKind::Answer,
        ticket: CONFIRMED,
        me: node.id,
        cycle: Some(cycle),
    }));
    let polled = poll();
    // Not taken if the answer came first, or if the ask was not polled again.
    VERDICT.take();
    Some(polled)
}

impl<Q: ?Sized + Queue> Node<Q> {
    /// Marks the thread `asker` as waiting for an answer of this one (`PENDING`: not
    /// confirmed yet, or 0).
    fn mark_awaited(&self, asker: ChildId, pending: u64) {
        let kin = self.kin();
        // Stored by every asker, not only the one that made `kin`: the asker's own store
        // comes before its confirmation and its second look (see `may_be_waited_on`).
        self.kin_made.store(true, Ordering::SeqCst);
        kin.awaited_by
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
    /// an answer of this one any more. One thread-local look: a handler answers in the poll
    /// in which it returns, on this OS thread.
    #[inline]
    pub(crate) fn after_handler(&self) {
        if ANSWERED.get().is_some() {
            self.clear_answered();
        }
    }

    /// Takes the mark away if the answer was this thread's: sent by its own task. One sent
    /// by another task polled on this OS thread since (a proxy's, say) leaves it.
    #[inline(never)]
    fn clear_answered(&self) {
        let answered = ANSWERED.take();
        if answered.is_none() || answered != tokio::task::try_id() {
            return;
        }
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
    ///
    /// Both are SeqCst, as the marks of a wait: an asker's first mark makes the asked
    /// thread's `kin`, and a thread that has just made its own wait count must see that
    /// it was made if the asker, looking after its mark, did not see that wait.
    #[inline]
    pub(crate) fn may_be_waited_on(&self) -> bool {
        self.kin_made.load(Ordering::SeqCst) || self.listed.load(Ordering::SeqCst)
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
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::node::{NodeInit, ThreadMeta};
    use crate::queue::{DownQueue, Metered, inbox};

    /// An UP message: it takes a place.
    struct Up;

    impl Metered for Up {
        fn is_metered(&self) -> bool {
            true
        }
    }

    static META: ThreadMeta = ThreadMeta {
        type_name: "T",
        down_types: &[],
        up_type: None,
        tasks: &[],
    };

    fn node(name: &'static str, parent: Option<&Node>) -> Arc<Node> {
        let init = NodeInit {
            parent: parent.map(|p| Arc::clone(p.path())),
            name: name.into(),
            suffix: 0,
            meta: &META,
            capacity: 1,
            stop_deadline: None,
            blocking_limit: 1,
        };
        Arc::new(Node::new(ChildId::next(), init, DownQueue::<u8>::new(1)))
    }

    /// A parent whose inbound queue of one place is full, and its child, in a task (the
    /// waits of a thread are settled in its own tokio task). `body` gets both, and the
    /// inbound places.
    async fn parent_and_child(
        body: impl FnOnce(Arc<Node>, Arc<Node>, &crate::queue::Meter) + Send + 'static,
    ) {
        let (tx, _rx) = inbox::<Up>(1);
        let parent = node("parent", None);
        let child = node("child", Some(&parent));
        parent.set_inbound(tx.places());
        assert!(tx.meter().try_take().is_ok(), "the one place");
        tokio::spawn(async move { body(parent, child, tx.meter()) })
            .await
            .expect("no panic");
    }

    /// The parent's ask of `child` has queued its question and reports that it waits.
    fn ask_reports(child: &Arc<Node>) {
        polling_thread(|| {
            assert!(report(
                || Arc::clone(child) as Arc<Node>,
                WaitKind::Answer,
                0
            ));
        });
    }

    /// The parent's ask, polled again, takes the first verdict (no cycle) and confirms its
    /// mark.
    fn ask_confirms(child: &Node) {
        let first = verdict(child.id, WaitKind::Answer, 0).expect("a verdict");
        assert!(first.cycle.is_none(), "no cycle at the first look");
        assert!(child.confirm_awaited(first.me));
    }

    /// The child starts to wait for a place in its parent's full inbound queue (listed
    /// there as long as the wait, returned, lives), and looks for a cycle as `Ctx::up`
    /// does: whether it found one.
    fn child_waits_up<'m>(
        child: &Node,
        parent: &Node,
        meter: &'m crate::queue::Meter,
    ) -> (bool, Pin<Box<impl Future + 'm>>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut up = Box::pin(meter.take(child.id.as_u64()));
        assert!(up.as_mut().poll(&mut cx).is_pending(), "the queue is full");
        (closes_cycle(child, WaitKind::Up, parent).is_some(), up)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_waiting_up_before_the_askers_mark_counts_fails_the_ask() {
        parent_and_child(|parent, child, meter| {
            ask_reports(&child);
            let mut polls = 0;
            let mut second = None;
            let mut up = None;
            let polled = settle(
                &parent,
                || {
                    polls += 1;
                    if polls == 1 {
                        // Between the parent's first look and the ask's confirmation: the
                        // child sees the mark pending, and waits.
                        let (cycle, wait) = child_waits_up(&child, &parent, meter);
                        assert!(!cycle, "the mark is pending");
                        up = Some(wait);
                        ask_confirms(&child);
                        Poll::Pending
                    } else {
                        second = verdict(child.id, WaitKind::Answer, CONFIRMED);
                        Poll::Ready(())
                    }
                },
                |polled| polled.is_pending(),
            );
            assert_eq!(polled, Some(Poll::Ready(())), "polled again");
            assert_eq!(polls, 2);
            drop(up);
            let cycle = second
                .and_then(|v| v.cycle)
                .expect("the second verdict fails it");
            assert_eq!(
                cycle.to_string(),
                WaitCycle::new(vec![
                    ("parent".to_owned(), WaitKind::Answer),
                    ("parent/child".to_owned(), WaitKind::Up),
                ])
                .to_string()
            );
        })
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_waiting_up_after_the_askers_mark_counts_fails_its_own_wait() {
        parent_and_child(|parent, child, meter| {
            ask_reports(&child);
            let mut polls = 0;
            settle(
                &parent,
                || {
                    polls += 1;
                    ask_confirms(&child);
                    Poll::<()>::Pending
                },
                |polled| polled.is_pending(),
            );
            assert_eq!(polls, 1, "no cycle yet: no second look");
            assert!(child_waits_up(&child, &parent, meter).0, "the mark counts");
        })
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_ask_answered_before_the_second_look_is_left_alone() {
        parent_and_child(|parent, child, meter| {
            ask_reports(&child);
            let mut polls = 0;
            let mut up = None;
            settle(
                &parent,
                || {
                    polls += 1;
                    let (cycle, wait) = child_waits_up(&child, &parent, meter);
                    assert!(!cycle, "the mark is pending");
                    up = Some(wait);
                    ask_confirms(&child);
                    // The child answers (its handler returns) before the parent looks
                    // again.
                    answering();
                    child.after_handler();
                    Poll::<()>::Pending
                },
                |polled| polled.is_pending(),
            );
            assert_eq!(polls, 1, "no second verdict");
            assert_eq!(child.awaited_by(), 0);
            drop(up);
        })
        .await;
    }

    /// A parent waits for room in its child's queue while the child, with a message handed
    /// out of its batch whose place it has not given back yet, waits for room in the
    /// parent's inbound queue: the parent's look finds that place, and no cycle.
    #[tokio::test(flavor = "current_thread")]
    async fn a_sender_owed_a_place_handed_out_is_in_no_cycle() {
        let (tx, _rx) = inbox::<Up>(1);
        let parent = node("parent", None);
        let init = NodeInit {
            parent: Some(Arc::clone(parent.path())),
            name: "child".into(),
            suffix: 0,
            meta: &META,
            capacity: 2,
            stop_deadline: None,
            blocking_limit: 1,
        };
        let child = Arc::new(Node::new(ChildId::next(), init, DownQueue::<u8>::new(2)));
        parent.set_inbound(tx.places());
        assert!(tx.meter().try_take().is_ok(), "the one place");
        tokio::spawn(async move {
            let queue = &child.queue;
            let mut batch = crate::queue::Batch::default();
            queue.try_send(1).expect("room");
            queue.try_send(2).expect("room");
            assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
            assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(2));
            queue.try_send(3).expect("the place of 1");
            let mut cx = Context::from_waker(Waker::noop());
            let mut sending = queue.send(9);
            assert!(Pin::new(&mut sending).poll(&mut cx).is_pending(), "full");
            let ticket = sending.newly_blocked().expect("it blocks");
            let target: Arc<Node> = Arc::clone(&child) as Arc<Node>;
            polling_thread(|| {
                assert!(report(|| Arc::clone(&target), WaitKind::Down, ticket));
            });
            let (cycle, up) = child_waits_up(&target, &parent, tx.meter());
            assert!(!cycle, "the parent has not said who it is yet");
            let verdict = settle(&parent, || (), |()| false);
            assert!(verdict.is_none(), "promised the place of 2: no cycle");
            assert!(
                Pin::new(&mut sending).poll(&mut cx).is_ready(),
                "the place of 2"
            );
            drop(up);
        })
        .await
        .expect("no panic");
    }

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
