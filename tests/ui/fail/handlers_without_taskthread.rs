use taskthread::prelude::*;

struct Ping;

struct Worker;

impl Worker {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

fn main() {}
