use taskthread::prelude::*;

struct Question;

struct Child;

#[taskthread]
impl Child {
    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> u32 {
        1
    }
}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Child).send(Question).await?;
        Ok(())
    }
}

fn main() {}
