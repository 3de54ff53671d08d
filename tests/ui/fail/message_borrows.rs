use std::borrow::Cow;

use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn text<'a>(&mut self, _ctx: &mut Ctx<Self>, _t: Cow<'a, str>) -> Result<()> {
        Ok(())
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Worker).send(Cow::Borrowed("static")).await?;
        Ok(())
    }
}

fn main() {}
