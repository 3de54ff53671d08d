use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[rescheduling(period = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
