use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
