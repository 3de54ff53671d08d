use taskthread::prelude::*;

struct Ping;
// No thread handles `Pong`: sending `&Pong` is reported as a reference sent, not as a
// missing handler for `&Pong`, which the macro would reject.
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
        let child = ctx.spawn(Child);
        let pong = Pong;
        child.send(&pong).await?;
        let _ = child.ask(&pong).await?;
        Ok(())
    }
}

fn main() {}
