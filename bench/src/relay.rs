//! The relay workload: the flagship example's pipeline (TCP → processor → fan-out → sinks),
//! once with the example's own threads and once as plain tokio tasks and channels.
//!
//! Both sides take the same load (the same clients on loopback, the same wire format), do
//! the same work per frame (the socket read through the same `ReaderStream` with the same
//! read-ahead credit, the same `FrameDecoder`, the frame's size taken from the same kind of
//! byte budget, the same `Frame` with its delivery bookkeeping) and hand every frame to the
//! same kind of in-process sink: the example's websocket and SQLite sinks are left out of
//! both, because re-writing them by hand would measure tungstenite and SQLite more than the
//! pipeline.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use taskthread::prelude::*;
use taskthread_examples::relay::budget::{Budget, Charge};
use taskthread_examples::relay::frame::{self, FrameDecoder};
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::packet_reader::READ_AHEAD;
use taskthread_examples::relay::tcp_server::{Receipts, ServerConfig};
use taskthread_examples::relay::{Frame, Packet, RelayStats, TcpServer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use crate::model::{Countdown, SMALL_QUEUE, Scale, Value};

/// How much one socket read takes at most (as the example's reader).
const READ_SIZE: usize = 64 * 1024;

/// One client's whole stream, encoded once: `frames` frames of `len` bytes.
fn client_stream(frames: u64, len: usize) -> bytes::Bytes {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut out = BytesMut::with_capacity(frames as usize * (len + frame::HEADER_LEN));
    for _ in 0..frames {
        frame::encode(&payload, &mut out);
    }
    out.freeze()
}

/// Runs the load against `addr`: every client connects, sends its stream in 64 KiB writes,
/// closes its side and waits for the relay to close the connection.
async fn load(addr: SocketAddr, scale: &Scale) {
    let stream = client_stream(scale.relay_frames, scale.relay_frame_len);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..scale.relay_clients {
        let stream = stream.clone();
        clients.spawn(async move {
            let mut client = RelayClient::connect(addr).await.expect("the relay accepts");
            // The stream goes out in 64 KiB writes: with Nagle's algorithm the short tail
            // of a write can wait for the relay's delayed acknowledgement (40 ms on Linux).
            client.set_nodelay(true).expect("a connected socket");
            for chunk in stream.chunks(READ_SIZE) {
                client.send_raw(chunk).await.expect("the relay reads");
            }
            client.finish().await.expect("the relay takes everything");
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client ends");
    }
}

/// Frames per second: from the first connection to the last sink having every frame.
fn frames_per_second(scale: &Scale, started: Instant) -> Value {
    let frames = scale.relay_clients as u64 * scale.relay_frames;
    Value::Measured(frames as f64 / started.elapsed().as_secs_f64())
}

/// What a sink does with a frame, on both sides: settle its delivery share, count it, and
/// say when it has them all.
fn sink_take(frame: Frame, got: &mut u64, expected: u64, all: &Countdown) {
    std::hint::black_box(&frame.payload);
    frame.delivery.delivered();
    *got += 1;
    if *got == expected {
        all.count();
    }
}

fn server_config(scale: &Scale) -> ServerConfig {
    ServerConfig {
        max_frame: scale.relay_frame_len.max(1024),
        max_clients: scale.relay_clients,
        idle_timeout: None,
        frame_timeout: None,
        // No database: a connection closes once its frames are taken, as on the tokio side.
        receipts: Receipts::None,
        ..ServerConfig::default()
    }
}

// ---- taskthread: the example's TcpServer, TcpConnection and DataProcessor ---------------------

/// An in-process sink thread.
struct Sink {
    got: u64,
    expected: u64,
    all: Arc<Countdown>,
}

#[taskthread]
impl Sink {
    #[down]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, frame: Frame) -> Result<()> {
        sink_take(frame, &mut self.got, self.expected, &self.all);
        Ok(())
    }
}

/// The root, as the example's `Master` with in-process sinks: the TCP side in stop stage 0,
/// the sinks in stage 1, every frame to every sink.
struct BenchMaster {
    server: Option<TcpServer>,
    sinks: Vec<ChildRef<Sink>>,
    sink_count: usize,
    expected: u64,
    all: Arc<Countdown>,
}

#[taskthread]
impl BenchMaster {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let server = self.server.take().expect("enter runs once");
        ctx.spawn_with(server, ChildOptions::new().stop_stage(0));
        for _ in 0..self.sink_count {
            let sink = Sink {
                got: 0,
                expected: self.expected,
                all: Arc::clone(&self.all),
            };
            self.sinks
                .push(ctx.spawn_with(sink, ChildOptions::new().stop_stage(1)));
        }
        Ok(())
    }

    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        frame.delivery.open(self.sinks.len());
        let (last, rest) = self.sinks.split_last().expect("at least one sink");
        for sink in rest {
            sink.send(frame.clone()).await?;
        }
        last.send(frame).await?;
        Ok(())
    }
}

/// The relay workload on taskthread.
pub(crate) async fn run_taskthread(scale: Scale) -> Value {
    let stats = Arc::new(RelayStats::new());
    let listen = (Ipv4Addr::LOCALHOST, 0).into();
    let server = TcpServer::bind(listen, server_config(&scale), Arc::clone(&stats))
        .await
        .expect("a loopback port");
    let addr = server.local_addr();
    let all = Arc::new(Countdown::new(scale.relay_sinks));
    let root = taskthread::spawn(BenchMaster {
        server: Some(server),
        sinks: Vec::new(),
        sink_count: scale.relay_sinks,
        expected: scale.relay_clients as u64 * scale.relay_frames,
        all: Arc::clone(&all),
    });
    let started = Instant::now();
    load(addr, &scale).await;
    all.wait().await;
    let value = frames_per_second(&scale, started);
    root.stop();
    root.join().await;
    value
}

// ---- plain tokio: a task per connection, per processor, for the fan-out and per sink ----------

/// The relay workload as plain tokio tasks and channels.
pub(crate) async fn run_tokio(scale: Scale) -> Value {
    let stats = Arc::new(RelayStats::new());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let all = Arc::new(Countdown::new(scale.relay_sinks));
    let expected = scale.relay_clients as u64 * scale.relay_frames;

    let mut sinks = Vec::with_capacity(scale.relay_sinks);
    let mut tasks = Vec::new();
    for _ in 0..scale.relay_sinks {
        let (tx, mut rx) = mpsc::channel::<Frame>(SMALL_QUEUE);
        let all = Arc::clone(&all);
        sinks.push(tx);
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while let Some(frame) = rx.recv().await {
                sink_take(frame, &mut got, expected, &all);
            }
        }));
    }
    let (frames_tx, mut frames_rx) = mpsc::channel::<Frame>(SMALL_QUEUE);
    tasks.push(tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            frame.delivery.open(sinks.len());
            let (last, rest) = sinks.split_last().expect("at least one sink");
            for sink in rest {
                if sink.send(frame.clone()).await.is_err() {
                    return;
                }
            }
            if last.send(frame).await.is_err() {
                return;
            }
        }
    }));
    let config = server_config(&scale);
    let budget = Budget::new(config.max_buffered);
    let accept = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        for _ in 0..config.max_clients {
            let (socket, client) = listener.accept().await.expect("a client");
            stats.count_accepted();
            let (frames, stats) = (frames_tx.clone(), Arc::clone(&stats));
            let budget = budget.clone();
            connections.spawn(connection(
                socket,
                client,
                config.max_frame,
                budget,
                frames,
                stats,
            ));
        }
        while let Some(done) = connections.join_next().await {
            done.expect("a connection ends");
        }
    });

    let started = Instant::now();
    load(addr, &scale).await;
    all.wait().await;
    let value = frames_per_second(&scale, started);
    accept.await.expect("the accept task ends");
    for task in tasks {
        task.await.expect("a relay task ends");
    }
    value
}

/// One client: greets it, reads its socket as the example's `PacketReader` does (the same
/// stream, the same read-ahead credit) and hands packets to its processor task, which cuts
/// the frames as the example's `DataProcessor` does (admitting each into the byte budget)
/// and sends them on.
async fn connection(
    socket: TcpStream,
    client: SocketAddr,
    max_frame: usize,
    budget: Budget,
    frames: mpsc::Sender<Frame>,
    stats: Arc<RelayStats>,
) {
    let (reader, mut writer) = socket.into_split();
    writer
        .write_all(&frame::greeting())
        .await
        .expect("the client reads");
    let (packets_tx, mut packets_rx) = mpsc::channel::<Packet>(READ_AHEAD);
    let processor_stats = Arc::clone(&stats);
    let processor = tokio::spawn(async move {
        let mut decoder = FrameDecoder::new(max_frame);
        // As the example's processor: a frame takes its size from the budget as soon as
        // its length prefix has arrived, and holds it until its last copy is dropped.
        let mut admitted: Option<Charge> = None;
        let mut seq = 0;
        while let Some(packet) = packets_rx.recv().await {
            if packet.is_end() {
                break;
            }
            decoder.push(&packet.bytes);
            drop(packet); // its credit goes back to the reader
            loop {
                if admitted.is_none() {
                    let Some(len) = decoder.frame_len().expect("well-formed frames") else {
                        break;
                    };
                    let size = frame::HEADER_LEN + len;
                    let charge = match budget.try_reserve(size) {
                        Some(charge) => charge,
                        None => budget.reserve(size).await,
                    };
                    admitted = Some(charge);
                    decoder.reserve_frame();
                }
                let Some(payload) = decoder.next_frame().expect("well-formed frames") else {
                    break;
                };
                seq += 1;
                let charge = admitted.take().unwrap_or_default();
                let frame = Frame::tracked(client, seq, payload, &processor_stats, charge, None);
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
        }
    });
    let credit = Arc::new(Semaphore::new(READ_AHEAD));
    let mut packets = ReaderStream::with_capacity(reader, READ_SIZE);
    loop {
        let permit = Arc::clone(&credit)
            .acquire_owned()
            .await
            .expect("the credit is never closed");
        let bytes = match packets.next().await {
            Some(read) => read.expect("the client's socket reads"),
            None => Bytes::new(),
        };
        let end = bytes.is_empty();
        stats.count_read(bytes.len());
        if packets_tx.send(Packet::new(bytes, permit)).await.is_err() || end {
            break;
        }
    }
    processor.await.expect("the processor ends");
    stats.count_closed();
    // Dropping the writer closes the connection: the client knows all was taken.
    drop(writer);
}
