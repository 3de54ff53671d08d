use taskthread::prelude::*;

struct Add(u64);
struct Total;

#[derive(Default)]
struct Counter {
    sum: u64,
}

#[taskthread]
impl Counter {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, add: Add) -> Result<()> {
        self.sum += add.0;
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
        Ok(self.sum)
    }
}

async fn drive(counter: ChildRef<Counter>) -> Result<u64> {
    counter.send(Add(2)).await?;
    counter.try_send(Add(3))?;
    Ok(counter.ask(Total).await?)
}

fn main() {
    let _ = drive;
}
