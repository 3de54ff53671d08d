use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn ping(self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

fn main() {}
