use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[rescheduling(delay = "1s", missed = "burst")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
