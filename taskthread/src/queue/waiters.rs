//! [`Waiters`]: tasks waiting for their turn, first come first served. The one waiting
//! primitive of both queues: senders waiting for room in a DOWN queue, and senders waiting
//! for a place in an inbound queue.
//!
//! A waiter may say who it is (an *owner*, a number the list does not interpret; the
//! thread's id), once it knows that it blocks: the list then answers who waits in it, for
//! the detection of waits that would never end and for snapshots.

use std::collections::VecDeque;
use std::task::Waker;

/// An empty list with room for more waiters than this is given back, so a burst of
/// waiting senders leaves no large buffer behind.
const KEEP_BUFFER: usize = 1024;

/// Waiting tasks in arrival order, each with the ticket it was given, its waker and its
/// owner (0 until it says who it is).
///
/// Tickets are given in increasing order, so the list is sorted by ticket: a waiter looks
/// itself up with a look at the front (where the one asked for usually is) and a binary
/// search otherwise. A waiter that is no longer in the list has been woken (or the list was
/// emptied by a close).
struct Waiter {
    ticket: u64,
    waker: Waker,
    owner: u64,
}

#[derive(Default)]
pub(crate) struct Waiters {
    queue: VecDeque<Waiter>,
    next_ticket: u64,
}

impl Waiters {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            next_ticket: 0,
        }
    }

    /// Queues a waiter at the back, with its owner if it knows it (0 otherwise); its
    /// ticket.
    pub(crate) fn push(&mut self, waker: &Waker, owner: u64) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push_back(Waiter {
            ticket,
            waker: waker.clone(),
            owner,
        });
        ticket
    }

    fn position(&self, ticket: u64) -> Option<usize> {
        match self.queue.front() {
            Some(first) if first.ticket == ticket => Some(0),
            Some(first) if first.ticket < ticket => {
                self.queue.binary_search_by_key(&ticket, |w| w.ticket).ok()
            }
            _ => None,
        }
    }

    /// For a waiter polled again: whether it still waits (has not been woken); if so, its
    /// stored waker is brought up to date.
    pub(crate) fn refresh(&mut self, ticket: u64, waker: &Waker) -> bool {
        let Some(at) = self.position(ticket) else {
            return false;
        };
        let stored = &mut self.queue[at].waker;
        if !stored.will_wake(waker) {
            stored.clone_from(waker);
        }
        true
    }

    /// Takes a waiter that gives up out of the list; `false` if it was woken already.
    pub(crate) fn remove(&mut self, ticket: u64) -> bool {
        match self.position(ticket) {
            Some(at) => {
                self.queue.remove(at);
                true
            }
            None => false,
        }
    }

    /// Takes the waiter that has waited longest out of the list, to be woken (once the
    /// caller's lock is released).
    pub(crate) fn pop_front(&mut self) -> Option<Waker> {
        let waker = self.queue.pop_front()?.waker;
        if self.queue.is_empty() && self.queue.capacity() > KEEP_BUFFER {
            self.queue = VecDeque::new();
        }
        Some(waker)
    }

    /// Takes the waiter that has waited longest out of the list, as
    /// [`pop_front`](Self::pop_front) does, with its ticket and owner.
    pub(crate) fn pop_front_ticket(&mut self) -> Option<(u64, u64, Waker)> {
        let (ticket, owner) = self.queue.front().map(|w| (w.ticket, w.owner))?;
        self.pop_front().map(|waker| (ticket, owner, waker))
    }

    /// Takes every waiter out of the list (a close), to be woken.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = Waker> + use<> {
        std::mem::take(&mut self.queue).into_iter().map(|w| w.waker)
    }

    /// A waiter that blocks says who it is; `false` if it no longer waits (it was woken).
    pub(crate) fn own(&mut self, ticket: u64, owner: u64) -> bool {
        let Some(at) = self.position(ticket) else {
            return false;
        };
        self.queue[at].owner = owner;
        true
    }

    /// Whether `owner` waits in the list (and has not been woken).
    pub(crate) fn has_owner(&self, owner: u64) -> bool {
        self.queue.iter().any(|w| w.owner == owner)
    }

    /// The owners of the waiters that said who they are, in arrival order.
    pub(crate) fn owners(&self) -> impl Iterator<Item = u64> + '_ {
        self.queue.iter().map(|w| w.owner).filter(|&o| o != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_come_first_served_and_givers_up_leave() {
        let waker = Waker::noop();
        let mut waiters = Waiters::new();
        let a = waiters.push(waker, 0);
        let b = waiters.push(waker, 0);
        let c = waiters.push(waker, 0);
        assert!(waiters.remove(b), "b still waited");
        assert!(!waiters.remove(b), "b is gone");
        assert!(waiters.pop_front().is_some(), "a is woken first");
        assert!(!waiters.refresh(a, waker), "a was woken");
        assert!(waiters.refresh(c, waker), "c still waits");
        assert!(waiters.own(c, 7), "c says who it is");
        assert!(!waiters.own(a, 8), "a no longer waits");
        assert!(waiters.has_owner(7) && !waiters.has_owner(8));
        assert_eq!(waiters.owners().collect::<Vec<_>>(), [7]);
        assert_eq!(waiters.len(), 1);
        assert_eq!(waiters.take_all().count(), 1);
        assert!(waiters.is_empty());
    }
}
