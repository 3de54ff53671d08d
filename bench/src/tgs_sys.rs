//! tokio-graceful-shutdown 0.20: a tree of nested subsystems under a `Toplevel`, stopped by
//! cancelling its shutdown token; `handle_shutdown_requests` returns once every subsystem
//! has ended. It has no messaging, so it runs the shutdown workload only.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
use tokio_util::sync::CancellationToken;

use crate::model::{
    Countdown, Figures, Flavour, Metric, SMALL_QUEUE, Scale, System, Value, Workload,
    not_applicable, per, tree_size,
};

/// tokio-graceful-shutdown.
#[derive(Debug)]
pub(crate) struct TgsSys;

/// Why tokio-graceful-shutdown has no figure outside the shutdown workload.
const SHUTDOWN_ONLY: &str = "tokio-graceful-shutdown manages subsystems and their shutdown only: no messages, no periodic tasks";

impl System for TgsSys {
    fn name(&self) -> &'static str {
        "tokio-graceful-shutdown"
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        match workload {
            Workload::Shutdown => scale
                .shutdown_trees()
                .into_iter()
                .map(|(metric, depth, breadth)| {
                    (metric, flavour.block_on(move || shutdown(depth, breadth)))
                })
                .collect::<Vec<(Metric, Value)>>(),
            Workload::Spawn => not_applicable(workload, SHUTDOWN_ONLY)
                .into_iter()
                .filter(|(m, _)| *m != Metric::IdleMemory)
                .collect(),
            _ => not_applicable(workload, SHUTDOWN_ONLY),
        }
    }

    fn idle_memory_not_applicable(&self, _flavour: Flavour) -> Option<&'static str> {
        Some(SHUTDOWN_ONLY)
    }

    fn idle_memory(&self, _flavour: Flavour, _n: usize) -> (u64, u64) {
        unreachable!("idle memory is not applicable")
    }
}

/// A subsystem of the tree: starts its nested subsystems, then idles (with a queue, like
/// the other systems' units) until shutdown is requested.
fn node(
    handle: &mut SubsystemHandle,
    depth: u32,
    breadth: usize,
    entered: Arc<Countdown>,
) -> Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send + '_>> {
    Box::pin(async move {
        let (_tx, mut rx) = mpsc::channel::<u64>(SMALL_QUEUE);
        if depth > 0 {
            for _ in 0..breadth {
                let entered = Arc::clone(&entered);
                handle.start(SubsystemBuilder::new(
                    "node",
                    async move |h: &mut SubsystemHandle| node(h, depth - 1, breadth, entered).await,
                ));
            }
        }
        entered.count();
        tokio::select! {
            () = handle.on_shutdown_requested() => {}
            _ = rx.recv() => {}
        }
        Ok(())
    })
}

async fn shutdown(depth: u32, breadth: usize) -> Value {
    let entered = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let token = CancellationToken::new();
    let root_entered = Arc::clone(&entered);
    let toplevel = Toplevel::new_with_shutdown_token(
        async move |s: &mut SubsystemHandle| {
            s.start(SubsystemBuilder::new(
                "root",
                async move |h: &mut SubsystemHandle| node(h, depth, breadth, root_entered).await,
            ));
        },
        token.clone(),
    );
    let running = tokio::spawn(toplevel.handle_shutdown_requests(Duration::from_secs(60)));
    entered.wait().await;
    let start = Instant::now();
    token.cancel();
    running
        .await
        .expect("the toplevel ends")
        .expect("a clean shutdown");
    Value::Measured(per(start.elapsed(), 1, 1_000_000.0))
}
