//! What a job is and how it ended: [`JobId`], [`Group`], [`JobOutcome`], [`JobResult`], and
//! what a pool refuses, [`JobPoolError`].

use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// The id of one job of a [`JobPool`](super::JobPool), unique in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(super) u64);

impl JobId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// How a job ended.
#[derive(Debug)]
pub enum JobOutcome<T, E = Error> {
    /// It returned `Ok` with this output.
    Ok(T),
    /// It returned this error.
    Err(E),
    /// It panicked; the panic message.
    Panicked(String),
    /// It was cancelled before it finished, or before it started: by
    /// [`JobPool::cancel`](super::JobPool::cancel) and friends, or by the stop of the thread
    /// that owns the pool (see [`JobPool::new_in`](super::JobPool::new_in)).
    Cancelled,
}

impl<T, E> JobOutcome<T, E> {
    /// Whether the job returned `Ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

impl<T, E: fmt::Display> JobOutcome<T, E> {
    /// The output, or an [`Error`] saying why there is none.
    pub fn into_result(self) -> Result<T, Error>
    where
        E: Into<Error>,
    {
        match self {
            Self::Ok(t) => Ok(t),
            Self::Err(e) => Err(e.into()),
            Self::Panicked(m) => Err(Error::msg(format!("the job panicked: {m}"))),
            Self::Cancelled => Err(Error::msg("the job was cancelled")),
        }
    }
}

/// The result of one job: which job, of which group, and how it ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct JobResult<T, E = Error> {
    /// The job's id.
    pub id: JobId,
    /// The name of its group.
    pub group: Arc<str>,
    /// How it ended.
    pub outcome: JobOutcome<T, E>,
}

/// How many jobs a [`JobPool`](super::JobPool) has taken, and how those that ended ended,
/// from [`JobPool::counts`](super::JobPool::counts).
///
/// Every job taken ends exactly once: once the pool is idle,
/// `submitted == succeeded + failed + panicked + cancelled` (and [`ended`](Self::ended)
/// equals `submitted`), whether its jobs ran to the end, were cancelled, or were stopped
/// with the thread that owns the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCounts {
    /// Jobs taken: added by `submit` or `apply`, or pulled by a `map` (a `map` source that
    /// panicked counts as one job, panicked).
    pub submitted: u64,
    /// Jobs that returned `Ok`.
    pub succeeded: u64,
    /// Jobs that returned an error.
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs cancelled, before they started or while they ran.
    pub cancelled: u64,
}

impl JobCounts {
    /// The jobs that have ended, however they ended.
    pub fn ended(&self) -> u64 {
        self.succeeded + self.failed + self.panicked + self.cancelled
    }

    pub(super) fn count<T, E>(&mut self, outcome: &JobOutcome<T, E>) {
        match outcome {
            JobOutcome::Ok(_) => self.succeeded += 1,
            JobOutcome::Err(_) => self.failed += 1,
            JobOutcome::Panicked(_) => self.panicked += 1,
            JobOutcome::Cancelled => self.cancelled += 1,
        }
    }
}

/// A group of jobs added by one [`apply`](super::JobPool::apply) or [`map`](super::JobPool::map).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Group {
    /// Its name: the one given, or a generated one (`apply-1`, `map-2`, ...).
    pub name: Arc<str>,
    /// The ids of its jobs, for `apply` (a `map` makes its jobs as it goes: none here).
    pub jobs: Vec<JobId>,
}

/// What a [`JobPool`](super::JobPool) refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobPoolError {
    /// A group of this name is still running or waiting.
    DuplicateGroup(String),
    /// The pool is paused: it takes no new jobs until it is resumed.
    Paused,
    /// The pool is closed: it takes no new jobs.
    Closed,
    /// No group of this name is running or waiting.
    UnknownGroup(String),
    /// No job of this id is running or waiting.
    UnknownJob(JobId),
    /// A `map` with a limit of 0 would never run a job.
    ZeroLimit,
}

impl fmt::Display for JobPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateGroup(name) => {
                write!(f, "a group named `{name}` is already in the pool")
            }
            Self::Paused => f.write_str("the pool is paused: it takes no new jobs until resumed"),
            Self::Closed => f.write_str("the pool is closed: it takes no new jobs"),
            Self::UnknownGroup(name) => write!(f, "no group named `{name}` is in the pool"),
            Self::UnknownJob(id) => write!(f, "{id} is not running or waiting in the pool"),
            Self::ZeroLimit => f.write_str("a map needs a limit of at least 1"),
        }
    }
}

impl std::error::Error for JobPoolError {}
