//! # hello — one thread, one rescheduling task
//!
//! Shows the smallest useful tree: a single thread whose `#[rescheduling]` task logs a
//! greeting once a second, counting its runs, until you press Ctrl-C (or send SIGTERM),
//! which stops the thread gracefully: its `exit` hook runs and the program ends.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example hello
//! ```
//!
//! Set `RUST_LOG=debug` to also see the framework's own lines.

use taskthread::prelude::*;

/// The whole program: a thread that greets once a second.
#[derive(Default)]
struct Hello {
    greetings: u64,
}

#[taskthread]
impl Hello {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        tracing::info!(path = ctx.path(), "started; press Ctrl-C to stop");
        Ok(())
    }

    /// Runs at once, then every second: `Again` keeps it on its period.
    #[rescheduling(every = "1s")]
    async fn greet(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.greetings += 1;
        tracing::info!(n = self.greetings, "hello from a taskthread");
        Ok(Reschedule::Again)
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        tracing::info!(greetings = self.greetings, "stopped gracefully");
    }
}

#[tokio::main]
async fn main() -> taskthread::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    taskthread::run(Hello::default()).await
}
