//! The NATS transport against a real `nats-server`, started by each test on a free loopback
//! port (Debian: `apt-get install nats-server`; `NATS_SERVER` names another binary) and
//! killed when the test ends. Real time: short heartbeats and limits keep the tests quick;
//! nothing is asserted about how long anything takes.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread_nats::{Host, NatsTransport, RemoteOptions, Remotes, Settings};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use crate::snapshot;
use crate::world::{Boss, Heard, Job, Spawn, Sum, Worker, WorkerArgs, start_host};

/// A `nats-server` of the test's own.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

impl Server {
    /// Starts a server on a free loopback port (or on `port`), and waits until it takes
    /// connections.
    pub(crate) async fn start(port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(free_port);
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| find_binary());
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{binary}` ({e}): install nats-server (Debian: `apt-get install nats-server`) or name it in NATS_SERVER")
            });
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child, port };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not start on port {port}");
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to be gone.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

fn find_binary() -> String {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("nats-server")
    .to_owned()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn quick() -> Settings {
    Settings::new()
        .heartbeat(Duration::from_millis(100))
        .lost_after(Duration::from_secs(2))
        .retransmit(Duration::from_millis(100))
}

async fn wait_for_line(heard: &Heard, prefix: &str) -> String {
    for _ in 0..2_000 {
        if let Some(line) = heard.lock().unwrap().iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never heard `{prefix}`; heard {:?}", heard.lock().unwrap());
}

fn ungated() -> WorkerArgs {
    WorkerArgs {
        gated: false,
        gated_exit: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_child_over_nats_works_like_a_local_one() {
    let server = Server::start(None).await;
    let gate = Arc::new(Semaphore::new(0));
    let done = Arc::new(Mutex::new(Vec::new()));
    // The host and the parent each with a connection of their own, as in two processes.
    let host_transport = NatsTransport::connect(&server.url()).await.unwrap();
    let host = start_host("nats-a", &host_transport, &gate, &done).await;
    let remotes = Remotes::start_with(
        NatsTransport::connect(&server.url()).await.unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let (boss, heard) = Boss::new(remotes);
    let boss = taskthread::spawn(boss);
    let options = RemoteOptions::on("nats-a")
        .args(ungated())
        .child(ChildOptions::new().capacity(8));
    let worker: ChildRef<Worker> = boss.ask(Spawn(options)).await.unwrap();
    for n in 1..=1000 {
        worker.send(Job(n)).await.unwrap();
    }
    assert_eq!(worker.ask(Sum).await.unwrap(), 500_500);
    assert_eq!(*done.lock().unwrap(), (1..=1000).collect::<Vec<_>>());
    wait_for_line(&heard, "Tenth(1000)").await;
    let tenths: Vec<String> = heard
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("Tenth"))
        .cloned()
        .collect();
    let expected: Vec<String> = (1..=100).map(|n| format!("Tenth({})", n * 10)).collect();
    assert_eq!(tenths, expected);
    worker.stop();
    let exit = wait_for_line(&heard, "exit").await;
    assert_eq!(exit, "exit boss/worker stopped dropped=0");
    boss.stop();
    boss.join().await;
    host.stop().await;
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_dies_is_lost_and_its_child_restarted_on_another() {
    let server = Server::start(None).await;
    let gate = Arc::new(Semaphore::new(0));
    let (done_a, done_b) = (Arc::default(), Arc::new(Mutex::new(Vec::new())));
    let transport = NatsTransport::connect(&server.url()).await.unwrap();
    let host_a = start_host("nats-a", &transport, &gate, &done_a).await;
    let host_b = start_host("nats-b", &transport, &gate, &done_b).await;
    let remotes = Remotes::start_with(
        NatsTransport::connect(&server.url()).await.unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let (boss, heard) = Boss::new(remotes);
    let boss = taskthread::spawn(boss);
    let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
    let options = RemoteOptions::on("nats-a")
        .or_on("nats-b")
        .args(ungated())
        .restart(policy);
    let worker: ChildRef<Worker> = boss.ask(Spawn(options)).await.unwrap();
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    host_a.kill().await;
    let restart = wait_for_line(&heard, "restart").await;
    assert!(
        restart.starts_with("restart boss/worker life 1 lost: host `nats-a`"),
        "{restart}"
    );
    worker.send(Job(2)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 2);
    assert_eq!(*done_b.lock().unwrap(), [2]);
    boss.stop();
    boss.join().await;
    host_b.stop().await;
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_shorter_than_the_limit_loses_nothing() {
    let server = Server::start(None).await;
    let port = server.port;
    let gate = Arc::new(Semaphore::new(0));
    let done = Arc::new(Mutex::new(Vec::new()));
    let host = start_host(
        "nats-a",
        &NatsTransport::connect(&server.url()).await.unwrap(),
        &gate,
        &done,
    )
    .await;
    let settings = quick().lost_after(Duration::from_secs(20));
    let remotes = Remotes::start_with(
        NatsTransport::connect(&server.url()).await.unwrap(),
        settings,
    )
    .await
    .unwrap();
    let (boss, heard) = Boss::new(remotes);
    let boss = taskthread::spawn(boss);
    let options = RemoteOptions::on("nats-a").args(ungated());
    let worker: ChildRef<Worker> = boss.ask(Spawn(options)).await.unwrap();
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    // The server goes away; what is sent meanwhile is sent again once it is back.
    server.kill().await;
    for n in 2..=5 {
        worker.send(Job(n)).await.unwrap();
    }
    let server = Server::start(Some(port)).await;
    assert_eq!(worker.ask(Sum).await.unwrap(), 15);
    assert_eq!(*done.lock().unwrap(), [1, 2, 3, 4, 5]);
    assert!(!heard.lock().unwrap().iter().any(|l| l.starts_with("exit")));
    boss.stop();
    boss.join().await;
    host.stop().await;
    let _: Option<Host> = None;
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_subtree_shows_in_the_parents_snapshot_over_nats() {
    let server = Server::start(None).await;
    let host_transport = NatsTransport::connect(&server.url()).await.unwrap();
    let host = snapshot::foreman_host("nats-tree", host_transport).await;
    let remotes = Remotes::start_with(
        NatsTransport::connect(&server.url()).await.unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let parent = snapshot::parent(remotes, RemoteOptions::on("nats-tree"));
    let shown = snapshot::shown_on(&parent, "nats-tree", 1).await;
    let foreman = shown.find("parent/foreman").unwrap();
    let paths: Vec<&str> = foreman.children.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["parent/foreman/left", "parent/foreman/right"]);
    assert!(foreman.remote.as_ref().unwrap().rtt.unwrap() > Duration::ZERO);
    parent.stop();
    parent.join().await;
    host.stop().await;
    server.kill().await;
}
