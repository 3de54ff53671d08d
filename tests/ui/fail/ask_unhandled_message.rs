use taskthread::prelude::*;

struct Ping;
struct Pong;

struct Child;

#[taskthread]
impl Child {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<u32> {
        Ok(1)
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        let _: u32 = child.ask(Pong).await?;
        Ok(())
    }
}

// Each handle reports a message it cannot take once, at the call.
async fn handles() {
    let root = taskthread::spawn(Child);
    let _: u32 = root.ask(Pong).await.unwrap();
    let background = taskthread::sync::background(Child);
    background.send_async(Pong).await.unwrap();
    let _: u32 = background.ask_async(Pong).await.unwrap();
}

fn main() {
    let _ = handles();
}
