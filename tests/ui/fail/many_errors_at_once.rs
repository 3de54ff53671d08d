use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread(capacity = 0, name = "a/b")]
impl Worker {
    #[down]
    fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[rescheduling(every = "soon", missed = "never")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
