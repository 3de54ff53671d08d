use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[rescheduling(every = "5 parsecs")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
