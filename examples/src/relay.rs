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
//! - [`frame`]: the wire protocol (a 4-byte big-endian length, then the payload) and the
//!   [`FrameDecoder`](frame::FrameDecoder) that rebuilds frames from arbitrary packets;
//! - [`sink`]: the embedded websocket destination ("the cloud") used when no URL is given;
//! - [`load`]: the load generator's clients, also a small tree;
//! - [`app`]: starting, stopping and checking a relay, as the `relay` example does;
//! - [`stats`]: the counters behind the summary line.
//!
//! Every thread is a template to copy: a struct, an `impl` block marked `#[taskthread]`,
//! a few dozen lines.
//!
//! # Stopping without losing a frame
//!
//! The master spawns the TCP side in stop stage 0 and the websocket destinations and the
//! database in stage 1. A graceful stop therefore closes the TCP side first: connections
//! stop reading, their processors hand every frame already decoded UP, and only when the
//! whole TCP side has ended do the websocket subs and the database stop, after draining
//! their queues and writing their last batch. A frame counted as received is forwarded and
//! stored, or counted as lost: the summary line says which.

use std::net::SocketAddr;

use bytes::Bytes;

pub mod app;
pub mod data_processor;
pub mod database;
pub mod frame;
pub mod load;
pub mod master;
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
/// arbitrarily.
#[derive(Debug, Clone)]
pub struct Packet(pub Bytes);

/// One frame received from a client.
#[derive(Debug, Clone)]
pub struct Frame {
    /// A number unique in the relay, in the order frames were received.
    pub id: u64,
    /// The address of the client that sent it.
    pub client: SocketAddr,
    /// Its number among that client's frames, from 1.
    pub seq: u64,
    /// The payload (without the length prefix).
    pub payload: Bytes,
}
