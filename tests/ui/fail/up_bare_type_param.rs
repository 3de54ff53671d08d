use taskthread::prelude::*;

struct Boss<T> {
    last: Option<T>,
}

#[taskthread]
impl<T> Boss<T> {
    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, job: T) -> Result<()> {
        self.last = Some(job);
        Ok(())
    }
}

fn main() {}
