//! Streams and background work a thread attaches through its [`Ctx`]: [`Ctx::attach`],
//! [`Ctx::spawn_task`] and [`Ctx::spawn_blocking`] deliver to its `#[stream]` handlers
//! without blocking its loop.

use std::future::{Future, poll_fn};
use std::pin::pin;

use futures_core::Stream;
use tracing::Instrument;

use crate::ctx::Ctx;
use crate::family::Drained;
use crate::port::Inbound;
use crate::queue::{InboxSender, Refused};
use crate::thread::{HandlesStream, Thread};

impl<T: Thread> Ctx<T> {
    /// Forwards every item of `stream` to this thread's `#[stream]` handler for its type.
    ///
    /// The stream is polled on its own task, so waiting for it never blocks the loop; items
    /// wait in the inbound queue (backpressure). When the thread starts stopping, attached
    /// streams are dropped: they are inputs, like the DOWN queue. Every item the stream has
    /// produced is still handled: an item is never held back waiting for room (with no
    /// room, it is queued anyway and the stream is read again only once there is room), so
    /// none is lost when the stream is dropped. (A [`JobPool`](crate::jobs::JobPool) whose
    /// results must all be handled at stop is made with
    /// [`JobPool::new_in`](crate::jobs::JobPool::new_in) instead.)
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # use std::pin::Pin;
    /// # use std::task::{Context, Poll};
    /// # /// Any iterator as a `Stream` (in real code: tokio-stream, a socket, a channel).
    /// # struct IterStream<I>(I);
    /// # impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    /// #     type Item = I::Item;
    /// #     fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
    /// #         Poll::Ready(self.get_mut().0.next())
    /// #     }
    /// # }
    ///
    /// struct Lines;
    ///
    /// #[taskthread(up = String)]
    /// impl Lines {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.attach(IterStream(["alpha", "beta"].into_iter().map(String::from)));
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn line(&mut self, ctx: &mut Ctx<Self>, line: String) -> Result<()> {
    ///         ctx.up(line.to_uppercase()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut lines = taskthread::spawn(Lines);
    /// assert_eq!(lines.recv().await.unwrap(), "ALPHA");
    /// assert_eq!(lines.recv().await.unwrap(), "BETA");
    /// # }
    /// ```
    pub fn attach<S>(&mut self, stream: S)
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: HandlesStream<S::Item>,
    {
        if self.stop_begun() {
            tracing::warn!("attach called while stopping: the stream is dropped unread");
            return;
        }
        let family = self.family();
        let forward = forward_stream::<T, S>(family.sender(), stream);
        family.spawn_stream(forward.in_current_span());
    }

    /// Like [`attach`](Self::attach), but the input is drained rather than dropped when the
    /// thread stops: `source` is told to end its stream, and the thread handles every item
    /// until the stream ends, before `exit`. The seam for extensions whose work belongs to
    /// the thread, such as a [`JobPool`](crate::jobs::JobPool) made with
    /// [`JobPool::new_in`](crate::jobs::JobPool::new_in).
    pub(crate) fn attach_drained<S>(&mut self, stream: S, source: Box<dyn Drained>)
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: HandlesStream<S::Item>,
    {
        let stopping = self.stop_begun();
        let family = self.family();
        let forward = forward_stream::<T, S>(family.sender(), stream);
        family.spawn_drained(forward.in_current_span(), source, stopping);
    }

    /// Runs `future` on its own task and delivers its output to this thread's `#[stream]`
    /// handler for its type.
    ///
    /// The task belongs to the thread: a stopping thread waits for it (and handles its
    /// result) before running `exit`. A panic in it fails the thread. One started by `exit`
    /// itself is waited for after the hook, within the stop deadline, but its result is
    /// dropped (and counted in [`ChildExit::dropped`](crate::ChildExit::dropped)): no
    /// handler runs after the hook.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    ///
    /// /// The result of a slow fetch.
    /// struct Fetched(u32);
    /// struct Fetcher;
    ///
    /// #[taskthread(up = u32)]
    /// impl Fetcher {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn_task(async {
    ///             tokio::time::sleep(Duration::from_secs(5)).await; // the loop goes on meanwhile
    ///             Fetched(42)
    ///         });
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn fetched(&mut self, ctx: &mut Ctx<Self>, Fetched(n): Fetched) -> Result<()> {
    ///         ctx.up(n).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut fetcher = taskthread::spawn(Fetcher);
    /// assert_eq!(fetcher.recv().await, Some(42));
    /// # }
    /// ```
    pub fn spawn_task<F>(&mut self, future: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        T: HandlesStream<F::Output>,
    {
        let family = self.family();
        let tx = family.sender();
        let task = async move {
            let output = future.await;
            tx.send_unmetered(Inbound::Unmetered(T::__wrap_item(output)));
        };
        family.spawn_job(task.in_current_span());
    }

    /// Runs blocking code on tokio's blocking pool and delivers its result to this thread's
    /// `#[stream]` handler for its type.
    ///
    /// At most [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT) jobs of this thread
    /// run at once (or the thread's [`ChildOptions::blocking_limit`](crate::ChildOptions::blocking_limit)); the others wait their
    /// turn, in order, without holding up the loop, and start as earlier ones finish.
    ///
    /// Blocking code cannot be interrupted: a stopping thread waits for it, and for the jobs
    /// still waiting their turn. An abort cancels the jobs that have not started and leaves
    /// the running ones to finish on their own. As with [`spawn_task`](Self::spawn_task),
    /// the result of a job started by `exit` is dropped and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// /// The result of a blocking computation.
    /// struct Checksum(u32);
    /// struct Hasher;
    ///
    /// #[taskthread(up = u32)]
    /// impl Hasher {
    ///     #[down]
    ///     async fn hash(&mut self, ctx: &mut Ctx<Self>, data: Vec<u8>) {
    ///         ctx.spawn_blocking(move || Checksum(data.iter().map(|&b| u32::from(b)).sum()));
    ///     }
    ///
    ///     #[stream]
    ///     async fn checksum(&mut self, ctx: &mut Ctx<Self>, Checksum(sum): Checksum) -> Result<()> {
    ///         ctx.up(sum).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut hasher = taskthread::spawn(Hasher);
    /// hasher.send(vec![1u8, 2, 3]).await.unwrap();
    /// assert_eq!(hasher.recv().await, Some(6));
    /// # }
    /// ```
    pub fn spawn_blocking<F, R>(&mut self, f: F)
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
        T: HandlesStream<R>,
    {
        let limit = self.node().blocking_limit;
        let family = self.family();
        let tx = family.sender();
        let span = tracing::Span::current();
        let job = move || {
            let _entered = span.enter();
            let output = f();
            tx.send_unmetered(Inbound::Unmetered(T::__wrap_item(output)));
        };
        family.spawn_blocking(limit, job);
    }
}

/// The task that forwards a stream's items into a thread's inbound queue, each to the
/// `#[stream]` handler of its type.
async fn forward_stream<T, S>(tx: InboxSender<Inbound<T::Event>>, stream: S)
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    T: Thread + HandlesStream<S::Item>,
{
    let mut stream = pin!(stream);
    // An item is never held while waiting, so stopping (which cancels this task) never
    // loses one that was already read, and an idle stream holds no room in the queue. With
    // no room when an item comes, it is queued anyway (one over the capacity at most, per
    // stream) and the stream is read again only once there is room.
    while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match tx.meter().try_take() {
            Ok(()) => tx.send_permitted(Inbound::Event(T::__wrap_item(item))),
            Err(Refused::Closed) => break,
            Err(Refused::Full) => {
                tx.send_unmetered(Inbound::Unmetered(T::__wrap_item(item)));
                if tx.meter().wait_for_room().await.is_err() {
                    break;
                }
            }
        }
    }
}
