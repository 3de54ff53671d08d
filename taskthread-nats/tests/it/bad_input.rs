//! Bad input at every boundary: types a host does not know or knows otherwise, arguments
//! that do not read, hosts that do not exist, bad names, frames that are not frames, and
//! messages too large to carry. Each gets a clear error or exit, and nothing is lost
//! without being counted.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use taskthread::AskError;
use taskthread::prelude::*;
use taskthread_nats::memory::{self, Fate, MemoryTransport};
use taskthread_nats::{Host, HostError, RemoteOptions, Remotes, SpawnError, Transport};

use crate::world::{Echo, HOST, Job, Sum, WorkerArgs, world, world_with};

fn args() -> WorkerArgs {
    WorkerArgs {
        gated: false,
        gated_exit: false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_type_the_host_has_not_registered_is_refused() {
    let world = world().await;
    world
        .worker_with(RemoteOptions::on(HOST).args(args()).type_name("Nope"))
        .await;
    let exit = world.heard_line("exit").await;
    assert_eq!(
        exit,
        "exit boss/worker failed: host `host-a` refused to run `Worker`: no thread type is registered as `Nope` dropped=0"
    );
    world.end().await;
}

/// A type registered under the name `Worker` that takes other messages.
struct Impostor;

#[derive(Serialize, Deserialize)]
struct Other;

#[taskthread(remote)]
impl Impostor {
    #[down]
    async fn other(&mut self, _ctx: &mut Ctx<Self>, _o: Other) {}
}

#[tokio::test(start_paused = true)]
async fn a_type_the_host_knows_otherwise_is_refused() {
    let world = world().await;
    let host = Host::builder("host-b", world.transport.clone())
        .register_as("Worker", |(): ()| Impostor)
        .start()
        .await
        .unwrap();
    world
        .worker_with(RemoteOptions::on("host-b").args(args()))
        .await;
    let exit = world.heard_line("exit").await;
    assert!(
        exit.contains("refused to run `Worker`: `Worker` here takes [\"Other\"]"),
        "{exit}"
    );
    host.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn arguments_that_do_not_read_are_refused() {
    let world = world().await;
    world
        .worker_with(RemoteOptions::on(HOST).args("not the arguments"))
        .await;
    let exit = world.heard_line("exit").await;
    assert!(
        exit.contains("refused to run `Worker`: its arguments cannot be read"),
        "{exit}"
    );
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_host_that_does_not_exist_is_lost() {
    let world = world().await;
    let worker = world
        .worker_with(RemoteOptions::on("nobody").args(args()))
        .await;
    worker.send(Job(1)).await.unwrap();
    let exit = world.heard_line("exit").await;
    // Never started: the message waited for it, and is dropped with it.
    assert!(
        exit.starts_with("exit boss/worker lost: host `nobody`"),
        "{exit}"
    );
    assert!(exit.ends_with("dropped=1"), "{exit}");
    world.end().await;
}

#[tokio::test]
async fn bad_names_are_refused_at_once() {
    let transport = MemoryTransport::new();
    let bad = Host::builder("a.b", transport.clone()).start().await;
    assert!(matches!(bad, Err(HostError::Name(_))));
    let twice = Host::builder("twice", transport.clone())
        .register(|(): ()| Impostor)
        .register(|(): ()| Impostor)
        .start()
        .await;
    assert!(matches!(twice, Err(HostError::Duplicate(name)) if name == "Impostor"));
    let taken = Host::builder("taken", transport.clone())
        .start()
        .await
        .unwrap();
    let again = Host::builder("taken", transport.clone()).start().await;
    assert!(matches!(again, Err(HostError::Transport(_))));
    taken.stop().await;

    struct Spawner(Remotes);
    struct Try(RemoteOptions);
    #[taskthread]
    impl Spawner {
        #[down]
        async fn attempt(&mut self, ctx: &mut Ctx<Self>, Try(options): Try) -> Result<String> {
            match self.0.spawn::<crate::world::Worker, _>(ctx, options) {
                Ok(_) => Ok("spawned".into()),
                Err(e) => Ok(e.to_string()),
            }
        }
        #[up]
        async fn report(&mut self, _ctx: &mut Ctx<Self>, _f: ChildId, _r: crate::world::Report) {}
    }
    let spawner = taskthread::spawn(Spawner(Remotes::start(transport.clone()).await.unwrap()));
    let answer = spawner
        .ask(Try(RemoteOptions::on("no such/host")))
        .await
        .unwrap();
    assert!(
        answer.starts_with("bad host name: `no such/host` has ` `"),
        "{answer}"
    );
    let huge = vec![0u8; 2 * 1024 * 1024];
    let answer = spawner
        .ask(Try(RemoteOptions::on("h").args(huge)))
        .await
        .unwrap();
    assert!(answer.starts_with("the spawn request of"), "{answer}");
    let _: Option<SpawnError> = None;
    spawner.stop();
    spawner.join().await;
}

#[tokio::test(start_paused = true)]
async fn frames_that_are_not_frames_are_ignored() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    let junk: [&[u8]; 5] = [b"", b"\x01", b"\x09\x01\x02", &[0xFF; 64], b"hello, world"];
    for address in world.transport.addresses() {
        for frame in junk {
            world
                .transport
                .send(&address, Bytes::copy_from_slice(frame))
                .await
                .unwrap();
        }
    }
    worker.send(Job(2)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 3);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_too_large_to_carry_is_dropped_and_counted() {
    let world = world_with(
        MemoryTransport::new().with_max_frame(1024),
        taskthread_nats::Settings::new(),
    )
    .await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Echo("x".repeat(1500))).await.unwrap();
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    worker.stop();
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker stopped dropped=1");
    assert!(!world.heard().iter().any(|l| l.starts_with("Echo")));
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn an_ask_too_large_to_carry_has_no_answer() {
    #[derive(Serialize, Deserialize)]
    struct Big(String);
    struct Answerer;
    #[taskthread(remote)]
    impl Answerer {
        #[down]
        async fn big(&mut self, _ctx: &mut Ctx<Self>, Big(s): Big) -> Result<usize> {
            Ok(s.len())
        }
    }
    struct Asker(Remotes);
    struct Start;
    #[taskthread]
    impl Asker {
        #[down]
        async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<ChildRef<Answerer>> {
            self.0
                .spawn(ctx, RemoteOptions::on("answers"))
                .map_err(Error::new)
        }
    }
    let transport = MemoryTransport::new().with_max_frame(1024);
    let host = Host::builder("answers", transport.clone())
        .register(|(): ()| Answerer)
        .start()
        .await
        .unwrap();
    let asker = taskthread::spawn(Asker(Remotes::start(transport).await.unwrap()));
    let answerer = asker.ask(Start).await.unwrap();
    assert_eq!(answerer.ask(Big("x".repeat(10))).await.unwrap(), 10);
    assert!(matches!(
        answerer.ask(Big("x".repeat(1500))).await,
        Err(AskError::NoReply)
    ));
    assert_eq!(answerer.ask(Big("y".repeat(20))).await.unwrap(), 20);
    asker.stop();
    asker.join().await;
    host.stop().await;
}

/// Where the frames of the worker's edge go to its parent, and what they carry: the
/// parent's address, the edge, the epoch and the format's version (the first byte of a
/// frame).
async fn learn_the_edge(world: &crate::world::World) -> (String, u64, u32, u8) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    world.transport.set_faults(move |d| {
        if d.to.starts_with("parent.")
            && let [info] = d.frames.as_slice()
        {
            *record.lock().unwrap() = Some((d.to.to_owned(), info.edge, info.epoch, d.frame[0]));
        }
        Fate::Deliver
    });
    let learnt = crate::world::until(|| seen.lock().unwrap().clone()).await;
    world.transport.clear_faults();
    learnt
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[tokio::test(start_paused = true)]
async fn a_tree_report_nested_deeper_than_any_stack_is_refused_without_harm() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    let (parent, edge, epoch, version) = learn_the_edge(&world).await;
    // A tree report whose every thread holds the next as its only child, as deep as the
    // largest frame allows (some 87 000 levels): a frame head, then each level's fields,
    // all empty or zero, and a list of one child.
    let mut frame = vec![version];
    for field in [edge, u64::from(epoch), 0, 0, 0] {
        varint(field, &mut frame);
    }
    frame.extend([13, 1]); // a tree report of one thread
    const LEVEL: [u8; 12] = [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    while frame.len() + LEVEL.len() < memory::DEFAULT_MAX_FRAME {
        frame.extend(LEVEL);
    }
    for address in [parent, format!("host.{HOST}")] {
        world
            .transport
            .send(&address, Bytes::from(frame.clone()))
            .await
            .unwrap();
    }
    // Both sides read it, refused it, and go on.
    worker.send(Job(2)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 3);
    let snapshot = world.boss.snapshot();
    assert!(snapshot.find("boss/worker").is_some(), "{snapshot}");
    world.end().await;
}
