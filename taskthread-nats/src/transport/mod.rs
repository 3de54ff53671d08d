//! The seam between the protocol and what carries its frames: a [`Transport`] delivers
//! frames (byte strings) to addresses, at most once each, and may lose or reorder them; the
//! protocol above it makes each edge reliable and ordered. Two transports:
//! [`MemoryTransport`](crate::memory::MemoryTransport), in one process, with injected faults
//! for deterministic tests, and [`NatsTransport`](crate::NatsTransport), over a NATS server.

pub mod memory;
pub(crate) mod nats;

pub use nats::DEFAULT_PREFIX;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;

use crate::error::TransportError;

/// A boxed future of a transport.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The frames arriving at an address, in the order the transport delivers them. The stream
/// ends when the transport closes.
pub type Frames = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// What carries frames between the processes of a tree: datagrams to named addresses,
/// delivered at most once, possibly lost or out of order. Addresses are made of ASCII
/// letters, digits, `-`, `_` and `.`; a transport maps them onto its own names (NATS
/// subjects under a prefix).
pub trait Transport: fmt::Debug + Send + Sync + 'static {
    /// Starts receiving the frames sent to `address`. One listener per address.
    fn listen<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Frames, TransportError>>;

    /// Sends one frame to `address`. Returns once the transport has taken it; that it
    /// arrives is not promised (nobody may be listening).
    ///
    /// It may wait until the transport can take the frame, for one address or for all (a
    /// NATS client waits for every subject at once, when its buffer is full). The protocol
    /// gives up a send that waits past its bound, as a frame lost on the way.
    fn send<'a>(
        &'a self,
        address: &'a str,
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// The largest frame the transport carries, in bytes.
    fn max_frame(&self) -> usize;
}

/// Checks that an address is made of the characters every transport takes.
pub(crate) fn check_address(address: &str) -> Result<(), TransportError> {
    let valid = !address.is_empty()
        && !address.starts_with('.')
        && !address.ends_with('.')
        && !address.contains("..")
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(TransportError::Address(format!(
            "`{address}`: an address is dot-separated words of ASCII letters, digits, `-` and `_`"
        )))
    }
}
