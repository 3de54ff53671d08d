//! The queues a thread receives on, built on one waiting primitive ([`waiters`]): the
//! bounded DOWN queue ([`down`]) and the inbound queue of UP messages, stream items, job
//! outputs and exit reports ([`inbound`]).
//!
//! Both are tuned for the hot paths — send, dispatch, spawn and stop — and the tricks are
//! explained once, in each module's docs, so the code above them reads plainly:
//!
//! - The DOWN queue lives inside its thread's node (no allocation of its own, nothing until
//!   the first message) under one short lock, which its receiver takes once per burst
//!   (everything queued goes into the receiver's batch, handed out without a lock); a freed
//!   place is promised to the sender that has waited longest.
//! - The inbound queue keeps its items under one short lock, which its receiver takes once
//!   per burst (everything queued); its places are a counter (one compare-and-swap to take,
//!   one atomic subtraction to give back), and only senders that found it full wait in a
//!   list.
//! - Both spend tokio's cooperative budget like tokio's own channels, so a queue that
//!   never empties cannot starve the other tasks of its worker.
//!
//! Nothing here knows of threads: the items are generic, and the layers above give them
//! their meaning.

pub(crate) mod down;
pub(crate) mod inbound;
pub(crate) mod waiters;

pub(crate) use down::{Batch, DownQueue};
pub(crate) use inbound::{
    HoldsOwnPlace, Inbox, InboxSender, Meter, Metered, OwnPlace, Places, Refused, inbox,
};
