//! `Database: IN: Frame` — stores every frame in SQLite, in batched transactions written
//! off the async loop.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use taskthread::prelude::*;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::frame::Checksum;
use super::receipt::Ledger;
use super::{Frame, RelayStats};

/// A batch is written once it holds this many frames...
const BATCH_FRAMES: usize = 512;
/// ... or this many payload bytes, or at the next periodic flush.
const BATCH_BYTES: usize = 16 << 20;
/// How long a write waits for another process that holds the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema: one row per frame.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS frames (
        id      INTEGER PRIMARY KEY,
        client  TEXT    NOT NULL,  -- the client's address, e.g. 127.0.0.1:50412
        seq     INTEGER NOT NULL,  -- the frame's number among that client's frames, from 1
        len     INTEGER NOT NULL,  -- the payload's length in bytes
        payload BLOB    NOT NULL
    );";

/// The database could not be opened or prepared.
#[derive(Debug)]
pub struct OpenError {
    path: PathBuf,
    source: rusqlite::Error,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open the database `{}`: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The result of writing one batch on the blocking pool.
#[derive(Debug)]
pub struct Written(Result<usize, WriteError>);

/// A batch that could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// SQLite failed (a full disk, a broken file...).
    Sqlite(rusqlite::Error),
    /// An earlier write failed: no batch is written after it.
    AfterFailure,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "cannot store frames: {e}"),
            Self::AfterFailure => {
                f.write_str("an earlier write failed: no frame is stored after it")
            }
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) => Some(e),
            Self::AfterFailure => None,
        }
    }
}

/// The connection to the database, and whether a write has failed: after a failed write
/// no other is made, so the frames stored are always the first ones each client sent.
#[derive(Debug)]
struct Writer {
    conn: Connection,
    failed: bool,
}

/// Where the database's writes happen, as a handle that outlives the `Database` thread:
/// a batch being written when the thread ends (even aborted) is still committed and
/// counted, and [`settled`](Self::settled) waits for it.
#[derive(Debug, Clone)]
pub struct Store(Arc<Mutex<Writer>>);

impl Store {
    /// Waits until no batch is being written.
    pub async fn settled(&self) {
        drop(self.0.lock().await);
    }
}

/// Stores frames in the `frames` table of a SQLite database.
///
/// Frames collect in a batch. A full batch, or whatever the periodic flush finds, is
/// written in one transaction on tokio's blocking pool with `ctx.spawn_blocking`, while the
/// next batch fills. The connection goes with the batch: the async mutex around it hands
/// it over, so a second full batch waits for the first to be written (backpressure up to
/// the master) instead of piling up in memory. On stop, the queue is drained, the batch
/// in flight is awaited like any `spawn_blocking` job, and `exit` writes the last one.
///
/// Commits are synchronous (`synchronous = FULL` in WAL mode): a frame counted as stored
/// survives a crash of the relay or of the machine. The blocking job itself counts the
/// frames it committed and records them in their clients' ledgers, so the counts always
/// match the database, however the thread ends. A write that fails (a full disk) fails
/// the thread, and no batch is written after it.
#[derive(Debug)]
pub struct Database {
    store: Store,
    batch: Vec<Frame>,
    batch_bytes: usize,
    stats: Arc<RelayStats>,
}

impl Database {
    /// Opens (or creates) the database at `path` and its `frames` table.
    pub fn open(path: impl AsRef<Path>, stats: Arc<RelayStats>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            // Another process writing (or a backup) holds the database for a while: wait
            // for it rather than fail; the byte budget holds the frames meanwhile.
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            store: Store(Arc::new(Mutex::new(Writer {
                conn,
                failed: false,
            }))),
            batch: Vec::with_capacity(BATCH_FRAMES),
            batch_bytes: 0,
            stats,
        })
    }

    /// The handle to wait for the writes with.
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Takes the batch, leaving an empty one.
    fn take_batch(&mut self) -> Vec<Frame> {
        self.batch_bytes = 0;
        mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FRAMES))
    }

    /// Writes `batch` with the connection `writer`, off the async loop.
    fn spawn_write(&mut self, ctx: &mut Ctx<Self>, writer: OwnedMutexGuard<Writer>) {
        let (batch, stats) = (self.take_batch(), Arc::clone(&self.stats));
        ctx.spawn_blocking(move || Written(write(writer, batch, &stats)));
    }
}

#[taskthread]
impl Database {
    #[down]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, frame: Frame) {
        self.batch_bytes += frame.payload.len();
        self.batch.push(frame);
        if self.batch.len() >= BATCH_FRAMES || self.batch_bytes >= BATCH_BYTES {
            // Waits while the previous batch is being written.
            let writer = Arc::clone(&self.store.0).lock_owned().await;
            self.spawn_write(ctx, writer);
        }
    }

    /// Writes what has collected, unless a batch is being written already.
    #[rescheduling(every = "100ms")]
    async fn flush(&mut self, ctx: &mut Ctx<Self>) -> Reschedule {
        if !self.batch.is_empty()
            && let Ok(writer) = Arc::clone(&self.store.0).try_lock_owned()
        {
            self.spawn_write(ctx, writer);
        }
        Reschedule::Again
    }

    #[stream]
    async fn written(&mut self, _ctx: &mut Ctx<Self>, Written(result): Written) -> Result<()> {
        result?;
        Ok(())
    }

    /// The last batch. The loop has ended, so this one is awaited here rather than
    /// delivered to `written`.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let writer = Arc::clone(&self.store.0).lock_owned().await;
        let (batch, stats) = (self.take_batch(), Arc::clone(&self.stats));
        tokio::task::spawn_blocking(move || write(writer, batch, &stats)).await??;
        Ok(())
    }
}

/// Inserts a batch in one transaction, then counts its frames as stored and records them
/// in their clients' ledgers; returns how many rows were committed. Refuses to write after
/// a failed write. The frames are dropped at the end: stored, or lost to their ledgers.
fn write(
    mut writer: OwnedMutexGuard<Writer>,
    batch: Vec<Frame>,
    stats: &RelayStats,
) -> Result<usize, WriteError> {
    if writer.failed {
        return Err(WriteError::AfterFailure);
    }
    if let Err(e) = insert(&mut writer.conn, &batch) {
        writer.failed = true;
        return Err(WriteError::Sqlite(e));
    }
    stats.count_stored(batch.len() as u64);
    record_stored(&batch);
    Ok(batch.len())
}

/// Inserts a batch in one transaction.
fn insert(conn: &mut Connection, batch: &[Frame]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO frames (client, seq, len, payload) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for frame in batch {
            let len = frame.payload.len() as i64;
            let seq = frame.seq() as i64;
            insert.execute((frame.client().to_string(), seq, len, &frame.payload[..]))?;
        }
    }
    tx.commit()
}

/// Marks a committed batch's frames stored, and tells each client's ledger which of its
/// frames were: one range per client, as a client's frames come in order.
fn record_stored(batch: &[Frame]) {
    let mut ranges: HashMap<*const Ledger, (&Arc<Ledger>, u64, u64)> = HashMap::new();
    for frame in batch {
        frame.delivery.stored();
        if let Some(ledger) = frame.delivery.ledger() {
            ranges
                .entry(Arc::as_ptr(ledger))
                .and_modify(|range| range.2 = frame.seq())
                .or_insert((ledger, frame.seq(), frame.seq()));
        }
    }
    for (ledger, first, last) in ranges.into_values() {
        ledger.record_stored(first, last);
    }
}

/// Reads a database back the way the demo checks it: `SELECT count(*)`, and the checksum
/// of every stored payload.
pub fn read_back(path: impl AsRef<Path>) -> rusqlite::Result<(u64, Checksum)> {
    let conn = Connection::open(path)?;
    let count: i64 = conn.query_row("SELECT count(*) FROM frames", (), |row| row.get(0))?;
    let mut checksum = Checksum::default();
    let mut select = conn.prepare("SELECT payload FROM frames")?;
    let mut rows = select.query(())?;
    while let Some(row) = rows.next()? {
        checksum.add(row.get_ref(0)?.as_blob()?);
    }
    Ok((count as u64, checksum))
}
