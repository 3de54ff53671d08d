//! `Master` — the root: owns the TCP side, the websocket destinations and the database,
//! routes every frame from the first to the other two, and decides the stop order.

use std::sync::Arc;

use taskthread::prelude::*;

use super::budget::Budget;
use super::websocket::SubOptions;
use super::{Database, Frame, RelayStats, TcpServer, WebsocketMaster};

/// The root of the relay.
///
/// Its children are built before the tree starts (binding the port and opening the
/// database are start-up errors, not failures of a running relay) and spawned in `enter`,
/// each in its stop stage: the TCP side in stage 0, the websocket destinations and the
/// database in stage 1, so a graceful stop lets every frame the TCP side has received
/// reach them before they stop. A connection stops only once its frames are stored (or
/// never will be), so the TCP side's stop waits for the database, never for a websocket
/// destination.
#[derive(Debug)]
pub struct Master {
    server: Option<TcpServer>,
    budget: Budget,
    database: Option<Database>,
    urls: Vec<String>,
    sub_options: SubOptions,
    stats: Arc<RelayStats>,
    websocket: Option<ChildRef<WebsocketMaster>>,
    db: Option<ChildRef<Database>>,
}

impl Master {
    /// A master for a bound server, an open database and the websocket destinations.
    pub fn new(
        server: TcpServer,
        database: Database,
        urls: Vec<String>,
        sub_options: SubOptions,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            budget: server.budget().clone(),
            server: Some(server),
            database: Some(database),
            urls,
            sub_options,
            stats,
            websocket: None,
            db: None,
        }
    }
}

#[taskthread]
impl Master {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let server = self.server.take().expect("enter runs once");
        // Stage 0: the TCP side stops first; the destinations and the database (stage 1)
        // stop only once every frame it received has been handed on.
        ctx.spawn_with(server, ChildOptions::new().stop_stage(0));

        let urls = self.urls.clone();
        let websocket = WebsocketMaster::new(urls, self.sub_options.clone(), self.stats.clone());
        self.websocket = Some(ctx.spawn_with(websocket, ChildOptions::new().stop_stage(1)));

        let database = self.database.take().expect("enter runs once");
        self.db = Some(ctx.spawn_with(database, ChildOptions::new().stop_stage(1)));
        Ok(())
    }

    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        let (Some(websocket), Some(db)) = (&self.websocket, &self.db) else {
            unreachable!("spawned in enter");
        };
        websocket.send(frame.clone()).await?;
        db.send(frame).await?;
        Ok(())
    }

    /// The children run as long as the relay: one that fails takes the relay down with
    /// it, and the summary counts what could not be forwarded or stored as lost.
    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        if exit.exit.is_failure() {
            return Err(Error::msg(format!("the relay cannot go on: {exit}")));
        }
        Ok(())
    }

    /// Logs the counters every 10 seconds.
    #[rescheduling(every = "10s", delay = "10s")]
    async fn report(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        let s = &self.stats;
        tracing::info!(
            received = s.received(),
            stored = s.stored(),
            acked = s.acked(),
            ws_dropped = s.ws_dropped(),
            bytes = s.bytes(),
            buffered = self.budget.in_use(),
            clients = s.clients_accepted() - s.clients_closed(),
            "relaying"
        );
        Reschedule::Again
    }

    /// What became of the clients, once they are all gone.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        let s = &self.stats;
        tracing::info!(
            accepted = s.clients_accepted(),
            refused = s.clients_refused(),
            rejected = s.clients_rejected(),
            idle = s.clients_idle(),
            slow = s.clients_slow(),
            peak_buffered = self.budget.peak(),
            "clients"
        );
    }
}
