//! [`PoolError`]: a resize command a worker pool refused.

use std::fmt;

use crate::exit::Count;

/// A resize command a worker pool refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// Starting would run more workers than the pool's maximum.
    TooMany {
        /// The pool's path.
        pool: String,
        /// The number of workers the command asked for in all (at most `usize::MAX`).
        requested: usize,
        /// The number running.
        running: usize,
        /// The pool's maximum.
        max: usize,
    },
    /// Fewer workers run than the command asked to stop.
    TooFew {
        /// The pool's path.
        pool: String,
        /// The number to stop.
        requested: usize,
        /// The number running.
        running: usize,
    },
    /// The pool has ended.
    Ended {
        /// The pool's path, when known.
        pool: Option<String>,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany {
                pool,
                requested,
                running,
                max,
            } => write!(
                f,
                "pool `{pool}` may run at most {}: cannot run {requested} ({running} running)",
                Count(*max, "worker")
            ),
            Self::TooFew {
                pool,
                requested,
                running,
            } => write!(
                f,
                "pool `{pool}` runs {}: cannot stop {requested}",
                Count(*running, "worker")
            ),
            Self::Ended { pool: Some(pool) } => write!(f, "pool `{pool}` has ended"),
            Self::Ended { pool: None } => f.write_str("the pool has ended"),
        }
    }
}

impl std::error::Error for PoolError {}
