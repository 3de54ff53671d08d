//! A soak test, ignored by default: for a minute (`SOAK_SECS` to change it), on the
//! multi-thread runtime, round after round of thousands of threads spawned, messaged,
//! panicked, failed, restarted and stopped. Afterwards no task of any tree is alive and the
//! resident memory is back to where it was after the first round (within a margin for the
//! allocator's caches).
//!
//! Run it with:
//!
//! ```sh
//! cargo test --release -p taskthread-tests --test it soak -- --ignored --nocapture
//! SOAK_SECS=600 cargo test --release -p taskthread-tests --test it soak -- --ignored --nocapture
//! ```
//!
//! It is the binary's only ignored test, so `--ignored` runs it alone: the resident memory
//! it measures is the process's.

use std::time::{Duration, Instant};

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;

/// Children per round.
const CHILDREN: u32 = 4_000;
/// Messages sent to each child per round.
const MESSAGES: u32 = 20;
/// How much the resident memory may grow over the run: allocator caches, not leaks.
const MARGIN: usize = 32 << 20;

#[derive(Debug, Clone, Copy)]
enum Poke {
    Count,
    Panic,
    Fail,
}

#[derive(Default)]
struct Leaf {
    count: u32,
}

#[taskthread(up = u32)]
impl Leaf {
    #[down]
    async fn poke(&mut self, ctx: &mut Ctx<Self>, poke: Poke) -> Result<()> {
        match poke {
            Poke::Count => {
                self.count += 1;
                if self.count.is_multiple_of(10) {
                    ctx.up(self.count).await?;
                }
                Ok(())
            }
            Poke::Panic => panic!("soak panic"),
            Poke::Fail => Err(Error::msg("soak failure")),
        }
    }
}

/// Spawn this many leaves.
struct Grow(u32);
/// Send every leaf its messages for this round.
struct Pound(u32);

#[derive(Default)]
struct Hub {
    leaves: Vec<ChildRef<Leaf>>,
    ups: u64,
    exits: u64,
}

#[taskthread(up = (u64, u64))]
impl Hub {
    #[down]
    async fn grow(&mut self, ctx: &mut Ctx<Self>, Grow(n): Grow) -> Result<()> {
        for i in 0..n {
            let leaf = if i % 10 == 0 {
                ctx.supervise(
                    Leaf::default,
                    RestartPolicy::on_failure().max_restarts(100, Duration::from_secs(60)),
                )
            } else {
                ctx.spawn(Leaf::default())
            };
            self.leaves.push(leaf);
        }
        Ok(())
    }

    #[down]
    async fn pound(&mut self, ctx: &mut Ctx<Self>, Pound(round): Pound) -> Result<()> {
        for (i, leaf) in self.leaves.iter().enumerate() {
            for _ in 0..MESSAGES {
                // A leaf may have ended (panicked, failed): the message comes back.
                let _ = leaf.send(Poke::Count).await;
            }
            match (i as u32 + round) % 50 {
                0 => {
                    let _ = leaf.send(Poke::Panic).await;
                }
                1 => {
                    let _ = leaf.send(Poke::Fail).await;
                }
                2 => {
                    ctx.stop_child(leaf.id());
                }
                _ => {}
            }
        }
        Ok(())
    }

    #[up]
    async fn up(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) -> Result<()> {
        self.ups += 1;
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        _exit: ChildExit,
    ) -> Result<()> {
        self.exits += 1;
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up((self.ups, self.exits)).await?;
        Ok(())
    }
}

fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

async fn round(round: u32) -> (u64, u64) {
    let mut hub = taskthread::spawn(Hub::default());
    hub.send(Grow(CHILDREN)).await.unwrap();
    hub.send(Pound(round)).await.unwrap();
    hub.stop();
    let summary = hub.recv().await.expect("the hub reports");
    assert!(matches!(hub.join().await, Exit::Stopped));
    summary
}

#[test]
#[ignore = "a minute long: run with --ignored (see the file header)"]
fn soak() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    crate::panics::hide_expected_panics("soak panic"); // thousands of expected panics
    runtime.block_on(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        round(0).await;
        let start_memory = resident();
        let started = Instant::now();
        let mut rounds = 1;
        while started.elapsed() < Duration::from_secs(secs) {
            let (ups, exits) = round(rounds).await;
            assert_eq!(exits, u64::from(CHILDREN), "every leaf ends once and is heard once");
            assert!(ups > 0);
            rounds += 1;
            if rounds % 100 == 0 {
                eprintln!(
                    "soak: {rounds} rounds, {:.0} s, resident {} MiB",
                    started.elapsed().as_secs_f64(),
                    resident() >> 20
                );
            }
        }
        for _ in 0..1000 {
            if tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
                == baseline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            baseline
        );
        let end_memory = resident();
        eprintln!(
            "soak: {rounds} rounds of {CHILDREN} threads; resident {} MiB after the first, {} MiB at the end",
            start_memory >> 20,
            end_memory >> 20
        );
        assert!(
            end_memory <= start_memory + MARGIN,
            "resident memory grew from {start_memory} to {end_memory} bytes"
        );
    });
}
