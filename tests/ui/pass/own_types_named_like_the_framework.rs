//! A user's own types named `ChildExit` and `Reschedule` are ordinary messages and answers;
//! the framework's `ChildExit` still arrives at the handler that takes it, even renamed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use taskthread::prelude::*;

mod mine {
    /// A message a child sends up when one of its own jobs ends.
    pub struct ChildExit {
        pub job: u32,
    }

    /// An answer about a timetable.
    pub struct Reschedule {
        pub minutes: u32,
    }
}

type Ended = taskthread::ChildExit;

struct Plan;

#[derive(Default)]
struct Child;

#[taskthread(up = mine::ChildExit)]
impl Child {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(mine::ChildExit { job: 7 }).await?;
        Ok(())
    }

    #[down]
    async fn plan(&mut self, _ctx: &mut Ctx<Self>, _p: Plan) -> Result<mine::Reschedule> {
        Ok(mine::Reschedule { minutes: 5 })
    }

    #[down]
    async fn stop_now(&mut self, ctx: &mut Ctx<Self>, _e: mine::ChildExit) -> Result<()> {
        ctx.stop();
        Ok(())
    }
}

#[derive(Default)]
struct Parent {
    jobs: Arc<AtomicUsize>,
    exits: Arc<AtomicUsize>,
    child: Option<ChildRef<Child>>,
}

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        assert_eq!(child.ask(Plan).await?.minutes, 5);
        self.child = Some(child);
        Ok(())
    }

    #[up]
    async fn job_done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: mine::ChildExit) -> Result<()> {
        assert_eq!(exit.job, 7);
        self.jobs.fetch_add(1, Ordering::SeqCst);
        self.child.as_ref().unwrap().send(mine::ChildExit { job: 0 }).await?;
        Ok(())
    }

    #[up]
    async fn child_ended(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: Ended) -> Result<()> {
        assert_eq!(exit.type_name, "Child");
        self.exits.fetch_add(1, Ordering::SeqCst);
        ctx.stop();
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let parent = Parent::default();
    let (jobs, exits) = (Arc::clone(&parent.jobs), Arc::clone(&parent.exits));
    let root = taskthread::spawn(parent);
    let exit = tokio::time::timeout(std::time::Duration::from_secs(10), root.join()).await;
    assert!(matches!(exit, Ok(Exit::Completed)));
    assert_eq!(jobs.load(Ordering::SeqCst), 1);
    assert_eq!(exits.load(Ordering::SeqCst), 1);
}
