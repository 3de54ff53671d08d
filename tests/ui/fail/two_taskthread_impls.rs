use taskthread::prelude::*;

struct Frame;
struct Ping;
struct Pong;

struct Worker;

#[taskthread(up = Frame)]
impl Worker {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        ctx.up(Frame).await?;
        Ok(())
    }
}

#[taskthread(up = Frame)]
impl Worker {
    #[down]
    async fn pong(&mut self, _ctx: &mut Ctx<Self>, _p: Pong) -> Result<()> {
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}


fn main() {}
