use taskthread::prelude::*;

struct Frame;

struct Master;

#[taskthread]
impl Master {
    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _f: Frame, _from: ChildId) -> Result<()> {
        Ok(())
    }
}

fn main() {}
