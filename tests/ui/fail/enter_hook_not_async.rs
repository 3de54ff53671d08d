use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Ok(())
    }
}

fn main() {}
