use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.attach(tokio_stream::iter(vec![1u32, 2, 3]));
        Ok(())
    }
}

fn main() {}
