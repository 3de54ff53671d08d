//! Handlers written with `self: &mut Self`, explicit lifetimes and `mut` bindings.

use taskthread::prelude::*;

struct Ping;
struct Question;
struct Frame;

#[derive(Default)]
struct Child {
    pings: u32,
}

#[taskthread(up = Frame)]
impl Child {
    async fn enter(self: &mut Self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn ping<'a>(&'a mut self, ctx: &'a mut Ctx<Self>, _p: Ping) -> Result<()> {
        self.pings += 1;
        ctx.up(Frame).await?;
        Ok(())
    }

    #[down]
    async fn question<'a, 'b>(self: &'a mut Self, _ctx: &'b mut Ctx<Self>, _q: Question) -> Result<u32> {
        Ok(self.pings)
    }

    #[stream]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, mut line: String) -> Result<()> {
        line.push('!');
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick<'t>(self: &'t mut Child, _ctx: &'t mut Ctx<Child>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

#[derive(Default)]
struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child::default());
        child.send(Ping).await?;
        assert_eq!(child.ask(Question).await?, 1);
        Ok(())
    }

    #[up]
    async fn frame<'s>(self: &'s mut Self, ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<()> {
        ctx.stop();
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = taskthread::spawn(Parent);
    assert!(matches!(root.join().await, Exit::Completed));
}
