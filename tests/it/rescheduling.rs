//! `#[rescheduling]` tasks on tokio's paused clock: periods, initial delays, manual start,
//! missed-tick policies, every `Reschedule` value, and start / reschedule / cancel by name.

use std::time::Duration;

use taskthread::prelude::*;
use tokio::time::Instant;

/// Records the virtual time of each run, in milliseconds since the thread started.
#[derive(Debug, Clone)]
struct Runs;
#[derive(Debug, Clone)]
struct Cmd(&'static str);

struct Ticker {
    start: Instant,
    periodic: Vec<u64>,
    delayed: Vec<u64>,
    manual: Vec<u64>,
    adhoc: Vec<u64>,
}

impl Ticker {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            periodic: Vec::new(),
            delayed: Vec::new(),
            manual: Vec::new(),
            adhoc: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

#[taskthread]
impl Ticker {
    #[rescheduling(every = "100ms")]
    async fn periodic(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let now = self.now();
        self.periodic.push(now);
        Ok(if self.periodic.len() < 4 {
            Reschedule::Again
        } else {
            Reschedule::Done
        })
    }

    #[rescheduling(every = "1s", delay = "250ms")]
    async fn delayed(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let now = self.now();
        self.delayed.push(now);
        Ok(Reschedule::Again)
    }

    #[rescheduling(manual, delay = "10ms")]
    async fn manual(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let now = self.now();
        self.manual.push(now);
        Ok(match self.manual.len() {
            1 => Reschedule::After(Duration::from_millis(30)),
            2 => Reschedule::At(Instant::now() + Duration::from_millis(5)),
            _ => Reschedule::Done,
        })
    }

    #[rescheduling(manual)]
    async fn adhoc(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        let now = self.now();
        self.adhoc.push(now);
        Reschedule::Done
    }

    #[down]
    async fn cmd(&mut self, ctx: &mut Ctx<Self>, c: Cmd) -> Result<()> {
        match c.0 {
            "start manual" => ctx.start_task(Self::MANUAL),
            "cancel delayed" => ctx.cancel_task(Self::DELAYED),
            "adhoc in 40ms" => ctx.reschedule_task(Self::ADHOC, Duration::from_millis(40)),
            other => return Err(Error::msg(format!("unknown command {other}"))),
        }
        Ok(())
    }

    #[down]
    async fn runs(&mut self, ctx: &mut Ctx<Self>, _q: Runs) -> Result<[Vec<u64>; 4]> {
        assert_eq!(ctx.task_runs(Self::PERIODIC), self.periodic.len() as u64);
        Ok([
            self.periodic.clone(),
            self.delayed.clone(),
            self.manual.clone(),
            self.adhoc.clone(),
        ])
    }
}

#[tokio::test(start_paused = true)]
async fn periods_delays_manual_start_and_every_reschedule_value() {
    let root = taskthread::spawn(Ticker::new());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    root.send(Cmd("start manual")).await.unwrap();
    root.send(Cmd("adhoc in 40ms")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    root.send(Cmd("cancel delayed")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let [periodic, delayed, manual, adhoc] = root.ask(Runs).await.unwrap();
    // Runs at once, then every 100 ms; `Done` after the fourth.
    assert_eq!(periodic, [0, 100, 200, 300]);
    // First run after its delay, then on its period until cancelled at 1500 ms.
    assert_eq!(delayed, [250, 1250]);
    // Started at 1000 ms: +10 ms delay, then After(30 ms), then At(+5 ms), then Done.
    assert_eq!(manual, [1010, 1040, 1045]);
    // Never started automatically; rescheduled by name to run 40 ms later.
    assert_eq!(adhoc, [1040]);
    root.stop();
    root.join().await;
}

/// A task whose runs take longer than its period.
struct Slow {
    start: Instant,
    runs: Vec<u64>,
}

#[derive(Debug)]
struct Report;

#[taskthread]
impl Slow {
    #[rescheduling(every = "100ms", missed = "skip")]
    async fn work(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.push(self.start.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok(Reschedule::Again)
    }

    #[down]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _r: Report) -> Result<Vec<u64>> {
        Ok(self.runs.clone())
    }
}

struct SlowBurst {
    start: Instant,
    runs: Vec<u64>,
}

#[taskthread]
impl SlowBurst {
    #[rescheduling(every = "100ms", missed = "burst")]
    async fn work(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.push(self.start.elapsed().as_millis() as u64);
        if self.runs.len() == 1 {
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
        Ok(Reschedule::Again)
    }

    #[down]
    async fn report(&mut self, _r: &mut Ctx<Self>, _q: Report) -> Result<Vec<u64>> {
        Ok(self.runs.clone())
    }
}

struct SlowDelay {
    start: Instant,
    runs: Vec<u64>,
}

#[taskthread]
impl SlowDelay {
    #[rescheduling(every = "100ms", missed = "delay")]
    async fn work(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.push(self.start.elapsed().as_millis() as u64);
        if self.runs.len() == 1 {
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
        Ok(Reschedule::Again)
    }

    #[down]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _q: Report) -> Result<Vec<u64>> {
        Ok(self.runs.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn missed_ticks_follow_the_declared_policy_and_runs_never_overlap() {
    let skip = taskthread::spawn(Slow {
        start: Instant::now(),
        runs: Vec::new(),
    });
    let burst = taskthread::spawn(SlowBurst {
        start: Instant::now(),
        runs: Vec::new(),
    });
    let delay = taskthread::spawn(SlowDelay {
        start: Instant::now(),
        runs: Vec::new(),
    });
    tokio::time::sleep(Duration::from_millis(720)).await;
    // An ask waits for the run in progress, so look only at runs started before 720 ms.
    let before = |runs: Vec<u64>| runs.into_iter().filter(|&t| t < 720).collect::<Vec<_>>();
    // Each run takes 250 ms: the next run starts at the first tick after it ends, never
    // while it is still running.
    assert_eq!(before(skip.ask(Report).await.unwrap()), [0, 300, 600]);
    // The first run overruns 3 ticks (100, 200, 300): they run back to back, then on time.
    assert_eq!(
        before(burst.ask(Report).await.unwrap()),
        [0, 350, 350, 350, 400, 500, 600, 700]
    );
    // The schedule shifts: a full period after the late run ended.
    assert_eq!(before(delay.ask(Report).await.unwrap()), [0, 450, 550, 650]);
    skip.stop();
    burst.stop();
    delay.stop();
    skip.join().await;
    burst.join().await;
    delay.join().await;
}

/// A task that bursts, in a thread whose DOWN handler keeps its loop busy for a while.
struct BusyBurst {
    start: Instant,
    runs: Vec<u64>,
}

#[derive(Debug)]
struct Busy(Duration);

#[taskthread]
impl BusyBurst {
    #[rescheduling(every = "100ms", missed = "burst")]
    async fn work(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.push(self.start.elapsed().as_millis() as u64);
        Ok(Reschedule::Again)
    }

    #[down]
    async fn busy(&mut self, _ctx: &mut Ctx<Self>, Busy(how_long): Busy) -> Result<()> {
        tokio::time::sleep(how_long).await;
        Ok(())
    }

    #[down]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _q: Report) -> Result<Vec<u64>> {
        Ok(self.runs.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn a_bursting_task_catches_up_the_ticks_its_thread_was_too_busy_for() {
    let thread = taskthread::spawn(BusyBurst {
        start: Instant::now(),
        runs: Vec::new(),
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The handler keeps the loop from 50 ms to 350 ms: the ticks at 100, 200 and 300 ms
    // are missed.
    thread.send(Busy(Duration::from_millis(300))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(670)).await;
    let runs = thread.ask(Report).await.unwrap();
    let before: Vec<u64> = runs.into_iter().filter(|&t| t < 720).collect();
    // Each missed tick runs once, back to back as the handler returns, then on time.
    assert_eq!(before, [0, 350, 350, 350, 400, 500, 600, 700]);
    thread.stop();
    thread.join().await;
}

/// A task that stops its thread.
#[derive(Default)]
struct Countdown {
    left: u32,
}

#[taskthread]
impl Countdown {
    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        if self.left == 0 {
            return Ok(Reschedule::Stop);
        }
        self.left -= 1;
        Ok(Reschedule::Again)
    }
}

#[tokio::test(start_paused = true)]
async fn reschedule_stop_completes_the_thread() {
    let started = Instant::now();
    let root = taskthread::spawn(Countdown { left: 3 });
    assert!(matches!(root.join().await, Exit::Completed));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

/// What the threads of a [`Batch`] did, in order.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A thread whose one run ends it, and says so in the log.
struct LastRun {
    name: usize,
    log: Log,
}

#[taskthread]
impl LastRun {
    #[rescheduling(delay = "10ms")]
    async fn once(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        self.log.lock().unwrap().push(format!("run {}", self.name));
        Reschedule::Stop
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        self.log.lock().unwrap().push(format!("exit {}", self.name));
    }
}

/// Starts `n` [`LastRun`] threads at one instant, and stops once they have all ended.
struct Batch {
    n: usize,
    ended: usize,
    log: Log,
}

#[taskthread]
impl Batch {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for name in 0..self.n {
            ctx.spawn(LastRun {
                name,
                log: Log::clone(&self.log),
            });
        }
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        assert!(matches!(exit.exit, Exit::Completed), "{exit}");
        self.ended += 1;
        if self.ended == self.n {
            ctx.stop();
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn threads_a_stop_ends_together_let_the_runs_due_with_them_go_first() {
    let log = Log::default();
    let root = taskthread::spawn(Batch {
        n: 8,
        ended: 0,
        log: Log::clone(&log),
    });
    assert!(matches!(root.join().await, Exit::Completed));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 16, "{log:?}");
    // Every run due at the tick comes before the first thread's ending.
    let (runs, exits) = log.split_at(8);
    assert!(runs.iter().all(|e| e.starts_with("run ")), "{log:?}");
    assert!(exits.iter().all(|e| e.starts_with("exit ")), "{log:?}");
}

/// A thread whose task ends it at 10 ms, and which notes the messages it handles.
struct Closing {
    log: Log,
}

#[taskthread]
impl Closing {
    #[rescheduling(delay = "10ms")]
    async fn last(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        Reschedule::Stop
    }

    #[down]
    async fn note(&mut self, _ctx: &mut Ctx<Self>, n: u32) {
        self.log.lock().unwrap().push(format!("note {n}"));
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_message_sent_at_the_tick_a_stop_ends_the_thread_is_still_handled() {
    let log = Log::default();
    let root = taskthread::spawn(Closing {
        log: Log::clone(&log),
    });
    // Due at the same instant as the thread's task: whichever runs first, the queue is
    // still open, as the stop sequence has not begun.
    tokio::time::sleep(Duration::from_millis(10)).await;
    root.send(1u32)
        .await
        .expect("the thread takes messages until its stop sequence begins");
    assert!(matches!(root.join().await, Exit::Completed));
    assert_eq!(*log.lock().unwrap(), ["note 1"]);
}

/// A task that fails.
struct Faulty;

#[taskthread]
impl Faulty {
    #[rescheduling(delay = "5s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Err(Error::msg("sensor unplugged"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_task_fails_the_thread() {
    let root = taskthread::spawn(Faulty);
    match root.join().await {
        Exit::Failed(e) => assert_eq!(e.to_string(), "sensor unplugged"),
        other => panic!("expected failed, got {other}"),
    }
}

/// A task that always wants to run again at once.
#[derive(Default)]
struct Spinner {
    spins: u64,
}

#[derive(Debug)]
struct Spins;

#[taskthread]
impl Spinner {
    #[rescheduling]
    async fn spin(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.spins += 1;
        Ok(Reschedule::Now)
    }

    #[down]
    async fn spins(&mut self, _ctx: &mut Ctx<Self>, _q: Spins) -> Result<u64> {
        Ok(self.spins)
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_that_always_runs_again_cannot_starve_messages() {
    let root = taskthread::spawn(Spinner::default());
    let mut last = 0;
    for _ in 0..20 {
        // Answered at once: tasks and messages take turns.
        let spins = root.ask(Spins).await.unwrap();
        assert!(spins >= last);
        last = spins;
    }
    assert!(last > 0, "the task ran too");
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// `enter` changes the schedule of automatic tasks by name.
struct Configured {
    runs: Vec<u64>,
    start: Instant,
}

#[taskthread]
impl Configured {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.cancel_task(Self::NEVER);
        ctx.reschedule_task(Self::LATER, Duration::from_secs(5));
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn never(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        panic!("cancelled in enter");
    }

    #[rescheduling(every = "1s")]
    async fn later(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.push(self.start.elapsed().as_secs());
        Ok(Reschedule::Again)
    }

    #[down]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _r: Report) -> Result<Vec<u64>> {
        Ok(self.runs.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn enter_can_cancel_and_reschedule_automatic_tasks() {
    let root = taskthread::spawn(Configured {
        runs: Vec::new(),
        start: Instant::now(),
    });
    tokio::time::sleep(Duration::from_millis(7500)).await;
    assert_eq!(root.ask(Report).await.unwrap(), [5, 6, 7]);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// The runs of every life of a [`Flaky`] thread: (life, milliseconds since the test began).
type Beats = std::sync::Arc<std::sync::Mutex<Vec<(u32, u64)>>>;

/// A thread whose periodic task fails its first life at the third run.
struct Flaky {
    life: u32,
    began: Instant,
    beats: Beats,
}

#[taskthread]
impl Flaky {
    #[rescheduling(every = "10ms", delay = "5ms")]
    async fn beat(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let at = self.began.elapsed().as_millis() as u64;
        self.beats.lock().unwrap().push((self.life, at));
        let runs = ctx.task_runs(Self::BEAT);
        if self.life == 1 && runs == 3 {
            return Err(Error::msg("the third beat fails"));
        }
        Ok(if runs < 3 {
            Reschedule::Again
        } else {
            Reschedule::Stop
        })
    }
}

/// Supervises one [`Flaky`], restarting it at once on failure, and ends with it.
struct FlakyBoss {
    began: Instant,
    beats: Beats,
}

#[taskthread]
impl FlakyBoss {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let (began, beats) = (self.began, Beats::clone(&self.beats));
        let mut life = 0;
        let factory = move || {
            life += 1;
            Flaky {
                life,
                began,
                beats: Beats::clone(&beats),
            }
        };
        let policy = taskthread::supervise::RestartPolicy::on_failure()
            .backoff(Duration::ZERO, Duration::ZERO);
        ctx.supervise(factory, policy);
        Ok(())
    }

    #[up]
    async fn restarted(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _r: ChildRestart) {}

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        assert!(matches!(exit.exit, Exit::Completed), "{exit}");
        ctx.stop();
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_thread_starts_its_tasks_afresh() {
    let beats = Beats::default();
    let began = Instant::now();
    let root = taskthread::spawn(FlakyBoss {
        began,
        beats: Beats::clone(&beats),
    });
    // A life whose task never runs would leave nothing pending on the paused clock: the
    // timeout makes that a failure, not a hang.
    let exit = tokio::time::timeout(Duration::from_secs(1), root.join())
        .await
        .expect("the second life's task runs and stops it");
    assert!(matches!(exit, Exit::Completed));
    // The first life fails at its third run (25 ms); the second starts at once, and its
    // task keeps its initial delay and counts its runs from one again.
    assert_eq!(
        *beats.lock().unwrap(),
        vec![(1, 5), (1, 15), (1, 25), (2, 30), (2, 40), (2, 50)]
    );
}
