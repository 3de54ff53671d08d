use std::time::Duration;

use taskthread::prelude::*;

struct Poke;

#[derive(Default)]
struct Clock {
    ticks: u64,
}

#[taskthread]
impl Clock {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.start_task(Self::ON_DEMAND);
        Ok(())
    }

    #[down]
    async fn poke(&mut self, ctx: &mut Ctx<Self>, _p: Poke) -> Result<()> {
        ctx.reschedule_task(Self::TICK, Duration::from_millis(10));
        ctx.cancel_task(Self::WARM_UP);
        let _ = ctx.is_task_scheduled(Self::TICK);
        let _ = ctx.task_runs(Self::BURSTY);
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.ticks += 1;
        Ok(Reschedule::Again)
    }

    #[rescheduling(every = "250ms", delay = "1.5s", missed = "burst")]
    async fn bursty(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }

    #[rescheduling(every = "1m", missed = "delay")]
    async fn slow(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        Reschedule::Again
    }

    #[rescheduling(delay = "100ms")]
    async fn warm_up(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Done)
    }

    #[rescheduling(manual)]
    async fn on_demand(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::After(Duration::from_secs(2)))
    }

    #[rescheduling]
    async fn once(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule, std::io::Error> {
        Ok(Reschedule::Stop)
    }
}

fn main() {}
