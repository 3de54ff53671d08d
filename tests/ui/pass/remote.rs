// `#[taskthread(remote)]` with tells, asks, an up type, generics-free messages under
// `#[cfg]`: every message crosses the wire.
use taskthread::prelude::*;
use taskthread::proxy::Remote;

#[derive(serde::Serialize, serde::Deserialize)]
struct Job(u32);

#[derive(serde::Serialize, serde::Deserialize)]
struct Count;

#[derive(serde::Serialize, serde::Deserialize)]
enum Report {
    Done(u32),
}

struct Worker {
    done: u32,
}

#[taskthread(remote, up = Report, capacity = 8)]
impl Worker {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, Job(n): Job) -> Result<()> {
        self.done += 1;
        ctx.up(Report::Done(n)).await?;
        Ok(())
    }

    #[down]
    async fn count(&mut self, _ctx: &mut Ctx<Self>, _c: Count) -> Result<u32> {
        Ok(self.done)
    }

    #[cfg(any())]
    #[down]
    async fn never(&mut self, _ctx: &mut Ctx<Self>, _n: u64) {}
}

/// A thread that sends nothing up can be remote too.
struct Quiet;

#[taskthread(remote)]
impl Quiet {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _j: Job) {}
}

fn remote<T: Remote>() {}

fn main() {
    remote::<Worker>();
    remote::<Quiet>();
}
