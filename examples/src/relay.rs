//! The relay: the sample problem of the guide, end to end, on real TCP, websockets and
//! SQLite.
//!
//! Clients stream length-prefixed frames over TCP; the relay cuts the byte stream back into
//! frames, sends every frame to every websocket destination and stores it in a SQLite
//! database. Each line of the original TaskThread notation is one thread, in one module:
//!
//! ```text
//! Master                                           master
//!     TcpServer: UP: Frame                         tcp_server
//!         TcpConnection: UP: Frame                 tcp_connection (one per client)
//!             DataProcessor: IN: Packet, UP: Frame data_processor
//!     WebsocketMaster: IN: Frame                   websocket
//!         WebsocketSub: IN: Frame                  websocket (one per destination URL)
//!     Database: IN: Frame                          database
//! ```
//!
//! Around the tree:
//!
//! - [`frame`]: the wire protocol (a 4-byte big-endian length, then the payload; with
//!   `--ack`, acknowledgements back) and the [`FrameDecoder`](frame::FrameDecoder) that
//!   rebuilds frames from arbitrary packets;
//! - [`budget`]: the byte budget every frame takes its size from, from its length prefix
//!   until its last copy is dropped;
//! - [`receipt`]: a client's ledger of its frames stored, and
//!   [`replies`]: what a connection writes back (acknowledgements, a clean close or a
//!   reset) as the ledger says;
//! - [`sink`]: the embedded websocket destination ("the cloud") used when no URL is given;
//! - [`load`]: the load generator's clients, also a small tree;
//! - [`app`]: starting, stopping and checking a relay, as the `relay` example does;
//! - [`observe`]: its web view and control endpoint, when `relay serve` is asked for them;
//! - [`stats`]: the counters behind the summary line, and [`delivery`]: how far each frame
//!   in flight has got on its way to the websocket destinations and the database;
//! - [`packet_reader`]: a connection's socket reader, which reads no further ahead of
//!   its processor than its credit allows;
//! - the websocket sub's mechanics, each in a small type of its own: [`link`] (one
//!   connection to a destination, run by one task), [`outbox`] (the buffer bounded in
//!   bytes and the frames awaiting the destination's confirmation) and [`backoff`] (the
//!   waits between reconnections).
//!
//! Every thread is a template to copy: a struct, an `impl` block marked `#[taskthread]`,
//! a few dozen lines. What is not about the tree (protocols, buffers, bookkeeping) lives
//! in helper types beside it, so the thread reads as what it does with its messages.
//!
//! # Stopping without losing a frame
//!
//! The master spawns the TCP side in stop stage 0 and the websocket destinations and the
//! database in stage 1. A graceful stop therefore closes the TCP side first: connections
//! stop reading (every packet already read is in their processor's queue), their
//! processors decode what they hold and hand every frame UP, and each connection closes
//! its socket once its frames are stored (the database is still running). Only when the
//! whole TCP side has ended do the websocket subs and the database stop, after draining
//! their queues and writing their last batch. A frame counted as received is forwarded and
//! stored, or counted as lost: the summary line says which.
//!
//! # Memory
//!
//! The frames in memory, whole or in part, never take more than the [`budget`]; when it is
//! spent, connections stop reading. Outside it, each connection holds what it has read
//! ahead of its processor ([`packet_reader::READ_AHEAD`] packets of
//! [`packet_reader::READ_SIZE`] bytes at most). Each websocket destination keeps at most
//! its buffer's worth of the budget, so a slow or absent destination holds a bounded share,
//! and the database's path never waits for one.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use budget::Charge;
use delivery::Delivery;
use receipt::Ledger;

pub mod app;
pub mod backoff;
pub mod budget;
pub mod cluster;
pub mod data_processor;
pub mod database;
pub mod delivery;
pub mod frame;
pub mod link;
pub mod load;
pub mod master;
pub mod observe;
pub mod outbox;
pub mod packet_reader;
pub mod receipt;
pub mod remote;
pub mod replies;
pub mod sink;
pub mod stats;
pub mod tcp_connection;
pub mod tcp_server;
pub mod units;
pub mod websocket;

pub use app::{Relay, RelayConfig, Summary};
pub use data_processor::DataProcessor;
pub use database::Database;
pub use master::Master;
pub use stats::RelayStats;
pub use tcp_connection::TcpConnection;
pub use tcp_server::TcpServer;
pub use websocket::{WebsocketMaster, WebsocketSub};

/// A piece of a client's byte stream, as read from its socket: frames split and merged
/// arbitrarily. An empty packet marks the end of the stream: the client closed its side.
#[derive(Debug)]
pub struct Packet {
    /// The bytes read; empty at the end of the stream.
    pub bytes: Bytes,
    /// One unit of the socket reader's credit, given back when the packet has been handled
    /// (see [`TcpConnection`]).
    _credit: OwnedSemaphorePermit,
}

impl Packet {
    /// A packet read with one unit of the reader's credit.
    pub fn new(bytes: Bytes, credit: OwnedSemaphorePermit) -> Self {
        Self {
            bytes,
            _credit: credit,
        }
    }

    /// Whether this is the end of the stream.
    pub fn is_end(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One frame received from a client.
///
/// A payload and a handle on the state its copies share: what is fixed for the frame's
/// life (its [`Origin`]) is kept with its [`Delivery`], so a frame is small to move through
/// the relay's queues, and a copy for another destination clones two handles.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The payload (without the length prefix).
    pub payload: Bytes,
    /// Where it comes from, and how far it has got on its way to the websocket
    /// destinations and into the database; shared by its copies.
    pub delivery: Delivery,
}

/// Where a frame comes from: fixed for its life, and shared by its copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// A number unique in the relay, in the order frames were received.
    pub id: u64,
    /// The address of the client that sent it.
    pub client: SocketAddr,
    /// Its number among that client's frames, from 1.
    pub seq: u64,
}

impl Frame {
    /// Counts a frame just received from `client` in `stats`, and makes it, outside any
    /// byte budget or ledger.
    pub fn received(client: SocketAddr, seq: u64, payload: Bytes, stats: &Arc<RelayStats>) -> Self {
        Self::tracked(client, seq, payload, stats, Charge::none(), None)
    }

    /// Counts a frame just received from `client` in `stats`, and makes it: it holds
    /// `charge` of the relay's byte budget until its last copy is dropped, and its storage
    /// is recorded in the client's `ledger`.
    pub fn tracked(
        client: SocketAddr,
        seq: u64,
        payload: Bytes,
        stats: &Arc<RelayStats>,
        charge: Charge,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        let origin = Origin {
            id: stats.count_received(&payload),
            client,
            seq,
        };
        Self {
            payload,
            delivery: Delivery::tracked(origin, Arc::clone(stats), charge, ledger),
        }
    }

    /// A number unique in the relay, in the order frames were received.
    pub fn id(&self) -> u64 {
        self.delivery.origin().id
    }

    /// The address of the client that sent it.
    pub fn client(&self) -> SocketAddr {
        self.delivery.origin().client
    }

    /// Its number among that client's frames, from 1.
    pub fn seq(&self) -> u64 {
        self.delivery.origin().seq
    }
}
