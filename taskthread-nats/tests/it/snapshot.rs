//! The parent's snapshot and its live view show a remote child's subtree in place, as its
//! host reports it, with the link's round-trip time.

use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::watch::{WatchedTree, Watcher};
use taskthread::{ThreadState, TreeSnapshot};
use taskthread_nats::memory::MemoryTransport;
use taskthread_nats::{Host, RemoteOptions, Remotes, Settings, Transport};

use crate::world::until;

/// Runs on a host with two children of its own.
pub(crate) struct Foreman;

#[taskthread(remote, up = u32)]
impl Foreman {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(Hand, ChildOptions::new().name("left"));
        ctx.spawn_with(Hand, ChildOptions::new().name("right").capacity(8));
        Ok(())
    }

    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _n: u32) -> Result<()> {
        Ok(())
    }
}

/// A child of the foreman, on its host.
struct Hand;

#[taskthread]
impl Hand {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _n: u32) -> Result<()> {
        Ok(())
    }
}

/// Spawns a foreman on the hosts it is given.
pub(crate) struct Parent {
    remotes: Remotes,
    options: Option<RemoteOptions>,
}

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let options = self.options.take().expect("enter runs once");
        let _: ChildRef<Foreman> = self.remotes.spawn(ctx, options).map_err(Error::new)?;
        Ok(())
    }

    #[up]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) {}

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _exit: ChildExit) {}
}

pub(crate) async fn foreman_host<T: Transport>(name: &str, transport: T) -> Host {
    Host::builder(name, transport)
        .register(|(): ()| Foreman)
        .start()
        .await
        .expect("the host starts")
}

pub(crate) fn parent(remotes: Remotes, options: RemoteOptions) -> Handle<Parent> {
    taskthread::spawn(Parent {
        remotes,
        options: Some(options.child(ChildOptions::new().name("foreman"))),
    })
}

/// The parent's snapshot once its remote child shows on `host` in life `epoch`, with its
/// two children and a measured round-trip time.
pub(crate) async fn shown_on(parent: &Handle<Parent>, host: &str, epoch: u32) -> TreeSnapshot {
    until(|| {
        let snapshot = parent.snapshot();
        let foreman = snapshot.find("parent/foreman")?;
        let remote = foreman.remote.as_ref()?;
        (remote.host == host
            && remote.epoch == epoch
            && remote.rtt.is_some()
            && foreman.children.len() == 2)
            .then_some(snapshot)
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_remote_subtree_shows_in_place_with_the_links_round_trip_time() {
    let transport = MemoryTransport::new();
    let host = foreman_host("calc", transport.clone()).await;
    let remotes = Remotes::start(transport).await.unwrap();
    let parent = parent(remotes, RemoteOptions::on("calc"));

    let snapshot = shown_on(&parent, "calc", 1).await;
    let foreman = snapshot.find("parent/foreman").unwrap();
    assert_eq!(foreman.type_name, "Foreman");
    assert_eq!(foreman.state, ThreadState::Running);
    // The threads below it, as the host runs them: names, paths, types, queues.
    let hands: Vec<_> = foreman
        .children
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.type_name,
                c.down_types,
                c.up_type,
                c.queue_capacity,
            )
        })
        .collect();
    assert_eq!(
        hands,
        [
            ("parent/foreman/left", "Hand", &["u32"][..], None, 64),
            ("parent/foreman/right", "Hand", &["u32"][..], None, 8),
        ]
    );
    assert!(
        foreman
            .children
            .iter()
            .all(|c| c.state == ThreadState::Running)
    );
    assert_eq!(snapshot.len(), 4);
    // Rendered in place, with the link.
    let rendered = snapshot.to_string();
    let line = rendered
        .lines()
        .find(|l| l.contains("[parent/foreman]"))
        .unwrap();
    assert!(line.contains(", on calc, rtt "), "{rendered}");
    assert!(
        rendered.contains("        Hand: IN: u32 [parent/foreman/left]"),
        "{rendered}"
    );

    parent.stop();
    parent.join().await;
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_live_view_shows_the_remote_subtree_in_place() {
    let transport = MemoryTransport::new();
    let host = foreman_host("calc", transport.clone()).await;
    let remotes = Remotes::start(transport).await.unwrap();
    let parent = parent(remotes, RemoteOptions::on("calc"));
    shown_on(&parent, "calc", 1).await;

    let mut stream = Watcher::with_interval(&parent, Duration::from_millis(100)).subscribe();
    let mut tree = WatchedTree::default();
    for _ in 0..100 {
        tree.apply(stream.next().await).expect("no gap");
        if tree.find("parent/foreman/right").is_some() {
            break;
        }
    }
    let foreman = tree.find("parent/foreman").expect("the remote child");
    let link = foreman.remote.as_ref().expect("shown as remote");
    assert_eq!((link.host.as_str(), link.epoch), ("calc", 1));
    assert!(link.rtt_us.is_some());
    assert!(
        foreman.summary().contains(", on calc, rtt "),
        "{}",
        foreman.summary()
    );
    let order: Vec<(usize, &str, &str)> = tree
        .in_tree_order()
        .into_iter()
        .map(|(depth, t)| (depth, t.path.as_str(), t.type_name.as_str()))
        .collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[1], (1, "parent/foreman", "Foreman"));
    assert!(
        order.contains(&(2, "parent/foreman/left", "Hand")),
        "{order:?}"
    );
    assert!(
        order.contains(&(2, "parent/foreman/right", "Hand")),
        "{order:?}"
    );
    let right = tree.find("parent/foreman/right").unwrap();
    assert_eq!(right.parent, Some(foreman.id));
    assert_eq!((right.state.as_str(), right.queue.capacity), ("running", 8));

    parent.stop();
    parent.join().await;
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_lost_host_the_subtree_shows_on_the_next() {
    let transport = MemoryTransport::new();
    let first = foreman_host("one", transport.clone()).await;
    let second = foreman_host("two", transport.clone()).await;
    let settings = Settings::new()
        .heartbeat(Duration::from_millis(100))
        .lost_after(Duration::from_secs(1));
    let remotes = Remotes::start_with(transport.clone(), settings)
        .await
        .unwrap();
    let options = RemoteOptions::on("one")
        .or_on("two")
        .restart(RestartPolicy::on_failure());
    let parent = parent(remotes, options);
    shown_on(&parent, "one", 1).await;

    transport.cut("host.one");
    let snapshot = shown_on(&parent, "two", 2).await;
    let foreman = snapshot.find("parent/foreman").unwrap();
    assert_eq!(foreman.restarts, 1);

    parent.stop();
    parent.join().await;
    first.stop().await;
    second.stop().await;
}
