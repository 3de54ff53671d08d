//! Smoke test: a parent, a child, DOWN, UP and a snapshot.

use taskthread::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct Packet(Vec<u8>);
#[derive(Debug, Clone, PartialEq)]
struct Frame(usize);
struct Count;

#[derive(Default)]
struct Proc {
    n: usize,
}

#[taskthread(up = Frame)]
impl Proc {
    #[down]
    async fn packet(&mut self, ctx: &mut Ctx<Self>, p: Packet) -> Result<()> {
        self.n += 1;
        ctx.up(Frame(p.0.len())).await?;
        Ok(())
    }
    #[down]
    async fn count(&mut self, _ctx: &mut Ctx<Self>, _q: Count) -> Result<usize> {
        Ok(self.n)
    }
}

#[derive(Default)]
struct Master {
    child: Option<ChildRef<Proc>>,
    got: Vec<usize>,
}

#[taskthread(up = Frame)]
impl Master {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.child = Some(ctx.spawn(Proc::default()));
        Ok(())
    }
    #[down]
    async fn packet(&mut self, _ctx: &mut Ctx<Self>, p: Packet) -> Result<()> {
        self.child.as_ref().unwrap().send(p).await?;
        Ok(())
    }
    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, f: Frame) -> Result<()> {
        self.got.push(f.0);
        ctx.up(f).await?;
        Ok(())
    }
    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

#[tokio::test(start_paused = true)]
async fn smoke() {
    let mut h = taskthread::spawn(Master::default());
    h.send(Packet(vec![1, 2, 3])).await.unwrap();
    assert_eq!(h.recv().await, Some(Frame(3)));
    println!("{}", h.snapshot());
    h.stop();
    let exit = h.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}
