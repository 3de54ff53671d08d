use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
// The framework's type under another name is still found by its type.
use taskthread::ChildRestart as Restarted;

#[derive(Default)]
struct Flaky;

#[taskthread]
impl Flaky {
    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _n: u32) -> Result<()> {
        Err(Error::msg("flaky"))
    }
}

#[derive(Default)]
struct Keeper {
    restarts: u32,
}

#[taskthread]
impl Keeper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
        let flaky = ctx.supervise(Flaky::default, policy);
        flaky.send(1u32).await?;
        Ok(())
    }

    #[up]
    async fn restarted(&mut self, ctx: &mut Ctx<Self>, from: ChildId, restart: ChildRestart) -> Result<()> {
        let _ = (from, restart.life, restart.exit, restart.message, restart.backoff);
        self.restarts += 1;
        ctx.stop();
        Ok(())
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) -> Result<()> {
        if exit.escalated {
            return exit.exit.into_result();
        }
        Ok(())
    }
}

/// Handles restarts under another name for the type, and has no exit handler.
struct Renamed;

#[taskthread]
impl Renamed {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.supervise(|| Flaky, RestartPolicy::on_failure());
        Ok(())
    }

    #[up]
    async fn restarted(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _r: Restarted) -> Result<()> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let keeper = taskthread::spawn(Keeper::default());
    assert!(matches!(keeper.join().await, Exit::Completed));
    let renamed = taskthread::spawn(Renamed);
    renamed.stop();
    renamed.join().await;
}
