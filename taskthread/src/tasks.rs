//! A thread's control of its `#[rescheduling]` tasks through its [`Ctx`]: start,
//! reschedule and cancel them by name ([`TaskRef`]), and ask about them.

use std::time::Duration;

use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::reschedule::TaskRef;
use crate::thread::Thread;

impl<T: Thread> Ctx<T> {
    /// Starts a `#[rescheduling]` task that is not scheduled (a `manual` one, or one that
    /// returned [`Done`](crate::Reschedule::Done)); it first runs after its `delay`.
    /// Starting a scheduled task does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Go;
    /// struct Backup;
    ///
    /// #[taskthread(up = String)]
    /// impl Backup {
    ///     #[down]
    ///     async fn go(&mut self, ctx: &mut Ctx<Self>, _g: Go) {
    ///         ctx.start_task(Self::RUN);
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up("backed up".to_owned()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut backup = taskthread::spawn(Backup);
    /// backup.send(Go).await.unwrap();
    /// assert_eq!(backup.recv().await.unwrap(), "backed up");
    /// # }
    /// ```
    pub fn start_task(&mut self, task: TaskRef<T>) {
        if !self.stop_begun() {
            self.timetable().start(task.index(), Instant::now());
        }
    }

    /// Schedules the task's next run `after` from now, replacing its schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use tokio::time::Instant;
    ///
    /// struct Snooze(u64);
    /// struct Alarm;
    ///
    /// #[taskthread(up = Instant)]
    /// impl Alarm {
    ///     #[down]
    ///     async fn snooze(&mut self, ctx: &mut Ctx<Self>, Snooze(secs): Snooze) {
    ///         ctx.reschedule_task(Self::RING, Duration::from_secs(secs));
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn ring(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up(Instant::now()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut alarm = taskthread::spawn(Alarm);
    /// let start = Instant::now();
    /// alarm.send(Snooze(60)).await.unwrap();
    /// assert_eq!((alarm.recv().await.unwrap() - start).as_secs(), 60);
    /// # }
    /// ```
    pub fn reschedule_task(&mut self, task: TaskRef<T>, after: Duration) {
        if !self.stop_begun() {
            self.timetable()
                .schedule_after(task.index(), Instant::now(), after);
        }
    }

    /// Schedules the task's next run at `at`, replacing its schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use tokio::time::Instant;
    ///
    /// struct RingAt(Instant);
    /// struct Alarm;
    ///
    /// #[taskthread(up = Instant)]
    /// impl Alarm {
    ///     #[down]
    ///     async fn ring_at(&mut self, ctx: &mut Ctx<Self>, RingAt(at): RingAt) {
    ///         ctx.reschedule_task_at(Self::RING, at);
    ///     }
    ///
    ///     #[rescheduling(manual)]
    ///     async fn ring(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         ctx.up(Instant::now()).await?;
    ///         Ok(Reschedule::Done)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut alarm = taskthread::spawn(Alarm);
    /// let at = Instant::now() + Duration::from_secs(3600);
    /// alarm.send(RingAt(at)).await.unwrap();
    /// assert!(alarm.recv().await.unwrap() >= at);
    /// # }
    /// ```
    pub fn reschedule_task_at(&mut self, task: TaskRef<T>, at: Instant) {
        if !self.stop_begun() {
            self.timetable().schedule(task.index(), at);
        }
    }

    /// Cancels the task's next run. A run in progress finishes; its return value is then
    /// ignored. Start it again with [`start_task`](Self::start_task).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Pause;
    /// struct Heartbeat;
    ///
    /// #[taskthread]
    /// impl Heartbeat {
    ///     #[rescheduling(every = "1s")]
    ///     async fn beat(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
    ///         Reschedule::Again
    ///     }
    ///
    ///     #[down]
    ///     async fn pause(&mut self, ctx: &mut Ctx<Self>, _p: Pause) -> Result<(bool, bool)> {
    ///         let before = ctx.is_task_scheduled(Self::BEAT);
    ///         ctx.cancel_task(Self::BEAT);
    ///         Ok((before, ctx.is_task_scheduled(Self::BEAT)))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let heart = taskthread::spawn(Heartbeat);
    /// assert_eq!(heart.ask(Pause).await.unwrap(), (true, false));
    /// # }
    /// ```
    pub fn cancel_task(&mut self, task: TaskRef<T>) {
        self.timetable().cancel(task.index());
    }

    /// Whether the task has a next run scheduled.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Arm;
    /// struct Alarm;
    ///
    /// #[taskthread]
    /// impl Alarm {
    ///     #[down]
    ///     async fn arm(&mut self, ctx: &mut Ctx<Self>, _a: Arm) -> Result<(bool, bool)> {
    ///         let before = ctx.is_task_scheduled(Self::RING); // `manual`: not yet
    ///         ctx.start_task(Self::RING);
    ///         Ok((before, ctx.is_task_scheduled(Self::RING)))
    ///     }
    ///
    ///     #[rescheduling(manual, delay = "1h")]
    ///     async fn ring(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
    ///         Reschedule::Done
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let alarm = taskthread::spawn(Alarm);
    /// assert_eq!(alarm.ask(Arm).await.unwrap(), (false, true));
    /// # }
    /// ```
    pub fn is_task_scheduled(&self, task: TaskRef<T>) -> bool {
        self.timetable_ref().is_scheduled(task.index())
    }

    /// How many times the task has run (or started running).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Poller;
    ///
    /// #[taskthread(up = u64)]
    /// impl Poller {
    ///     #[rescheduling]
    ///     async fn poll(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
    ///         let runs = ctx.task_runs(Self::POLL); // this run included
    ///         if runs == 3 {
    ///             ctx.up(runs).await?;
    ///             return Ok(Reschedule::Done);
    ///         }
    ///         Ok(Reschedule::Now)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut poller = taskthread::spawn(Poller);
    /// assert_eq!(poller.recv().await, Some(3));
    /// # }
    /// ```
    pub fn task_runs(&self, task: TaskRef<T>) -> u64 {
        self.timetable_ref().runs(task.index())
    }
}
