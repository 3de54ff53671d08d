//! The way UP: what arrives on a thread's inbound queue ([`Inbound`]), and the ports
//! through which a thread sends UP ([`UpPort`]) — a parent's [`ParentSink`], shared by all
//! its children, a root's [`RootPort`] to its handle, or a [`ForwardPort`] through which a
//! thread's children send UP as the thread itself.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::TrySendError;
use crate::exit::{ChildId, ChildRestart, ExitReport};
use crate::node::Node;
use crate::queue::{HoldsOwnPlace, InboxSender, Meter, Metered, Places};

/// What arrives on a thread's inbound queue.
pub(crate) enum Inbound<E> {
    /// An UP message from a child or an item from an attached stream (metered).
    Event(E),
    /// Not metered: the output of a `spawn_task` / `spawn_blocking` job (one per job), a
    /// stream's item that came with the queue full (one per stream), or an UP message in
    /// its sender's own place (one per sender).
    Unmetered(E),
    /// A child's exit report.
    Exit(ChildId, ExitReport),
    /// A supervised child's restart (not metered: bounded by its restart limit). Boxed: rare,
    /// and it would otherwise size every slot of the queue.
    Restart(ChildId, Box<ChildRestart>),
}

impl<E> Metered for Inbound<E> {
    #[inline]
    fn is_metered(&self) -> bool {
        matches!(self, Self::Event(_))
    }
}

/// The way UP, type-erased over the parent's type so a thread's `Ctx` does not name its
/// parent.
///
/// One per parent (its [`ParentSink`]) shared by all its children, not one per child: a
/// child's `Ctx` holds an `Arc` of it and says who it is (`from`) on each send, so spawning
/// a child allocates no port.
pub(crate) trait UpPort<U>: Send + Sync {
    fn try_send(&self, from: ChildId, msg: U) -> Result<(), TrySendError<U>>;
    /// The places of the receiver's queue, for the slow path of a send when it is full:
    /// wait for one, then [`send_permitted`](Self::send_permitted).
    fn meter(&self) -> &Meter;
    /// The same places, held: for a sender that runs after a wait
    /// ([`run`](crate::queue::inbound::run)).
    fn places(&self) -> Places;
    /// Sends with a place taken from [`meter`](Self::meter).
    fn send_permitted(&self, from: ChildId, msg: U);
    /// Sends in the sender's own place, which it has taken and `owner` (its node) holds:
    /// for a sender that found the metered places all taken. Never waits. If the receiver
    /// is gone, frees the place and gives the message back.
    fn send_own(&self, from: ChildId, msg: U, owner: Arc<dyn HoldsOwnPlace>) -> Result<(), U>;
    /// Reports the exit; never waits.
    fn report(&self, from: ChildId, exit: ExitReport);
    /// Reports a restart of a supervised child; never waits.
    fn report_restart(&self, from: ChildId, restart: Box<ChildRestart>);
    fn target(&self) -> &str;
    /// The thread that receives, if it is one (not a root's handle): the one a full
    /// queue makes a sender wait on.
    fn receiver(&self) -> Option<&Node>;
}

/// A parent's end of its children's UP messages and exit reports. It implements
/// [`UpPort`] for every type the parent `P` has an `#[up]` handler for (see
/// `HandlesUp`), wrapping each message into the parent's event type `E`.
pub(crate) struct ParentSink<P, E> {
    pub(crate) tx: InboxSender<Inbound<E>>,
    pub(crate) parent: Arc<Node>,
    _parent: PhantomData<fn() -> P>,
}

impl<P, E> ParentSink<P, E> {
    pub(crate) fn new(tx: InboxSender<Inbound<E>>, parent: Arc<Node>) -> Self {
        Self {
            tx,
            parent,
            _parent: PhantomData,
        }
    }

    /// Reports a child's exit to the parent; never waits. Fails only if the parent itself
    /// was aborted: nobody is left to tell.
    pub(crate) fn report_exit(&self, from: ChildId, exit: ExitReport) {
        self.tx.send_unmetered(Inbound::Exit(from, exit));
    }

    /// Reports a supervised child's restart to the parent; never waits.
    pub(crate) fn report_restart(&self, from: ChildId, restart: Box<ChildRestart>) {
        self.tx.send_unmetered(Inbound::Restart(from, restart));
    }
}

/// The port of a root: UP messages go to its handle; the exit is the root task's output.
pub(crate) struct RootPort<U> {
    pub(crate) tx: InboxSender<Inbound<U>>,
}

impl<U: Send + 'static> UpPort<U> for RootPort<U> {
    fn try_send(&self, _from: ChildId, msg: U) -> Result<(), TrySendError<U>> {
        self.tx
            .try_send_with(msg, Inbound::Event)
            .map_err(|(refused, m)| refused.with(m))
    }

    fn meter(&self) -> &Meter {
        self.tx.meter()
    }

    fn places(&self) -> Places {
        self.tx.places()
    }

    fn send_permitted(&self, _from: ChildId, msg: U) {
        self.tx.send_permitted(Inbound::Event(msg));
    }

    fn send_own(&self, _from: ChildId, msg: U, owner: Arc<dyn HoldsOwnPlace>) -> Result<(), U> {
        self.tx.send_own(msg, Inbound::Unmetered, owner)
    }

    fn report(&self, _from: ChildId, _exit: ExitReport) {}

    // A root is never supervised: nothing to report.
    fn report_restart(&self, _from: ChildId, _restart: Box<ChildRestart>) {}

    fn target(&self) -> &str {
        "the root's handle"
    }

    fn receiver(&self) -> Option<&Node> {
        None
    }
}

/// The port of the children of a thread that passes their UP messages on (a worker pool,
/// a thread declared `pass_up`): their messages go straight to the thread's own way UP
/// `up`, with the thread's id `id`, as if the thread sent them; their exits and restarts
/// go to the thread itself. One per thread, shared by its children.
pub(crate) struct ForwardPort<U, E> {
    /// The thread's own way UP.
    pub(crate) up: Arc<dyn UpPort<U>>,
    /// The thread's id: what its parent sees as the sender.
    pub(crate) id: ChildId,
    /// The thread's inbound queue, for its children's exits and restarts.
    pub(crate) exits: InboxSender<Inbound<E>>,
}

impl<U: Send + 'static, E: Send + 'static> UpPort<U> for ForwardPort<U, E> {
    #[inline]
    fn try_send(&self, _from: ChildId, msg: U) -> Result<(), TrySendError<U>> {
        self.up.try_send(self.id, msg)
    }

    fn meter(&self) -> &Meter {
        self.up.meter()
    }

    fn places(&self) -> Places {
        self.up.places()
    }

    fn send_permitted(&self, _from: ChildId, msg: U) {
        self.up.send_permitted(self.id, msg);
    }

    fn send_own(&self, _from: ChildId, msg: U, owner: Arc<dyn HoldsOwnPlace>) -> Result<(), U> {
        self.up.send_own(self.id, msg, owner)
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
