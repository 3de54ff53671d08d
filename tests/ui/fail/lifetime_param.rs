use taskthread::prelude::*;

struct Worker<'a> {
    name: &'a str,
}

#[taskthread]
impl<'a> Worker<'a> {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        let _ = self.name;
        Ok(())
    }
}

fn main() {}
