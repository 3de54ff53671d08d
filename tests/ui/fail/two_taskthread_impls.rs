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
    async fn pong(&mut self, ctx: &mut Ctx<Self>, _p: Pong) -> Result<()> {
        ctx.try_up(Frame)?;
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

// Every use of the type as a thread, and of its up type, compiles as if it had one impl.
struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let worker = ctx.spawn(Worker);
        worker.send(Ping).await?;
        worker.send(Pong).await?;
        ctx.cancel_task(Self::SWEEP);
        Ok(())
    }

    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<()> {
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn sweep(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

fn main() {}
