//! `WebsocketMaster: IN: Frame` and `WebsocketSub: IN: Frame` — every frame to every
//! websocket destination, one binary message per frame.

use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;

use super::backoff::Backoff;
use super::link::{Connected, Heard, Link, LinkEvent};
use super::outbox::Outbox;
use super::{Frame, RelayStats};

/// How a `WebsocketSub` behaves when its destination is slow or away.
#[derive(Debug, Clone)]
pub struct SubOptions {
    /// How many frames are kept while the destination is unreachable; beyond that the
    /// oldest are dropped and counted as lost.
    pub buffer: usize,
    /// The first wait before reconnecting; doubled after each failed attempt.
    pub backoff_min: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long writing one frame may take before the destination is deemed gone.
    pub write_timeout: Duration,
}

impl Default for SubOptions {
    fn default() -> Self {
        Self {
            buffer: 1024,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Fans every frame out to one `WebsocketSub` per destination URL.
///
/// Each sub settles its share of the frame's [`Delivery`](super::delivery::Delivery); a
/// sub that cannot take the frame (it has ended) loses it, so the summary shows it.
#[derive(Debug)]
pub struct WebsocketMaster {
    urls: Vec<String>,
    options: SubOptions,
    stats: Arc<RelayStats>,
}

impl WebsocketMaster {
    /// A master for these destinations.
    pub fn new(urls: Vec<String>, options: SubOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            urls,
            options,
            stats,
        }
    }
}

#[taskthread]
impl WebsocketMaster {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for url in &self.urls {
            let sub = WebsocketSub::new(url.clone(), self.options.clone(), self.stats.clone());
            ctx.spawn_with(sub, ChildOptions::new().name("sub"));
        }
        Ok(())
    }

    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        let delivery = frame.delivery.clone();
        delivery.open(self.urls.len());
        let accepted = ctx.broadcast::<WebsocketSub, _>(frame).await;
        for _refused in accepted..self.urls.len() {
            delivery.lost();
        }
    }
}

/// One websocket destination.
///
/// Frames go out as they come while connected, through an [`Outbox`] that keeps them until
/// the destination confirms it has read them. While the destination is unreachable they
/// wait in the outbox's bounded buffer, and the `connect` task retries with exponential
/// [`Backoff`]; once connected, the buffer is sent first, in order. On stop, the sub
/// sends what is left and waits for the confirmation; whatever the destination did not
/// confirm is counted as lost, never dropped silently.
#[derive(Debug)]
pub struct WebsocketSub {
    url: String,
    options: SubOptions,
    stats: Arc<RelayStats>,
    /// The connection, while there is one.
    link: Option<Link>,
    outbox: Outbox,
    backoff: Backoff,
}

impl WebsocketSub {
    /// A sub for the destination at `url` (`ws://host:port/path`).
    pub fn new(url: String, options: SubOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            outbox: Outbox::new(options.buffer),
            backoff: Backoff::new(options.backoff_min, options.backoff_max),
            link: None,
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
            Ok((link, incoming)) => {
                tracing::info!(url = %self.url, buffered = self.outbox.len(), "connected");
                if !ctx.is_stopping() {
                    ctx.attach(incoming); // else dropped: `exit` reads the link directly
                }
                self.link = Some(link);
                self.backoff.reset();
                self.send(ctx).await;
            }
            Err(e) => self.reconnect_later(ctx, &format!("cannot connect: {e}")),
        }
    }

    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        self.outbox.push(frame);
        self.send(ctx).await;
    }

    #[stream]
    async fn incoming(&mut self, ctx: &mut Ctx<Self>, event: LinkEvent) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match link.hear(event).await {
            Heard::Pong(pong) => self.outbox.confirm(&pong),
            Heard::Gone(reason) => self.disconnected(ctx, &reason),
            Heard::Nothing => {}
        }
    }

    /// The queue is drained: send what is left (after one last connection attempt if
    /// need be), wait for the destination to confirm it, and count the rest as lost.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        if self.link.is_none() && !self.outbox.is_empty() {
            // One last attempt; `_incoming` is dropped, so `exit` reads the link directly.
            if let Connected(Ok((link, _incoming))) = self.connect_once().await {
                self.link = Some(link);
            }
        }
        if let Some(mut link) = self.link.take() {
            let limit = self.options.write_timeout;
            self.outbox.flush(&mut link, limit).await;
            link.close().await;
        }
        let lost = self.outbox.abandon();
        if lost > 0 {
            tracing::warn!(url = %self.url, "stopping with {lost} frames the destination did not confirm: counted as lost");
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

    /// Writes what waits in the outbox, while connected.
    async fn send(&mut self, ctx: &mut Ctx<Self>) {
        if let Some(link) = self.link.as_mut()
            && let Err(reason) = self.outbox.send(link).await
        {
            self.disconnected(ctx, &reason);
        }
    }

    /// Gives the connection up: the frames it did not confirm wait for the next one.
    fn disconnected(&mut self, ctx: &mut Ctx<Self>, reason: &str) {
        self.link = None;
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
