//! [`MemoryTransport`]: frames carried inside one process, with faults injected on demand
//! (lost frames, frames out of order, addresses cut off, sends that wait), so the protocol
//! is tested deterministically, with tokio's paused clock, and without a server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::{Notify, mpsc};

use super::{BoxFuture, Frames, Transport, check_address};
use crate::error::TransportError;
use crate::frame::FrameInfo;

/// The largest frame a memory transport carries unless told otherwise: NATS's default.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// A transport inside one process. Clones share the same addresses.
///
/// ```
/// use taskthread_nats::memory::{Fate, MemoryTransport};
///
/// let transport = MemoryTransport::new();
/// // Lose every third frame sent to `host-a`.
/// transport.set_faults(|delivery| {
///     if delivery.to == "host-a" && delivery.number % 3 == 0 {
///         Fate::Drop
///     } else {
///         Fate::Deliver
///     }
/// });
/// ```
#[derive(Clone, Default)]
pub struct MemoryTransport {
    inner: Arc<Mutex<Inner>>,
    /// Wakes the sends waiting for a stalled address when one is resumed.
    resumed: Arc<Notify>,
}

/// Decides each frame's fate.
type Faults = Box<dyn FnMut(&Delivery<'_>) -> Fate + Send>;

#[derive(Default)]
struct Inner {
    listeners: HashMap<String, mpsc::UnboundedSender<Bytes>>,
    faults: Option<Faults>,
    /// Frames held back by [`Fate::Hold`], by address.
    held: HashMap<String, Vec<Bytes>>,
    cut: HashSet<String>,
    stalled: HashSet<String>,
    max_frame: Option<usize>,
    sent: u64,
    dropped: u64,
}

/// A datagram about to be delivered, as a fault injector sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Delivery<'a> {
    /// The address it is sent to.
    pub to: &'a str,
    /// The frame.
    pub frame: &'a [u8],
    /// What the frames it carries are (a datagram may carry several, in order; none if
    /// it is not one of this crate's).
    pub frames: Vec<FrameInfo>,
    /// How many frames the transport was given before this one (to any address).
    pub number: u64,
}

/// What happens to a frame: see [`MemoryTransport::set_faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It arrives.
    Deliver,
    /// It is lost.
    Drop,
    /// It arrives after the next frame delivered to the same address (out of order), or at
    /// [`MemoryTransport::release_held`].
    Hold,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner();
        f.debug_struct("MemoryTransport")
            .field("addresses", &inner.listeners.len())
            .field("sent", &inner.sent)
            .field("dropped", &inner.dropped)
            .finish_non_exhaustive()
    }
}

impl MemoryTransport {
    /// A transport with no address, no fault, and frames of up to [`DEFAULT_MAX_FRAME`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Carries frames of up to `max` bytes only.
    pub fn with_max_frame(self, max: usize) -> Self {
        self.inner().max_frame = Some(max);
        self
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides the fate of every frame from now on. `decide` runs inside the send, in the
    /// order frames are sent.
    pub fn set_faults(&self, decide: impl FnMut(&Delivery<'_>) -> Fate + Send + 'static) {
        self.inner().faults = Some(Box::new(decide));
    }

    /// Delivers every frame from now on (what is held stays held).
    pub fn clear_faults(&self) {
        self.inner().faults = None;
    }

    /// Loses every frame sent to `address` until [`heal`](Self::heal): a link that is down.
    pub fn cut(&self, address: &str) {
        self.inner().cut.insert(address.to_owned());
    }

    /// Delivers to `address` again.
    pub fn heal(&self, address: &str) {
        self.inner().cut.remove(address);
    }

    /// Takes no frame for `address` until [`resume`](Self::resume): every send to it waits,
    /// whoever sends it, while other addresses take frames as before. It is a destination
    /// that has stopped taking frames, as with a transport that keeps a connection per
    /// peer. A NATS client waits otherwise: for every subject at once, once its server has
    /// stopped reading and its buffer is full; stalling every address a process sends to
    /// comes closest to that. A send given up while it waits (its future dropped) delivers
    /// nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use taskthread_nats::{Transport, memory::MemoryTransport};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let transport = MemoryTransport::new();
    /// transport.stall("host.gpu-1");
    /// let send = transport.send("host.gpu-1", Bytes::from("frame"));
    /// assert!(tokio::time::timeout(Duration::from_secs(60), send).await.is_err());
    /// transport.resume("host.gpu-1");
    /// assert!(transport.send("host.gpu-1", Bytes::from("frame")).await.is_ok());
    /// # }
    /// ```
    pub fn stall(&self, address: &str) {
        self.inner().stalled.insert(address.to_owned());
    }

    /// Takes frames for `address` again: the sends waiting for it go on.
    pub fn resume(&self, address: &str) {
        self.inner().stalled.remove(address);
        self.resumed.notify_waiters();
    }

    /// Ready once `address` is not stalled.
    async fn until_resumed(&self, address: &str) {
        while self.inner().stalled.contains(address) {
            let resumed = self.resumed.notified();
            let mut resumed = std::pin::pin!(resumed);
            // Registered before the address is looked at again, so a resume in between is
            // not missed.
            resumed.as_mut().enable();
            if !self.inner().stalled.contains(address) {
                return;
            }
            resumed.await;
        }
    }

    /// Delivers the frames held back by [`Fate::Hold`].
    pub fn release_held(&self) {
        let mut inner = self.inner();
        let held = std::mem::take(&mut inner.held);
        for (to, frames) in held {
            if let Some(listener) = inner.listeners.get(&to) {
                for frame in frames {
                    let _ = listener.send(frame);
                }
            }
        }
    }

    /// The addresses listened at.
    pub fn addresses(&self) -> Vec<String> {
        self.inner().listeners.keys().cloned().collect()
    }

    /// How many frames were sent, and how many of them were lost (dropped by a fault, a
    /// cut, or sent where nobody listens).
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.inner();
        (inner.sent, inner.dropped)
    }

    fn deliver(&self, to: &str, frame: Bytes) -> Result<(), TransportError> {
        let mut inner = self.inner();
        let max = inner.max_frame.unwrap_or(DEFAULT_MAX_FRAME);
        if frame.len() > max {
            return Err(TransportError::TooLarge {
                size: frame.len(),
                max,
            });
        }
        let number = inner.sent;
        inner.sent += 1;
        let fate = if inner.cut.contains(to) {
            Fate::Drop
        } else if let Some(decide) = &mut inner.faults {
            decide(&Delivery {
                to,
                frame: &frame,
                frames: FrameInfo::all(&frame),
                number,
            })
        } else {
            Fate::Deliver
        };
        match fate {
            Fate::Drop => inner.dropped += 1,
            Fate::Hold => inner.held.entry(to.to_owned()).or_default().push(frame),
            Fate::Deliver => {
                let held = inner.held.remove(to).unwrap_or_default();
                match inner.listeners.get(to) {
                    Some(listener) if listener.send(frame).is_ok() => {
                        for frame in held {
                            let _ = listener.send(frame);
                        }
                    }
                    _ => inner.dropped += 1 + held.len() as u64,
                }
            }
        }
        Ok(())
    }
}

impl Transport for MemoryTransport {
    fn listen<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Frames, TransportError>> {
        Box::pin(async move {
            check_address(address)?;
            let mut inner = self.inner();
            if inner
                .listeners
                .get(address)
                .is_some_and(|listener| !listener.is_closed())
            {
                return Err(TransportError::InUse(address.to_owned()));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            inner.listeners.insert(address.to_owned(), tx);
            Ok(Box::pin(Received(rx)) as Frames)
        })
    }

    fn send<'a>(
        &'a self,
        address: &'a str,
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            self.until_resumed(address).await;
            self.deliver(address, frame)
        })
    }

    fn max_frame(&self) -> usize {
        self.inner().max_frame.unwrap_or(DEFAULT_MAX_FRAME)
    }
}

struct Received(mpsc::UnboundedReceiver<Bytes>);

impl Stream for Received {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    async fn next(frames: &mut Frames) -> Option<Bytes> {
        poll_fn(|cx| frames.as_mut().poll_next(cx)).await
    }

    #[tokio::test]
    async fn frames_arrive_lost_held_and_cut_as_told() {
        let transport = MemoryTransport::new().with_max_frame(8);
        let mut a = transport.listen("a").await.unwrap();
        assert!(matches!(
            transport.listen("a").await,
            Err(TransportError::InUse(_))
        ));
        assert!(matches!(
            transport.listen("a b").await,
            Err(TransportError::Address(_))
        ));
        transport.set_faults(|d| match d.frame {
            b"2" => Fate::Drop,
            b"3" => Fate::Hold,
            _ => Fate::Deliver,
        });
        for n in ["1", "2", "3", "4"] {
            transport.send("a", Bytes::from(n)).await.unwrap();
        }
        assert_eq!(next(&mut a).await.unwrap(), "1");
        assert_eq!(next(&mut a).await.unwrap(), "4");
        assert_eq!(next(&mut a).await.unwrap(), "3");
        transport.cut("a");
        transport.send("a", Bytes::from("5")).await.unwrap();
        transport.heal("a");
        transport.send("a", Bytes::from("6")).await.unwrap();
        assert_eq!(next(&mut a).await.unwrap(), "6");
        // Nobody listens at `b`: lost.
        transport.send("b", Bytes::from("7")).await.unwrap();
        assert_eq!(transport.counts(), (7, 3));
        assert!(matches!(
            transport.send("a", Bytes::from("123456789")).await,
            Err(TransportError::TooLarge { size: 9, max: 8 })
        ));
    }
}
