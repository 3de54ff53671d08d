//! `Database: IN: Frame` — stores every frame in SQLite, in batched transactions written
//! off the async loop.

use std::fmt;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use taskthread::prelude::*;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::frame::Checksum;
use super::{Frame, RelayStats};

/// A batch is written once it holds this many frames...
const BATCH_FRAMES: usize = 512;
/// ... or this many payload bytes, or at the next periodic flush.
const BATCH_BYTES: usize = 16 << 20;

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
pub struct Written(rusqlite::Result<usize>);

/// Stores frames in the `frames` table of a SQLite database.
///
/// Frames collect in a batch. A full batch, or whatever the periodic flush finds, is
/// written in one transaction on tokio's blocking pool with `ctx.spawn_blocking`, while the
/// next batch fills. The connection goes with the batch: the async mutex around it hands
/// it over, so a second full batch waits for the first to be written (backpressure up to
/// the master) instead of piling up in memory. On stop, the queue is drained, the batch
/// in flight is awaited like any `spawn_blocking` job, and `exit` writes the last one.
#[derive(Debug)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
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
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            batch: Vec::with_capacity(BATCH_FRAMES),
            batch_bytes: 0,
            stats,
        })
    }

    /// Takes the batch, leaving an empty one.
    fn take_batch(&mut self) -> Vec<Frame> {
        self.batch_bytes = 0;
        mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FRAMES))
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
            let conn = Arc::clone(&self.conn).lock_owned().await;
            let batch = self.take_batch();
            ctx.spawn_blocking(move || Written(insert(conn, &batch)));
        }
    }

    /// Writes what has collected, unless a batch is being written already.
    #[rescheduling(every = "100ms")]
    async fn flush(&mut self, ctx: &mut Ctx<Self>) -> Reschedule {
        if !self.batch.is_empty()
            && let Ok(conn) = Arc::clone(&self.conn).try_lock_owned()
        {
            let batch = self.take_batch();
            ctx.spawn_blocking(move || Written(insert(conn, &batch)));
        }
        Reschedule::Again
    }

    #[stream]
    async fn written(&mut self, _ctx: &mut Ctx<Self>, Written(result): Written) -> Result<()> {
        self.stats.count_stored(result? as u64);
        Ok(())
    }

    /// The last batch. The loop has ended, so this one is awaited here rather than
    /// delivered to `written`.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let conn = Arc::clone(&self.conn).lock_owned().await;
        let batch = self.take_batch();
        let stored = tokio::task::spawn_blocking(move || insert(conn, &batch)).await??;
        self.stats.count_stored(stored as u64);
        Ok(())
    }
}

/// Inserts a batch in one transaction; returns how many rows were committed.
fn insert(mut conn: OwnedMutexGuard<Connection>, batch: &[Frame]) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO frames (client, seq, len, payload) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for frame in batch {
            let len = frame.payload.len() as i64;
            let seq = frame.seq as i64;
            insert.execute((frame.client.to_string(), seq, len, &frame.payload[..]))?;
        }
    }
    tx.commit()?;
    Ok(batch.len())
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
