use taskthread::prelude::*;

struct Frame;
struct Middle;

#[taskthread(up = Frame, pass_up)]
impl Middle {
    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        ctx.up(frame).await?;
        Ok(())
    }
}

fn main() {}
