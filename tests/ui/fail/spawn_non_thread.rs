use taskthread::prelude::*;

struct Plain;

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Plain);
        Ok(())
    }
}

fn main() {}
