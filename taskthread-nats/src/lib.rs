//! Run part of a taskthread tree in another process or on another machine, carried by
//! [NATS](https://nats.io), with the tree's promises kept across the wire.
//!
//! - A [`Host`] registers thread types by name and runs the subtrees parents ask for.
//! - A parent spawns a remote child through [`Remotes::spawn`] and gets an ordinary
//!   [`ChildRef`](taskthread::ChildRef): `send`, `try_send`, `ask`, `stop` work as on a
//!   local child, its UP messages reach the parent's `#[up]` handlers, and its end arrives
//!   as a [`ChildExit`](taskthread::ChildExit) — [`Exit::Lost`](taskthread::Exit::Lost)
//!   if its host dies or the link stays down.
//! - The parent's [snapshots](taskthread::TreeSnapshot) show a remote child in place, with
//!   the threads below it as its host reports them and the link's round-trip time
//!   ([`RemoteLink`](taskthread::RemoteLink)).
//! - Remote thread types opt in with `#[taskthread(remote)]` (taskthread's feature
//!   `remote`): their messages, answers and up type are serialised with serde and
//!   [postcard](https://docs.rs/postcard); one that is not serialisable is a compile error
//!   naming it.
//! - Frames go through a [`Transport`]: [`NatsTransport`] over a NATS server, or
//!   [`memory::MemoryTransport`] inside one process, with injected faults for tests.
//!
//! The [`guide`] says what is guaranteed, what is not, and how to deploy a host.
//!
//! # The protocol
//!
//! Each remote child is an *edge* between its parent's process and its host. Every frame
//! names its edge and the *epoch* (life) of the child it belongs to, so frames of an
//! earlier life are dropped. Reliable frames (spawn, messages, answers, UP messages, stop,
//! exit) carry sequence numbers; each side delivers them in order, once, acks them, and
//! sends unacked ones again, so the transport may lose, duplicate or reorder frames. DOWN
//! and UP messages are *credited*: the host allows as many DOWN messages as the child's
//! queue capacity beyond those the child has taken, the parent as many UP messages beyond
//! those its thread has received. Heartbeats keep quiet edges alive, and a silence past
//! [`Settings`]' `lost_after` ends the edge.
//!
//! # Example
//!
//! ```
//! use taskthread::prelude::*;
//! use taskthread_nats::{Host, RemoteOptions, Remotes, memory::MemoryTransport};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Square(u64);
//!
//! /// Runs on the host.
//! struct Squarer;
//!
//! #[taskthread(remote, up = u64)]
//! impl Squarer {
//!     #[down]
//!     async fn square(&mut self, ctx: &mut Ctx<Self>, Square(n): Square) -> Result<()> {
//!         ctx.up(n * n).await?;
//!         Ok(())
//!     }
//! }
//!
//! /// Runs here, and spawns a `Squarer` on the host.
//! struct App {
//!     remotes: Remotes,
//! }
//!
//! #[taskthread(up = u64)]
//! impl App {
//!     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
//!         let squarer: ChildRef<Squarer> = self
//!             .remotes
//!             .spawn(ctx, RemoteOptions::on("calc"))
//!             .map_err(Error::new)?;
//!         squarer.send(Square(12)).await?;
//!         Ok(())
//!     }
//!
//!     #[up]
//!     async fn squared(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, n: u64) -> Result<()> {
//!         ctx.up(n).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // One transport for both sides here; across processes, a `NatsTransport` in each.
//! let transport = MemoryTransport::new();
//! let host = Host::builder("calc", transport.clone())
//!     .register(|(): ()| Squarer)
//!     .start()
//!     .await
//!     .unwrap();
//! let remotes = Remotes::start(transport).await.unwrap();
//! let mut app = taskthread::spawn(App { remotes });
//! assert_eq!(app.recv().await, Some(144));
//! app.stop();
//! app.join().await;
//! host.stop().await;
//! # }
//! ```

/// The guide's chapter on running part of a tree elsewhere: what is guaranteed, what is
/// not, how to deploy a host.
#[doc = include_str!("../../docs/09-beyond-one-machine.md")]
pub mod guide {}

mod codec;
mod endpoint;
mod error;
mod frame;
mod host;
mod link;
mod remote;
mod settings;
mod transport;
mod tree;

pub use error::{HostError, SpawnError, TransportError};
pub use frame::FrameInfo;
pub use host::{Host, HostBuilder};
pub use remote::{RemoteOptions, Remotes};
pub use settings::{
    DEFAULT_MAX_REMOTE_CHILDREN, DEFAULT_REMOTE_CAPACITY, MAX_REMOTE_CAPACITY, Settings,
};
pub use transport::memory;
pub use transport::nats::NatsTransport;
pub use transport::{BoxFuture, DEFAULT_PREFIX, Frames, Transport};
