use taskthread::prelude::*;

struct Ping;
struct Question;

struct Child;

#[taskthread]
impl Child {
    #[down]
    fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn question(&self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u32> {
        Ok(1)
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }

    #[rescheduling(manual)]
    async fn later(&mut self, _ctx: &mut Ctx<Self>) {}
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        child.send(Ping).await?;
        let _answer: u32 = child.ask(Question).await?;
        Ok(())
    }
}

impl Child {
    fn start(ctx: &mut Ctx<Self>) {
        ctx.start_task(Self::TICK);
        ctx.start_task(Self::LATER);
    }
}

fn main() {}
