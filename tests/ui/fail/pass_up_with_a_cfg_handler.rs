use taskthread::prelude::*;

struct Frame;
struct Middle;

#[taskthread(up = Frame, pass_up)]
impl Middle {
    #[cfg(not(any()))]
    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _frame: Frame) {}
}

fn main() {}
