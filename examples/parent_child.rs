//! # parent_child — a child sending UP, a parent handling it, an ordered stop
//!
//! Shows the two directions of the tree. `Parent` spawns a `Sensor` child in its `enter`
//! hook. Every two seconds the sensor's rescheduling task sends a `Reading` UP; the parent's
//! `#[up]` handler logs it, and every third reading the parent sends a `Calibrate` message
//! DOWN to the child. Press Ctrl-C and the stop runs in order: the parent stops accepting
//! messages, stops its child (the child's `exit` hook logs first), hears the child's exit as
//! an UP event, then runs its own `exit`.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example parent_child
//! ```

use taskthread::prelude::*;

/// What the sensor sends UP.
#[derive(Debug, Clone, Copy)]
struct Reading(f64);

/// What the parent sends DOWN.
#[derive(Debug, Clone, Copy)]
struct Calibrate {
    offset: f64,
}

/// A child producing readings.
#[derive(Default)]
struct Sensor {
    offset: f64,
    tick: u32,
}

#[taskthread(up = Reading)]
impl Sensor {
    #[rescheduling(every = "2s", delay = "1s")]
    async fn sample(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.tick += 1;
        let value = 20.0 + f64::from(self.tick % 7) + self.offset;
        ctx.up(Reading(value)).await?;
        Ok(Reschedule::Again)
    }

    #[down]
    async fn calibrate(&mut self, ctx: &mut Ctx<Self>, c: Calibrate) -> Result<()> {
        self.offset = c.offset;
        tracing::info!(path = ctx.path(), offset = c.offset, "calibrated");
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        tracing::info!(path = ctx.path(), "child stopping (children stop first)");
    }
}

/// The root: owns the sensor and reacts to its readings.
#[derive(Default)]
struct Parent {
    sensor: Option<ChildRef<Sensor>>,
    readings: u32,
}

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.sensor = Some(ctx.spawn(Sensor::default()));
        tracing::info!("press Ctrl-C to stop");
        Ok(())
    }

    #[up]
    async fn reading(&mut self, _ctx: &mut Ctx<Self>, from: ChildId, r: Reading) -> Result<()> {
        self.readings += 1;
        tracing::info!(%from, value = r.0, "reading");
        if self.readings.is_multiple_of(3)
            && let Some(sensor) = &self.sensor
        {
            sensor.send(Calibrate { offset: -0.5 }).await?;
        }
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        tracing::info!("child ended: {exit}");
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        tracing::info!(
            path = ctx.path(),
            readings = self.readings,
            "parent stopped last"
        );
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
    taskthread::run(Parent::default()).await
}
