//! `WebsocketMaster: IN: Frame` and `WebsocketSub: IN: Frame` — every frame to every
//! websocket destination, one binary message per frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt, stream};
use taskthread::prelude::*;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
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
type Reader = SplitStream<Socket>;

/// A ping goes out at least every this many frames, and whenever the buffer runs empty.
const PING_EVERY: u64 = 64;

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
/// backoff; once connected, the buffer is sent first, in order.
///
/// A frame counts as delivered only once the destination has read it: after every 64
/// frames, and whenever the buffer runs empty, the sub sends a ping
/// carrying the number of frames written so far, and the destination's pong (which every
/// websocket server sends, after reading what came before the ping) confirms them. Frames
/// not yet confirmed when a connection breaks go back to the front of the buffer and are
/// sent again after reconnecting (a destination may see such a frame twice, never zero
/// times). A frame that falls off the full buffer, or is still unconfirmed when the sub
/// stops, is counted as undelivered: never dropped silently.
#[derive(Debug)]
pub struct WebsocketSub {
    url: String,
    options: SubOptions,
    stats: Arc<RelayStats>,
    writer: Option<SplitSink<Socket, Message>>,
    /// Where the reader comes back when its attachment ends (see [`Reclaim`]).
    reader_back: Option<oneshot::Receiver<Reader>>,
    /// Tells this connection's reader from those of earlier ones.
    generation: u64,
    /// Frames waiting to be written, oldest first.
    buffer: VecDeque<Frame>,
    /// Frames written on this connection and not yet confirmed, oldest first.
    unconfirmed: VecDeque<Frame>,
    /// Frames written on this connection; the last ping carried `pinged`.
    written: u64,
    pinged: u64,
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
            reader_back: None,
            generation: 0,
            buffer: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            written: 0,
            pinged: 0,
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
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(url = %self.url, "cannot connect: {e}; retrying in {:?}", self.backoff);
                return self.retry_later(ctx);
            }
        };
        let (writer, reader) = socket.split();
        let (back, reader_back) = oneshot::channel();
        self.generation += 1;
        let generation = self.generation;
        let events = Reclaim::new(reader, back).map(move |m| Incoming {
            generation,
            event: Some(m),
        });
        let end = stream::once(async move {
            Incoming {
                generation,
                event: None,
            }
        });
        if !ctx.is_stopping() {
            ctx.attach(events.chain(end));
        }
        self.writer = Some(writer);
        self.reader_back = Some(reader_back);
        self.backoff = self.options.backoff_min;
        tracing::info!(url = %self.url, buffered = self.buffer.len(), "connected");
        self.send_buffered(ctx).await;
    }

    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        self.buffer.push_back(frame);
        self.trim_buffer();
        self.send_buffered(ctx).await;
    }

    #[stream]
    async fn incoming(&mut self, ctx: &mut Ctx<Self>, Incoming { generation, event }: Incoming) {
        if generation != self.generation || self.writer.is_none() {
            return; // the reader of a connection already given up
        }
        match event {
            Some(Ok(Message::Pong(payload))) => self.confirm(&payload),
            // Reading queued the pong; flushing sends it even when no frame is due.
            Some(Ok(Message::Ping(_))) => {
                if let Some(writer) = self.writer.as_mut()
                    && let Err(e) = writer.flush().await
                {
                    self.disconnected(ctx, &e.to_string());
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                self.disconnected(ctx, "the destination closed the connection");
            }
            Some(Err(e)) => self.disconnected(ctx, &e.to_string()),
            Some(Ok(_)) => {} // destinations have nothing else to say to the relay
        }
    }

    /// The queue is drained: send what is left, wait for the destination to confirm it,
    /// and close the connection.
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        if self.writer.is_none() && !self.buffer.is_empty() {
            // One last attempt, so a destination that was only briefly away gets its frames.
            if let Connected(Ok(socket)) =
                connect(self.url.clone(), self.options.connect_timeout).await
            {
                let (writer, reader) = socket.split();
                let (back, reader_back) = oneshot::channel();
                let _ = back.send(reader); // not attached: read directly below
                self.writer = Some(writer);
                self.reader_back = Some(reader_back);
            }
        }
        self.send_buffered(ctx).await;
        self.wait_for_confirmation().await;
        if let Some(mut writer) = self.writer.take() {
            let _ = timeout(self.options.write_timeout, writer.close()).await;
        }
        let undelivered = self.buffer.len() + self.unconfirmed.len();
        if undelivered > 0 {
            tracing::warn!(url = %self.url, "stopping with {undelivered} frames the destination did not confirm: counted as lost");
            for frame in self.unconfirmed.drain(..).chain(self.buffer.drain(..)) {
                self.stats.count_undelivered(frame.id);
            }
        }
        tracing::info!(url = %self.url, delivered = self.delivered, dropped = self.dropped, "stopped");
    }
}

impl WebsocketSub {
    /// Writes buffered frames, oldest first, while connected; then pings.
    async fn send_buffered(&mut self, ctx: &mut Ctx<Self>) {
        while let Some(frame) = self.buffer.pop_front() {
            let Some(writer) = self.writer.as_mut() else {
                self.buffer.push_front(frame);
                return;
            };
            let message = Message::Binary(frame.payload.clone());
            if let Err(reason) = write(writer, message, self.options.write_timeout).await {
                self.buffer.push_front(frame);
                return self.disconnected(ctx, &reason);
            }
            self.unconfirmed.push_back(frame);
            self.written += 1;
            if self.written - self.pinged >= PING_EVERY {
                self.ping(ctx).await;
            }
        }
        if self.written > self.pinged {
            self.ping(ctx).await;
        }
    }

    /// Asks the destination to confirm every frame written so far.
    async fn ping(&mut self, ctx: &mut Ctx<Self>) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let ping = Message::Ping(self.written.to_be_bytes().to_vec().into());
        match write(writer, ping, self.options.write_timeout).await {
            Ok(()) => self.pinged = self.written,
            Err(reason) => self.disconnected(ctx, &reason),
        }
    }

    /// A pong: the destination has read the frames written before the ping it answers.
    fn confirm(&mut self, payload: &[u8]) {
        let Ok(written) = <[u8; 8]>::try_from(payload).map(u64::from_be_bytes) else {
            return; // not one of ours
        };
        let confirmed = self.written - self.unconfirmed.len() as u64;
        let n = written
            .saturating_sub(confirmed)
            .min(self.unconfirmed.len() as u64);
        self.unconfirmed.drain(..n as usize);
        self.delivered += n;
        self.stats.count_confirmed(n);
    }

    /// At exit: reads the pongs (the attachment has ended, the reader came back) until
    /// every frame written is confirmed, the connection ends, or the write timeout passes.
    async fn wait_for_confirmation(&mut self) {
        if self.writer.is_none() || self.unconfirmed.is_empty() {
            return;
        }
        let Some(Ok(mut reader)) = self.reader_back.take().map(|mut back| back.try_recv()) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + self.options.write_timeout;
        while !self.unconfirmed.is_empty() {
            match tokio::time::timeout_at(deadline, reader.next()).await {
                Ok(Some(Ok(Message::Pong(payload)))) => self.confirm(&payload),
                Ok(Some(Ok(_))) => {}
                _ => return,
            }
        }
    }

    /// Drops the oldest frames beyond the buffer's capacity, counting them as lost.
    fn trim_buffer(&mut self) {
        while self.buffer.len() > self.options.buffer {
            let Some(oldest) = self.buffer.pop_front() else {
                return;
            };
            if self.dropped == 0 {
                tracing::warn!(url = %self.url, "buffer full ({} frames): dropping the oldest, counted as lost", self.options.buffer);
            }
            self.dropped += 1;
            self.stats.count_undelivered(oldest.id);
        }
    }

    /// Drops the connection and reconnects later. Unconfirmed frames go back to the front
    /// of the buffer, to be sent again.
    fn disconnected(&mut self, ctx: &mut Ctx<Self>, reason: &str) {
        self.writer = None;
        self.reader_back = None;
        self.stats.count_destination_drop();
        while let Some(frame) = self.unconfirmed.pop_back() {
            self.buffer.push_front(frame);
        }
        self.trim_buffer();
        (self.written, self.pinged) = (0, 0);
        if ctx.is_stopping() {
            // No reconnecting any more: `exit` counts what is left.
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

/// Writes one message, bounded in time.
async fn write(
    writer: &mut SplitSink<Socket, Message>,
    message: Message,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, writer.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("writing took over {limit:?}")),
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

/// A stream that hands itself back when dropped.
///
/// A thread's attached streams end as soon as it starts stopping, but the sub still needs
/// its reader in `exit`, to read the pongs that confirm its last frames: attached through
/// this wrapper, the reader comes back on a oneshot channel once the attachment ends.
#[derive(Debug)]
pub struct Reclaim<S> {
    stream: Option<S>,
    back: Option<oneshot::Sender<S>>,
}

impl<S> Reclaim<S> {
    /// Wraps `stream`; it is sent on `back` when the wrapper is dropped.
    pub fn new(stream: S, back: oneshot::Sender<S>) -> Self {
        Self {
            stream: Some(stream),
            back: Some(back),
        }
    }
}

impl<S: Stream + Unpin> Stream for Reclaim<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        match self.stream.as_mut() {
            Some(stream) => stream.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl<S> Drop for Reclaim<S> {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send(stream);
        }
    }
}
