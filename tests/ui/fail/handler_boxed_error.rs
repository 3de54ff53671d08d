use taskthread::prelude::*;

struct Line;

struct Worker;

#[taskthread]
impl Worker {
    #[stream]
    async fn line(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _l: Line,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

fn main() {}
