//! [`Roster`]: a parent's children in spawn order.
//!
//! Ids come from one counter, so a parent's children are spawned in id order and a new one
//! always goes at the end. A child that goes leaves a hole: no other entry moves, so no
//! other child's memory is touched. Holes at either end are dropped at once; the others
//! when they outnumber the live entries (amortized O(1) per removal). A lookup first looks
//! where the child would be if the ids from the front on were consecutive, as they are for
//! children spawned in a burst (and at the front, where a stop in spawn order finds every
//! child), and otherwise makes a binary search.
//!
//! Walking the children in spawn order is walking their memory in allocation order: a stop
//! of many children costs far less when it wakes them, and handles their exits, in that
//! order than in a hash map's.

use std::collections::VecDeque;

use crate::exit::ChildId;

/// Holes beyond this many, and beyond the number of live entries, are swept out.
const SWEEP_AFTER: usize = 32;
/// A buffer with room for more slots than this is shrunk to twice what it holds once it
/// holds less than a quarter of its room.
const SHRINK_ABOVE: usize = 1024;

pub(crate) struct Roster<V> {
    slots: VecDeque<(ChildId, Option<V>)>,
    live: usize,
}

impl<V> Default for Roster<V> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<V> Roster<V> {
    /// Adds a child. Its id is normally the highest yet; one that is not is put in its place.
    #[inline]
    pub(crate) fn push(&mut self, id: ChildId, value: V) {
        match self.slots.back() {
            Some(&(last, _)) if last >= id => {
                let at = self.slots.partition_point(|&(i, _)| i < id);
                if self.slots.get(at).is_some_and(|&(i, _)| i == id) {
                    if self.slots[at].1.replace(value).is_none() {
                        self.live += 1;
                    }
                    return;
                }
                self.slots.insert(at, (id, Some(value)));
            }
            _ => self.slots.push_back((id, Some(value))),
        }
        self.live += 1;
    }

    /// Where the child's slot is: first where its id would be if the ids from the front
    /// on were consecutive (children spawned in a burst, nothing swept since), which finds
    /// it with one look; else by a binary search.
    fn position(&self, id: ChildId) -> Option<usize> {
        let &(first, _) = self.slots.front()?;
        let guess = id.as_u64().checked_sub(first.as_u64())?;
        if let Ok(guess) = usize::try_from(guess)
            && self.slots.get(guess).is_some_and(|&(i, _)| i == id)
        {
            return Some(guess);
        }
        self.slots.binary_search_by_key(&id, |&(i, _)| i).ok()
    }

    pub(crate) fn get(&self, id: ChildId) -> Option<&V> {
        self.slots[self.position(id)?].1.as_ref()
    }

    /// Takes the child out; `None` if it is not (or no longer) there.
    #[inline]
    pub(crate) fn remove(&mut self, id: ChildId) -> Option<V> {
        // The first child, as in a stop in spawn order, goes with its slot: no hole is left
        // to be found and dropped (the ends are never holes).
        let value = match self.position(id)? {
            0 => self.slots.pop_front()?.1?,
            at => self.slots[at].1.take()?,
        };
        self.live -= 1;
        while self.slots.front().is_some_and(|(_, v)| v.is_none()) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|(_, v)| v.is_none()) {
            self.slots.pop_back();
        }
        let holes = self.slots.len() - self.live;
        if holes > SWEEP_AFTER && holes > self.live {
            self.slots.retain(|(_, v)| v.is_some());
        }
        // A burst of children leaves no large buffer behind once most of them are gone.
        if self.slots.capacity() > SHRINK_ABOVE && self.slots.capacity() > 4 * self.slots.len() {
            self.slots.shrink_to(2 * self.slots.len());
        }
        Some(value)
    }

    /// How many children there are.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The children with their ids, in spawn order.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (ChildId, &V)> + '_ {
        self.slots
            .iter()
            .filter_map(|(id, v)| v.as_ref().map(|v| (*id, v)))
    }

    /// The children, in spawn order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }

    /// Takes every child out, in spawn order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = V> + use<V> {
        self.live = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u64) -> ChildId {
        ChildId::from_u64(n)
    }

    #[test]
    fn keeps_spawn_order_through_removals() {
        let mut roster = Roster::default();
        for n in 1..=100 {
            roster.push(id(n), n);
        }
        for n in (1..=100).step_by(3) {
            assert_eq!(roster.remove(id(n)), Some(n));
        }
        assert_eq!(roster.remove(id(1)), None, "already gone");
        assert_eq!(roster.remove(id(1000)), None, "never there");
        let left: Vec<u64> = roster.values().copied().collect();
        let expected: Vec<u64> = (1..=100).filter(|n| (n - 1) % 3 != 0).collect();
        assert_eq!(left, expected);
        assert_eq!(roster.len(), expected.len());
        assert_eq!(roster.get(id(2)), Some(&2));
        assert_eq!(roster.get(id(4)), None);
    }

    #[test]
    fn an_out_of_order_id_goes_in_its_place() {
        let mut roster = Roster::default();
        roster.push(id(5), 5);
        roster.push(id(9), 9);
        roster.push(id(7), 7);
        roster.push(id(7), 70);
        assert_eq!(roster.len(), 3);
        assert_eq!(roster.values().copied().collect::<Vec<_>>(), [5, 70, 9]);
    }

    #[test]
    fn a_burst_leaves_no_large_buffer_behind() {
        let mut roster = Roster::default();
        for n in 1..=100_000 {
            roster.push(id(n), n);
        }
        for n in 1..=99_990 {
            roster.remove(id(n));
        }
        assert_eq!(roster.len(), 10);
        assert!(
            roster.slots.capacity() <= SHRINK_ABOVE,
            "{}",
            roster.slots.capacity()
        );
        assert_eq!(
            roster.values().copied().collect::<Vec<_>>(),
            (99_991..=100_000).collect::<Vec<_>>()
        );
    }

    #[test]
    fn drain_empties_it() {
        let mut roster = Roster::default();
        for n in 1..=10 {
            roster.push(id(n), n);
        }
        roster.remove(id(4));
        assert_eq!(
            roster.drain().collect::<Vec<_>>(),
            [1, 2, 3, 5, 6, 7, 8, 9, 10]
        );
        assert!(roster.is_empty());
        assert_eq!(roster.iter().count(), 0);
    }

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        /// Push the next id (what spawning does).
        Spawn,
        /// Push this id, whatever the ids so far (out of order, or one already there).
        PushAt(u64),
        Remove(u64),
        Get(u64),
        Drain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => Just(Op::Spawn),
            1 => (0u64..80).prop_map(Op::PushAt),
            6 => (0u64..80).prop_map(Op::Remove),
            2 => (0u64..80).prop_map(Op::Get),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        /// Any sequence of pushes (in order or not), removals, lookups and drains leaves
        /// exactly what a sorted map would, with a bounded number of holes.
        #[test]
        fn behaves_like_a_sorted_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut roster = Roster::default();
            let mut model = std::collections::BTreeMap::new();
            let mut next = 1;
            for op in ops {
                match op {
                    Op::Spawn => {
                        next = next.max(model.keys().next_back().map_or(0, |k| k + 1));
                        roster.push(id(next), next);
                        model.insert(next, next);
                        next += 1;
                    }
                    Op::PushAt(key) => {
                        roster.push(id(key), key + 1000);
                        model.insert(key, key + 1000);
                    }
                    Op::Remove(key) => {
                        prop_assert_eq!(roster.remove(id(key)), model.remove(&key));
                    }
                    Op::Get(key) => prop_assert_eq!(roster.get(id(key)), model.get(&key)),
                    Op::Drain => {
                        let drained: Vec<u64> = roster.drain().collect();
                        let want: Vec<u64> = std::mem::take(&mut model).into_values().collect();
                        prop_assert_eq!(drained, want);
                    }
                }
                prop_assert_eq!(roster.len(), model.len());
                prop_assert_eq!(roster.is_empty(), model.is_empty());
                prop_assert!(roster.slots.len() <= 2 * model.len() + SWEEP_AFTER + 1);
            }
            let got: Vec<(u64, u64)> = roster.iter().map(|(i, v)| (i.get(), *v)).collect();
            let want: Vec<(u64, u64)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }
}
