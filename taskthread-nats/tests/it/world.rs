//! What the protocol tests share: a `Worker` that runs on a host, a `Boss` that spawns it
//! remotely and writes down what it hears, and a world with both sides on one transport.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskthread::prelude::*;
use taskthread_nats::{
    Host, HostBuilder, RemoteOptions, Remotes, Settings, Transport, memory::MemoryTransport,
};
use tokio::sync::Semaphore;

/// A job: the worker writes its number down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Job(pub(crate) u32);

/// Asks for the sum of the jobs done.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Sum;

/// Makes the worker fail.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Fail;

/// Asks a question whose handler fails.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Divide(pub(crate) u64);

/// Read on the host, it panics, as a faulty `Deserialize` impl does.
#[derive(Debug, Serialize)]
pub(crate) struct Poison;

impl<'de> Deserialize<'de> for Poison {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("a faulty `Deserialize`")
    }
}

/// Sends a text back UP.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Echo(pub(crate) String);

/// What a worker sends UP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Every tenth job.
    Tenth(u32),
    Echo(String),
    /// From its `exit` hook.
    Bye,
}

/// What the worker's factory takes.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    /// Whether its jobs wait for a permit of the world's gate.
    pub(crate) gated: bool,
    /// Whether its `exit` hook waits for a permit of the world's gate.
    pub(crate) gated_exit: bool,
}

pub(crate) struct Worker {
    args: WorkerArgs,
    gate: Arc<Semaphore>,
    done: Arc<Mutex<Vec<u32>>>,
}

#[taskthread(remote, up = Report)]
impl Worker {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, Job(n): Job) -> Result<()> {
        if self.args.gated {
            self.gate.acquire().await.map_err(Error::new)?.forget();
        }
        self.done.lock().unwrap().push(n);
        if n % 10 == 0 {
            ctx.up(Report::Tenth(n)).await?;
        }
        Ok(())
    }

    #[down]
    async fn sum(&mut self, _ctx: &mut Ctx<Self>, _s: Sum) -> Result<u64> {
        Ok(self
            .done
            .lock()
            .unwrap()
            .iter()
            .map(|&n| u64::from(n))
            .sum())
    }

    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
        Err(Error::msg("told to fail"))
    }

    #[down]
    async fn divide(&mut self, _ctx: &mut Ctx<Self>, Divide(n): Divide) -> Result<u64> {
        100u64
            .checked_div(n)
            .ok_or_else(|| Error::msg("division by zero"))
    }

    #[down]
    async fn poison(&mut self, _ctx: &mut Ctx<Self>, _p: Poison) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn echo(&mut self, ctx: &mut Ctx<Self>, Echo(text): Echo) -> Result<()> {
        ctx.up(Report::Echo(text)).await?;
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if self.args.gated_exit {
            self.gate.acquire().await.map_err(Error::new)?.forget();
        }
        ctx.up(Report::Bye).await?;
        Ok(())
    }
}

/// What the boss heard, as lines.
pub(crate) type Heard = Arc<Mutex<Vec<String>>>;

/// Spawns remote workers when asked; writes down their reports and exits.
pub(crate) struct Boss {
    remotes: Remotes,
    heard: Heard,
}

impl Boss {
    /// A boss spawning through `remotes`, and what it will hear.
    pub(crate) fn new(remotes: Remotes) -> (Self, Heard) {
        let heard = Heard::default();
        (
            Self {
                remotes,
                heard: heard.clone(),
            },
            heard,
        )
    }
}

/// Spawn a worker.
pub(crate) struct Spawn(pub(crate) RemoteOptions);

#[taskthread]
impl Boss {
    #[down]
    async fn spawn(
        &mut self,
        ctx: &mut Ctx<Self>,
        Spawn(options): Spawn,
    ) -> Result<ChildRef<Worker>> {
        self.remotes.spawn(ctx, options).map_err(Error::new)
    }

    #[up]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, report: Report) -> Result<()> {
        self.heard.lock().unwrap().push(format!("{report:?}"));
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        let escalated = if exit.escalated { " escalated" } else { "" };
        let line = format!(
            "exit {} {} dropped={}{escalated}",
            exit.path(),
            exit.exit,
            exit.dropped
        );
        self.heard.lock().unwrap().push(line);
        Ok(())
    }

    #[up]
    async fn restarted(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        r: ChildRestart,
    ) -> Result<()> {
        let line = format!("restart {} life {} {}", r.path(), r.life, r.exit);
        self.heard.lock().unwrap().push(line);
        Ok(())
    }
}

pub(crate) const HOST: &str = "host-a";

/// Both sides of the tests on one memory transport.
pub(crate) struct World {
    pub(crate) transport: MemoryTransport,
    pub(crate) host: Option<Host>,
    pub(crate) boss: Handle<Boss>,
    pub(crate) heard: Heard,
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) done: Arc<Mutex<Vec<u32>>>,
    pub(crate) settings: Settings,
}

/// The host named `name`, with `Worker` registered, on `transport`.
pub(crate) async fn start_host<T: Transport + Clone>(
    name: &str,
    transport: &T,
    gate: &Arc<Semaphore>,
    done: &Arc<Mutex<Vec<u32>>>,
) -> Host {
    worker_host(name, transport, gate, done)
        .start()
        .await
        .expect("the host starts")
}

/// A host named `name`, with `Worker` registered, on `transport`, to be started.
pub(crate) fn worker_host<T: Transport + Clone>(
    name: &str,
    transport: &T,
    gate: &Arc<Semaphore>,
    done: &Arc<Mutex<Vec<u32>>>,
) -> HostBuilder {
    let (gate, done) = (gate.clone(), done.clone());
    Host::builder(name, transport.clone()).register(move |args: WorkerArgs| Worker {
        args,
        gate: gate.clone(),
        done: done.clone(),
    })
}

pub(crate) async fn world() -> World {
    world_with(MemoryTransport::new(), Settings::new()).await
}

pub(crate) async fn world_with(transport: MemoryTransport, settings: Settings) -> World {
    let gate = Arc::new(Semaphore::new(0));
    let done = Arc::new(Mutex::new(Vec::new()));
    let host = start_host(HOST, &transport, &gate, &done).await;
    let remotes = Remotes::start_with(transport.clone(), settings)
        .await
        .expect("the remotes start");
    let (boss, heard) = Boss::new(remotes);
    let boss = taskthread::spawn(boss);
    World {
        transport,
        host: Some(host),
        boss,
        heard,
        gate,
        done,
        settings,
    }
}

impl World {
    /// Spawns a worker on the host, ungated, with `options` for the child.
    pub(crate) async fn worker(&self, options: ChildOptions) -> ChildRef<Worker> {
        self.worker_with(
            RemoteOptions::on(HOST)
                .args(WorkerArgs {
                    gated: false,
                    gated_exit: false,
                })
                .child(options),
        )
        .await
    }

    pub(crate) async fn worker_with(&self, options: RemoteOptions) -> ChildRef<Worker> {
        self.boss
            .ask(Spawn(options))
            .await
            .expect("the boss spawns")
    }

    pub(crate) fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }

    pub(crate) fn done(&self) -> Vec<u32> {
        self.done.lock().unwrap().clone()
    }

    /// Waits until the boss has heard a line that starts with `prefix`, and gives it.
    pub(crate) async fn heard_line(&self, prefix: &str) -> String {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let heard = self.heard();
            if let Some(line) = heard.iter().find(|l| l.starts_with(prefix)) {
                return line.clone();
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "never heard `{prefix}`; heard {heard:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the boss and the host; gives the boss's exit.
    pub(crate) async fn end(mut self) -> Exit {
        self.boss.stop();
        let exit = self.boss.join().await;
        if let Some(host) = self.host.take() {
            host.stop().await;
        }
        exit
    }
}

/// Waits (the paused clock advancing as the tasks idle) until `check` gives a value; fails
/// the test after a simulated hour.
pub(crate) async fn until<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the condition never held"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
