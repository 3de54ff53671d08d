use taskthread::prelude::*;

struct Frame;

struct Child;

#[taskthread(up = Frame)]
impl Child {}

struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Child);
        Ok(())
    }
}

fn main() {}
