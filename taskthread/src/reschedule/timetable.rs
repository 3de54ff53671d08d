//! The timetable of one thread's `#[rescheduling]` tasks: when each is due, the timer of
//! the earliest, and where the thread's task keeps it ([`TimetableRoom`]).

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{MissedTicks, Reschedule, TaskSpec};

/// "Not scheduled", as a time of the timetable.
const NEVER: u64 = u64::MAX;

/// How close to the last clock reading (in nanoseconds) a run must be due for the loop to
/// read the clock rather than wait for the timer, whose wheel turns in steps of a
/// millisecond: a `Now`, a period-less `Again` or a short `After` would otherwise wait for
/// the next step.
const TIMER_STEP: u64 = 1_000_000;

/// A duration in nanoseconds, saturating (after 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER - 1)
}

#[derive(Debug)]
struct Slot {
    spec: &'static TaskSpec,
    /// When the next run is due, or [`NEVER`].
    next: u64,
    runs: u64,
    /// Set when ctx changed this task's schedule during its own run: ctx wins over the return.
    touched: bool,
}

/// A thread's slots: most threads with tasks have one, kept in the table itself.
#[derive(Debug)]
enum Slots {
    One(Slot),
    Many(Box<[Slot]>),
}

impl std::ops::Deref for Slots {
    type Target = [Slot];

    #[inline]
    fn deref(&self) -> &[Slot] {
        match self {
            Slots::One(slot) => std::slice::from_ref(slot),
            Slots::Many(slots) => slots,
        }
    }
}

impl std::ops::DerefMut for Slots {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Slot] {
        match self {
            Slots::One(slot) => std::slice::from_mut(slot),
            Slots::Many(slots) => slots,
        }
    }
}

/// Where a thread's task keeps the timetable of its `#[rescheduling]` tasks, chosen by
/// `#[taskthread]` for the thread's type: in the task itself for a thread that has tasks
/// ([`InTask`]), nowhere for one that has none ([`NoTasks`]). A run then reads its
/// schedule from the cache lines of the task it runs in, and a thread without tasks carries
/// no room for one.
#[doc(hidden)]
pub trait TimetableRoom: 'static {
    /// The room: `Option<X>` in the task, or `()`.
    #[doc(hidden)]
    type Room<X: Send + Sync + Unpin + 'static>: Room<X>;
}

/// Room for one value, or none.
#[doc(hidden)]
pub trait Room<X>: Send + Sync + Unpin + 'static {
    /// Nothing in it.
    #[doc(hidden)]
    const EMPTY: Self;
    #[doc(hidden)]
    fn get(&self) -> Option<&X>;
    #[doc(hidden)]
    fn get_mut(&mut self) -> Option<&mut X>;
    /// Keeps `value`; only a room that holds one is given `Some`.
    #[doc(hidden)]
    fn put(&mut self, value: Option<X>);
}

/// The timetable of a thread with `#[rescheduling]` tasks lives in its task.
#[doc(hidden)]
#[derive(Debug)]
pub struct InTask;

/// A thread without `#[rescheduling]` tasks keeps no timetable.
#[doc(hidden)]
#[derive(Debug)]
pub struct NoTasks;

impl TimetableRoom for InTask {
    type Room<X: Send + Sync + Unpin + 'static> = Option<X>;
}

impl TimetableRoom for NoTasks {
    type Room<X: Send + Sync + Unpin + 'static> = ();
}

impl<X: Send + Sync + Unpin + 'static> Room<X> for Option<X> {
    const EMPTY: Self = None;

    #[inline]
    fn get(&self) -> Option<&X> {
        self.as_ref()
    }

    #[inline]
    fn get_mut(&mut self) -> Option<&mut X> {
        self.as_mut()
    }

    #[inline]
    fn put(&mut self, value: Option<X>) {
        *self = value;
    }
}

impl<X> Room<X> for () {
    const EMPTY: Self = ();

    #[inline]
    fn get(&self) -> Option<&X> {
        None
    }

    #[inline]
    fn get_mut(&mut self) -> Option<&mut X> {
        None
    }

    fn put(&mut self, value: Option<X>) {
        assert!(
            value.is_none(),
            "a thread type declared without tasks was given a timetable"
        );
    }
}

/// The timetable of one thread's tasks, kept where its type's [`TimetableRoom`] says: in
/// its `Ctx` (and so in its task) for a thread with tasks, absent for one without.
/// The thread's own task makes it as each life starts, not the spawner: a spawn does less.
pub(crate) struct Timetable<R: TimetableRoom>(R::Room<Table>);

impl<R: TimetableRoom> fmt::Debug for Timetable<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Timetable").field(&self.0.get()).finish()
    }
}

impl<R: TimetableRoom> Timetable<R> {
    /// A timetable with nothing in it: a thread's until its life starts.
    pub(crate) const fn unmade() -> Self {
        Self(<R::Room<Table> as Room<Table>>::EMPTY)
    }

    /// Makes the table afresh for a life of a thread with these tasks (none: it stays
    /// empty).
    pub(crate) fn make(&mut self, specs: &'static [TaskSpec]) {
        self.0.put((!specs.is_empty()).then(|| Table::new(specs)));
    }

    /// The table of a thread with tasks: only they have task indices to pass.
    fn table(&mut self) -> &mut Table {
        self.0
            .get_mut()
            .expect("only a thread with tasks has task indices")
    }

    /// The table, if the thread has tasks.
    #[inline]
    fn table_if_any(&mut self) -> Option<&mut Table> {
        self.0.get_mut()
    }

    /// The table, if the thread has tasks, to look at.
    #[inline]
    fn table_ref(&self) -> Option<&Table> {
        self.0.get()
    }

    pub(crate) fn start_automatic(&mut self, now: Instant) {
        if let Some(table) = self.table_if_any() {
            table.schedule().start_automatic(now);
        }
    }

    pub(crate) fn start(&mut self, index: usize, now: Instant) {
        self.table().schedule().start(index, now);
    }

    pub(crate) fn schedule(&mut self, index: usize, at: Instant) {
        let mut schedule = self.table().schedule();
        let at = schedule.times.since_base(at);
        schedule.schedule(index, at);
    }

    /// Schedules the task `after` from `now`, a clock reading the table keeps.
    pub(crate) fn schedule_after(&mut self, index: usize, now: Instant, after: Duration) {
        let mut schedule = self.table().schedule();
        let now = schedule.times.saw(now);
        schedule.schedule(index, now.saturating_add(nanos(after)));
    }

    pub(crate) fn cancel(&mut self, index: usize) {
        self.table().schedule().cancel(index);
    }

    pub(crate) fn cancel_all(&mut self) {
        if let Some(table) = self.table_if_any() {
            table.cancel_all();
        }
    }

    pub(crate) fn is_scheduled(&self, index: usize) -> bool {
        self.table_ref()
            .is_some_and(|t| t.slots[index].next != NEVER)
    }

    /// When the task is due next, if it is scheduled.
    pub(crate) fn next_due(&self, index: usize) -> Option<Instant> {
        let table = self.table_ref()?;
        let next = table.slots.get(index)?.next;
        (next != NEVER).then(|| table.times.instant(next))
    }

    /// When the run under way was due.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        let times = &self.table_ref()?.times;
        Some(times.instant(times.running))
    }

    pub(crate) fn runs(&self, index: usize) -> u64 {
        self.table_ref().map_or(0, |t| t.slots[index].runs)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.table_ref().is_none()
    }

    /// Re-arms the timer on the earliest due task after a schedule changed.
    #[inline]
    pub(crate) fn rearm(&mut self) {
        if let Some(table) = self.table_if_any()
            && table.times.dirty
        {
            table.rearm();
        }
    }

    /// Whether the earliest task is due (the timetable must be re-armed first), by what the
    /// table knows: the last clock reading and the timer. Reads the clock only for a run due
    /// within one step of the timer after the last reading.
    #[inline]
    pub(crate) fn is_due(&mut self) -> bool {
        self.table_if_any().is_some_and(Table::is_due)
    }

    /// Whether the earliest task is due, reading the clock unless the table knows it is:
    /// for the top of a loop turn that follows a turn without a run.
    #[inline]
    pub(crate) fn is_due_now(&mut self) -> bool {
        self.table_if_any().is_some_and(Table::is_due_now)
    }

    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        self.table_ref().is_some_and(|t| t.times.armed != NEVER)
    }

    /// Polls the timer of the earliest task. Only polled while armed and not due.
    pub(crate) fn poll_wait(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self.table_if_any().and_then(|t| t.sleep.as_mut()) {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        }
    }

    /// Takes the earliest task off the timetable, and gives its index. Only called once it
    /// is due. The table keeps which task runs (one run is under way at a time), so the
    /// loop's run keeps nothing of it across the task's await: with thousands of threads,
    /// each cache line of its task a run touches is a miss.
    #[inline]
    pub(crate) fn take_due(&mut self) -> Option<usize> {
        self.table_if_any()?.schedule().take_due()
    }

    /// Applies what a run returned (reading the clock at most once), unless ctx already
    /// changed the task's schedule during the run. Returns `true` if the task asked to stop
    /// the thread.
    #[inline]
    pub(crate) fn finish(&mut self, decision: Reschedule) -> bool {
        self.table().schedule().finish(decision)
    }

    /// The task whose run is under way (or ran last).
    pub(crate) fn running_task(&self) -> usize {
        self.table_ref().map_or(0, |t| t.times.task as usize)
    }
}

/// The tasks of a thread that has some, and their timer.
///
/// The table lives in the thread's task, beside the rest of its context: with thousands of
/// periodic threads, a table in a block of its own is one more cache line each run misses.
/// The timer is boxed apart (tokio's `Sleep` must stay pinned, and the context is reached
/// only by `&mut`), made at the first re-arm that sets it (the earliest run ahead of the
/// last clock reading) and again after `cancel_all`. Its block is small enough for the
/// allocator's fast, lock-free free lists, so when thousands of periodic threads end
/// together, freeing their timers costs less than their last runs.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Slots,
    /// Set to the earliest run whenever that is ahead of the last clock reading as the
    /// table is re-armed.
    sleep: Option<Pin<Box<Sleep>>>,
    times: Times,
}

// The slots, one task's kept inline, take half a cache line, and the whole table under a
// cache line and a half of the task of a thread with tasks.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Slots>() == 32);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Timetable<InTask>>() <= 88);
// A thread without tasks carries none of it.
const _: () = assert!(std::mem::size_of::<Timetable<NoTasks>>() == 0);

/// The tasks of a thread that has some, as their table keeps them: the slots (kept in a
/// slice scanned linearly: a thread has a handful of tasks, and the scan only happens when
/// a schedule changes) and the times.
///
/// Times are nanoseconds after `base` (cheap to compare and add). Each run costs at most one
/// clock reading, taken as it ends when the next run depends on it: it decides the next
/// tick and whether that is due already; otherwise the timer says when it is.
#[derive(Debug)]
struct Schedule<'a> {
    slots: &'a mut Slots,
    times: &'a mut Times,
}

/// The times of a table.
#[derive(Debug)]
struct Times {
    /// The earliest scheduled run, or [`NEVER`].
    armed: u64,
    /// The latest clock reading the table was given: the time is at least this.
    now: u64,
    /// When the run under way (or the last one) was due.
    running: u64,
    dirty: bool,
    /// The task of the run under way (or of the last one).
    task: u32,
    base: Instant,
}

impl Table {
    fn new(specs: &'static [TaskSpec]) -> Self {
        Self {
            slots: Slots::new(specs),
            sleep: None,
            times: Times::new(),
        }
    }

    #[inline]
    fn schedule(&mut self) -> Schedule<'_> {
        Schedule {
            slots: &mut self.slots,
            times: &mut self.times,
        }
    }

    fn cancel_all(&mut self) {
        self.schedule().cancel_all();
        self.sleep = None;
    }

    /// Re-arms the timer on the earliest due task after a schedule changed. A run due by
    /// the last clock reading needs no timer.
    fn rearm(&mut self) {
        let Some(at) = self.schedule().rearm() else {
            return;
        };
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Whether the timer fired: while the earliest run is ahead of the last clock reading,
    /// the timer is set to it.
    #[inline]
    fn timer_fired(&self) -> bool {
        self.sleep.as_ref().is_some_and(|s| s.is_elapsed())
    }

    /// Whether the earliest run is due: by the last clock reading, or because its timer
    /// fired, or, only when it is due within one step of the timer, by a fresh reading.
    #[inline]
    fn is_due(&mut self) -> bool {
        let at = self.times.armed;
        if at <= self.times.now {
            return true;
        }
        if at == NEVER {
            return false;
        }
        if self.timer_fired() {
            return true;
        }
        if at - self.times.now < TIMER_STEP {
            self.times.saw(Instant::now());
            return at <= self.times.now;
        }
        false
    }

    fn is_due_now(&mut self) -> bool {
        let at = self.times.armed;
        if at == NEVER {
            return false;
        }
        if at <= self.times.now || self.timer_fired() {
            return true;
        }
        self.times.saw(Instant::now());
        at <= self.times.now
    }
}

impl Slots {
    fn new(specs: &'static [TaskSpec]) -> Self {
        let slot = |spec: &'static TaskSpec| Slot {
            spec,
            next: NEVER,
            touched: false,
            runs: 0,
        };
        match specs {
            [spec] => Slots::One(slot(spec)),
            specs => Slots::Many(specs.iter().map(slot).collect()),
        }
    }
}

impl Times {
    fn new() -> Self {
        Self {
            armed: NEVER,
            now: 0,
            running: NEVER,
            dirty: false,
            task: 0,
            base: Instant::now(),
        }
    }

    /// A time of the table as an instant.
    fn instant(&self, at: u64) -> Instant {
        self.base + Duration::from_nanos(at)
    }

    /// An instant as a time of the table (an instant before its base is due at once).
    #[inline]
    fn since_base(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.base))
    }

    /// Keeps a clock reading: the time is at least `now`. Returns it as a time of the table.
    #[inline]
    fn saw(&mut self, now: Instant) -> u64 {
        let now = self.since_base(now);
        self.now = self.now.max(now);
        now
    }
}

impl Schedule<'_> {
    fn start_automatic(&mut self, now: Instant) {
        let now = self.times.saw(now);
        for slot in self.slots.iter_mut() {
            if !slot.spec.manual {
                slot.next = now.saturating_add(nanos(slot.spec.delay));
            }
        }
        self.times.dirty = true;
    }

    fn start(&mut self, index: usize, now: Instant) {
        let now = self.times.saw(now);
        let slot = &mut self.slots[index];
        if slot.next == NEVER {
            slot.next = now.saturating_add(nanos(slot.spec.delay));
        }
        slot.touched = true;
        self.times.dirty = true;
    }

    fn schedule(&mut self, index: usize, at: u64) {
        let slot = &mut self.slots[index];
        slot.next = at;
        slot.touched = true;
        self.times.dirty = true;
    }

    fn cancel(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.next = NEVER;
        slot.touched = true;
        self.times.dirty = true;
    }

    fn cancel_all(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.next = NEVER;
        }
        self.times.armed = NEVER;
        self.times.dirty = false;
    }

    /// Finds the earliest run after a schedule changed; returns the instant the timer
    /// must be set to, unless that run is due by the last clock reading (or there is none).
    fn rearm(&mut self) -> Option<Instant> {
        self.times.dirty = false;
        let earliest = match &*self.slots {
            Slots::One(slot) => slot.next,
            Slots::Many(slots) => slots.iter().map(|s| s.next).min().unwrap_or(NEVER),
        };
        self.times.armed = earliest;
        (earliest > self.times.now && earliest != NEVER).then(|| self.times.instant(earliest))
    }

    /// Takes the earliest task off the timetable.
    #[inline]
    fn take_due(&mut self) -> Option<usize> {
        let (index, slot) = match &mut *self.slots {
            Slots::One(slot) => (0, slot),
            Slots::Many(slots) => slots.iter_mut().enumerate().min_by_key(|(_, s)| s.next)?,
        };
        if slot.next == NEVER {
            return None;
        }
        let at = std::mem::replace(&mut slot.next, NEVER);
        slot.touched = false;
        slot.runs += 1;
        self.times.running = at;
        self.times.dirty = true;
        // A thread's tasks are the methods of its `impl` block: their indices fit.
        debug_assert!(u32::try_from(index).is_ok());
        self.times.task = index as u32;
        Some(index)
    }

    /// Applies what a run returned, unless ctx already changed the task's schedule during
    /// the run. Returns `true` if the task asked to stop the thread.
    ///
    /// Reads the clock only when the next run depends on when this one ended, or may be
    /// due at once without the timer: not for `Done` or `Stop`, nor for the next tick of a
    /// task that bursts (it runs every tick, late or not; a tick already past is due as
    /// soon as the timer is set to it, as for a `tokio::time::interval` that bursts).
    #[inline]
    fn finish(&mut self, decision: Reschedule) -> bool {
        self.times.dirty = true;
        let index = self.times.task as usize;
        let slot = self.slot_mut(index);
        if slot.touched {
            slot.touched = false;
            return matches!(decision, Reschedule::Stop);
        }
        let (every, missed) = (slot.spec.every, slot.spec.missed);
        let at = self.times.running;
        if let Reschedule::Again = decision
            && let Some(every) = every
            && missed == MissedTicks::Burst
        {
            self.slot_mut(index).next = at.saturating_add(nanos(every));
            return false;
        }
        let next = match decision {
            Reschedule::Done | Reschedule::Stop => NEVER,
            _ => self.next_by_clock(at, decision, every, missed),
        };
        self.slot_mut(index).next = next;
        matches!(decision, Reschedule::Stop)
    }

    /// The next run of a task whose next run depends on when this one ended: reads the
    /// clock.
    #[inline(never)]
    fn next_by_clock(
        &mut self,
        at: u64,
        decision: Reschedule,
        every: Option<Duration>,
        missed: MissedTicks,
    ) -> u64 {
        let now = self.times.saw(Instant::now());
        match (decision, every) {
            (Reschedule::Again, Some(every)) => next_tick(at, now, nanos(every), missed),
            (Reschedule::After(d), _) => now.saturating_add(nanos(d)),
            (Reschedule::At(at), _) => self.times.since_base(at),
            _ => now,
        }
    }

    /// The slot of a task: a thread's only task (the common case) is found without indexing.
    #[inline]
    fn slot_mut(&mut self, index: usize) -> &mut Slot {
        match &mut *self.slots {
            Slots::One(slot) => slot,
            Slots::Many(slots) => &mut slots[index],
        }
    }
}

/// The next tick of a periodic task whose run was due at `due` and ended at `now` (times
/// in nanoseconds).
fn next_tick(due: u64, now: u64, period: u64, missed: MissedTicks) -> u64 {
    let next = due.saturating_add(period);
    if next > now {
        return next;
    }
    match missed {
        MissedTicks::Burst => next,
        MissedTicks::Delay => now.saturating_add(period),
        MissedTicks::Skip => {
            let period = period.max(1);
            let ticks = (now - due) / period + 1;
            due.saturating_add(ticks.saturating_mul(period))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest request glibc's fast free lists take by default on a 64-bit target:
    /// blocks of up to 128 bytes with the allocator's own 8-byte header (`M_MXFAST`, see
    /// mallopt(3): <https://man7.org/linux/man-pages/man3/mallopt.3.html>).
    #[cfg(target_pointer_width = "64")]
    const FAST_BLOCK: usize = 128 - std::mem::size_of::<usize>();

    /// The timer's block stays within glibc's fast free lists as well, with tokio's
    /// features as this workspace builds it (tokio's own tracing, an unstable option, would
    /// make it larger).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_timer_is_a_small_block() {
        assert!(std::mem::size_of::<Sleep>() <= FAST_BLOCK);
    }

    #[test]
    fn next_tick_follows_the_missed_policy() {
        let ms = 1_000_000;
        let p = 10 * ms;
        // On time: the next tick.
        assert_eq!(next_tick(0, 3 * ms, p, MissedTicks::Skip), p);
        // 35 ms late: skip to 40, burst at 10, delay to 45.
        let late = 35 * ms;
        assert_eq!(next_tick(0, late, p, MissedTicks::Skip), 40 * ms);
        assert_eq!(next_tick(0, late, p, MissedTicks::Burst), p);
        assert_eq!(next_tick(0, late, p, MissedTicks::Delay), 45 * ms);
    }

    const fn spec(name: &'static str, every_ms: u64, missed: MissedTicks) -> TaskSpec {
        TaskSpec {
            name,
            every: Some(Duration::from_millis(every_ms)),
            delay: Duration::ZERO,
            manual: true,
            missed,
        }
    }

    static ONE: [TaskSpec; 1] = [spec("one", 10, MissedTicks::Burst)];
    static TWO: [TaskSpec; 2] = [
        spec("slow", 30, MissedTicks::Burst),
        spec("fast", 10, MissedTicks::Burst),
    ];

    /// Schedules every task at `at` (nanoseconds of the table), as `ctx` would, and re-arms.
    fn schedule_all(schedule: &mut Schedule<'_>, at: &[u64]) {
        for (index, at) in at.iter().enumerate() {
            schedule.schedule(index, *at);
        }
        schedule.rearm();
    }

    /// Runs `check` on a fresh schedule of one task and on one of two.
    fn for_one_and_many(check: impl Fn(&'static [TaskSpec], &mut Schedule<'_>)) {
        for specs in [&ONE[..], &TWO[..]] {
            let (mut slots, mut times) = (Slots::new(specs), Times::new());
            check(
                specs,
                &mut Schedule {
                    slots: &mut slots,
                    times: &mut times,
                },
            );
        }
    }

    #[test]
    fn one_task_and_many_take_the_earliest_and_burst_on_the_grid() {
        let ms = 1_000_000;
        for_one_and_many(|specs, schedule| {
            let at: Vec<u64> = (0..specs.len() as u64).map(|i| (5 - i) * ms).collect();
            schedule_all(schedule, &at);
            let earliest = *at.iter().min().expect("a task");
            assert_eq!(schedule.times.armed, earliest);
            let due = schedule.take_due().expect("a task is scheduled");
            assert_eq!(due, specs.len() - 1);
            assert_eq!(schedule.times.running, earliest);
            assert_eq!(schedule.slots[due].runs, 1);
            // A bursting `Again` runs on the next tick of the grid, however late it ends.
            assert!(!schedule.finish(Reschedule::Again));
            assert_eq!(schedule.slots[due].next, earliest + 10 * ms);
            // `Done` takes it off the timetable.
            let due = schedule.take_due().expect("still scheduled");
            assert!(!schedule.finish(Reschedule::Done));
            assert_eq!(schedule.slots[due].next, NEVER);
        });
    }

    #[test]
    fn a_schedule_changed_during_the_run_wins_over_what_the_run_returns() {
        let ms = 1_000_000;
        for_one_and_many(|specs, schedule| {
            let index = specs.len() - 1;
            schedule_all(schedule, &vec![2 * ms; specs.len()]);
            while schedule.take_due().expect("scheduled") != index {}
            schedule.schedule(index, 50 * ms);
            assert!(schedule.finish(Reschedule::Stop));
            assert_eq!(schedule.slots[index].next, 50 * ms);
            schedule.rearm();
            let due = schedule.take_due().expect("rescheduled");
            assert_eq!((due, schedule.times.running), (index, 50 * ms));
        });
    }

    #[test]
    fn a_timetable_in_the_task_is_made_afresh_for_each_life() {
        let ms = Duration::from_millis(1);
        // Each start is due at once (`ONE` has no delay) and so sets no timer: no runtime
        // is needed.
        let now = Instant::now();
        let mut kept = Timetable::<InTask>::unmade();
        assert!(kept.is_empty() && !kept.is_armed());
        kept.make(&ONE);
        kept.start(0, now);
        kept.rearm();
        assert!(kept.is_scheduled(0) && kept.is_armed() && kept.is_due());
        kept.take_due().expect("due");
        assert!(!kept.finish(Reschedule::After(10 * ms)));
        assert_eq!(kept.runs(0), 1);
        // The next life (a restart) starts from a table made anew: no runs, nothing
        // scheduled until it starts its tasks again.
        kept.make(&ONE);
        assert_eq!(kept.runs(0), 0);
        assert!(!kept.is_scheduled(0));
        kept.rearm();
        assert!(!kept.is_armed() && !kept.is_due());
    }

    #[test]
    #[should_panic(expected = "declared without tasks")]
    fn a_thread_type_without_room_cannot_be_given_tasks() {
        Timetable::<NoTasks>::unmade().make(&ONE);
    }
}
