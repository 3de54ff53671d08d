use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<u32> {
        Ok(0)
    }
}

fn main() {}
