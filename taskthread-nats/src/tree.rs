//! The subtree a host reports for a remote child, as it crosses the wire: the threads
//! below the hosted thread, taken from its snapshot on the host and made into snapshot
//! entries on the parent's side, where they show in place below the child.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use taskthread::{ThreadState, TreeSnapshot};

/// The most threads a report carries (the first ones, depth first): the report fits in one
/// frame.
pub(crate) const MAX_REPORTED: usize = 1_000;

/// One thread of a reported subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireThread {
    id: u64,
    name: String,
    path: String,
    type_name: String,
    down_types: Vec<String>,
    up_type: Option<String>,
    state: u8,
    queue_depth: u64,
    queue_capacity: u64,
    handled: u64,
    restarts: u32,
    children: Vec<WireThread>,
}

/// The threads below a hosted thread, from its snapshot, at most [`MAX_REPORTED`].
pub(crate) fn report(snapshot: &TreeSnapshot) -> Vec<WireThread> {
    let mut budget = MAX_REPORTED;
    wire_children(snapshot, &mut budget)
}

fn wire_children(snapshot: &TreeSnapshot, budget: &mut usize) -> Vec<WireThread> {
    let mut children = Vec::new();
    for child in &snapshot.children {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        children.push(WireThread {
            id: child.id.get(),
            name: child.name.clone(),
            path: child.path.clone(),
            type_name: child.type_name.to_owned(),
            down_types: child.down_types.iter().map(|&t| t.to_owned()).collect(),
            up_type: child.up_type.map(str::to_owned),
            state: state_code(child.state),
            queue_depth: child.queue_depth as u64,
            queue_capacity: child.queue_capacity as u64,
            handled: child.handled,
            restarts: child.restarts,
            children: wire_children(child, budget),
        });
    }
    children
}

/// The reported threads as snapshot entries below the remote child at `path` in the
/// parent's tree. On its host the child is a root: the paths there start with its name,
/// here with its path.
pub(crate) fn entries(threads: &[WireThread], path: &str) -> Vec<TreeSnapshot> {
    threads
        .iter()
        .map(|t| {
            let below = t.path.split_once('/').map_or("", |(_, rest)| rest);
            let mut entry = TreeSnapshot::reported(
                t.id,
                t.name.clone(),
                format!("{path}/{below}"),
                intern(&t.type_name),
                state_of(t.state),
            );
            entry.down_types = intern_list(&t.down_types);
            entry.up_type = t.up_type.as_deref().map(intern);
            entry.queue_depth = usize::try_from(t.queue_depth).unwrap_or(usize::MAX);
            entry.queue_capacity = usize::try_from(t.queue_capacity).unwrap_or(usize::MAX);
            entry.handled = t.handled;
            entry.restarts = t.restarts;
            entry.children = entries(&t.children, path);
            entry
        })
        .collect()
}

fn state_code(state: ThreadState) -> u8 {
    match state {
        ThreadState::Starting => 0,
        ThreadState::Running => 1,
        ThreadState::Stopping => 2,
        ThreadState::Restarting => 3,
        _ => 4,
    }
}

fn state_of(code: u8) -> ThreadState {
    match code {
        0 => ThreadState::Starting,
        1 => ThreadState::Running,
        2 => ThreadState::Stopping,
        3 => ThreadState::Restarting,
        _ => ThreadState::Exited,
    }
}

/// How many distinct names (and lists of names) are kept for snapshots; past it, a new one
/// shows as `?`. Type names are few; the limit keeps a host that reports garbage from
/// growing the parent's memory.
const MAX_NAMES: usize = 4_096;

/// A type name as a `&'static str`, as snapshots hold them: each distinct name is kept once
/// for the life of the process.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = names.get(name) {
        return known;
    }
    if names.len() >= MAX_NAMES {
        return "?";
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

/// A list of type names as a `&'static [&'static str]`, kept once as [`intern`] does.
fn intern_list(list: &[String]) -> &'static [&'static str] {
    if list.is_empty() {
        return &[];
    }
    static LISTS: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    let mut lists = LISTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = lists.get(list) {
        return known;
    }
    if lists.len() >= MAX_NAMES {
        return &[];
    }
    let kept: &'static [&'static str] = Box::leak(
        list.iter()
            .map(|t| intern(t))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    lists.insert(list.to_vec(), kept);
    kept
}
