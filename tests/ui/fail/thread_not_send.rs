use std::rc::Rc;

use taskthread::prelude::*;

struct Worker {
    cache: Rc<String>,
}

#[taskthread]
impl Worker {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        let _ = &self.cache;
        Ok(())
    }
}

fn main() {}
