//! `#[cfg]` on handlers, tasks and hooks: the generated dispatch follows it, and so does the
//! room for a timetable in the thread's task.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use taskthread::prelude::*;

struct Ping;
struct Never;

#[derive(Default)]
struct Worker {
    runs: Arc<AtomicUsize>,
}

#[taskthread]
impl Worker {
    #[cfg(any())]
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        unreachable!("configured out")
    }

    #[cfg(all())]
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.start_task(Self::COUNT);
        Ok(())
    }

    #[cfg(any())]
    #[down]
    async fn never(&mut self, _ctx: &mut Ctx<Self>, _n: Never) -> Result<()> {
        Ok(())
    }

    #[down]
    #[cfg(any())]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        unreachable!("configured out")
    }

    #[cfg(not(any()))]
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        ctx.start_task(Self::STOP);
        Ok(())
    }

    #[cfg(any())]
    #[rescheduling(manual)]
    async fn skipped(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        unreachable!("configured out")
    }

    #[rescheduling(manual)]
    async fn count(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(Reschedule::Done)
    }

    #[cfg(any())]
    #[rescheduling(manual)]
    async fn also_skipped(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        unreachable!("configured out")
    }

    #[rescheduling(manual)]
    async fn stop(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Stop)
    }

    #[cfg(any())]
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        unreachable!("configured out")
    }
}

/// A thread whose only task is configured out: it keeps no timetable, and runs.
struct Plain;

#[taskthread]
impl Plain {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.stop();
        Ok(())
    }

    #[cfg(any())]
    #[rescheduling(every = "1ms")]
    async fn skipped(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        unreachable!("configured out")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    use taskthread::__private::{InTask, NoTasks};
    assert_eq!(
        TypeId::of::<<Worker as Thread>::Timetable>(),
        TypeId::of::<InTask>()
    );
    assert_eq!(
        TypeId::of::<<Plain as Thread>::Timetable>(),
        TypeId::of::<NoTasks>()
    );
    assert!(<Plain as Thread>::TASKS.is_empty());
    let plain = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        taskthread::spawn(Plain).join(),
    )
    .await;
    assert!(matches!(plain, Ok(Exit::Completed)));

    assert_eq!(<Worker as Thread>::DOWN_TYPES, &["Ping"]);
    let names: Vec<_> = <Worker as Thread>::TASKS.iter().map(|t| t.name).collect();
    assert_eq!(names, ["count", "stop"]);
    let worker = Worker::default();
    let runs = Arc::clone(&worker.runs);
    let root = taskthread::spawn(worker);
    root.send(Ping).await.unwrap();
    let exit = tokio::time::timeout(std::time::Duration::from_secs(10), root.join()).await;
    assert!(matches!(exit, Ok(Exit::Completed)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
