use taskthread::prelude::*;

struct Ping;
struct Frame;

struct Worker;

#[taskthread]
impl Worker {
    #[donw]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[upp]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<()> {
        Ok(())
    }

    #[reschedulling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Worker).send(Ping).await?;
        Ok(())
    }
}

fn main() {}
