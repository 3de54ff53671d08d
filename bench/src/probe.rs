//! Reading the process: anonymous resident memory, CPU time, and percentiles of samples.

use std::time::Duration;

/// Anonymous resident memory of this process in bytes: its heap, stacks and other private
/// memory, not the pages of its program and libraries (`/proc/self/statm`, resident pages
/// less file-backed and shared ones, × page size). Code run for the first time maps its
/// pages in, a few at a time, and would count as memory of what is measured.
pub(crate) fn resident_anon_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let mut fields = statm
        .split_whitespace()
        .skip(1)
        .map(|s| s.parse::<u64>().ok());
    let (Some(Some(resident)), Some(Some(shared))) = (fields.next(), fields.next()) else {
        panic!("no resident and shared fields in /proc/self/statm: {statm:?}");
    };
    resident.saturating_sub(shared) * page_size()
}

/// The page size, from the first `KernelPageSize` line of `/proc/self/smaps` (4 KiB if
/// absent).
fn page_size() -> u64 {
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|smaps| {
            smaps.lines().find_map(|line| {
                let kb = line.strip_prefix("KernelPageSize:")?;
                kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
        })
        .map_or(4096, |kb| kb * 1024)
}

/// CPU time used so far by the live threads of this process: the sum of the first field
/// (nanoseconds on a CPU) of every `/proc/self/task/*/schedstat`. Threads that have ended
/// are not counted, so take both readings while the runtime being measured is alive.
pub(crate) fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            let text = std::fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(ns)
}

/// The `p`-th percentile (0–100) of `samples`, which it sorts; nearest rank.
pub(crate) fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The median of `values`, which it sorts (the mean of the middle two for an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::resident_anon_bytes;

    #[test]
    fn anonymous_memory_grows_with_the_heap_pages_written() {
        let before = resident_anon_bytes();
        let block = std::hint::black_box(vec![1u8; 32 << 20]);
        let after = resident_anon_bytes();
        let grown = after.saturating_sub(before);
        assert!(
            grown >= 30 << 20,
            "grew by {grown} bytes ({before} then {after})"
        );
        drop(block);
    }
}
