//! The load generator: concurrent TCP clients streaming random frames, split into random
//! packets, and a plain [`RelayClient`] for anything that speaks the protocol.
//!
//! ```text
//! LoadGenerator: UP: Sent
//!     Client: UP: Sent                   (one per client)
//! ```

use std::io;
use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use indicatif::ProgressBar;
use taskthread::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frame::{self, ACK_LEN, Checksum, GREETING};

/// What clients sent, and what the relay acknowledged of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// The frames sent.
    pub checksum: Checksum,
    /// The frames the relay acknowledged as stored (0 without acknowledgements).
    pub acked: u64,
}

impl Sent {
    /// Adds another client's.
    pub fn merge(&mut self, other: Sent) {
        self.checksum.merge(other.checksum);
        self.acked += other.acked;
    }
}

/// A client of the relay: connects, checks the greeting, sends frames, and finishes by
/// waiting for the relay to close the connection, which it does once it has taken every
/// frame.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use taskthread_examples::relay::load::RelayClient;
///
/// let mut client = RelayClient::connect("127.0.0.1:5002".parse().unwrap()).await?;
/// client.send_frame(b"hello").await?;
/// client.finish().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RelayClient {
    stream: TcpStream,
    sent: Checksum,
}

impl RelayClient {
    /// Connects and reads the greeting; fails with `InvalidData` if it is not the relay's.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        let len = stream.read_u32().await? as usize;
        if len > 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "greeting too long",
            ));
        }
        let mut greeting = vec![0; len];
        stream.read_exact(&mut greeting).await?;
        if greeting != GREETING.as_bytes() {
            let got = String::from_utf8_lossy(&greeting).into_owned();
            let msg = format!("unexpected greeting {got:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        Ok(Self {
            stream,
            sent: Checksum::default(),
        })
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut wire = BytesMut::new();
        frame::encode(payload, &mut wire);
        self.stream.write_all(&wire).await?;
        self.sent.add(payload);
        Ok(())
    }

    /// Reads the next acknowledgement from a relay that acknowledges (`--ack`): the count
    /// of this client's frames stored so far, modulo 2^32.
    pub async fn next_ack(&mut self) -> io::Result<u32> {
        self.stream.read_u32().await
    }

    /// Sends raw bytes: a frame in pieces, or bad input.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sets `TCP_NODELAY` on the connection: every write goes out at once instead of a
    /// short tail waiting for the acknowledgement of what is in flight (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set on the connection.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.stream.nodelay()
    }

    /// The client's own address: the relay's `client` in its logs.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// The frames sent with [`send_frame`](Self::send_frame).
    pub fn sent(&self) -> Checksum {
        self.sent
    }

    /// Closes the sending side and waits until the relay closes the connection cleanly:
    /// then everything sent is stored. Fails if the relay sends anything, or resets the
    /// connection.
    pub async fn finish(mut self) -> io::Result<Checksum> {
        self.stream.shutdown().await?;
        wait_for_close(&mut self.stream).await?;
        Ok(self.sent)
    }

    /// For a relay that acknowledges (`--ack`): closes the sending side, then reads the
    /// acknowledgements until the relay closes the connection. Returns the last count
    /// acknowledged, and how the connection ended (an error if the relay reset it).
    pub async fn finish_acked(mut self) -> (u64, io::Result<()>) {
        if let Err(e) = self.stream.shutdown().await {
            return (0, Err(e));
        }
        read_acks(&mut self.stream).await
    }

    /// The connection itself, for tests that misbehave.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

/// Reads acknowledgements until the relay closes the connection; returns the last one
/// (0 if none came) and how the connection ended.
pub async fn read_acks(stream: &mut TcpStream) -> (u64, io::Result<()>) {
    let mut acked = 0u64;
    let mut ack = [0; ACK_LEN];
    loop {
        match stream.read_exact(&mut ack).await {
            // The count wraps at 2^32; the acknowledged total grows by the difference.
            Ok(_) => acked += u64::from(u32::from_be_bytes(ack).wrapping_sub(acked as u32)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (acked, Ok(())),
            Err(e) => return (acked, Err(e)),
        }
    }
}

/// Reads until the peer closes; fails if it sends anything.
async fn wait_for_close(stream: &mut TcpStream) -> io::Result<()> {
    let mut byte = [0; 1];
    match stream.read(&mut byte).await? {
        0 => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the relay sent data after the greeting",
        )),
    }
}

/// A tiny deterministic pseudo-random generator (xorshift64*): payloads and packet sizes
/// only need to be varied and reproducible.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a seed (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `1..=max` (`max` at least 1).
    pub fn between_1_and(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// What the load generator does.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The relay's address.
    pub addr: SocketAddr,
    /// How many clients run at once.
    pub clients: usize,
    /// How many frames each client sends.
    pub frames: u64,
    /// The smallest payload (at least 1).
    pub min_frame: usize,
    /// The largest payload; sizes are uniform in `min_frame..=max_frame`.
    pub max_frame: usize,
    /// Whether the relay acknowledges frames (`--ack`): clients then read the
    /// acknowledgements and report the last one.
    pub acks: bool,
    /// The seed of the pseudo-random sizes and payloads.
    pub seed: u64,
    /// Advanced by one for every frame sent.
    pub progress: ProgressBar,
}

/// Runs the clients, and sends UP what they sent (and what the relay acknowledged) once
/// they have all ended (or it is stopped).
#[derive(Debug)]
pub struct LoadGenerator {
    options: LoadOptions,
    sent: Sent,
    failed: usize,
}

impl LoadGenerator {
    /// A load generator; it starts its clients when spawned.
    pub fn new(options: LoadOptions) -> Self {
        Self {
            options,
            sent: Sent::default(),
            failed: 0,
        }
    }
}

#[taskthread(up = Sent)]
impl LoadGenerator {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for i in 0..self.options.clients {
            let seed = self.options.seed.wrapping_add(i as u64);
            let client = Client::new(&self.options, XorShift::new(seed));
            ctx.spawn_with(client, ChildOptions::new().name("client"));
        }
        Ok(())
    }

    #[up]
    async fn sent(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, sent: Sent) {
        self.sent.merge(sent);
    }

    #[up]
    async fn client_ended(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        if exit.exit.is_failure() {
            self.failed += 1;
            tracing::warn!("{exit}");
        }
        if ctx.children().len() == 0 {
            ctx.stop();
        }
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if self.failed > 0 {
            tracing::warn!(failed = self.failed, "some clients failed");
        }
        ctx.up(self.sent).await?;
        Ok(())
    }
}

/// One client: connects, then sends a few frames per run of its task, cut into random
/// packets that split length prefixes and merge frames, until it has sent them all.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    frames_left: u64,
    min_frame: usize,
    max_frame: usize,
    acks: bool,
    rng: XorShift,
    progress: ProgressBar,
    sent: Checksum,
}

impl Client {
    fn new(options: &LoadOptions, rng: XorShift) -> Self {
        Self {
            addr: options.addr,
            stream: None,
            frames_left: options.frames,
            min_frame: options.min_frame.clamp(1, options.max_frame.max(1)),
            max_frame: options.max_frame,
            acks: options.acks,
            rng,
            progress: options.progress.clone(),
            sent: Checksum::default(),
        }
    }
}

#[taskthread(up = Sent)]
impl Client {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        self.stream = Some(RelayClient::connect(self.addr).await?.into_inner());
        Ok(())
    }

    /// Sends up to four frames per run, until all are sent. A stop lets the run finish, so
    /// frames are never cut.
    #[rescheduling]
    async fn send(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(Reschedule::Stop);
        };
        if self.frames_left == 0 {
            return Ok(Reschedule::Stop);
        }
        let batch = self.frames_left.min(self.rng.between_1_and(4) as u64);
        let mut wire = BytesMut::new();
        let mut sent = Checksum::default();
        for _ in 0..batch {
            let spread = self.max_frame - self.min_frame;
            let len = self.min_frame + self.rng.between_1_and(spread + 1) - 1;
            wire.put_u32(u32::try_from(len)?);
            let start = wire.len();
            wire.resize(start + len, 0);
            self.rng.fill(&mut wire[start..]);
            sent.add(&wire[start..]);
        }
        while !wire.is_empty() {
            // Mostly large packets, some tiny ones that cut through length prefixes.
            let size = match self.rng.between_1_and(4) {
                1 => self.rng.between_1_and(7),
                _ => self.rng.between_1_and(64 * 1024),
            };
            let packet = wire.split_to(size.min(wire.len()));
            stream.write_all(&packet).await?;
        }
        self.frames_left -= batch;
        self.sent.merge(sent);
        self.progress.inc(batch);
        Ok(Reschedule::Now)
    }

    /// Done or stopped: closes the sending side and waits for the relay to close the
    /// connection (reading the acknowledgements, with acks on), so that everything sent is
    /// stored; then reports what was sent and acknowledged. A reset fails the client, after
    /// its report.
    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let (acked, closed) = match self.stream.take() {
            Some(stream) => close(stream, self.acks).await,
            None => (0, Ok(())),
        };
        let sent = Sent {
            checksum: self.sent,
            acked,
        };
        ctx.up(sent).await?;
        closed?;
        Ok(())
    }
}

/// Closes the sending side of a client's connection and waits for the relay to close it;
/// returns the last acknowledgement (with acks on) and how the connection ended.
async fn close(mut stream: TcpStream, acks: bool) -> (u64, io::Result<()>) {
    if let Err(e) = stream.shutdown().await {
        return (0, Err(e));
    }
    if acks {
        read_acks(&mut stream).await
    } else {
        (0, wait_for_close(&mut stream).await)
    }
}
