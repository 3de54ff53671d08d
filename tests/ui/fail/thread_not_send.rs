use std::rc::Rc;

use taskthread::prelude::*;

struct Ping;

struct Worker {
    cache: Rc<String>,
}

#[taskthread]
impl Worker {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        let _ = &self.cache;
        Ok(())
    }

    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<u32> {
        Ok(self.cache.len() as u32)
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

// The one error is on `Worker`'s impl: its handlers, and the code that spawns it and
// sends to it, add none.
struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let worker = ctx.spawn(Worker { cache: Rc::new(String::new()) });
        let _len: u32 = worker.ask(Ping).await?;
        Ok(())
    }
}

fn main() {}
