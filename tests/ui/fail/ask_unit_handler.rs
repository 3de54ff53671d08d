use taskthread::prelude::*;

struct Ping;

struct Child;

#[taskthread]
impl Child {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        let _answer = child.ask(Ping).await?;
        Ok(())
    }
}

fn main() {}
