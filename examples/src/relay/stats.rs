//! The relay's counters: what the summary line and the progress report are made of.
//!
//! Counters are metrics, not messages: each thread adds to its own counters as it goes, and
//! whoever reports reads them. Frames themselves only travel along the tree.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::frame::Checksum;

/// The counters of one relay, shared by its threads.
#[derive(Debug, Default)]
pub struct RelayStats {
    received: AtomicU64,
    bytes: AtomicU64,
    received_sum: AtomicU64,
    bytes_read: AtomicU64,
    bytes_discarded: AtomicU64,
    /// Frames on their way to the websocket destinations, and what became of them (see
    /// [`Delivery`](super::delivery::Delivery)).
    in_flight: AtomicU64,
    forwarded: AtomicU64,
    undelivered: AtomicU64,
    stored: AtomicU64,
    clients_accepted: AtomicU64,
    clients_refused: AtomicU64,
    clients_closed: AtomicU64,
    clients_rejected: AtomicU64,
    clients_idle: AtomicU64,
    clients_slow: AtomicU64,
    frames_truncated: AtomicU64,
    acked: AtomicU64,
    ws_dropped: AtomicU64,
    destination_drops: AtomicU64,
    confirmed: AtomicU64,
    lost_with_workers: AtomicU64,
    processor_restarts: AtomicU64,
}

impl RelayStats {
    /// A new set of counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `n` frames a client sent in full that were lost with a worker process: they
    /// count as received (the relay read them) and, never stored, as lost.
    pub fn count_lost_with_worker(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
        self.lost_with_workers.fetch_add(n, Relaxed);
    }

    /// Counts a remote processor started again after its worker was lost.
    pub fn count_processor_restart(&self) {
        self.processor_restarts.fetch_add(1, Relaxed);
    }

    /// Counts a frame fully received from a client; returns its id (0, 1, 2, ...).
    pub fn count_received(&self, payload: &[u8]) -> u64 {
        self.bytes.fetch_add(payload.len() as u64, Relaxed);
        self.received_sum
            .fetch_add(Checksum::digest(payload), Relaxed);
        self.received.fetch_add(1, Relaxed)
    }

    /// Counts bytes read from a client's socket.
    pub fn count_read(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts bytes read from a client that could not become frames (see
    /// [`bytes_discarded`](Self::bytes_discarded)).
    pub fn count_discarded(&self, bytes: usize) {
        self.bytes_discarded.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts a frame put on its way to the websocket destinations.
    pub fn count_on_the_way(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// Counts a frame every destination has settled: forwarded, or not if one lost it.
    pub fn count_settled(&self, forwarded: bool) {
        self.in_flight.fetch_sub(1, Relaxed);
        if forwarded {
            self.forwarded.fetch_add(1, Relaxed);
        }
    }

    /// Counts a frame that at least one websocket destination will never get (once per
    /// frame).
    pub fn count_undelivered(&self) {
        self.undelivered.fetch_add(1, Relaxed);
    }

    /// Counts `n` frames committed to the database.
    pub fn count_stored(&self, n: u64) {
        self.stored.fetch_add(n, Relaxed);
    }

    /// Counts a client connection accepted.
    pub fn count_accepted(&self) {
        self.clients_accepted.fetch_add(1, Relaxed);
    }

    /// Counts a client refused because `--max-clients` were connected.
    pub fn count_refused(&self) {
        self.clients_refused.fetch_add(1, Relaxed);
    }

    /// Counts a client connection that ended.
    pub fn count_closed(&self) {
        self.clients_closed.fetch_add(1, Relaxed);
    }

    /// Counts a client disconnected for bad input (an oversized length, garbage), and the
    /// bytes of its stream discarded with it.
    pub fn count_rejected(&self, discarded: usize) {
        self.clients_rejected.fetch_add(1, Relaxed);
        self.count_discarded(discarded);
    }

    /// Counts a client disconnected for being idle.
    pub fn count_idle(&self) {
        self.clients_idle.fetch_add(1, Relaxed);
    }

    /// Counts a client disconnected for taking longer than the frame timeout over a frame.
    pub fn count_slow(&self) {
        self.clients_slow.fetch_add(1, Relaxed);
    }

    /// Counts `n` more frames acknowledged to clients as stored.
    pub fn count_acked(&self, n: u64) {
        self.acked.fetch_add(n, Relaxed);
    }

    /// Counts `n` copies of frames a websocket destination will not get: dropped while it
    /// lagged or was unreachable, or not confirmed when the relay stopped.
    pub fn count_ws_dropped(&self, n: u64) {
        self.ws_dropped.fetch_add(n, Relaxed);
    }

    /// Counts an incomplete frame of `discarded` bytes discarded when its connection
    /// ended.
    pub fn count_truncated(&self, discarded: usize) {
        self.frames_truncated.fetch_add(1, Relaxed);
        self.count_discarded(discarded);
    }

    /// Counts a frame a websocket destination confirmed it has read.
    pub fn count_confirmed(&self) {
        self.confirmed.fetch_add(1, Relaxed);
    }

    /// Counts a websocket connection to a destination that was lost.
    pub fn count_destination_drop(&self) {
        self.destination_drops.fetch_add(1, Relaxed);
    }

    /// Frames fully received from clients.
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// Payload bytes of the frames received.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// The checksum of the frames received.
    pub fn received_checksum(&self) -> Checksum {
        Checksum {
            frames: self.received(),
            bytes: self.bytes(),
            sum: self.received_sum.load(Relaxed),
        }
    }

    /// Bytes read from clients' sockets.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Relaxed)
    }

    /// Bytes read from clients that could not become frames: incomplete frames when their
    /// connection ended, the rest of a stream rejected as bad input, and bytes read as
    /// their connection was closing. Every byte read is either in a frame received (its
    /// payload and 4-byte length) or counted here.
    pub fn bytes_discarded(&self) -> u64 {
        self.bytes_discarded.load(Relaxed)
    }

    /// Frames delivered to every websocket destination, as the destinations confirmed it.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Relaxed)
    }

    /// Frames that at least one websocket destination did not get.
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Relaxed)
    }

    /// Frames on their way to the websocket destinations that some destination has not
    /// settled yet: the only per-frame state the relay keeps. Zero once the relay has
    /// stopped.
    pub fn frames_in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Frames committed to the database.
    pub fn stored(&self) -> u64 {
        self.stored.load(Relaxed)
    }

    /// Frames received but not both forwarded and stored:
    /// `received - min(forwarded, stored)`.
    pub fn lost(&self) -> u64 {
        self.received()
            .saturating_sub(self.forwarded().min(self.stored()))
    }

    /// Frames a client sent in full that were lost with a worker process (with remote
    /// processors).
    pub fn lost_with_workers(&self) -> u64 {
        self.lost_with_workers.load(Relaxed)
    }

    /// Remote processors started again after their worker was lost.
    pub fn processor_restarts(&self) -> u64 {
        self.processor_restarts.load(Relaxed)
    }

    /// Client connections accepted.
    pub fn clients_accepted(&self) -> u64 {
        self.clients_accepted.load(Relaxed)
    }

    /// Clients refused because `--max-clients` were connected.
    pub fn clients_refused(&self) -> u64 {
        self.clients_refused.load(Relaxed)
    }

    /// Client connections that ended.
    pub fn clients_closed(&self) -> u64 {
        self.clients_closed.load(Relaxed)
    }

    /// Clients disconnected for bad input.
    pub fn clients_rejected(&self) -> u64 {
        self.clients_rejected.load(Relaxed)
    }

    /// Clients disconnected for being idle.
    pub fn clients_idle(&self) -> u64 {
        self.clients_idle.load(Relaxed)
    }

    /// Clients disconnected for taking longer than the frame timeout over a frame.
    pub fn clients_slow(&self) -> u64 {
        self.clients_slow.load(Relaxed)
    }

    /// Frames acknowledged to clients as stored (the sum of the last acknowledgement sent
    /// to each client); 0 without acknowledgements.
    pub fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }

    /// Copies of frames websocket destinations did not get, summed over destinations.
    pub fn ws_dropped(&self) -> u64 {
        self.ws_dropped.load(Relaxed)
    }

    /// Incomplete frames discarded when their connection ended.
    pub fn frames_truncated(&self) -> u64 {
        self.frames_truncated.load(Relaxed)
    }

    /// Frames websocket destinations confirmed they have read, summed over destinations.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Relaxed)
    }

    /// Websocket connections to destinations that were lost.
    pub fn destination_drops(&self) -> u64 {
        self.destination_drops.load(Relaxed)
    }
}
