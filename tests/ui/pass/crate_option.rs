mod reexport {
    pub use ::taskthread;
}

use reexport::taskthread::prelude::*;

struct Ping;

#[derive(Default)]
struct Worker;

#[taskthread(crate = "reexport::taskthread")]
impl Worker {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
