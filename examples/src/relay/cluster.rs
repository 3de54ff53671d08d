//! The processes of a relay across processes: a `nats-server` (started on a free loopback
//! port, or one running already) and the worker processes that host the
//! [`RemoteProcessor`](super::remote::RemoteProcessor)s.
//!
//! Every process started here is killed and reaped when the [`Cluster`] is shut down or
//! dropped, whatever the exit path. The children run in process groups of their own, so
//! a Ctrl-C at the terminal reaches only the relay, which stops gracefully with its
//! workers still running, and then ends them. A worker also ends when its standard input
//! closes: were the relay killed outright, its workers would not outlive it.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::remote::HOST_READY;

/// Where the NATS server comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsServer {
    /// Start a `nats-server` on a free loopback port (`--nats auto`).
    Auto,
    /// Use the one running at this URL.
    Url(String),
}

impl NatsServer {
    /// `auto`, or a URL.
    pub fn parse(s: &str) -> Self {
        if s == "auto" {
            Self::Auto
        } else {
            Self::Url(s.to_owned())
        }
    }
}

/// A cluster that could not start.
#[derive(Debug)]
pub enum ClusterError {
    /// `nats-server` could not be run.
    NatsServer(io::Error),
    /// `nats-server` did not take connections in time.
    NatsServerSilent(u16),
    /// A worker could not be run.
    Worker(io::Error),
    /// A worker ended or did not say it was ready in time.
    WorkerNotReady(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NatsServer(e) => write!(
                f,
                "cannot run nats-server ({e}): install it (Debian: `apt-get install nats-server`), \
                 name it in NATS_SERVER, or give the URL of a running one with --nats"
            ),
            Self::NatsServerSilent(port) => {
                write!(f, "nats-server did not take connections on port {port}")
            }
            Self::Worker(e) => write!(f, "cannot start a worker process: {e}"),
            Self::WorkerNotReady(name) => write!(f, "worker `{name}` did not start"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// How long a process may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// The relay's helper processes: a `nats-server` if it started one, and the workers.
#[derive(Debug)]
pub struct Cluster {
    url: String,
    nats: Option<Child>,
    workers: Vec<Worker>,
}

#[derive(Debug)]
struct Worker {
    name: String,
    child: Child,
}

impl Cluster {
    /// Starts (or finds) the NATS server, then `workers` workers named `worker-1`,
    /// `worker-2`, ..., each run by `command(name, url)`, and waits until each says it is
    /// ready (prints [`HOST_READY`]).
    pub async fn start(
        nats: &NatsServer,
        workers: usize,
        command: impl Fn(&str, &str) -> Command,
    ) -> Result<Self, ClusterError> {
        let mut cluster = match nats {
            NatsServer::Url(url) => Self {
                url: url.clone(),
                nats: None,
                workers: Vec::new(),
            },
            NatsServer::Auto => {
                let (child, port) = start_nats_server().await?;
                Self {
                    url: format!("nats://127.0.0.1:{port}"),
                    nats: Some(child),
                    workers: Vec::new(),
                }
            }
        };
        for i in 1..=workers {
            let name = format!("worker-{i}");
            let mut cmd = command(&name, &cluster.url);
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .process_group(0);
            let mut child = cmd.spawn().map_err(ClusterError::Worker)?;
            let stdout = child.stdout.take().expect("piped");
            cluster.workers.push(Worker {
                name: name.clone(),
                child,
            });
            if !wait_ready(stdout).await {
                return Err(ClusterError::WorkerNotReady(name)); // dropped: all killed
            }
        }
        Ok(cluster)
    }

    /// The NATS server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The workers' host names.
    pub fn hosts(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.name.clone()).collect()
    }

    /// Kills worker `i` (from 0) with SIGKILL, as a crash would.
    pub fn kill_worker(&mut self, i: usize) -> io::Result<()> {
        self.workers[i].child.start_kill()
    }

    /// Ends the workers (closing their standard input asks them to stop their hosts, and
    /// those still running after a few seconds are killed), then the NATS server if it was
    /// started here, and reaps them all.
    pub async fn shutdown(mut self) {
        for worker in &mut self.workers {
            drop(worker.child.stdin.take());
        }
        for worker in &mut self.workers {
            if timeout(Duration::from_secs(5), worker.child.wait())
                .await
                .is_err()
            {
                let _ = worker.child.kill().await;
            }
        }
        if let Some(mut nats) = self.nats.take() {
            let _ = nats.kill().await;
        }
    }
}

/// Reads a worker's output until it says it is ready; false if it ends or takes too long.
async fn wait_ready(stdout: tokio::process::ChildStdout) -> bool {
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == HOST_READY {
                return true;
            }
        }
        false
    };
    let ready = timeout(READY_WITHIN, ready).await.unwrap_or(false);
    if ready {
        // The rest of its output is not read: let it go where it would have gone.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    ready
}

/// Starts `nats-server` on a free loopback port; waits until it takes connections.
async fn start_nats_server() -> Result<(Child, u16), ClusterError> {
    let port = free_port().map_err(ClusterError::NatsServer)?;
    let mut child = Command::new(nats_server_binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(ClusterError::NatsServer)?;
    for _ in 0..400 {
        if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            return Ok((child, port));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let e = io::Error::other(format!("it exited with {status}"));
            return Err(ClusterError::NatsServer(e));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill().await;
    Err(ClusterError::NatsServerSilent(port))
}

/// The `nats-server` binary: `NATS_SERVER` if set, else where Debian's package puts it,
/// else the one on the `PATH`.
pub fn nats_server_binary() -> String {
    if let Ok(binary) = std::env::var("NATS_SERVER") {
        return binary;
    }
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("nats-server")
    .to_owned()
}

/// Whether a `nats-server` can be run.
pub fn has_nats_server() -> bool {
    std::process::Command::new(nats_server_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port nothing listens on now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Waits until standard input is closed (or reaches its end): a worker's parent has gone
/// or asks it to stop. Read on a plain thread, which does not hold up the process's exit.
pub async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = io::stdin().lock();
        while matches!(io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}
