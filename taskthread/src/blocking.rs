//! The per-thread limit on [`Ctx::spawn_blocking`](crate::Ctx::spawn_blocking) jobs that run
//! at once.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How many [`spawn_blocking`](crate::Ctx::spawn_blocking) jobs of one thread run at once
/// unless [`ChildOptions::blocking_limit`](crate::ChildOptions::blocking_limit) says
/// otherwise. Jobs past the limit wait their turn, in order.
///
/// Small on purpose: tokio's blocking pool (512 OS threads by default) is shared by the
/// whole runtime, and a thread that starts a blocking job per message would otherwise take
/// all of it under load.
pub const DEFAULT_BLOCKING_LIMIT: usize = 8;

/// The slots of one thread's blocking jobs.
pub(crate) struct BlockingLimit {
    slots: Arc<Semaphore>,
}

impl BlockingLimit {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
        }
    }

    /// Starts `job` on the blocking pool now if a slot is free; otherwise queues it on a
    /// small task that waits for a slot, so the thread's loop never waits. A queued job
    /// takes its place in the semaphore's line here, as it is spawned, not when its task
    /// first runs: the semaphore is fair, so queued jobs start in the order they were
    /// spawned, and a new job cannot overtake them (no slot is free while any waits), even
    /// when a slot frees up before the tasks of the jobs queued earlier have run.
    ///
    /// Either way the job is one entry of `jobs`: a stopping thread waits for it, and an
    /// abort cancels it if it has not started (a started one cannot be cancelled and is left
    /// to finish, as before). A panic in the job reaches `jobs` with its payload, so the
    /// thread ends as `Panicked` with the job's message.
    ///
    /// Both run on `runtime`, the one the thread runs on (not on one a handler has
    /// entered), or without one on the current runtime; the task's own `spawn_blocking`
    /// runs where the task does.
    pub(crate) fn spawn(
        &self,
        jobs: &mut JoinSet<()>,
        runtime: Option<&tokio::runtime::Handle>,
        job: impl FnOnce() + Send + 'static,
    ) {
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            let job = move || {
                let _slot = slot;
                job();
            };
            match runtime {
                Some(runtime) => jobs.spawn_blocking_on(job, runtime),
                None => jobs.spawn_blocking(job),
            };
            return;
        }
        // Polled once now, with a waker that does nothing, to join the line; the task polls
        // it again with its own waker, and a slot handed over in between is found then.
        let mut slot = Box::pin(Arc::clone(&self.slots).acquire_owned());
        let ready = slot.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        let queued = async move {
            // The semaphore is never closed.
            let Ok(slot) = (match ready {
                Poll::Ready(acquired) => acquired,
                Poll::Pending => slot.await,
            }) else {
                return;
            };
            let ran = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                job();
            })
            .await;
            if let Err(e) = ran
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        };
        match runtime {
            Some(runtime) => jobs.spawn_on(queued, runtime),
            None => jobs.spawn(queued),
        };
    }
}
