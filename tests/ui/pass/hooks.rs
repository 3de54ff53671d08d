use taskthread::prelude::*;

#[derive(Default)]
struct Quiet;

#[taskthread]
impl Quiet {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Ok(())
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {}
}

#[derive(Default)]
struct Careful;

#[taskthread]
impl Careful {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) {}

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Ok(())
    }
}

fn main() {}
