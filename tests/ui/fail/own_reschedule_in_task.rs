use taskthread::prelude::*;

mod mine {
    pub enum Reschedule {
        Again,
    }
}

struct Worker;

#[taskthread]
impl Worker {
    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<mine::Reschedule> {
        Ok(mine::Reschedule::Again)
    }
}

fn main() {}
