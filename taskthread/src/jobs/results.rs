//! [`JobResults`]: the stream of a pool's results.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, watch};

use super::JobResult;
use super::state::Live;
use crate::error::Error;

/// The results of a [`JobPool`](super::JobPool)'s jobs, in the order they end: a [`Stream`] of
/// [`JobResult`]s that ends once the pool is closed and idle (or dropped).
pub struct JobResults<T, E = Error> {
    pub(super) rx: mpsc::UnboundedReceiver<JobResult<T, E>>,
    pub(super) live: watch::Receiver<Live>,
}

impl<T, E> fmt::Debug for JobResults<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobResults")
            .field("ready", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl<T, E> JobResults<T, E> {
    /// The next result; `None` once the pool is closed (or dropped) and every result has
    /// been received.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(1);
    /// pool.apply(|| async { Ok(1) }, 2, Some("ones")).unwrap();
    /// pool.close();
    /// let mut received = 0;
    /// while let Some(result) = results.next().await {
    ///     assert_eq!(&*result.group, "ones");
    ///     received += 1;
    /// }
    /// assert_eq!(received, 2); // then `None`: closed, and every result received
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<JobResult<T, E>> {
        self.rx.recv().await
    }

    /// Waits until the pool is idle (see [`JobPool::join`](super::JobPool::join)), then returns every result not
    /// received yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(2);
    /// pool.apply(|| async { Ok(1) }, 3, None).unwrap();
    /// let done = results.flush().await; // the pool stays open
    /// assert_eq!(done.len(), 3);
    /// assert!(done.iter().all(|r| r.outcome.is_ok()));
    /// # }
    /// ```
    pub async fn flush(&mut self) -> Vec<JobResult<T, E>> {
        let _ = self.live.wait_for(Live::is_idle).await;
        let mut results = Vec::with_capacity(self.rx.len());
        while let Ok(result) = self.rx.try_recv() {
            results.push(result);
        }
        results
    }
}

impl<T, E> Stream for JobResults<T, E> {
    type Item = JobResult<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
