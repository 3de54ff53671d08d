use std::rc::Rc;

use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn shared(&mut self, _ctx: &mut Ctx<Self>, _msg: Rc<String>) -> Result<()> {
        Ok(())
    }

    // The thread's other handlers add no error.
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }

    #[stream]
    async fn item(&mut self, _ctx: &mut Ctx<Self>, _i: u8) -> Result<()> {
        Ok(())
    }
}

fn main() {}
