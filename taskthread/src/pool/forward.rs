//! The way UP of a pool's workers: their UP messages go straight to the pool's own port, as
//! if the pool sent them, and their exits (and restarts) to the pool.

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::TrySendError;
use crate::exit::{ChildId, ChildRestart, ExitReport};
use crate::node::Node;
use crate::port::{Inbound, UpPort};
use crate::queue::{InboxSender, Meter, Places};
use crate::thread::Thread;

/// A worker's port.
struct ForwardPort<P: Thread> {
    /// The pool's own way UP.
    up: Arc<dyn UpPort<P::Up>>,
    /// The pool's id: what the pool's parent sees as the sender.
    pool: ChildId,
    /// The pool's inbound queue, for the workers' exits and restarts.
    exits: InboxSender<Inbound<P::Event>>,
}

impl<P: Thread> UpPort<P::Up> for ForwardPort<P> {
    fn try_send(&self, _from: ChildId, msg: P::Up) -> Result<(), TrySendError<P::Up>> {
        self.up.try_send(self.pool, msg)
    }

    fn meter(&self) -> &Meter {
        self.up.meter()
    }

    fn places(&self) -> Places {
        self.up.places()
    }

    fn send_permitted(&self, _from: ChildId, msg: P::Up) {
        self.up.send_permitted(self.pool, msg);
    }

    fn report(&self, from: ChildId, exit: ExitReport) {
        self.exits.send_unmetered(Inbound::Exit(from, exit));
    }

    fn report_restart(&self, from: ChildId, restart: Box<ChildRestart>) {
        self.exits.send_unmetered(Inbound::Restart(from, restart));
    }

    fn target(&self) -> &str {
        self.up.target()
    }

    fn receiver(&self) -> Option<&Node> {
        self.up.receiver()
    }
}

/// The port of a worker of the pool `P`.
pub(super) fn forward_port<P: Thread>(pool: &mut Ctx<P>) -> Arc<dyn UpPort<P::Up>> {
    Arc::new(ForwardPort::<P> {
        up: Arc::clone(pool.up_port()),
        pool: pool.node().id,
        exits: pool.family().sender(),
    })
}
