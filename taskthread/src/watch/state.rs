//! [`WatchedTree`]: the tree as a watch stream shows it, kept up to date by applying the
//! stream's messages; and the wait chains read from it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use super::sample::RECENT_EVENTS;
use super::view::{ThreadView, WatchEvent, WatchMessage};

/// The tree as a watch stream shows it: apply each message of the stream in turn.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread::watch::{WatchedTree, Watcher};
///
/// #[derive(Default)]
/// struct App;
/// #[taskthread]
/// impl App {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = taskthread::spawn(App);
/// let mut stream = Watcher::new(&app).subscribe();
/// let mut tree = WatchedTree::default();
/// tree.apply(stream.next().await).unwrap();
/// assert_eq!(tree.find("app").unwrap().type_name, "App");
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct WatchedTree {
    seq: u64,
    at_ms: u64,
    /// By id, which is spawn order.
    threads: BTreeMap<u64, ThreadView>,
    by_path: HashMap<String, u64>,
    events: VecDeque<WatchEvent>,
    missed_events: u64,
}

/// Changes that do not follow the message applied before: the stream lost messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceGap {
    /// The sequence number expected.
    pub expected: u64,
    /// The one received.
    pub received: u64,
}

impl fmt::Display for SequenceGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watch changes #{} do not follow #{}: messages were lost",
            self.received,
            self.expected - 1
        )
    }
}

impl std::error::Error for SequenceGap {}

impl WatchedTree {
    /// Applies the next message of the stream: a snapshot replaces everything, changes
    /// must follow the message applied last (else nothing is changed and the gap is
    /// returned; a stream sends a snapshot after a gap of its own, so this means messages
    /// were lost on the way).
    pub fn apply(&mut self, message: WatchMessage) -> Result<(), SequenceGap> {
        match message {
            WatchMessage::Snapshot(s) => {
                self.seq = s.seq;
                self.at_ms = s.at_ms;
                self.threads = s.threads.into_iter().map(|t| (t.id, t)).collect();
                self.events = s.events.into();
            }
            WatchMessage::Changes(c) => {
                if c.seq != self.seq + 1 {
                    return Err(SequenceGap {
                        expected: self.seq + 1,
                        received: c.seq,
                    });
                }
                self.seq = c.seq;
                self.at_ms = c.at_ms;
                for id in c.removed {
                    self.threads.remove(&id);
                }
                for t in c.threads {
                    self.threads.insert(t.id, t);
                }
                for e in c.events {
                    if self.events.len() == RECENT_EVENTS {
                        self.events.pop_front();
                    }
                    self.events.push_back(e);
                }
                self.missed_events += c.missed_events;
            }
        }
        self.by_path = self
            .threads
            .values()
            .map(|t| (t.path.clone(), t.id))
            .collect();
        Ok(())
    }

    /// The sequence number of the message applied last.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the last sampling was taken, in milliseconds since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }

    /// How many threads it holds.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether it holds none (nothing applied yet).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// The thread with this id.
    pub fn get(&self, id: u64) -> Option<&ThreadView> {
        self.threads.get(&id)
    }

    /// The thread at this path.
    pub fn find(&self, path: &str) -> Option<&ThreadView> {
        self.get(*self.by_path.get(path)?)
    }

    /// Every thread, each after its parent, children in spawn order, with its depth below
    /// the root of the watched subtree.
    pub fn in_tree_order(&self) -> Vec<(usize, &ThreadView)> {
        let mut children: HashMap<u64, Vec<&ThreadView>> = HashMap::new();
        let mut roots = Vec::new();
        for t in self.threads.values() {
            match t.parent.filter(|p| self.threads.contains_key(p)) {
                Some(p) => children.entry(p).or_default().push(t),
                None => roots.push(t),
            }
        }
        let mut out = Vec::with_capacity(self.threads.len());
        let mut stack: Vec<(usize, &ThreadView)> =
            roots.into_iter().rev().map(|t| (0, t)).collect();
        while let Some((depth, t)) = stack.pop() {
            out.push((depth, t));
            if let Some(kids) = children.get(&t.id) {
                stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
            }
        }
        out
    }

    /// The recent events, oldest first.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &WatchEvent> + '_ {
        self.events.iter()
    }

    /// Events the stream reported as lost (more than the process's ring held between two
    /// samplings).
    pub fn missed_events(&self) -> u64 {
        self.missed_events
    }

    /// The chain of waits from the thread at `path`: it, what it waits on, what that waits
    /// on, and so on, following the first wait with a target at each step.
    pub fn wait_chain(&self, path: &str) -> WaitChain {
        let mut chain = WaitChain {
            paths: vec![path.to_owned()],
            cycle: false,
        };
        let mut seen = HashSet::from([path.to_owned()]);
        let mut at = path.to_owned();
        while let Some(next) = self
            .find(&at)
            .and_then(|t| t.waits.iter().find_map(|w| w.target.clone()))
        {
            chain.paths.push(next.clone());
            if !seen.insert(next.clone()) {
                chain.cycle = true;
                break;
            }
            at = next;
        }
        chain
    }

    /// The wait cycles: each as the chain from one of its threads back to it.
    pub fn wait_cycles(&self) -> Vec<WaitChain> {
        let mut found: Vec<WaitChain> = Vec::new();
        for t in self.threads.values() {
            let chain = self.wait_chain(&t.path);
            if chain.cycle && chain.paths.last() == Some(&t.path) {
                let members: HashSet<&String> = chain.paths.iter().collect();
                let known = found
                    .iter()
                    .any(|c| c.paths.iter().any(|p| members.contains(p)));
                if !known {
                    found.push(chain);
                }
            }
        }
        found
    }
}

/// A chain of waits: each thread waits on the next (see [`WatchedTree::wait_chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitChain {
    /// The paths, from the thread asked about.
    pub paths: Vec<String>,
    /// Whether the chain comes back to a thread already in it (the last path): a wait
    /// cycle, which nothing inside it can break.
    pub cycle: bool,
}

impl fmt::Display for WaitChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.paths.join(" -> "))?;
        if self.cycle {
            f.write_str(" (cycle)")?;
        }
        Ok(())
    }
}
