//! Stop deadlines: a stop that takes longer than its deadline aborts what remains of the
//! subtree and reports `Exit::Aborted` with the number of queued messages dropped; no task
//! outlives the tree. All on tokio's paused clock: the deadlines pass in virtual time.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::{AskError, DEFAULT_STOP_DEADLINE};
use tokio::time::Instant;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Blocks its loop: the handler never returns.
#[derive(Debug)]
struct Hang;
/// A message that will wait behind `Hang`.
#[derive(Debug)]
struct Work;
/// A question that will wait behind `Hang`.
#[derive(Debug)]
struct Ping;

/// A thread whose `Hang` handler never returns, so a graceful stop cannot finish.
#[derive(Default)]
struct Stuck;

#[taskthread]
impl Stuck {
    #[down]
    async fn hang(&mut self, _ctx: &mut Ctx<Self>, _h: Hang) -> Result<()> {
        pending::<()>().await;
        Ok(())
    }

    #[down]
    async fn work(&mut self, _ctx: &mut Ctx<Self>, _w: Work) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<u32> {
        Ok(1)
    }
}

#[derive(Debug)]
struct SpawnStuck(ChildOptions);

/// A parent that spawns `Stuck` children and records how they ended.
#[derive(Default)]
struct Keeper {
    exits: Arc<Mutex<Vec<String>>>,
}

#[taskthread]
impl Keeper {
    #[down]
    async fn spawn_stuck(&mut self, ctx: &mut Ctx<Self>, s: SpawnStuck) -> Result<ChildRef<Stuck>> {
        Ok(ctx.spawn_with(Stuck, s.0))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        self.exits
            .lock()
            .unwrap()
            .push(format!("{} {}", exit.path(), exit.exit));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_past_its_deadline_is_aborted_and_its_parent_stops_gracefully() {
    let baseline = alive_tasks();
    let exits = Arc::new(Mutex::new(Vec::new()));
    let keeper = Keeper {
        exits: exits.clone(),
    };
    let root = taskthread::spawn_with(
        keeper,
        ChildOptions::new().stop_deadline(Duration::from_secs(10)),
    );
    let stuck = root
        .ask(SpawnStuck(
            ChildOptions::new()
                .name("stuck")
                .stop_deadline(Duration::from_secs(2)),
        ))
        .await
        .unwrap();
    stuck.send(Hang).await.unwrap();
    stuck.send(Work).await.unwrap();
    stuck.send(Work).await.unwrap();
    let ask = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.ask(Ping).await }
    });
    tokio::task::yield_now().await;

    let start = Instant::now();
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    // The child's deadline, not the root's, ended the stop.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(
        *exits.lock().unwrap(),
        ["keeper/stuck aborted, 3 queued messages dropped"]
    );
    // The queued question was dropped with the rest: its asker hears so.
    assert!(matches!(ask.await.unwrap(), Err(AskError::NoReply)));
    assert_eq!(alive_tasks(), baseline);
}

/// A middle thread whose own stop never ends: no deadline, and a child that hangs.
#[derive(Default)]
struct Middle;

#[derive(Debug)]
struct Grow;

#[taskthread]
impl Middle {
    #[down]
    async fn grow(&mut self, ctx: &mut Ctx<Self>, _g: Grow) -> Result<ChildRef<Stuck>> {
        Ok(ctx.spawn_with(Stuck, ChildOptions::new().no_stop_deadline()))
    }
}

#[derive(Default)]
struct Top;

#[taskthread]
impl Top {
    #[down]
    async fn grow(&mut self, ctx: &mut Ctx<Self>, _g: Grow) -> Result<ChildRef<Middle>> {
        Ok(ctx.spawn_with(Middle, ChildOptions::new().no_stop_deadline()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_root_past_its_deadline_aborts_its_whole_subtree() {
    let baseline = alive_tasks();
    let root = taskthread::spawn_with(
        Top,
        ChildOptions::new().stop_deadline(Duration::from_secs(1)),
    );
    let middle = root.ask(Grow).await.unwrap();
    let leaf = middle.ask(Grow).await.unwrap();
    leaf.send(Hang).await.unwrap();
    for _ in 0..4 {
        leaf.send(Work).await.unwrap();
    }
    tokio::task::yield_now().await;

    let start = Instant::now();
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Aborted { dropped: 4 }), "{exit}");
    assert_eq!(exit.to_string(), "aborted, 4 queued messages dropped");
    assert!(exit.is_failure());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // Everything below the root is gone: sends fail and give the message back.
    assert!(leaf.send(Work).await.is_err());
    assert!(middle.is_closed());
    assert_eq!(alive_tasks(), baseline);
}

/// A middle thread whose child inherits its stop deadline.
#[derive(Default)]
struct Heir;

#[taskthread]
impl Heir {
    #[down]
    async fn grow(&mut self, ctx: &mut Ctx<Self>, _g: Grow) -> Result<ChildRef<Stuck>> {
        Ok(ctx.spawn(Stuck))
    }
}

/// A root whose child inherits its stop deadline, and which records its children's exits.
#[derive(Default)]
struct Testator {
    exits: Arc<Mutex<Vec<String>>>,
}

#[taskthread]
impl Testator {
    #[down]
    async fn grow(&mut self, ctx: &mut Ctx<Self>, _g: Grow) -> Result<ChildRef<Heir>> {
        Ok(ctx.spawn(Heir))
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        self.exits.lock().unwrap().push(exit.exit.to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn a_subtree_that_inherits_the_deadline_is_aborted_by_the_root_at_its_deadline() {
    let baseline = alive_tasks();
    let exits = Arc::new(Mutex::new(Vec::new()));
    let root = taskthread::spawn_with(
        Testator {
            exits: exits.clone(),
        },
        ChildOptions::new().stop_deadline(Duration::from_secs(1)),
    );
    let heir = root.ask(Grow).await.unwrap();
    let leaf = heir.ask(Grow).await.unwrap();
    leaf.send(Hang).await.unwrap();
    for _ in 0..4 {
        leaf.send(Work).await.unwrap();
    }
    tokio::task::yield_now().await;

    let start = Instant::now();
    root.stop();
    let exit = root.join().await;
    // One deadline for the stopping tree: the root's aborts the whole subtree, and the
    // child, stopped by its stopping parent with the same deadline, does not abort itself
    // (it would report its own abort first, and the root would count nothing dropped).
    assert!(matches!(exit, Exit::Aborted { dropped: 4 }), "{exit}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(
        exits.lock().unwrap().is_empty(),
        "{:?}",
        exits.lock().unwrap()
    );
    assert!(heir.is_closed());
    assert!(leaf.is_closed());
    assert_eq!(alive_tasks(), baseline);
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_a_stop_waits_as_long_as_it_takes() {
    /// Stopping takes an hour: the exit hook sleeps.
    struct Slow;

    #[taskthread]
    impl Slow {
        async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }

    let root = taskthread::spawn_with(Slow, ChildOptions::new().no_stop_deadline());
    let start = Instant::now();
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn a_root_has_the_default_deadline() {
    let root = taskthread::spawn(Stuck);
    root.send(Hang).await.unwrap();
    root.send(Work).await.unwrap();
    tokio::task::yield_now().await;
    let start = Instant::now();
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Aborted { dropped: 1 }), "{exit}");
    assert_eq!(start.elapsed(), DEFAULT_STOP_DEADLINE);
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_finishes_in_time_is_not_aborted() {
    /// Stopping takes 5 s of a 6 s deadline.
    struct Careful;

    #[taskthread]
    impl Careful {
        async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    let root = taskthread::spawn_with(
        Careful,
        ChildOptions::new().stop_deadline(Duration::from_secs(6)),
    );
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn handle_abort_cancels_the_tree_at_once() {
    let baseline = alive_tasks();
    let root = taskthread::spawn(Top);
    let top = root.child_ref();
    let middle = root.ask(Grow).await.unwrap();
    let leaf = middle.ask(Grow).await.unwrap();
    leaf.send(Hang).await.unwrap();
    leaf.send(Work).await.unwrap();
    tokio::task::yield_now().await;
    let start = Instant::now();
    let exit = root.abort().await;
    assert!(matches!(exit, Exit::Aborted { dropped: 1 }), "{exit}");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(leaf.is_closed());
    assert_eq!(alive_tasks(), baseline);
    // What is still held of the tree keeps nothing below it.
    assert!(top.snapshot().children.is_empty());
    assert!(middle.snapshot().children.is_empty());
}

/// Sends three numbers UP as it starts.
struct Chatty;

#[taskthread(up = u32)]
impl Chatty {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for n in 0..3 {
            ctx.up(n).await?;
        }
        Ok(())
    }
}

/// A thread whose `Hang` handler spawns a [`Chatty`], then never returns: what the child
/// sends UP stays queued.
struct Busy;

#[taskthread]
impl Busy {
    #[down]
    async fn hang(&mut self, ctx: &mut Ctx<Self>, _h: Hang) -> Result<()> {
        ctx.spawn(Chatty);
        pending::<()>().await;
        Ok(())
    }

    #[up]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) {}
}

#[tokio::test(start_paused = true)]
async fn an_abort_counts_the_up_messages_queued_for_the_root() {
    // Through the handle, and past a stop deadline: the same count.
    for through_handle in [true, false] {
        let root = taskthread::spawn_with(
            Busy,
            ChildOptions::new().stop_deadline(Duration::from_secs(1)),
        );
        root.send(Hang).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let exit = if through_handle {
            root.abort().await
        } else {
            root.stop();
            root.join().await
        };
        assert!(
            matches!(exit, Exit::Aborted { dropped: 3 }),
            "{through_handle}: {exit}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_past_its_deadline_leaves_no_aborted_thread_listed() {
    let root = taskthread::spawn_with(
        Top,
        ChildOptions::new().stop_deadline(Duration::from_secs(1)),
    );
    let top = root.child_ref();
    let middle = root.ask(Grow).await.unwrap();
    let leaf = middle.ask(Grow).await.unwrap();
    leaf.send(Hang).await.unwrap();
    tokio::task::yield_now().await;
    root.stop();
    assert!(matches!(root.join().await, Exit::Aborted { .. }));
    assert!(top.snapshot().children.is_empty());
    assert!(middle.snapshot().children.is_empty());
}

#[test]
fn an_abort_counts_its_dropped_messages_in_words() {
    assert_eq!(Exit::Aborted { dropped: 0 }.to_string(), "aborted");
    assert_eq!(
        Exit::Aborted { dropped: 1 }.to_string(),
        "aborted, 1 queued message dropped"
    );
    assert_eq!(
        Exit::Aborted { dropped: 2 }.to_string(),
        "aborted, 2 queued messages dropped"
    );
}
