// `#[taskthread(remote)]`: an up type that is not serialisable is named in the error.
use taskthread::prelude::*;

struct Frame(Vec<u8>);

struct Worker;

#[taskthread(remote, up = Frame)]
impl Worker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Frame(Vec::new())).await?;
        Ok(())
    }
}

fn main() {}
