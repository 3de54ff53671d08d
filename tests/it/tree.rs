//! Names, paths, snapshots and their rendering (tracing spans are in `logging.rs`).

use taskthread::ThreadState;
use taskthread::prelude::*;

use crate::common::{Accept, Packet, TcpServer};

#[tokio::test(start_paused = true)]
async fn names_get_suffixes_and_paths_follow_the_tree() {
    let mut root = taskthread::spawn(TcpServer::default());
    assert_eq!(root.ask(Accept).await.unwrap(), "tcp_server/conn");
    assert_eq!(root.ask(Accept).await.unwrap(), "tcp_server/conn-2");
    assert_eq!(root.ask(Accept).await.unwrap(), "tcp_server/conn-3");
    root.send(Packet(vec![1, 2])).await.unwrap();
    for _ in 0..3 {
        assert_eq!(root.recv().await.unwrap().0, [1, 2]);
    }
    let snap = root.snapshot();
    assert_eq!(snap.len(), 7);
    let conn2 = snap
        .find("tcp_server/conn-2")
        .expect("conn-2 in the snapshot");
    assert_eq!(conn2.type_name, "TcpConnection");
    assert_eq!(conn2.state, ThreadState::Running);
    assert_eq!(conn2.handled, 2, "one packet down, one frame up");
    let proc2 = snap.find("tcp_server/conn-2/data_processor").unwrap();
    assert_eq!(proc2.down_types, ["Packet", "Crash"]);
    assert_eq!(proc2.up_type, Some("Frame"));
    assert_eq!(
        snap.render_types(),
        "TcpServer: IN: Accept, Packet, Crash, UP: Frame
    TcpConnection: IN: Packet, Crash, UP: Frame
        DataProcessor: IN: Packet, Crash, UP: Frame
    TcpConnection: IN: Packet, Crash, UP: Frame
        DataProcessor: IN: Packet, Crash, UP: Frame
    TcpConnection: IN: Packet, Crash, UP: Frame
        DataProcessor: IN: Packet, Crash, UP: Frame
"
    );
    let full = snap.to_string();
    assert!(
        full.starts_with("TcpServer: IN: Accept, Packet, Crash, UP: Frame [tcp_server] running, queue 0/64, handled 7\n    TcpConnection"),
        "{full}"
    );
    root.stop();
    root.join().await;
}

/// A thread that sits in a handler so its queue fills up.
struct Busy;

#[derive(Debug)]
struct Sleep;

#[taskthread(name = "busy_bee", capacity = 8)]
impl Busy {
    #[down]
    async fn sleep(&mut self, _ctx: &mut Ctx<Self>, _s: Sleep) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_shows_queue_depth_and_state() {
    let root = taskthread::spawn(Busy);
    for _ in 0..4 {
        root.send(Sleep).await.unwrap();
    }
    tokio::task::yield_now().await;
    let snap = root.snapshot();
    assert_eq!(snap.name, "busy_bee");
    assert_eq!(snap.queue_capacity, 8);
    assert_eq!(
        snap.queue_depth, 3,
        "one message in the handler, three waiting"
    );
    root.stop();
    tokio::task::yield_now().await;
    assert_eq!(root.snapshot().state, ThreadState::Stopping);
    root.join().await;
}

/// DOWN to a `Namer`: spawn one child per name, in order (a `String` name as given at run
/// time, a `&'static str` one as written in the code), and answer their paths.
struct SpawnNamed(Vec<std::borrow::Cow<'static, str>>);

struct Namer;

#[taskthread]
impl Namer {
    #[down]
    async fn spawn_named(&mut self, ctx: &mut Ctx<Self>, s: SpawnNamed) -> Result<Vec<String>> {
        Ok(s.0
            .into_iter()
            .map(|name| {
                let child = ctx.spawn_with(Leaf, ChildOptions::new().name(name));
                child.path().to_owned()
            })
            .collect())
    }
}

struct Leaf;

#[taskthread]
impl Leaf {}

#[tokio::test(start_paused = true)]
async fn names_that_come_back_after_others_keep_counting() {
    use std::borrow::Cow;
    let root = taskthread::spawn(Namer);
    let names = vec![
        Cow::Borrowed("a"),
        Cow::Borrowed("b"),
        Cow::Borrowed("a"),
        Cow::Owned("x".to_owned()),
        Cow::Owned("x".to_owned()),
        Cow::Borrowed("b"),
        Cow::Borrowed("x"),
        Cow::Borrowed("leaf"),
        Cow::Borrowed("a"),
    ];
    let paths = root.ask(SpawnNamed(names)).await.unwrap();
    assert_eq!(
        paths,
        [
            "namer/a",
            "namer/b",
            "namer/a-2",
            "namer/x",
            "namer/x-2",
            "namer/b-2",
            "namer/x-3",
            "namer/leaf",
            "namer/a-3",
        ]
    );
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}
