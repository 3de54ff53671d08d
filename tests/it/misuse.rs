//! Misuse of the API gets a clear error, never a hang or a silent drop: joining a tree from
//! inside it, spawning from a thread that is stopping, a zero capacity, a bad name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;

/// Holds the handle of the tree it belongs to, and joins it when told.
struct Joiner;

struct JoinThis(Handle<Top>);

#[taskthread]
impl Joiner {
    #[down]
    async fn join_this(&mut self, _ctx: &mut Ctx<Self>, JoinThis(handle): JoinThis) -> Result<()> {
        handle.join().await;
        Ok(())
    }
}

#[derive(Default)]
struct Top {
    heard: Arc<Mutex<Vec<String>>>,
}

#[taskthread]
impl Top {
    #[down]
    async fn joiner(&mut self, ctx: &mut Ctx<Self>, _j: ()) -> Result<ChildRef<Joiner>> {
        Ok(ctx.spawn(Joiner))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        self.heard.lock().unwrap().push(exit.to_string());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn joining_a_tree_from_inside_it_fails_that_thread_instead_of_hanging() {
    crate::panics::hide_expected_panics("Handle::join called from");
    let heard = Arc::new(Mutex::new(Vec::new()));
    let root = taskthread::spawn(Top {
        heard: heard.clone(),
    });
    let top = root.child_ref();
    let joiner = root.ask(()).await.unwrap();
    joiner.send(JoinThis(root)).await.unwrap();
    for _ in 0..100 {
        if !heard.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let heard = heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(
        heard[0]
            .starts_with("`top/joiner` (Joiner) panicked: Handle::join called from `top/joiner`"),
        "{}",
        heard[0]
    );
    // The rest of the tree carries on.
    assert_eq!(top.state(), taskthread::ThreadState::Running);
    top.stop();
}

/// Spawns a child from its `exit` hook, when its children have all been stopped.
#[derive(Default)]
struct LateSpawner {
    child: Arc<Mutex<Option<ChildRef<Joiner>>>>,
}

#[taskthread]
impl LateSpawner {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Joiner);
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        *self.child.lock().unwrap() = Some(ctx.spawn(Joiner));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_while_stopping_is_stopped_at_once_not_leaked() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let late = Arc::new(Mutex::new(None));
    let root = taskthread::spawn(LateSpawner {
        child: late.clone(),
    });
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    let child = late.lock().unwrap().take().expect("spawned from exit");
    assert!(child.is_closed());
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        baseline
    );
}

#[test]
#[should_panic(expected = "a queue capacity must be at least 1")]
fn a_zero_capacity_is_refused() {
    let _ = ChildOptions::new().capacity(0);
}

#[test]
#[should_panic(expected = "must not contain `/`")]
fn a_name_with_a_slash_is_refused() {
    let _ = ChildOptions::new().name("a/b");
}

/// A root that is handed its own handle, and joins it when told.
struct Selfish;

struct JoinSelf(Handle<Selfish>);

#[taskthread]
impl Selfish {
    #[down]
    async fn join_self(&mut self, _ctx: &mut Ctx<Self>, JoinSelf(handle): JoinSelf) -> Result<()> {
        handle.join().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_root_joining_itself_fails_instead_of_hanging() {
    crate::panics::hide_expected_panics("Handle::join called from");
    let root = taskthread::spawn(Selfish);
    let selfish = root.child_ref();
    selfish.send(JoinSelf(root)).await.unwrap();
    for _ in 0..100 {
        if selfish.state() == taskthread::ThreadState::Exited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(selfish.state(), taskthread::ThreadState::Exited);
}
