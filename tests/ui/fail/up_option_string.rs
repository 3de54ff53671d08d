use taskthread::prelude::*;

struct Frame;

struct Reader;

#[taskthread(up = "Frame")]
impl Reader {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Frame).await?;
        Ok(())
    }
}

fn main() {}
