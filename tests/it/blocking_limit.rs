//! `ctx.spawn_blocking` runs a bounded number of jobs of one thread at once: the others wait
//! their turn without holding up the loop, and are still handled at a graceful
//! stop. The jobs wait on a gate the test opens, so the high-water mark of jobs running at
//! once is exact, not a matter of timing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use taskthread::DEFAULT_BLOCKING_LIMIT;
use taskthread::prelude::*;

/// Blocking jobs wait on it until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// What the jobs share with the test.
#[derive(Default)]
struct Board {
    gate: Gate,
    running: AtomicUsize,
    started: AtomicUsize,
    high_water: AtomicUsize,
    /// How many results the thread had handled when its `exit` hook ran.
    handled_at_exit: AtomicUsize,
}

struct Start(usize);
struct Done(usize);
struct Handled;

/// Starts `n` blocking jobs that wait on the gate, and counts their results.
struct Worker {
    board: Arc<Board>,
    handled: Vec<usize>,
    panic_in: Option<usize>,
}

#[taskthread]
impl Worker {
    #[down]
    async fn start(&mut self, ctx: &mut Ctx<Self>, Start(n): Start) -> Result<()> {
        for job in 0..n {
            let board = Arc::clone(&self.board);
            let panics = self.panic_in == Some(job);
            ctx.spawn_blocking(move || {
                let now = board.running.fetch_add(1, Ordering::SeqCst) + 1;
                board.started.fetch_add(1, Ordering::SeqCst);
                board.high_water.fetch_max(now, Ordering::SeqCst);
                board.gate.wait();
                board.running.fetch_sub(1, Ordering::SeqCst);
                assert!(!panics, "job {job} exploded");
                Done(job)
            });
        }
        Ok(())
    }

    #[stream]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, Done(job): Done) {
        self.handled.push(job);
    }

    #[down]
    async fn handled(&mut self, _ctx: &mut Ctx<Self>, _q: Handled) -> Result<usize> {
        Ok(self.handled.len())
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        self.board
            .handled_at_exit
            .store(self.handled.len(), Ordering::SeqCst);
    }
}

fn worker(board: &Arc<Board>) -> Worker {
    Worker {
        board: Arc::clone(board),
        handled: Vec::new(),
        panic_in: None,
    }
}

/// Yields until `board` has `n` jobs running.
async fn until_running(board: &Board, n: usize) {
    while board.running.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

/// Yields until the thread has handled `n` results.
async fn until_handled(root: &Handle<Worker>, n: usize) {
    while root.ask(Handled).await.unwrap() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_past_the_limit_wait_their_turn_without_blocking_the_loop() {
    let board = Arc::new(Board::default());
    let root = taskthread::spawn_with(worker(&board), ChildOptions::new().blocking_limit(3));
    root.send(Start(10)).await.unwrap();
    until_running(&board, 3).await;
    // The loop still answers while every slot is taken and seven jobs wait.
    assert_eq!(root.ask(Handled).await.unwrap(), 0);
    assert_eq!(board.started.load(Ordering::SeqCst), 3);
    board.gate.open();
    until_handled(&root, 10).await;
    assert_eq!(board.high_water.load(Ordering::SeqCst), 3);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn the_default_limit_applies_to_every_thread() {
    let board = Arc::new(Board::default());
    let root = taskthread::spawn(worker(&board));
    root.send(Start(DEFAULT_BLOCKING_LIMIT + 5)).await.unwrap();
    until_running(&board, DEFAULT_BLOCKING_LIMIT).await;
    board.gate.open();
    until_handled(&root, DEFAULT_BLOCKING_LIMIT + 5).await;
    assert_eq!(
        board.high_water.load(Ordering::SeqCst),
        DEFAULT_BLOCKING_LIMIT
    );
    root.stop();
    root.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_waits_for_queued_jobs_and_handles_their_results() {
    let board = Arc::new(Board::default());
    let root = taskthread::spawn_with(worker(&board), ChildOptions::new().blocking_limit(2));
    root.send(Start(6)).await.unwrap();
    until_running(&board, 2).await;
    root.stop();
    board.gate.open();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(board.started.load(Ordering::SeqCst), 6);
    assert_eq!(
        board.handled_at_exit.load(Ordering::SeqCst),
        6,
        "every result was handled before `exit`"
    );
    assert_eq!(board.high_water.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_queued_job_fails_the_thread_with_its_message() {
    crate::panics::hide_expected_panics("exploded");
    let board = Arc::new(Board::default());
    let root = taskthread::spawn_with(
        Worker {
            panic_in: Some(2),
            ..worker(&board)
        },
        ChildOptions::new().blocking_limit(1),
    );
    root.send(Start(3)).await.unwrap();
    until_running(&board, 1).await;
    board.gate.open();
    let exit = root.join().await;
    assert!(
        matches!(&exit, Exit::Panicked(m) if m.contains("job 2 exploded")),
        "{exit}"
    );
}

#[test]
#[should_panic(expected = "a blocking limit must be at least 1")]
fn a_zero_limit_is_refused() {
    let _ = ChildOptions::new().blocking_limit(0);
}

/// Spawns job 1, then job 2 (queued behind it), waits in its `enter` until job 1 is over,
/// then spawns job 3: a slot is free then while job 2's task has not run yet.
struct Overtaker;

#[taskthread(up = u32)]
impl Overtaker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let (first_done, wait_first) = std::sync::mpsc::channel();
        ctx.spawn_blocking(move || {
            first_done.send(()).unwrap();
            1u32
        });
        ctx.spawn_blocking(|| 2u32);
        // The loop is held here on purpose (a real clock, not the test's): job 1 ends and
        // gives its slot back while job 2's task waits to be polled.
        wait_first.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        ctx.spawn_blocking(|| 3u32);
        Ok(())
    }

    #[stream]
    async fn finished(&mut self, ctx: &mut Ctx<Self>, job: u32) -> Result<()> {
        ctx.up(job).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_queued_job_is_not_overtaken_by_one_spawned_after_a_slot_freed() {
    let mut root = taskthread::spawn_with(Overtaker, ChildOptions::new().blocking_limit(1));
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(root.recv().await.unwrap());
    }
    assert_eq!(
        order,
        [1, 2, 3],
        "the jobs ran in another order than spawned"
    );
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}
