//! `ctx.attach`, `ctx.spawn_task` and `ctx.spawn_blocking`: results reach `#[stream]`
//! handlers by type, the loop is never blocked while waiting, and everything ends with the
//! thread.

use std::time::Duration;

use taskthread::prelude::*;

#[derive(Debug, Clone)]
struct Line(String);
#[derive(Debug)]
struct Fetched(u32);
#[derive(Debug)]
struct Crunched(u64);
#[derive(Debug)]
struct Seen;
#[derive(Debug)]
struct Start;

#[derive(Default)]
struct Collector {
    lines: Vec<String>,
    fetched: Vec<u32>,
    crunched: Vec<u64>,
}

#[taskthread]
impl Collector {
    #[down]
    async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<()> {
        let lines = ["a", "b", "c"].map(|s| Line(s.to_owned()));
        ctx.attach(tokio_stream::iter(lines));
        // A stream that never ends: dropped when the thread stops.
        ctx.attach(tokio_stream::pending::<Line>());
        ctx.spawn_task(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Fetched(7)
        });
        ctx.spawn_blocking(|| Crunched((1..=10u64).product()));
        Ok(())
    }

    #[stream]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, line: Line) -> Result<()> {
        self.lines.push(line.0);
        Ok(())
    }

    #[stream]
    async fn fetched(&mut self, _ctx: &mut Ctx<Self>, f: Fetched) -> Result<()> {
        self.fetched.push(f.0);
        Ok(())
    }

    #[stream]
    async fn crunched(&mut self, _ctx: &mut Ctx<Self>, c: Crunched) {
        self.crunched.push(c.0);
    }

    #[down]
    async fn seen(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _q: Seen,
    ) -> Result<(Vec<String>, Vec<u32>, Vec<u64>)> {
        Ok((
            self.lines.clone(),
            self.fetched.clone(),
            self.crunched.clone(),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn items_reach_stream_handlers_by_type_without_blocking_the_loop() {
    let start = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let root = taskthread::spawn(Collector::default());
    root.send(Start).await.unwrap();
    // Wait for the blocking job and the stream without sleeping past the 10 s task.
    let mut seen = root.ask(Seen).await.unwrap();
    while seen.0.len() < 3 || seen.2.is_empty() {
        tokio::task::yield_now().await;
        seen = root.ask(Seen).await.unwrap();
    }
    // The loop answered while the 10 s task was still pending.
    assert_eq!(seen.0, ["a", "b", "c"]);
    assert!(seen.1.is_empty());
    assert_eq!(seen.2, [3_628_800]);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(root.ask(Seen).await.unwrap().1, [7]);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        start,
        "the pending stream and every job ended with the thread"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopping_thread_waits_for_its_spawned_tasks_and_handles_their_results() {
    let root = taskthread::spawn(Collector::default());
    root.send(Start).await.unwrap();
    let addr = root.child_ref();
    root.stop();
    let started = tokio::time::Instant::now();
    root.join().await;
    // The 10 s task was waited for, not dropped half-way.
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert!(addr.is_closed());
}

struct PanickyJob;

fn explode() {
    panic!("job exploded");
}

#[taskthread]
impl PanickyJob {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_task(async { explode() });
        Ok(())
    }

    #[stream]
    async fn never(&mut self, _ctx: &mut Ctx<Self>, _x: ()) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_fails_its_thread_as_panicked() {
    let root = taskthread::spawn(PanickyJob);
    match root.join().await {
        Exit::Panicked(m) => assert_eq!(m, "job exploded"),
        other => panic!("expected panicked, got {other}"),
    }
}

/// Handles numbers from an endless stream slowly, and stops itself after ten.
struct Slowpoke {
    produced: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handled: u64,
}

#[taskthread(up = u64)]
impl Slowpoke {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let produced = self.produced.clone();
        ctx.attach(tokio_stream::StreamExt::map(
            tokio_stream::iter(0u64..),
            move |n| {
                produced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                n
            },
        ));
        Ok(())
    }

    #[stream]
    async fn number(&mut self, ctx: &mut Ctx<Self>, _n: u64) -> Result<()> {
        self.handled += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.handled == 10 {
            ctx.stop();
        }
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(self.handled).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn every_item_a_stream_produced_is_handled_even_when_the_thread_stops() {
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut root = taskthread::spawn_with(
        Slowpoke {
            produced: produced.clone(),
            handled: 0,
        },
        ChildOptions::new().capacity(2),
    );
    let handled = root.recv().await.expect("the thread reports");
    assert!(matches!(root.join().await, Exit::Completed));
    // The items queued when the stop began are handled too; none was read and dropped.
    assert!(handled >= 10);
    assert_eq!(produced.load(std::sync::atomic::Ordering::SeqCst), handled);
}

/// Attaches a stream that never yields, and takes numbers from a child.
#[derive(Default)]
struct Listener {
    got: u32,
}

/// Sends three numbers UP from `enter`.
struct Talker;

#[taskthread(up = u32)]
impl Talker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for n in 0..3 {
            ctx.up(n).await?;
        }
        Ok(())
    }
}

#[taskthread(up = u32)]
impl Listener {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.attach(tokio_stream::pending::<Seen>());
        ctx.spawn(Talker);
        Ok(())
    }

    #[stream]
    async fn seen(&mut self, _ctx: &mut Ctx<Self>, _s: Seen) -> Result<()> {
        Ok(())
    }

    #[up]
    async fn number(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) -> Result<()> {
        self.got += 1;
        if self.got == 3 {
            ctx.up(self.got).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_attached_stream_takes_no_room_from_children() {
    // A queue of one: an idle stream holding its slot would block the child forever.
    let mut root = taskthread::spawn_with(Listener::default(), ChildOptions::new().capacity(1));
    let got = tokio::time::timeout(Duration::from_secs(60), root.recv()).await;
    assert_eq!(got.expect("the child's messages got through"), Some(3));
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}
