//! `RemoteProcessor: IN: WirePacket, UP: Decoded` — the `DataProcessor`'s work done in a
//! worker process: a connection's frames are cut out of its byte stream on a host reached
//! over NATS, and come back to the connection to enter the relay.
//!
//! ```text
//! relay process                                    worker process (a taskthread-nats Host)
//!     TcpConnection ── WirePacket ──── NATS ────>      RemoteProcessor
//!                   <─── Decoded ───── NATS ─────
//! ```
//!
//! What stays in the relay's process is what is shared by its threads: the byte budget
//! (a frame takes its size from it when it arrives back, see
//! [`TcpConnection`](super::TcpConnection)), the client's ledger, the counters. What
//! crosses the wire is plain data: a packet with its place in the client's stream, and
//! frames with their numbers among the client's frames.
//!
//! # A lost host
//!
//! A processor is supervised: when its host dies (or its link stays down), it starts
//! again on the next host. The packets the lost life had taken are gone, and with them the
//! frames they held. Every packet carries where it is in the client's stream and where
//! the first frame starting in it begins (the connection's [`FrameScanner`] reads the
//! length prefixes as it hands packets on), so a processor that starts mid-stream skips
//! to the next frame boundary and numbers frames as the client did. The connection sees
//! the gap in the numbers and counts the frames in it as received and lost: nothing
//! vanishes from the summary, and the client is not told that all is well.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};
use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread_nats::{Host, NatsTransport, RemoteOptions, Remotes, Settings};

use super::data_processor::FrameClock;
use super::frame::{FrameDecoder, HEADER_LEN};
use super::packet_reader::READ_AHEAD;

/// A piece of a client's byte stream on its way to a [`RemoteProcessor`]. An empty packet
/// marks the end of the stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct WirePacket {
    /// Where its first byte is in the client's stream.
    pub offset: u64,
    /// The first frame that starts in this packet, if one does: where it starts in the
    /// client's stream, and its number among the client's frames (from 1).
    pub first_frame: Option<(u64, u64)>,
    /// The bytes read; empty at the end of the stream.
    pub bytes: Bytes,
}

/// What a [`RemoteProcessor`] sends back UP.
#[derive(Debug, Serialize, Deserialize)]
pub enum Decoded {
    /// A frame, with its number among the client's frames (from 1).
    Frame {
        /// Its number among the client's frames.
        seq: u64,
        /// The payload (without the length prefix).
        payload: Bytes,
    },
    /// An incomplete frame was discarded when the stream ended or the processor stopped.
    Truncated {
        /// The bytes of it that had arrived.
        bytes: u64,
    },
    /// A frame took longer than the frame timeout to arrive (a slowloris): it was
    /// discarded, and the processor stops, which closes the connection.
    TimedOut {
        /// The frame timeout.
        timeout: Duration,
        /// The bytes of the frame that had arrived.
        bytes: u64,
    },
    /// Bytes that came after bad input or a timed-out frame, discarded.
    Discarded {
        /// How many.
        bytes: u64,
    },
    /// Bad input: the rest of the stream cannot be cut into frames and is discarded.
    Rejected {
        /// What was wrong.
        reason: String,
        /// The bytes discarded with it.
        discarded: u64,
    },
}

/// What a host's factory of [`RemoteProcessor`]s is given.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProcessorArgs {
    /// The largest frame accepted, in bytes.
    pub max_frame: u64,
    /// How long a frame that has started may take to arrive in full, if limited.
    pub frame_timeout: Option<Duration>,
}

/// Cuts one client's byte stream into frames, in a worker process, and sends each one UP
/// with its number among the client's frames.
///
/// A processor that starts mid-stream (the one before it was lost with its host) skips to
/// the first frame that starts in a packet it is given. Bad input makes it report and stop,
/// as a local [`DataProcessor`](super::DataProcessor) does.
///
/// The frame timeout is watched here, where the frames are cut, as a local processor
/// watches it: a frame that has started must arrive in full within it, and time the relay
/// makes the client wait does not count (the processor waiting for room UP, which is where
/// the connection's wait for room in the byte budget reaches it). A frame over the timeout
/// is discarded and reported ([`Decoded::TimedOut`]), and the processor stops, which
/// closes the connection.
#[derive(Debug)]
pub struct RemoteProcessor {
    decoder: FrameDecoder,
    /// Where the next packet starts in the client's stream, once in step with it.
    next_offset: Option<u64>,
    /// The number of the next frame.
    next_seq: u64,
    /// The stream has ended, was rejected, or a frame timed out: nothing after can be a
    /// frame.
    finished: bool,
    clock: FrameClock,
}

impl RemoteProcessor {
    /// A processor with the limits of `args`.
    pub fn new(args: ProcessorArgs) -> Self {
        Self {
            decoder: FrameDecoder::new(usize::try_from(args.max_frame).unwrap_or(usize::MAX)),
            next_offset: None,
            next_seq: 1,
            finished: false,
            clock: FrameClock::new(args.frame_timeout),
        }
    }
}

#[taskthread(remote, up = Decoded)]
impl RemoteProcessor {
    #[down]
    async fn packet(&mut self, ctx: &mut Ctx<Self>, packet: WirePacket) -> Result<()> {
        if self.finished {
            // After bad input or a timed-out frame nothing is cut any more: the rest,
            // already on its way, is discarded.
            if !packet.bytes.is_empty() {
                let bytes = packet.bytes.len() as u64;
                ctx.up(Decoded::Discarded { bytes }).await?;
            }
            return Ok(());
        }
        if packet.bytes.is_empty() {
            self.finished = true;
            ctx.stop(); // `exit` reports an incomplete frame
            return Ok(());
        }
        let mut bytes = packet.bytes;
        let end = packet.offset + bytes.len() as u64;
        if self.next_offset != Some(packet.offset) {
            // Out of step (the first packet of this processor's life): start at the first
            // frame that starts here, or wait for one.
            self.decoder.discard();
            self.clock.stop();
            let Some((start, seq)) = packet.first_frame else {
                return Ok(());
            };
            let skip = usize::try_from(start.saturating_sub(packet.offset)).unwrap_or(usize::MAX);
            bytes.advance(skip.min(bytes.len()));
            self.next_seq = seq;
        }
        self.next_offset = Some(end);
        // A frame that starts in this packet starts its clock now, as does one the relay
        // makes wait.
        let mut restart_clock = self.decoder.buffered() == 0;
        self.decoder.push(&bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    ctx.up(Decoded::Frame { seq, payload }).await?;
                    restart_clock = true;
                }
                Ok(None) => {
                    self.watch_frame(ctx, restart_clock);
                    return Ok(());
                }
                Err(e) => {
                    let discarded = self.decoder.discard() as u64;
                    self.clock.stop();
                    self.finished = true;
                    ctx.up(Decoded::Rejected {
                        reason: e.to_string(),
                        discarded,
                    })
                    .await?;
                    ctx.stop();
                    return Ok(());
                }
            }
        }
    }

    /// Checks the incomplete frame against the frame timeout. Runs at the frame's deadline,
    /// which moves as frames complete and new ones start.
    #[rescheduling(manual)]
    async fn frame_deadline(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let timeout = match self.clock.overdue() {
            Ok(timeout) => timeout,
            Err(next) => return Ok(next),
        };
        let bytes = self.decoder.discard() as u64;
        self.clock.stop();
        self.finished = true;
        ctx.up(Decoded::TimedOut { timeout, bytes }).await?;
        ctx.stop();
        Ok(Reschedule::Done)
    }

    /// Stopped (or at the end of the stream) with part of a frame buffered.
    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let bytes = self.decoder.discard() as u64;
        if bytes > 0 {
            ctx.up(Decoded::Truncated { bytes }).await?;
        }
        Ok(())
    }
}

impl RemoteProcessor {
    /// Starts, restarts or ends the clock of the incomplete frame, and makes sure its
    /// deadline is watched.
    fn watch_frame(&mut self, ctx: &mut Ctx<Self>, restart: bool) {
        if let Some(deadline) = self.clock.watch(self.decoder.buffered() > 0, restart)
            && !ctx.is_task_scheduled(Self::FRAME_DEADLINE)
        {
            ctx.reschedule_task_at(Self::FRAME_DEADLINE, deadline);
        }
    }
}

/// Follows a client's stream by its length prefixes as it is handed to a remote processor:
/// where each frame starts, and how many frames the bytes handed on hold in full.
///
/// ```
/// use taskthread_examples::relay::remote::FrameScanner;
///
/// let mut scanner = FrameScanner::new(1024);
/// // Frame 1 (3 bytes) in full, then the first 2 bytes of frame 2's length prefix.
/// assert_eq!(scanner.scan(&[0, 0, 0, 3, 1, 2, 3, 0, 0]), Some((0, 1)));
/// assert_eq!(scanner.frames(), 1);
/// // The rest of frame 2 (1 byte): no frame starts in this packet.
/// assert_eq!(scanner.scan(&[0, 1, 9]), None);
/// assert_eq!((scanner.offset(), scanner.frames()), (12, 2));
/// ```
#[derive(Debug)]
pub struct FrameScanner {
    offset: u64,
    frames: u64,
    max_frame: u64,
    header: [u8; HEADER_LEN],
    /// Bytes of the current length prefix seen so far.
    header_seen: usize,
    /// Payload bytes of the current frame still to come, once its prefix is complete.
    payload_left: Option<u64>,
    /// A length over the limit was seen: nothing after can be followed.
    lost_step: bool,
}

impl FrameScanner {
    /// A scanner of a stream whose frames hold at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            offset: 0,
            frames: 0,
            max_frame: max_frame as u64,
            header: [0; HEADER_LEN],
            header_seen: 0,
            payload_left: None,
            lost_step: false,
        }
    }

    /// The bytes scanned so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many frames the bytes scanned hold in full.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Scans the next packet; returns where the first frame that starts in it starts in
    /// the stream, with its number, if one does.
    pub fn scan(&mut self, mut bytes: &[u8]) -> Option<(u64, u64)> {
        let mut first = None;
        while !bytes.is_empty() && !self.lost_step {
            if let Some(left) = self.payload_left {
                let n = left.min(bytes.len() as u64);
                self.advance(&mut bytes, n as usize);
                self.payload_left = Some(left - n);
                if left == n {
                    self.frames += 1;
                    self.payload_left = None;
                }
                continue;
            }
            if self.header_seen == 0 && first.is_none() {
                first = Some((self.offset, self.frames + 1));
            }
            let n = (HEADER_LEN - self.header_seen).min(bytes.len());
            self.header[self.header_seen..self.header_seen + n].copy_from_slice(&bytes[..n]);
            self.header_seen += n;
            self.advance(&mut bytes, n);
            if self.header_seen == HEADER_LEN {
                self.header_seen = 0;
                let len = u64::from(u32::from_be_bytes(self.header));
                if len > self.max_frame {
                    self.lost_step = true;
                } else if len == 0 {
                    self.frames += 1;
                } else {
                    self.payload_left = Some(len);
                }
            }
        }
        self.offset += bytes.len() as u64; // what is left after losing step
        first
    }

    fn advance(&mut self, bytes: &mut &[u8], n: usize) {
        *bytes = &bytes[n..];
        self.offset += n as u64;
    }
}

/// The worker processes a relay's connections hand their byte streams to: an endpoint for
/// remote children, and the hosts' names. Each connection's processor starts on the next
/// host in turn, and after a lost host on the one after it.
#[derive(Clone)]
pub struct Processors {
    remotes: Remotes,
    hosts: Arc<[String]>,
    next: Arc<AtomicUsize>,
}

impl fmt::Debug for Processors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processors")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The link settings of the relay's remote processors: a dead worker is noticed within
/// [`LOST_AFTER`].
pub fn link_settings() -> Settings {
    Settings::new()
        .heartbeat(Duration::from_millis(250))
        .lost_after(LOST_AFTER)
}

/// How long a worker's link may stay silent before its processors are lost and started
/// again on another worker.
pub const LOST_AFTER: Duration = Duration::from_secs(3);

impl Processors {
    /// Processors on the hosts named `hosts` (at least one), reached through `remotes`.
    ///
    /// # Panics
    /// If `hosts` is empty.
    pub fn new(remotes: Remotes, hosts: Vec<String>) -> Self {
        assert!(
            !hosts.is_empty(),
            "remote processors need at least one host"
        );
        Self {
            remotes,
            hosts: hosts.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Connects to the NATS server at `url` for processors on the hosts named `hosts`.
    pub async fn connect(
        url: &str,
        hosts: Vec<String>,
    ) -> Result<Self, taskthread_nats::TransportError> {
        let transport = NatsTransport::connect(url).await?;
        let remotes = Remotes::start_with(transport, link_settings()).await?;
        Ok(Self::new(remotes, hosts))
    }

    /// Spawns a supervised processor for a connection with the limits of `args`, on the
    /// next host in turn.
    pub fn spawn<P>(
        &self,
        ctx: &mut Ctx<P>,
        args: ProcessorArgs,
    ) -> Result<ChildRef<RemoteProcessor>>
    where
        P: Thread + taskthread::HandlesUp<Decoded>,
    {
        let first = self.next.fetch_add(1, Ordering::Relaxed) % self.hosts.len();
        let mut options = RemoteOptions::on(&*self.hosts[first]);
        for i in 1..self.hosts.len() {
            options = options.or_on(&*self.hosts[(first + i) % self.hosts.len()]);
        }
        let restart = RestartPolicy::on_failure()
            .backoff(Duration::from_millis(50), Duration::from_secs(1))
            .max_restarts(10, Duration::from_secs(60));
        let options = options
            .args(args)
            .restart(restart)
            .child(ChildOptions::new().name("processor").capacity(READ_AHEAD));
        self.remotes.spawn(ctx, options).map_err(Error::new)
    }
}

/// Runs a worker: a host named `name` for [`RemoteProcessor`]s on the NATS server at
/// `url`, until `until` completes; then stops it (its processors are stopped gracefully).
pub async fn run_host(
    url: &str,
    name: &str,
    until: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let transport = NatsTransport::connect(url).await?;
    let host = Host::builder(name, transport)
        .settings(link_settings())
        .register(RemoteProcessor::new)
        .start()
        .await?;
    println!("{HOST_READY}");
    until.await;
    host.stop().await;
    Ok(())
}

/// The line a worker prints on its standard output once its host takes processors.
pub const HOST_READY: &str = "relay host: ready";
