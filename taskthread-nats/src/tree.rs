//! The subtree a host reports for a remote child, as it crosses the wire: the threads
//! below the hosted thread, taken from its snapshot on the host and made into snapshot
//! entries on the parent's side, where they show in place below the child.
//!
//! On the wire a report is flat: its threads depth first, each with its depth, so reading
//! a frame never recurses, however deep the tree it describes. The parent checks a report
//! as it rebuilds the tree from it (no more than [`MAX_REPORTED`] threads, none deeper than
//! [`MAX_REPORTED_DEPTH`], each at most one level below the one before it) and refuses one
//! that breaks a rule whole.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use taskthread::{ThreadState, TreeSnapshot};

/// The most threads a report carries (the first ones, depth first): the report fits in one
/// frame.
pub(crate) const MAX_REPORTED: usize = 1_000;

/// How many levels below the hosted thread a report goes; deeper threads are left out. It
/// keeps the parent's walks of its snapshots (rendering, the live view) short whatever a
/// host reports.
pub(crate) const MAX_REPORTED_DEPTH: usize = 32;

/// One thread of a reported subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireThread {
    /// 0 for a child of the hosted thread, one more for each level below.
    depth: u32,
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
}

/// The threads below a hosted thread, from its snapshot, depth first: at most
/// [`MAX_REPORTED`] of them, at most [`MAX_REPORTED_DEPTH`] levels down.
pub(crate) fn report(snapshot: &TreeSnapshot) -> Vec<WireThread> {
    let mut threads = Vec::new();
    // The children still to report at each level, the deepest last.
    let mut levels = vec![snapshot.children.iter()];
    while threads.len() < MAX_REPORTED {
        let depth = levels.len() - 1;
        let Some(child) = levels.last_mut().and_then(Iterator::next) else {
            levels.pop();
            if levels.is_empty() {
                break;
            }
            continue;
        };
        threads.push(wire(child, depth));
        if levels.len() < MAX_REPORTED_DEPTH {
            levels.push(child.children.iter());
        }
    }
    threads
}

fn wire(thread: &TreeSnapshot, depth: usize) -> WireThread {
    WireThread {
        depth: u32::try_from(depth).unwrap_or(u32::MAX),
        id: thread.id.get(),
        name: thread.name.clone(),
        path: thread.path.clone(),
        type_name: thread.type_name.to_owned(),
        down_types: thread.down_types.iter().map(|&t| t.to_owned()).collect(),
        up_type: thread.up_type.map(str::to_owned),
        state: state_code(thread.state),
        queue_depth: thread.queue_depth as u64,
        queue_capacity: thread.queue_capacity as u64,
        handled: thread.handled,
        restarts: thread.restarts,
    }
}

/// The reported threads as snapshot entries below the remote child at `path` in the
/// parent's tree, or why the report is refused. On its host the child is a root: the paths
/// there start with its name, here with its path.
pub(crate) fn entries(threads: &[WireThread], path: &str) -> Result<Vec<TreeSnapshot>, String> {
    check(threads)?;
    let mut roots = Vec::new();
    // The last thread seen at each level, still taking children.
    let mut open: Vec<TreeSnapshot> = Vec::new();
    for thread in threads {
        close(&mut open, &mut roots, thread.depth as usize);
        open.push(entry(thread, path));
    }
    close(&mut open, &mut roots, 0);
    Ok(roots)
}

/// Checks the rules of a report: few enough threads, none too deep, the first at depth 0
/// and each at most one level below the one before it (so that each has a parent).
fn check(threads: &[WireThread]) -> Result<(), String> {
    if threads.len() > MAX_REPORTED {
        return Err(format!(
            "{} threads, more than the {MAX_REPORTED} a report may carry",
            threads.len()
        ));
    }
    let mut most = 0;
    for (at, thread) in threads.iter().enumerate() {
        let depth = thread.depth as usize;
        if depth > most {
            return Err(format!(
                "thread {at} is {depth} levels down, where at most {most} can be"
            ));
        }
        if depth >= MAX_REPORTED_DEPTH {
            return Err(format!(
                "thread {at} is {depth} levels down, deeper than the {MAX_REPORTED_DEPTH} reported"
            ));
        }
        most = depth + 1;
    }
    Ok(())
}

/// Ends the open threads from level `depth` down: each becomes a child of the one open a
/// level above it, or a root.
fn close(open: &mut Vec<TreeSnapshot>, roots: &mut Vec<TreeSnapshot>, depth: usize) {
    while open.len() > depth {
        let Some(done) = open.pop() else {
            break;
        };
        match open.last_mut() {
            Some(parent) => parent.children.push(done),
            None => roots.push(done),
        }
    }
}

/// One reported thread as a snapshot entry, without its children.
fn entry(thread: &WireThread, path: &str) -> TreeSnapshot {
    let below = thread.path.split_once('/').map_or("", |(_, rest)| rest);
    let mut entry = TreeSnapshot::reported(
        thread.id,
        thread.name.clone(),
        format!("{path}/{below}"),
        intern(&thread.type_name),
        state_of(thread.state),
    );
    entry.down_types = intern_list(&thread.down_types);
    entry.up_type = thread.up_type.as_deref().map(intern);
    entry.queue_depth = usize::try_from(thread.queue_depth).unwrap_or(usize::MAX);
    entry.queue_capacity = usize::try_from(thread.queue_capacity).unwrap_or(usize::MAX);
    entry.handled = thread.handled;
    entry.restarts = thread.restarts;
    entry
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
/// shows as [`UNKNOWN`]. Type names are few; this and the limits below keep a host that
/// reports garbage from growing the parent's memory: what is kept for the life of the
/// process is at most 1 MiB of names and 8 MiB of lists.
const MAX_NAMES: usize = 4_096;

/// The longest type name kept, in bytes. A longer one shows as [`UNKNOWN`]: refused whole
/// rather than cut, so that no two names show alike.
const MAX_NAME_LEN: usize = 256;

/// The most names a list kept holds (a thread's DOWN types); a longer list shows as
/// [`UNKNOWN`] alone.
const MAX_LISTED: usize = 128;

/// What shows in place of a name or a list past the limits.
const UNKNOWN: &str = "?";

/// A type name as a `&'static str`, as snapshots hold them: each distinct name is kept once
/// for the life of the process.
fn intern(name: &str) -> &'static str {
    if name.len() > MAX_NAME_LEN {
        return UNKNOWN;
    }
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = names.get(name) {
        return known;
    }
    if names.len() >= MAX_NAMES {
        return UNKNOWN;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

/// A list of type names as a `&'static [&'static str]`, its names kept by [`intern`] and
/// each distinct list once.
fn intern_list(list: &[String]) -> &'static [&'static str] {
    if list.is_empty() {
        return &[];
    }
    if list.len() > MAX_LISTED {
        return &[UNKNOWN];
    }
    let names: Vec<&'static str> = list.iter().map(|t| intern(t)).collect();
    static LISTS: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    let mut lists = LISTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = lists.get(names.as_slice()) {
        return known;
    }
    if lists.len() >= MAX_NAMES {
        return &[UNKNOWN];
    }
    let kept: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    lists.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread named `name` on the host, below the hosted thread `hosted`.
    fn thread(name: &str, children: Vec<TreeSnapshot>) -> TreeSnapshot {
        let mut thread = TreeSnapshot::reported(
            1,
            name.to_owned(),
            format!("hosted/{name}"),
            "Hand",
            ThreadState::Running,
        );
        thread.children = children;
        thread
    }

    /// The shape of a subtree: each thread's name and its children's shapes.
    fn shape(threads: &[TreeSnapshot]) -> String {
        threads
            .iter()
            .map(|t| format!("{}({})", t.name, shape(&t.children)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A chain of `n` threads, each the only child of the one before.
    fn chain(n: usize) -> TreeSnapshot {
        let mut below = Vec::new();
        for at in (0..n).rev() {
            below = vec![thread(&format!("t{at}"), below)];
        }
        thread("hosted", below)
    }

    #[test]
    fn a_report_is_flat_and_rebuilds_into_the_same_tree() {
        let hosted = thread(
            "hosted",
            vec![
                thread("a", vec![thread("a1", vec![thread("a11", vec![])])]),
                thread("b", vec![]),
                thread("c", vec![thread("c1", vec![]), thread("c2", vec![])]),
            ],
        );
        let report = report(&hosted);
        let depths: Vec<u32> = report.iter().map(|t| t.depth).collect();
        assert_eq!(depths, [0, 1, 2, 0, 0, 1, 1]);
        let rebuilt = entries(&report, "app/remote").unwrap();
        assert_eq!(shape(&rebuilt), shape(&hosted.children));
        assert_eq!(rebuilt[0].children[0].path, "app/remote/a1");
    }

    #[test]
    fn a_report_stops_at_its_budget_and_its_depth() {
        let wide = thread(
            "hosted",
            (0..MAX_REPORTED + 10)
                .map(|n| thread(&format!("t{n}"), vec![]))
                .collect(),
        );
        assert_eq!(report(&wide).len(), MAX_REPORTED);
        let deep = report(&chain(MAX_REPORTED_DEPTH + 10));
        assert_eq!(deep.len(), MAX_REPORTED_DEPTH);
        let rebuilt = entries(&deep, "app/remote").unwrap();
        assert_eq!(rebuilt.len(), 1);
    }

    /// A report as a host that keeps no rules could send it: threads at the given depths.
    fn forged(depths: impl IntoIterator<Item = u32>) -> Vec<WireThread> {
        let model = wire(&thread("x", vec![]), 0);
        depths
            .into_iter()
            .map(|depth| WireThread {
                depth,
                ..model.clone()
            })
            .collect()
    }

    #[test]
    fn a_report_that_breaks_the_rules_is_refused_whole() {
        // The first thread has no parent.
        assert!(entries(&forged([1]), "p").is_err());
        // A thread two levels below the one before it.
        assert!(entries(&forged([0, 1, 3]), "p").is_err());
        // Deeper than reported, each level one below the last.
        let too_deep = (0..=MAX_REPORTED_DEPTH as u32).collect::<Vec<_>>();
        assert!(entries(&forged(too_deep), "p").is_err());
        // A chain as long as a large frame holds.
        assert!(entries(&forged(0..100_000), "p").is_err());
        // More threads than a report carries.
        assert!(entries(&forged(vec![0; MAX_REPORTED + 1]), "p").is_err());
        // Within the rules.
        let fine = entries(&forged([0, 1, 2, 1, 0, 1]), "p").unwrap();
        assert_eq!(shape(&fine), "x(x(x()) x()) x(x())");
    }

    #[test]
    fn names_too_long_and_lists_too_long_show_as_unknown() {
        let long = "T".repeat(MAX_NAME_LEN + 1);
        let longest = "U".repeat(MAX_NAME_LEN);
        let mut report = forged([0, 0]);
        report[0].type_name = long.clone();
        report[0].up_type = Some(longest.clone());
        report[0].down_types = vec!["A".to_owned(); MAX_LISTED + 1];
        report[1].down_types = vec![long, "B".to_owned()];
        let threads = entries(&report, "p").unwrap();
        assert_eq!(threads[0].type_name, UNKNOWN);
        assert_eq!(threads[0].up_type, Some(longest.as_str()));
        assert_eq!(threads[0].down_types, [UNKNOWN]);
        assert_eq!(threads[1].down_types, [UNKNOWN, "B"]);
        // A list within the limits is kept once.
        let again = entries(&report[1..], "p").unwrap();
        assert!(std::ptr::eq(again[0].down_types, threads[1].down_types));
    }

    #[test]
    fn a_report_crosses_the_wire_flat() {
        let written = report(&chain(MAX_REPORTED_DEPTH));
        let bytes = postcard::to_allocvec(&written).unwrap();
        let read: Vec<WireThread> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, written);
    }
}
