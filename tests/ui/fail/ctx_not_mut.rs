use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn ping(&mut self, _ctx: &Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

fn main() {}
