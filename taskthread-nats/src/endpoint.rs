//! [`Endpoint`]: a process's place on the transport — one address, the edges that end
//! there, and the task that reads their frames and keeps them alive.
//!
//! The endpoint's task hands each edge's frames, in order, to the edge's *life* (a parent's
//! proxy or a host's agent) as [`Event`]s, acks what arrived (a credited message with the
//! credit its life returns once its thread has taken it, so one datagram answers both, or
//! at the next tick if it stays untaken; anything else at once), sends unacked frames again,
//! sends a ping when an edge has been quiet for a heartbeat, and reports an edge whose other
//! side has said nothing for `lost_after` as lost. It does all this whatever the lives are
//! doing, so a busy parent or child never looks dead, and whatever one destination does: a
//! send of its own that the transport does not take within a tick is given up (see
//! [`Endpoint::send_by`]), so a peer that takes nothing holds up no other edge. A life sends
//! its own frames through [`Edge::send_reliable`] and [`Edge::send_bare`].

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::TransportError;
use crate::frame::{self, EdgeId, Head, Kind};
use crate::link::Link;
use crate::settings::Settings;
use crate::transport::{Frames, Transport};

/// The transport address of the host named `name`.
pub(crate) fn host_address(name: &str) -> String {
    format!("host.{name}")
}

/// What an edge's life hears from the endpoint.
#[derive(Debug)]
pub(crate) enum Event {
    /// A frame, in order.
    Frame(Kind, Bytes),
    /// The other side has been silent past `lost_after`: the reason.
    Lost(String),
    /// The host is stopping: stop the subtree gracefully, by the instant given (then abort
    /// it).
    HostStopping(Instant),
    /// The life is over without a word: its process is going away, or a later life of
    /// the edge replaced it.
    Kill,
}

/// One edge as the endpoint keeps it: its link, its life's events, and the waker of a life
/// waiting for credit.
pub(crate) struct Edge {
    link: Mutex<Link>,
    events: mpsc::UnboundedSender<Event>,
    credit: AtomicWaker,
    pub(crate) heartbeat: Duration,
    pub(crate) lost_after: Duration,
    endpoint: Arc<Endpoint>,
}

impl Edge {
    pub(crate) fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the edge's life an event.
    pub(crate) fn tell(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// The endpoint the edge ends at.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Sends the next reliable frame, its payload written by `payload`.
    pub(crate) async fn send_reliable<E>(
        &self,
        kind: Kind,
        payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<postcard::Error> + From<TransportError>,
    {
        let frame = self.reliable_frame(kind, payload)?;
        let peer = self.link().peer.clone();
        // A frame the transport did not take is sent again with the unacked ones.
        self.endpoint.send_to(&peer, frame).await;
        Ok(())
    }

    /// Makes the next reliable frame, its payload written by `payload`, and keeps it to be
    /// sent again until acked; [`send_frames`](Self::send_frames) sends it.
    pub(crate) fn reliable_frame<E>(
        &self,
        kind: Kind,
        payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Bytes, E>
    where
        E: From<postcard::Error> + From<TransportError>,
    {
        let max = self.endpoint.transport.max_frame();
        self.link().reliable(kind, |buf| {
            payload(buf)?;
            // Checked before the frame is kept to be sent again: a frame that can never be
            // carried must not block the edge.
            if buf.len() > max {
                return Err(E::from(TransportError::TooLarge {
                    size: buf.len(),
                    max,
                }));
            }
            Ok(())
        })
    }

    /// Sends frames made by [`reliable_frame`](Self::reliable_frame), as few datagrams as
    /// the transport's size allows.
    pub(crate) async fn send_frames(&self, frames: Vec<Bytes>) {
        let peer = self.link().peer.clone();
        self.endpoint.send_frames(&peer, frames).await;
    }

    /// Sends a frame without delivery guarantee.
    pub(crate) async fn send_bare(&self, kind: Kind) {
        let (peer, frame) = self.bare(kind);
        self.endpoint.send_to(&peer, frame).await;
    }

    /// A frame without delivery guarantee, and where it goes.
    fn bare(&self, kind: Kind) -> (String, Bytes) {
        let mut link = self.link();
        (link.peer.clone(), link.bare(kind))
    }

    /// Sends an ack if the other side has not been told the latest ack or credit.
    pub(crate) async fn send_ack_if_owed(&self) {
        if let Some((peer, frame)) = self.owed_ack() {
            self.endpoint.send_to(&peer, frame).await;
        }
    }

    /// An ack, and where it goes, if the other side has not been told the latest ack or
    /// credit.
    fn owed_ack(&self) -> Option<(String, Bytes)> {
        let mut link = self.link();
        link.owes_ack()
            .then(|| (link.peer.clone(), link.bare(Kind::Ack)))
    }

    /// Ready once one more credited frame may be sent; else the task is woken when the
    /// other side's credit grows.
    pub(crate) fn poll_credit(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.credit.register(cx.waker());
        if self.link().has_credit() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What a side (host or parent) does with a frame for an edge it has no life for.
pub(crate) trait Side: Send + Sync + 'static {
    /// `head` names an edge, or an epoch of one, that has no life here. Returns a frame to
    /// send in answer and its address, if any: the endpoint's task sends it before it
    /// reads on, so a flood of such frames is answered no faster than the transport takes
    /// the answers (or the task gives them up, see [`Endpoint::send_by`]).
    fn unknown(
        &self,
        endpoint: &Arc<Endpoint>,
        head: Head,
        payload: Bytes,
    ) -> Option<(String, Bytes)>;
}

/// A process's place on the transport.
pub(crate) struct Endpoint {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) address: String,
    pub(crate) settings: Settings,
    edges: Mutex<HashMap<EdgeId, Arc<Edge>>>,
    /// What ping stamps count from.
    start: Instant,
    /// Nothing is sent any more.
    closed: AtomicBool,
    /// Wakes the sends waiting for the transport when the endpoint closes.
    closing: Notify,
}

impl Endpoint {
    /// Listens at `address`; the endpoint's task must then be run with [`run`].
    pub(crate) async fn listen(
        transport: Arc<dyn Transport>,
        address: String,
        settings: Settings,
    ) -> Result<(Arc<Self>, Frames), TransportError> {
        let frames = transport.listen(&address).await?;
        let endpoint = Arc::new(Self {
            transport,
            address,
            settings,
            edges: Mutex::default(),
            start: Instant::now(),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
        });
        Ok((endpoint, frames))
    }

    fn edges(&self) -> MutexGuard<'_, HashMap<EdgeId, Arc<Edge>>> {
        self.edges.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an edge (replacing the one of an earlier epoch, whose life hears no more) and
    /// returns it with the receiver of its life's events.
    pub(crate) fn add_edge(
        self: &Arc<Self>,
        link: Link,
        heartbeat: Duration,
        lost_after: Duration,
    ) -> (Arc<Edge>, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let id = link.edge;
        let edge = Arc::new(Edge {
            link: Mutex::new(link),
            events,
            credit: AtomicWaker::new(),
            heartbeat,
            lost_after,
            endpoint: Arc::clone(self),
        });
        self.edges().insert(id, Arc::clone(&edge));
        (edge, rx)
    }

    /// The edge `id`, if it has a life here.
    pub(crate) fn edge(&self, id: EdgeId) -> Option<Arc<Edge>> {
        self.edges().get(&id).cloned()
    }

    /// Removes the edge `id` if it is still in its epoch `epoch`.
    pub(crate) fn remove_edge(&self, id: EdgeId, epoch: u32) {
        let mut edges = self.edges();
        if edges.get(&id).is_some_and(|e| e.link().epoch == epoch) {
            edges.remove(&id);
        }
    }

    /// How many edges have a life here.
    pub(crate) fn edge_count(&self) -> usize {
        self.edges().len()
    }

    /// Sends nothing from now on: a send waiting for the transport to take its datagram is
    /// given up too, so nothing waits on a transport that takes nothing more.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
    }

    /// Ready once the endpoint is closed.
    async fn until_closed(&self) {
        let closing = self.closing.notified();
        let mut closing = std::pin::pin!(closing);
        // Registered before the flag is read, so a close in between is not missed.
        closing.as_mut().enable();
        if !self.closed.load(Ordering::Acquire) {
            closing.await;
        }
    }

    /// Sends frames to an address, as few datagrams as the transport's size allows.
    pub(crate) async fn send_frames(&self, address: &str, frames: Vec<Bytes>) {
        if frames.is_empty() {
            return;
        }
        for datagram in frame::bundles(frames, self.transport.max_frame()) {
            self.send_to(address, datagram).await;
        }
    }

    /// How often the endpoint's task ticks; also how long it waits for the transport to
    /// take what it sends in one tick, or in answer to one batch of frames.
    fn tick_period(&self) -> Duration {
        (self.settings.retransmit / 2).max(Duration::from_millis(1))
    }

    /// Sends a datagram from the endpoint's task, given up if the transport has not taken it
    /// by `by` (the end of the tick or batch it belongs to). The transport is asked first,
    /// so a destination that takes frames at once gets them even past `by`, and a
    /// destination that takes nothing holds up every other edge for at most one tick at a
    /// time.
    ///
    /// Whatever the task sends can be given up as a datagram lost on the way, which the
    /// protocol is made to survive: a frame sent again is kept until acked and goes again
    /// at a later tick; an ack or a credit is carried by the edge's next frame, at the
    /// latest the ping a heartbeat later, and the other side sends again what it has not
    /// heard acked, which owes the ack again; a ping is sent again at the next heartbeat,
    /// and a pong only measures the round trip; a refusal is sent again each time the
    /// parent sends its spawn request again.
    async fn send_by(&self, address: &str, frame: Bytes, by: Instant) {
        tokio::select! {
            biased;
            () = self.send_to(address, frame) => {}
            // Made only if the transport does not take the datagram at once.
            () = async { tokio::time::sleep_until(by).await } => {
                tracing::debug!(address = %self.address, "a send to `{address}` the transport did not take in time was given up");
            }
        }
    }

    /// Sends a datagram (one frame, or a bundle of them) to an address.
    pub(crate) async fn send_to(&self, address: &str, frame: Bytes) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let sent = tokio::select! {
            biased;
            sent = self.transport.send(address, frame) => sent,
            () = self.until_closed() => return,
        };
        if let Err(e) = sent {
            tracing::debug!("send to `{address}`: {e}");
        }
    }

    fn stamp(&self) -> u64 {
        u64::try_from(Instant::now().duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    fn stamped(&self, stamp: u64) -> Instant {
        self.start + Duration::from_micros(stamp)
    }

    /// Handles one frame; returns the edge it was for, if it has a life here, and whether
    /// it should be acked at once (see [`run`]). What it sends in answer is given up at
    /// `by`.
    async fn handle(
        self: &Arc<Self>,
        side: &dyn Side,
        frame: Bytes,
        by: Instant,
    ) -> Option<(Arc<Edge>, bool)> {
        let (head, payload) = match frame::decode(&frame) {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(address = %self.address, "dropped: {e}");
                return None;
            }
        };
        let Some(edge) = self.edge(head.edge) else {
            self.answer_unknown(side, head, payload, by).await;
            return None;
        };
        let epoch = edge.link().epoch;
        if head.epoch != epoch {
            if head.epoch > epoch {
                self.answer_unknown(side, head, payload, by).await;
            }
            // Else a frame of an earlier life: dropped, so no stale frame reaches this one.
            return None;
        }
        let pong = match head.kind {
            Kind::Ping(stamp) => Some(stamp),
            Kind::Pong(stamp) => {
                edge.link().pong(self.stamped(stamp));
                None
            }
            _ => None,
        };
        let reliable = head.seq != 0;
        let arrived = edge.link().receive(head, payload, frame.len());
        if let Some(stamp) = pong {
            let (peer, frame) = edge.bare(Kind::Pong(stamp));
            self.send_by(&peer, frame, by).await;
        }
        // A credited message is acked with the credit its taking returns (the life sends
        // it); anything else, and a copy of a frame already delivered, at once.
        let ack_now = reliable
            && (arrived.frames.is_empty() || arrived.frames.iter().any(|(k, _)| !k.is_credited()));
        for (kind, payload) in arrived.frames {
            let _ = edge.events.send(Event::Frame(kind, payload));
        }
        if arrived.credit_grew {
            edge.credit.wake();
        }
        Some((edge, ack_now))
    }

    /// Hands a frame of an edge with no life here to the side, and sends its answer, given
    /// up at `by`.
    async fn answer_unknown(
        self: &Arc<Self>,
        side: &dyn Side,
        head: Head,
        payload: Bytes,
        by: Instant,
    ) {
        if let Some((address, answer)) = side.unknown(self, head, payload) {
            self.send_by(&address, answer, by).await;
        }
    }

    /// Once per tick: sends again what is due, pings quiet edges, reports silent ones.
    async fn tick(self: &Arc<Self>) {
        let edges: Vec<Arc<Edge>> = self.edges().values().cloned().collect();
        let now = Instant::now();
        let by = now + self.tick_period();
        let stamp = self.stamp();
        for edge in edges {
            let (peer, out) = {
                let mut link = edge.link();
                if link.lost {
                    continue;
                }
                let silent = now.duration_since(link.last_heard);
                if silent >= edge.lost_after {
                    link.lost = true;
                    drop(link);
                    let reason = format!("no word from the other side for {silent:?}");
                    let _ = edge.events.send(Event::Lost(reason));
                    continue;
                }
                let mut out = link.due(now, self.settings.retransmit);
                if now.duration_since(link.last_sent) >= edge.heartbeat {
                    out.push(link.bare(Kind::Ping(stamp)));
                } else if link.owes_ack() {
                    // What no life acked (a message its thread has not taken yet): acked
                    // well within the other side's retransmission time.
                    out.push(link.bare(Kind::Ack));
                }
                (link.peer.clone(), out)
            };
            for datagram in frame::bundles(out, self.transport.max_frame()) {
                self.send_by(&peer, datagram, by).await;
            }
        }
    }
}

/// Why a frame could not be sent.
#[derive(Debug)]
pub(crate) enum SendError {
    Write(postcard::Error),
    Transport(TransportError),
}

impl From<postcard::Error> for SendError {
    fn from(e: postcard::Error) -> Self {
        Self::Write(e)
    }
}

impl From<TransportError> for SendError {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Write(e) => write!(f, "it cannot be written: {e}"),
            Self::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// The endpoint's task: reads frames and ticks until the frames end.
pub(crate) async fn run(endpoint: Arc<Endpoint>, mut frames: Frames, side: impl Side) {
    let mut tick = tokio::time::interval(endpoint.tick_period());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut touched: Vec<Arc<Edge>> = Vec::new();
    loop {
        let batch = tokio::select! {
            batch = next_batch(&mut frames) => batch,
            _ = tick.tick() => {
                endpoint.tick().await;
                continue;
            }
        };
        let Some(batch) = batch else {
            tracing::debug!(address = %endpoint.address, "the transport closed");
            return;
        };
        let by = Instant::now() + endpoint.tick_period();
        for datagram in batch {
            for frame in frame::unbundle(&datagram) {
                if let Some((edge, true)) = endpoint.handle(&side, frame, by).await
                    && !touched.iter().any(|e| Arc::ptr_eq(e, &edge))
                {
                    touched.push(edge);
                }
            }
        }
        // One ack per edge for the whole batch, for what is not acked with a credit.
        for edge in touched.drain(..) {
            if let Some((peer, ack)) = edge.owed_ack() {
                endpoint.send_by(&peer, ack, by).await;
            }
        }
    }
}

/// The frames ready now (at least one, at most 256); `None` once the frames end.
async fn next_batch(frames: &mut Frames) -> Option<Vec<Bytes>> {
    poll_fn(|cx| {
        let mut batch = Vec::new();
        while batch.len() < 256 {
            match frames.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => batch.push(frame),
                Poll::Ready(None) if batch.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if batch.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(batch))
        }
    })
    .await
}
