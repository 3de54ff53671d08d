use taskthread::prelude::*;

struct Worker<T> {
    last: Option<T>,
}

#[taskthread(up = T)]
impl<T: Clone> Worker<T> {
    #[down]
    async fn item(&mut self, ctx: &mut Ctx<Self>, item: T) -> Result<()> {
        self.last = Some(item.clone());
        ctx.up(item).await?;
        Ok(())
    }
}

#[derive(Default)]
struct Boss;

#[taskthread]
impl Boss {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let worker = ctx.spawn(Worker::<String> { last: None });
        worker.send(String::from("job")).await?;
        Ok(())
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _job: String) -> Result<()> {
        Ok(())
    }
}

fn main() {}
