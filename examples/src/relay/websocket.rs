//! `WebsocketMaster: IN: Frame` and `WebsocketSub: IN: Frame` — every frame to every
//! websocket destination, one binary message per frame, without ever holding up the rest
//! of the relay.

use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::link::{Batch, Conn, Connected, Heard, LastWords, Link, LinkDone, LinkEvent};
use super::outbox::{Lag, Outbox};
use super::{Frame, RelayStats};

/// The default buffer of each destination: 32 MiB of frames.
pub const DEFAULT_BUFFER: usize = 32 << 20;

/// How many frames a sub's queue holds: its handler never waits, so the queue fills only
/// if the sub cannot run at all.
pub const SUB_QUEUE: usize = 4096;

/// How a `WebsocketSub` behaves when its destination is slow or away.
#[derive(Debug, Clone)]
pub struct SubOptions {
    /// How many payload bytes are kept for the destination, waiting to be written or
    /// written and not yet confirmed; beyond that the oldest waiting frames are dropped.
    /// As large as the relay's byte budget, nothing is dropped: a destination that lags
    /// holds up the clients instead (see [`RelayConfig::check`](super::app::RelayConfig::check)).
    pub buffer: usize,
    /// The first wait before reconnecting; doubled after each failed attempt.
    pub backoff_min: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long the destination may take no byte of a write before it is deemed gone.
    pub write_timeout: Duration,
    /// How long a stopping sub tries to deliver what it holds.
    pub flush_timeout: Duration,
}

impl Default for SubOptions {
    fn default() -> Self {
        Self {
            buffer: DEFAULT_BUFFER,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(10),
        }
    }
}

/// A destination as the master sees it: its sub, and whether its queue refuses frames.
#[derive(Debug)]
struct Destination {
    sub: ChildRef<WebsocketSub>,
    lag: Lag,
    refused: u64,
}

/// Fans every frame out to one `WebsocketSub` per destination URL.
///
/// It never waits for a sub: a frame goes into each sub's queue if there is room, and a
/// sub whose queue is full (or that has ended) misses it, counted for that destination
/// (`ws_dropped`) and settled as lost. So the master, the database and the TCP side never
/// wait on a destination, however slow.
#[derive(Debug)]
pub struct WebsocketMaster {
    urls: Vec<String>,
    options: SubOptions,
    stats: Arc<RelayStats>,
    destinations: Vec<Destination>,
}

impl WebsocketMaster {
    /// A master for these destinations.
    pub fn new(urls: Vec<String>, options: SubOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            urls,
            options,
            stats,
            destinations: Vec::new(),
        }
    }
}

#[taskthread]
impl WebsocketMaster {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for url in &self.urls {
            let sub = WebsocketSub::new(url.clone(), self.options.clone(), self.stats.clone());
            let options = ChildOptions::new().name("sub").capacity(SUB_QUEUE);
            self.destinations.push(Destination {
                sub: ctx.spawn_with(sub, options),
                lag: Lag::new(url),
                refused: 0,
            });
        }
        Ok(())
    }

    #[down]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, frame: Frame) {
        frame.delivery.open(self.destinations.len());
        for destination in &mut self.destinations {
            match destination.sub.try_send(frame.clone()) {
                Ok(()) => destination.lag.caught_up(destination.refused),
                Err(refused) => {
                    refused.into_inner().delivery.lost();
                    destination.refused += 1;
                    self.stats.count_ws_dropped(1);
                    let why = || format!("its queue of {SUB_QUEUE} frames is full");
                    destination.lag.dropping(destination.refused, why);
                }
            }
        }
    }
}

/// Where a sub's connection is.
#[derive(Debug)]
enum LinkState {
    /// Not connected (waiting to reconnect, or connecting).
    Down,
    /// Connected: the link's task runs the connection; `writing` while it has a batch.
    Up { link: Link, writing: bool },
}

/// One websocket destination.
///
/// Frames go into an [`Outbox`] bounded in bytes. While connected, the link's task (a task
/// of the sub) writes one batch at a time and says when it is written and what the
/// destination answers, so the sub's loop is never held up by its destination: frames keep
/// coming into the outbox, and if the destination cannot keep up, the oldest ones are
/// dropped and counted. While the destination is unreachable frames wait in the outbox,
/// and the `connect` task retries with exponential [`Backoff`]; once connected, the buffer
/// is sent first, in order. On stop, the link's task gives the connection back; the sub
/// sends what is left and waits for the confirmation, for `flush_timeout` at most;
/// whatever the destination did not confirm is counted as dropped, never dropped silently.
#[derive(Debug)]
pub struct WebsocketSub {
    url: String,
    options: SubOptions,
    link: LinkState,
    /// The connection taken back from its task for the last flush.
    closing: Option<Conn>,
    outbox: Outbox,
    backoff: Backoff,
    stats: Arc<RelayStats>,
}

impl WebsocketSub {
    /// A sub for the destination at `url` (`ws://host:port/path`).
    pub fn new(url: String, options: SubOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            outbox: Outbox::new(&url, options.buffer, Arc::clone(&stats)),
            backoff: Backoff::new(options.backoff_min, options.backoff_max),
            link: LinkState::Down,
            closing: None,
            url,
            options,
            stats,
        }
    }
}

#[taskthread]
impl WebsocketSub {
    /// Starts a connection attempt, whose result comes to `connected`. Runs at start, then
    /// after a backoff whenever an attempt failed or the connection was lost.
    #[rescheduling]
    async fn connect(&mut self, ctx: &mut Ctx<Self>) -> Reschedule {
        ctx.spawn_task(self.connect_once());
        Reschedule::Done
    }

    #[stream]
    async fn connected(&mut self, ctx: &mut Ctx<Self>, Connected(attempt): Connected) {
        match attempt {
            Ok((link, task, events)) => {
                tracing::info!(url = %self.url, buffered = self.outbox.len(), "connected");
                if ctx.is_stopping() {
                    // Too late to run it: `exit` writes on the connection directly.
                    self.closing = Some(task.into_conn());
                    return;
                }
                ctx.attach(events);
                ctx.spawn_task(task);
                self.link = LinkState::Up {
                    link,
                    writing: false,
                };
                self.backoff.reset();
                self.write_next(ctx);
            }
            Err(e) => self.reconnect_later(ctx, &format!("cannot connect: {e}")),
        }
    }

    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        self.outbox.push(frame);
        self.write_next(ctx);
    }

    #[stream]
    async fn event(&mut self, ctx: &mut Ctx<Self>, event: LinkEvent) {
        let LinkState::Up { link, writing } = &mut self.link else {
            return;
        };
        if event.link != link.id() {
            return; // a link given up earlier
        }
        match event.heard {
            Heard::Written => {
                *writing = false;
                self.write_next(ctx);
            }
            Heard::Pong(pong) => self.outbox.confirm(&pong),
            Heard::Nothing => {}
        }
    }

    /// The link's task ended: the connection is gone, or given back because the sub is
    /// stopping.
    #[stream]
    async fn link_done(&mut self, ctx: &mut Ctx<Self>, done: LinkDone) {
        if !matches!(&self.link, LinkState::Up { link, .. } if link.id() == done.link) {
            return; // a link given up earlier: dropping it closes it
        }
        self.link = LinkState::Down;
        match done.outcome {
            Ok(back) => self.closing = Some(back),
            Err(reason) => self.disconnected(ctx, &reason),
        }
    }

    /// The queue is drained and the link's task has ended: send what is left (after one
    /// last connection attempt if need be), wait for the destination to confirm it, and
    /// count the rest as dropped.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        let deadline = Instant::now() + self.options.flush_timeout;
        if self.closing.is_none() && !self.outbox.is_empty() {
            let attempt = tokio::time::timeout_at(deadline, self.connect_once()).await;
            if let Ok(Connected(Ok((_link, task, _events)))) = attempt {
                self.closing = Some(task.into_conn());
            }
        }
        if let Some(conn) = self.closing.take() {
            let mut last = LastWords::new(conn, deadline);
            self.outbox.flush(&mut last).await;
            last.close().await;
        }
        let lost = self.outbox.abandon();
        if lost > 0 {
            tracing::warn!(url = %self.url, "stopping with {lost} frames the destination did not confirm: counted as dropped");
        }
        let (delivered, dropped) = (self.outbox.delivered(), self.outbox.dropped());
        tracing::info!(url = %self.url, delivered, dropped, "stopped");
    }
}

impl WebsocketSub {
    fn connect_once(&self) -> impl Future<Output = Connected> + Send + 'static {
        let options = &self.options;
        Link::connect(
            self.url.clone(),
            options.connect_timeout,
            options.write_timeout,
        )
    }

    /// Hands the link the next batch, if it is free and the sub is not stopping (`exit`
    /// writes the rest).
    fn write_next(&mut self, ctx: &mut Ctx<Self>) {
        if ctx.is_stopping() {
            return;
        }
        let LinkState::Up {
            link,
            writing: writing @ false,
        } = &mut self.link
        else {
            return;
        };
        let Some((payloads, ping)) = self.outbox.next_batch() else {
            return;
        };
        // Refused only if the task has ended: `link_done` is on its way, and the batch,
        // unconfirmed, goes back to the buffer then.
        if link
            .write(Batch {
                payloads,
                ping: Some(ping),
            })
            .is_ok()
        {
            *writing = true;
        }
    }

    /// Gives the connection up: the frames it did not confirm wait for the next one.
    fn disconnected(&mut self, ctx: &mut Ctx<Self>, reason: &str) {
        self.link = LinkState::Down;
        self.outbox.requeue();
        self.stats.count_destination_drop();
        self.reconnect_later(ctx, &format!("lost the connection: {reason}"));
    }

    fn reconnect_later(&mut self, ctx: &mut Ctx<Self>, what: &str) {
        let buffered = self.outbox.len();
        if ctx.is_stopping() {
            // No reconnecting any more: `exit` makes one last attempt.
            return tracing::warn!(url = %self.url, buffered, "{what} (stopping)");
        }
        let wait = self.backoff.next_wait();
        tracing::warn!(url = %self.url, buffered, "{what}; retrying in {wait:?}");
        ctx.reschedule_task(Self::CONNECT, wait);
    }
}
