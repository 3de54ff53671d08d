//! `WebsocketMaster: IN: Frame` and `WebsocketSub: IN: Frame` — every frame to every
//! websocket destination, one binary message per frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt, stream};
use taskthread::prelude::*;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

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
/// A frame that a sub cannot take (it has ended) is counted as undelivered, so it shows in
/// the summary as lost.
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
        self.stats.count_routed();
        let id = frame.id;
        let accepted = ctx.broadcast::<WebsocketSub, _>(frame).await;
        if accepted < self.urls.len() {
            self.stats.count_undelivered(id);
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The result of a connection attempt.
#[derive(Debug)]
pub struct Connected(Result<Socket, String>);

/// What the reader of a connection saw: a message, an error, or the end (`None`).
#[derive(Debug)]
pub struct Incoming {
    generation: u64,
    event: Option<Result<Message, tungstenite::Error>>,
}

/// One websocket destination.
///
/// Frames go out as they come while connected. While the destination is unreachable they
/// wait in a bounded buffer, and a `#[rescheduling]` task reconnects with exponential
/// backoff; once connected, the buffer is sent first, in order. A frame that falls off
/// the full buffer, or is still buffered when the sub stops, is counted as undelivered:
/// never dropped silently.
///
/// A frame counts as delivered once written to the connection: websockets have no
/// acknowledgements, so frames written just before a connection breaks may not have been
/// read by the destination.
#[derive(Debug)]
pub struct WebsocketSub {
    url: String,
    options: SubOptions,
    stats: Arc<RelayStats>,
    writer: Option<SplitSink<Socket, Message>>,
    /// Tells this connection's reader from those of earlier ones.
    generation: u64,
    buffer: VecDeque<Frame>,
    backoff: Duration,
    delivered: u64,
    dropped: u64,
}

impl WebsocketSub {
    /// A sub for the destination at `url` (`ws://host:port/path`).
    pub fn new(url: String, options: SubOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            backoff: options.backoff_min,
            url,
            options,
            stats,
            writer: None,
            generation: 0,
            buffer: VecDeque::new(),
            delivered: 0,
            dropped: 0,
        }
    }
}

#[taskthread]
impl WebsocketSub {
    /// Starts a connection attempt; the result arrives in `connected`. Runs once at start,
    /// then whenever a connection is lost or an attempt failed, after the backoff.
    #[rescheduling]
    async fn connect(&mut self, ctx: &mut Ctx<Self>) -> Reschedule {
        ctx.spawn_task(connect(self.url.clone(), self.options.connect_timeout));
        Reschedule::Done
    }

    #[stream]
    async fn connected(&mut self, ctx: &mut Ctx<Self>, Connected(result): Connected) {
        match result {
            Ok(socket) => {
                let (writer, reader) = socket.split();
                self.generation += 1;
                let generation = self.generation;
                let end = stream::once(async move {
                    Incoming {
                        generation,
                        event: None,
                    }
                });
                let events = reader.map(move |m| Incoming {
                    generation,
                    event: Some(m),
                });
                if !ctx.is_stopping() {
                    ctx.attach(events.chain(end));
                }
                self.writer = Some(writer);
                self.backoff = self.options.backoff_min;
                tracing::info!(url = %self.url, buffered = self.buffer.len(), "connected");
                self.send_buffered(ctx).await;
            }
            Err(e) => {
                tracing::warn!(url = %self.url, "cannot connect: {e}; retrying in {:?}", self.backoff);
                self.retry_later(ctx);
            }
        }
    }

    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        if self.buffer.len() >= self.options.buffer
            && let Some(oldest) = self.buffer.pop_front()
        {
            if self.dropped == 0 {
                tracing::warn!(url = %self.url, "buffer full ({} frames): dropping the oldest, counted as lost", self.options.buffer);
            }
            self.dropped += 1;
            self.stats.count_undelivered(oldest.id);
        }
        self.buffer.push_back(frame);
        self.send_buffered(ctx).await;
    }

    #[stream]
    async fn incoming(&mut self, ctx: &mut Ctx<Self>, Incoming { generation, event }: Incoming) {
        if generation != self.generation || self.writer.is_none() {
            return; // the reader of a connection already given up
        }
        match event {
            None | Some(Ok(Message::Close(_))) => {
                self.disconnected(ctx, "the destination closed the connection");
            }
            Some(Err(e)) => self.disconnected(ctx, &e.to_string()),
            // Reading queued the pong; flushing sends it even when no frame is due.
            Some(Ok(Message::Ping(_))) => {
                if let Some(writer) = self.writer.as_mut()
                    && let Err(e) = writer.flush().await
                {
                    self.disconnected(ctx, &e.to_string());
                }
            }
            Some(Ok(_)) => {} // destinations have nothing to say to the relay
        }
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        if self.writer.is_none() && !self.buffer.is_empty() {
            // One last attempt, so a destination that was only briefly away gets its frames.
            if let Connected(Ok(socket)) =
                connect(self.url.clone(), self.options.connect_timeout).await
            {
                self.writer = Some(socket.split().0);
            }
        }
        self.send_buffered(ctx).await;
        if let Some(mut writer) = self.writer.take() {
            let _ = timeout(self.options.write_timeout, writer.close()).await;
        }
        if !self.buffer.is_empty() {
            tracing::warn!(url = %self.url, "stopping while the destination is unreachable: {} frames undelivered, counted as lost", self.buffer.len());
            for frame in self.buffer.drain(..) {
                self.stats.count_undelivered(frame.id);
            }
        }
        tracing::info!(url = %self.url, delivered = self.delivered, dropped = self.dropped, "stopped");
    }
}

impl WebsocketSub {
    /// Sends buffered frames, oldest first, while connected.
    async fn send_buffered(&mut self, ctx: &mut Ctx<Self>) {
        loop {
            let (Some(writer), Some(frame)) = (self.writer.as_mut(), self.buffer.front()) else {
                return;
            };
            let message = Message::Binary(frame.payload.clone());
            match timeout(self.options.write_timeout, writer.send(message)).await {
                Ok(Ok(())) => {
                    self.buffer.pop_front();
                    self.delivered += 1;
                }
                Ok(Err(e)) => self.disconnected(ctx, &e.to_string()),
                Err(_) => {
                    let reason =
                        format!("writing a frame took over {:?}", self.options.write_timeout);
                    self.disconnected(ctx, &reason);
                }
            }
        }
    }

    /// Drops the connection (the frame being written stays buffered) and reconnects later.
    fn disconnected(&mut self, ctx: &mut Ctx<Self>, reason: &str) {
        self.writer = None;
        self.stats.count_destination_drop();
        if ctx.is_stopping() {
            // No reconnecting any more: what is still buffered is counted in `exit`.
            tracing::warn!(url = %self.url, buffered = self.buffer.len(), "lost the connection while stopping: {reason}");
            return;
        }
        tracing::warn!(
            url = %self.url,
            buffered = self.buffer.len(),
            "lost the connection: {reason}; reconnecting in {:?}",
            self.backoff
        );
        self.retry_later(ctx);
    }

    fn retry_later(&mut self, ctx: &mut Ctx<Self>) {
        ctx.reschedule_task(Self::CONNECT, self.backoff);
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
    }
}

/// One connection attempt, bounded in time.
async fn connect(url: String, limit: Duration) -> Connected {
    Connected(match timeout(limit, connect_async(url.as_str())).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    })
}
