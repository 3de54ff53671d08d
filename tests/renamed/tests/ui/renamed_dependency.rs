//! `tt` is taskthread, renamed in Cargo.toml; no `crate = "tt"` is needed.

use tt::prelude::*;

struct Ping;
struct Count;

#[derive(Default)]
struct Worker {
    pings: u32,
}

#[taskthread]
impl Worker {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        self.pings += 1;
        ctx.start_task(Self::REPORT);
        Ok(())
    }

    #[down]
    async fn count(&mut self, _ctx: &mut Ctx<Self>, _c: Count) -> Result<u32> {
        Ok(self.pings)
    }

    #[rescheduling(manual)]
    async fn report(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Done)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = tt::spawn(Worker::default());
    root.send(Ping).await.unwrap();
    assert_eq!(root.ask(Count).await.unwrap(), 1);
    root.stop();
    root.join().await;
}
