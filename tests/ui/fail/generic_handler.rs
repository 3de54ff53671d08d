use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn any<M: Send + 'static>(&mut self, _ctx: &mut Ctx<Self>, _m: M) -> Result<()> {
        Ok(())
    }
}

fn main() {}
