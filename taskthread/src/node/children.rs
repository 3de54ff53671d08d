//! A thread's children, kept in its node: the one list the parent's loop adds to and
//! removes from, and that snapshots, aborts and lookups from other threads walk.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::task::{AbortHandle, JoinHandle};

use super::roster::Roster;
use super::{ChildNode, Node, Queue};
use crate::exit::{ChildId, Exit};
use crate::lock::lock;
use crate::queue::Places;
use crate::record::{self, EventKind, recording};

/// What a thread with children keeps in its node, made with the first child, the thread's
/// inbound queue, or the first wait for its answer: the one list of its children, the
/// places of its inbound queue, where its children wait for room UP, and the thread that
/// waits for its answer.
#[derive(Default)]
pub(crate) struct Kin {
    list: Mutex<Roster<ChildEntry>>,
    /// Made with the thread's inbound queue, again in each life of a supervised thread.
    inbound: Mutex<Option<Places>>,
    /// The thread waiting for an answer of this one, if any (its id; 0: none).
    pub(super) awaited_by: AtomicU64,
    /// UP messages and stream items dropped unread with the thread's family, as its task
    /// was cancelled: an abort of the tree from its root counts them in.
    unread: AtomicUsize,
}

/// A child as its parent keeps it.
pub(crate) struct ChildEntry {
    pub(crate) child: Arc<dyn ChildNode>,
    /// The stop stage it is stopped in.
    pub(crate) stage: u32,
    /// Where its task runs: 0 on its parent's runtime, `k` on the `k`-th of the other
    /// runtimes the parent's children were placed on (see [`Node::stop_stage`]).
    pub(crate) place: u32,
    /// Its task's handle, to wait for the task once the child has reported. A child reports
    /// its exit as its task's last step, so on a current-thread runtime its task has always
    /// finished when the report is handled: there the handle is dropped as the child
    /// starts (unless it is spawned while its parent stops, as the exit hook's children,
    /// waited for as the parent finishes), and tokio drops the finished task's output
    /// itself, while the task is still in the cache; a handle dropped after its task has
    /// finished writes over the whole task, cold by then. For the same reason such a child's
    /// task drops its abort handle itself as it reports from its last step
    /// ([`Node::release_at_end`]). On a
    /// multi-thread runtime, or on a runtime other than its parent's, the task may still be
    /// in that step on another OS thread, and the parent waits for it through its handle.
    pub(crate) join: Option<JoinHandle<Exit>>,
}

// A parent keeps an entry per child: where the child runs fits beside its stop stage, in
// what would be padding.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<ChildEntry>() == 32);

impl ChildEntry {
    #[inline]
    pub(crate) fn node(&self) -> &Node {
        self.child.node()
    }
}

impl<Q: ?Sized + Queue> Node<Q> {
    /// The list of children, locked; `None` if there never was a child.
    fn children(&self) -> Option<MutexGuard<'_, Roster<ChildEntry>>> {
        let kin = self.kin.get()?;
        Some(lock(&kin.list))
    }

    /// Keeps the places of the thread's (new) inbound queue.
    pub(crate) fn set_inbound(&self, places: Places) {
        *lock(&self.kin().inbound) = Some(places);
    }

    /// What the thread keeps for its children and waits, made if need be.
    #[inline]
    pub(super) fn kin(&self) -> &Kin {
        match self.kin.get() {
            Some(kin) => kin,
            None => self.make_kin(),
        }
    }

    #[cold]
    fn make_kin(&self) -> &Kin {
        let kin = self.kin.get_or_init(Box::default);
        // SeqCst, as the marks made in it: see `Node::may_be_waited_on`.
        self.kin_made.store(true, Ordering::SeqCst);
        kin
    }

    /// What the thread keeps for its children and waits, if it was made.
    pub(super) fn kin_if_any(&self) -> Option<&Kin> {
        self.kin.get().map(|kin| &**kin)
    }

    /// Counts UP messages and stream items dropped unread with the thread's family.
    pub(crate) fn count_unread(&self, n: usize) {
        self.kin().unread.fetch_add(n, Ordering::Relaxed);
    }

    /// How many UP messages and stream items were dropped unread with the thread's family
    /// since this was last asked.
    pub(crate) fn take_unread(&self) -> usize {
        self.kin_if_any()
            .map_or(0, |kin| kin.unread.swap(0, Ordering::Relaxed))
    }

    /// The places of the thread's inbound queue, if it has one.
    pub(crate) fn inbound(&self) -> Option<Places> {
        let kin = self.kin.get()?;
        lock(&kin.inbound).clone()
    }

    /// Adds a child, last in spawn order.
    pub(crate) fn add_child(&self, entry: ChildEntry) {
        let mut children = lock(&self.kin().list);
        children.push(entry.node().id, entry);
    }

    /// Takes an ended child out of the list; `None` if it is not (or no longer) there.
    pub(crate) fn remove_child(&self, id: ChildId) -> Option<ChildEntry> {
        self.children()?.remove(id)
    }

    /// Takes every child out of the list, in spawn order.
    pub(crate) fn take_children(&self) -> Vec<ChildEntry> {
        self.children()
            .map(|mut children| children.drain().collect())
            .unwrap_or_default()
    }

    /// The child with this id, if it is in the list.
    pub(crate) fn child(&self, id: ChildId) -> Option<Arc<dyn ChildNode>> {
        self.children()?.get(id).map(|e| Arc::clone(&e.child))
    }

    /// The live children at this moment, in spawn order (the lock is not held while the
    /// caller uses them).
    pub(crate) fn children_now(&self) -> Vec<Arc<dyn ChildNode>> {
        self.children()
            .map(|children| children.values().map(|e| Arc::clone(&e.child)).collect())
            .unwrap_or_default()
    }

    /// The live children at this moment with their stop stages, in spawn order.
    #[cfg(feature = "watch")]
    pub(crate) fn children_staged(&self) -> Vec<(Arc<Node>, u32)> {
        self.children()
            .map(|children| {
                children
                    .values()
                    .map(|e| (Arc::clone(&e.child).into_node(), e.stage))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asks every child of stop stage `stage` to stop, as part of this thread's own stop.
    /// A child whose stop deadline is no shorter than this thread's is covered by it
    /// ([`Node::request_covered_stop`]).
    ///
    /// The children placed on other runtimes, `elsewhere` (a child's [`ChildEntry::place`]
    /// counts from 1 in it), are woken from there: a task woken from another OS thread is
    /// scheduled through its runtime's remote queue, and a current-thread runtime driving
    /// I/O is woken with a system call each time, so the wakers of each runtime's children
    /// are handed to one task spawned on it, which wakes them all. A stop of many children
    /// spread over a few cores then costs a few system calls, not one per child.
    pub(crate) fn stop_stage(&self, stage: u32, elsewhere: &[tokio::runtime::Handle]) {
        let Some(children) = self.children() else {
            return;
        };
        let mut batches: Vec<Vec<Waker>> = Vec::new();
        for entry in children.values().filter(|e| e.stage == stage) {
            let child = entry.node();
            let covered = matches!(
                (self.stop_deadline, child.stop_deadline),
                (Some(mine), Some(theirs)) if theirs >= mine
            );
            let Some(at) = (entry.place as usize).checked_sub(1) else {
                if covered {
                    child.request_covered_stop();
                } else {
                    child.request_stop();
                }
                continue;
            };
            if let Some(waker) = child.request_stop_deferred(covered) {
                if batches.len() <= at {
                    batches.resize_with(at + 1, Vec::new);
                }
                batches[at].push(waker);
            }
        }
        drop(children);
        debug_assert!(
            batches.len() <= elsewhere.len(),
            "a child placed on an unlisted runtime"
        );
        let mut batches = batches.into_iter();
        for (runtime, wakers) in elsewhere.iter().zip(batches.by_ref()) {
            if !wakers.is_empty() {
                // Dropped, not awaited: the task runs on its own. On a runtime shut down
                // it never runs, and neither do the children it would have woken.
                drop(runtime.spawn(async move { wakers.into_iter().for_each(Waker::wake) }));
            }
        }
        // Children whose runtime is not listed (none should be) are woken from here.
        batches.flatten().for_each(Waker::wake);
    }

    /// Cancels the children's tasks (their parent's task was cancelled: they must not
    /// outlive it, and a dropped `JoinHandle` would only detach them).
    pub(crate) fn abort_children(&self) {
        if let Some(children) = self.children() {
            for entry in children.values() {
                entry.node().abort_task();
            }
        }
    }

    /// Aborts the tasks of this thread's descendants (not its own), deepest first, and
    /// returns how many DOWN messages were queued for them. Their handles are pushed to
    /// `aborted`, so the caller can wait until the tasks are gone, and then empty the lists
    /// with [`forget_aborted`](Self::forget_aborted).
    pub(crate) fn abort_descendants(&self, aborted: &mut Vec<AbortHandle>) -> usize {
        let mut dropped = 0;
        for entry in self.children_now() {
            let child = entry.node();
            dropped += child.abort_descendants(aborted);
            dropped += child.queue_depth();
            // A thread that already reported its end itself (cancelled) is not aborted.
            if child.mark_exited() && recording() {
                record::event(&child.lazy_path(), EventKind::Failed, "aborted");
            }
            aborted.extend(child.abort_task());
        }
        dropped
    }

    /// Once the tasks of an aborted subtree are gone (nothing adds to its lists any more),
    /// empties its child lists, deepest first: no exit report takes an aborted thread out
    /// of its parent's, and a node still held (by a `ChildRef`, a watcher) must not keep
    /// the aborted subtree.
    pub(crate) fn forget_aborted(&self) {
        for entry in self.take_children() {
            entry.node().forget_aborted();
        }
    }

    /// The path of the thread of this subtree that runs as task `task`, if any.
    pub(crate) fn path_of_task(&self, task: tokio::task::Id) -> Option<Arc<str>> {
        if self.runs_as(task) {
            return Some(Arc::clone(self.path()));
        }
        // Walked under the locks, top down (nothing takes a parent's lock while holding a
        // child's), without copying any list: `Handle::join` asks this on every call.
        let children = self.children()?;
        children.values().find_map(|e| e.node().path_of_task(task))
    }
}

impl Node {
    /// The live node of this subtree with this path.
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn find(self: &Arc<Self>, path: &str) -> Option<Arc<Node>> {
        if **self.path() == *path {
            return Some(Arc::clone(self));
        }
        // Only descend into a child whose path is a prefix of the one sought.
        self.children_now().into_iter().find_map(|c| {
            let under = path.strip_prefix(&**c.node().path())?;
            let node: Arc<Node> = Arc::clone(&c).into_node();
            (under.is_empty() || under.starts_with('/'))
                .then(|| node.find(path))
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::ChildEntry;
    use crate::node::testing::{Counted, node, waiting};
    use crate::node::{ChildNode, Node};
    use crate::queue::DownQueue;

    /// A child of `parent` in stop stage 0 at `place`, waiting for a stop request.
    fn waiting_child(
        parent: &Node<DownQueue<u8>>,
        place: u32,
    ) -> (Arc<Node<DownQueue<u8>>>, Arc<Counted>) {
        let child = node(Some(Duration::from_secs(60)));
        let counted = waiting(&child);
        parent.add_child(ChildEntry {
            child: Arc::clone(&child) as Arc<dyn ChildNode>,
            stage: 0,
            place,
            join: None,
        });
        (child, counted)
    }

    #[test]
    fn children_on_other_runtimes_are_woken_there_and_the_rest_at_once() {
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let parent = node(Some(Duration::from_secs(60)));
        let (here, woken_here) = waiting_child(&parent, 0);
        let (there, woken_there) = waiting_child(&parent, 1);
        parent.stop_stage(0, &[other.handle().clone()]);
        assert_eq!(woken_here.wakes(), 1, "woken at once");
        assert!(here.is_stop_requested() && here.is_stop_covered());
        assert!(
            there.is_stop_requested() && there.is_stop_covered(),
            "asked at once"
        );
        assert_eq!(woken_there.wakes(), 0, "not woken from here");
        // The other runtime runs the task that wakes its children.
        other.block_on(tokio::task::yield_now());
        assert_eq!(woken_there.wakes(), 1, "woken there");
    }
}
