//! Two thread types of one name, from two modules, implemented side by side.

use taskthread::prelude::*;

mod a {
    #[derive(Default)]
    pub struct Worker;
}

mod b {
    #[derive(Default)]
    pub struct Worker;
}

struct Ping;

#[taskthread]
impl a::Worker {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

#[taskthread(name = "other_worker")]
impl b::Worker {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Boss;

#[taskthread]
impl Boss {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(a::Worker).send(Ping).await?;
        ctx.spawn(b::Worker).send(Ping).await?;
        Ok(())
    }
}

fn main() {}
