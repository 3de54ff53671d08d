use taskthread::prelude::*;

#[derive(Clone)]
struct Ping;
#[derive(Clone)]
struct Pong;

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
        ctx.spawn(Child);
        ctx.broadcast::<Child, _>(Pong).await;
        Ok(())
    }
}

fn main() {}
