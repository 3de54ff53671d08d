use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn restarted(&mut self, _ctx: &mut Ctx<Self>, _restart: ChildRestart) -> Result<()> {
        Ok(())
    }
}

fn main() {}
