//! Remote tell and ask over NATS, against raw async-nats publish and request of the same
//! payloads, on loopback, with a `nats-server` the benchmark starts on a free port
//! (`NATS_SERVER` names another binary).
//!
//! ```text
//! cargo bench -p taskthread-nats --bench vs_raw_nats            # 200 000 tells, 20 000 asks
//! cargo bench -p taskthread-nats --bench vs_raw_nats -- 50000   # tells; asks a tenth
//! ```
//!
//! - *tell*: the parent sends N `Job`s to a remote child, which counts them; the clock
//!   stops when the child has handled the last. Raw: one client publishes N payloads of
//!   the same bytes, another counts them as they arrive.
//! - *ask*: N questions one after the other, each waiting for its answer. Raw:
//!   `Client::request` to a subscriber that answers each.
//!
//! Each side has its own NATS connection, as two processes would.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use taskthread::prelude::*;
use taskthread_nats::{DEFAULT_REMOTE_CAPACITY, Host, NatsTransport, RemoteOptions, Remotes};
use tokio::process::Command;
use tokio::sync::Notify;

#[derive(Serialize, Deserialize)]
struct Job(u64);

#[derive(Serialize, Deserialize)]
struct Query(u64);

/// Counts its jobs and rings when it has `expected` of them.
struct Counter {
    seen: Arc<AtomicU64>,
    expected: u64,
    done: Arc<Notify>,
}

#[taskthread(remote)]
impl Counter {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, Job(_n): Job) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.done.notify_one();
        }
    }

    #[down]
    async fn query(&mut self, _ctx: &mut Ctx<Self>, Query(n): Query) -> Result<u64> {
        Ok(n + 1)
    }
}

/// Spawns the remote counter when asked.
struct Parent {
    remotes: Remotes,
}

/// Spawn the counter with this capacity, or with the remote default.
struct Spawn(Option<usize>);

#[taskthread]
impl Parent {
    #[down]
    async fn spawn(
        &mut self,
        ctx: &mut Ctx<Self>,
        Spawn(capacity): Spawn,
    ) -> Result<ChildRef<Counter>> {
        let child = match capacity {
            Some(capacity) => ChildOptions::new().capacity(capacity),
            None => ChildOptions::new(),
        };
        let options = RemoteOptions::on("bench").child(child);
        self.remotes.spawn(ctx, options).map_err(Error::new)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

async fn raw_publish(url: &str, n: u64, payload: &[u8]) -> Duration {
    let publisher = async_nats::connect(url).await.unwrap();
    // Room for every message: a full subscription drops them (a slow consumer), and the
    // count would never complete.
    let receiver = async_nats::ConnectOptions::new()
        .subscription_capacity(usize::try_from(n).unwrap().max(1024))
        .connect(url)
        .await
        .unwrap();
    let mut subscription = receiver.subscribe("bench.raw").await.unwrap();
    receiver.flush().await.unwrap();
    let payload = bytes::Bytes::copy_from_slice(payload);
    let start = Instant::now();
    let counting = tokio::spawn(async move {
        let mut seen = 0;
        while seen < n {
            subscription.next().await.unwrap();
            seen += 1;
        }
    });
    for _ in 0..n {
        publisher
            .publish("bench.raw", payload.clone())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    counting.await.unwrap();
    start.elapsed()
}

async fn raw_request(url: &str, n: u64, payload: &[u8]) -> Duration {
    let asker = async_nats::connect(url).await.unwrap();
    let answerer = async_nats::connect(url).await.unwrap();
    let mut questions = answerer.subscribe("bench.req").await.unwrap();
    answerer.flush().await.unwrap();
    let answering = tokio::spawn(async move {
        while let Some(question) = questions.next().await {
            if let Some(reply) = question.reply {
                answerer.publish(reply, question.payload).await.unwrap();
            }
        }
    });
    let payload = bytes::Bytes::copy_from_slice(payload);
    let start = Instant::now();
    for _ in 0..n {
        asker.request("bench.req", payload.clone()).await.unwrap();
    }
    let took = start.elapsed();
    answering.abort();
    took
}

async fn remote(url: &str, tells: u64, asks: u64, capacity: Option<usize>) -> (Duration, Duration) {
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (counter_seen, counter_done) = (seen.clone(), done.clone());
    let host = Host::builder("bench", NatsTransport::connect(url).await.unwrap())
        .register(move |(): ()| Counter {
            seen: counter_seen.clone(),
            expected: tells,
            done: counter_done.clone(),
        })
        .start()
        .await
        .unwrap();
    let remotes = Remotes::start(NatsTransport::connect(url).await.unwrap())
        .await
        .unwrap();
    let parent = taskthread::spawn(Parent { remotes });
    let counter = parent.ask(Spawn(capacity)).await.unwrap();
    // Started: the first answer has come back.
    counter.ask(Query(0)).await.unwrap();

    let start = Instant::now();
    for n in 0..tells {
        counter.send(Job(n)).await.unwrap();
    }
    done.notified().await;
    let tell = start.elapsed();

    let start = Instant::now();
    for n in 0..asks {
        counter.ask(Query(n)).await.unwrap();
    }
    let ask = start.elapsed();

    parent.stop();
    parent.join().await;
    host.stop().await;
    (tell, ask)
}

fn main() {
    let tells: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let asks = (tells / 10).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let port = free_port();
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let mut server = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{binary}`: {e}"));
        let url = format!("nats://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let payload = postcard::to_allocvec(&Job(123_456)).unwrap();

        let raw_tell = raw_publish(&url, tells, &payload).await;
        let raw_ask = raw_request(&url, asks, &payload).await;
        println!(
            "{tells} tells, {asks} asks, payload {} bytes, loopback",
            payload.len()
        );
        println!("| workload | raw async-nats (msg/s) | taskthread-nats (msg/s) | ratio |");
        println!("|---|---:|---:|---:|");
        for capacity in [None, Some(64), Some(128), Some(256)] {
            let (tell, ask) = remote(&url, tells, asks, capacity).await;
            let capacity = match capacity {
                Some(capacity) => format!("capacity {capacity}"),
                None => format!("default capacity ({DEFAULT_REMOTE_CAPACITY})"),
            };
            let (raw, ours) = (rate(tells, raw_tell), rate(tells, tell));
            println!(
                "| tell, {capacity} | {raw:.0} | {ours:.0} | {:.2}x |",
                ours / raw
            );
            let (raw, ours) = (rate(asks, raw_ask), rate(asks, ask));
            println!(
                "| ask, {capacity} | {raw:.0} | {ours:.0} | {:.2}x |",
                ours / raw
            );
        }
        let _ = server.kill().await;
    });
}
