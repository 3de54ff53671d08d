use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _exit: ChildExit) -> Result<()> {
        Ok(())
    }
}

fn main() {}
