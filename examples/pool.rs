//! # pool — a worker pool resized through the control endpoint while it works
//!
//! Shows a [`WorkerPool`](taskthread::pool::WorkerPool) of identical `Hasher` workers under an
//! `App` thread that feeds it jobs and counts their results (the workers' UP messages reach
//! `App` as if the pool sent them), and the control endpoint: the program serves it on a
//! Unix socket and drives itself through it with the same client `taskthread-ctl` uses —
//! growing the pool, printing the tree, shrinking the pool — while jobs are in flight. At
//! the end it checks that every job was handled exactly once and prints who did what.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example pool
//! cargo run --example pool -- --jobs 2000     # longer, to drive it by hand meanwhile:
//! cargo run -p taskthread-ctl -- --unix /tmp/taskthread-pool-<pid>.sock
//! ```
//!
//! (The socket's path is printed at the start.)

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use taskthread::TrySendError;
use taskthread::control::{ControlClient, ControlEndpoint};
use taskthread::pool::WorkerPool;
use taskthread::prelude::*;

#[derive(Debug, Parser)]
struct Args {
    /// How many jobs to run.
    #[arg(long, default_value_t = 300)]
    jobs: u64,
}

/// A job: hash this number (slowly, to stand for real work).
#[derive(Debug, Clone, Copy)]
struct Job(u64);

/// What a worker sends UP for each job.
#[derive(Debug)]
struct Done {
    job: u64,
    worker: String,
}

/// A worker: one job at a time.
#[derive(Default)]
struct Hasher;

#[taskthread(up = Done)]
impl Hasher {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, job: Job) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(5 + job.0 % 10)).await;
        let worker = ctx.name().to_owned();
        ctx.up(Done { job: job.0, worker }).await?;
        Ok(())
    }
}

/// The summary `App` sends UP when every job is done: who handled which.
type Summary = BTreeMap<u64, Vec<String>>;

/// Feeds the pool from a rescheduling task (never waiting on a full pool: it tries again
/// on the next tick) and collects the results.
struct App {
    jobs: u64,
    sent: u64,
    pool: Option<ChildRef<WorkerPool<Hasher>>>,
    done: Summary,
}

#[taskthread(up = Summary)]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let pool = WorkerPool::new(|| Hasher).size(2).max(8);
        self.pool = Some(ctx.spawn_with(pool, ChildOptions::new().name("workers")));
        Ok(())
    }

    #[rescheduling(every = "5ms")]
    async fn feed(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let Some(pool) = &self.pool else {
            return Ok(Reschedule::Done);
        };
        while self.sent < self.jobs {
            match pool.try_send(Job(self.sent)) {
                Ok(()) => self.sent += 1,
                Err(TrySendError::Full(_)) => return Ok(Reschedule::Again),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Reschedule::Done)
    }

    #[up]
    async fn done(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, done: Done) -> Result<()> {
        self.done.entry(done.job).or_default().push(done.worker);
        if self.done.len().is_multiple_of(50) {
            println!("  {} of {} jobs done", self.done.len(), self.jobs);
        }
        if self.done.len() as u64 == self.jobs {
            ctx.up(std::mem::take(&mut self.done)).await?;
            ctx.stop();
        }
        Ok(())
    }
}

/// Sends one request through the control endpoint and prints the answer.
async fn control(client: &mut ControlClient, request: &str) -> Result<()> {
    let answer = client.request(request).await?;
    let status = if answer.ok { "" } else { "error: " };
    println!("> {request}\n{status}{}", answer.payload);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut app = taskthread::spawn(App {
        jobs: args.jobs,
        sent: 0,
        pool: None,
        done: Summary::new(),
    });

    let socket = std::env::temp_dir().join(format!("taskthread-pool-{}.sock", std::process::id()));
    let server = ControlEndpoint::unix(&socket).bind(&app).await?;
    let endpoint = taskthread::spawn(server);
    println!("control endpoint: {}", socket.display());
    println!("  (try: taskthread-ctl --unix {} tree)", socket.display());

    let mut client = ControlClient::connect_unix(&socket).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    control(&mut client, "pool app/workers running").await?;
    control(&mut client, "pool app/workers size 6").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    control(&mut client, "tree").await?;
    control(&mut client, "pool app/workers stop 4").await?;
    control(&mut client, "pool app/workers start 99").await?; // refused: over the maximum
    control(&mut client, "stats app/workers").await?;

    let summary = app
        .recv()
        .await
        .ok_or_else(|| Error::msg("the app ended without a summary"))?;
    let handled_once = summary.values().all(|workers| workers.len() == 1);
    let mut per_worker: BTreeMap<&str, usize> = BTreeMap::new();
    for worker in summary.values().flatten() {
        *per_worker.entry(worker).or_default() += 1;
    }
    println!(
        "summary: {} jobs, each handled exactly once: {handled_once}",
        summary.len()
    );
    for (worker, jobs) in &per_worker {
        println!("  {worker:>10}: {jobs} jobs");
    }

    endpoint.stop();
    endpoint.join().await.into_result()?;
    app.join().await.into_result()?;
    if !handled_once || summary.len() as u64 != args.jobs {
        return Err(Error::msg("a job was lost or handled twice"));
    }
    Ok(())
}
