use std::rc::Rc;

use taskthread::prelude::*;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn shared(&mut self, _ctx: &mut Ctx<Self>, _msg: Rc<String>) -> Result<()> {
        Ok(())
    }
}

fn main() {}
