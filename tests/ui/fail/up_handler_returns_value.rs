use taskthread::prelude::*;

struct Frame;

struct Master;

#[taskthread]
impl Master {
    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<u32> {
        Ok(1)
    }
}

fn main() {}
