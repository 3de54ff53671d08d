use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread]
impl Worker {
    #[down(capacity = 4)]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

fn main() {}
