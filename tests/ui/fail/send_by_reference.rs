use taskthread::prelude::*;

struct Ping;
struct Question;

struct Child;

#[taskthread]
impl Child {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u32> {
        Ok(1)
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        let ping = Ping;
        child.send(&ping).await?;
        let question = Question;
        let _ = child.ask(&question).await?;
        Ok(())
    }
}

fn main() {}
