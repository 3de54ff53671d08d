//! [`Cores`]: one current-thread tokio runtime per OS thread, to spread threads over.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A set of current-thread tokio runtimes, each driven by an OS thread of its own
/// (`tt-core-0`, `tt-core-1`, ...), to spread threads over with
/// [`ChildOptions::runtime`](crate::ChildOptions::runtime).
///
/// A thread placed on a core runs there with its children (unless their options place them
/// elsewhere); the threads of one core never move to another. Where a tree has many
/// threads that mostly wait (on timers, sockets, their queues), this costs less than tokio's
/// multi-thread runtime, whose workers share one timer driver and steal each other's tasks:
/// each core has its own timer wheel and run queue, and a thread woken on a core is run by
/// that core. Its price is balance: a core with busier threads is not helped by the others,
/// and a message to a thread on another core wakes that core's OS thread if it sleeps.
/// "Core" names the share of the machine, not a pinning: the OS threads are not bound to
/// CPUs.
///
/// Every runtime has tokio's I/O and time drivers enabled.
///
/// Stop the threads placed on the cores, and wait for their ends, before the `Cores` is
/// dropped. Dropping it tells every core to shut its runtime down and blocks until their
/// OS threads have ended (at once, unless a task is in a long poll). A task still on a
/// runtime then is cancelled: a thread cancelled so reports [`Exit::Aborted`] to its parent
/// (with the number of DOWN messages left in its queue), having run no exit hook, and the
/// drop says in one `tracing` warning how many tasks it cancelled.
///
/// [`Exit::Aborted`]: crate::Exit::Aborted
///
/// # Examples
///
/// Ten tickers spread over two cores:
///
/// ```
/// use std::time::Duration;
/// use taskthread::prelude::*;
/// use taskthread::Cores;
///
/// struct Ticker {
///     left: u32,
/// }
///
/// #[taskthread]
/// impl Ticker {
///     #[rescheduling]
///     async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
///         self.left -= 1;
///         Ok(if self.left == 0 {
///             Reschedule::Stop
///         } else {
///             Reschedule::After(Duration::from_millis(1))
///         })
///     }
/// }
///
/// struct Clock {
///     cores: Cores,
///     ended: u32,
/// }
///
/// #[taskthread(up = u32)]
/// impl Clock {
///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         for _ in 0..10 {
///             let options = ChildOptions::new().runtime(self.cores.next_handle());
///             ctx.spawn_with(Ticker { left: 3 }, options);
///         }
///         Ok(())
///     }
///
///     #[up]
///     async fn ended(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
///         assert!(matches!(exit.exit, Exit::Completed));
///         self.ended += 1;
///         if self.ended == 10 {
///             ctx.up(self.ended).await?;
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cores = Cores::new(2).expect("two OS threads");
/// let mut clock = taskthread::spawn(Clock { cores, ended: 0 });
/// assert_eq!(clock.recv().await, Some(10));
/// clock.stop();
/// assert!(matches!(clock.join().await, Exit::Stopped));
/// # }
/// ```
pub struct Cores {
    cores: Box<[Core]>,
    /// The core [`next_handle`](Self::next_handle) gives next, modulo their number.
    next: AtomicUsize,
}

/// One core: its runtime's handle, and the OS thread driving it.
struct Core {
    handle: Handle,
    /// Sent (or dropped) to end the OS thread's `block_on`, which then shuts the runtime
    /// down.
    stop: Option<oneshot::Sender<()>>,
    /// Returns how many tasks were still on the runtime when it was shut down.
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Cores {
    /// Starts `n` OS threads, each driving a current-thread runtime of its own.
    ///
    /// # Errors
    /// If `n` is 0 ([`io::ErrorKind::InvalidInput`]), or if an OS thread or a runtime
    /// cannot be made; the cores already started are shut down.
    ///
    /// ```
    /// let err = taskthread::Cores::new(0).err().expect("no cores");
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn new(n: usize) -> io::Result<Self> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a set of cores needs at least one core",
            ));
        }
        let mut cores = Vec::with_capacity(n);
        for i in 0..n {
            // On an error, the cores started so far are shut down as `cores` drops.
            cores.push(Core::start(i)?);
        }
        Ok(Self {
            cores: cores.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// One core per CPU the process may use
    /// ([`std::thread::available_parallelism`]), or one if that is unknown.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn per_cpu() -> io::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The number of cores.
    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// Always `false`: a set has at least one core.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The runtime of core `i`, or `None` if there are not that many.
    pub fn handle(&self, i: usize) -> Option<&Handle> {
        self.cores.get(i).map(|core| &core.handle)
    }

    /// The runtimes of every core, in order: for
    /// [`WorkerPool::spread_over`](crate::pool::WorkerPool::spread_over), say.
    pub fn handles(&self) -> impl ExactSizeIterator<Item = &Handle> {
        self.cores.iter().map(|core| &core.handle)
    }

    /// The runtime of the next core, round-robin: core 0, 1, ..., then 0 again. Shared
    /// between callers on any OS thread.
    pub fn next_handle(&self) -> Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.cores.len();
        self.cores[i].handle.clone()
    }
}

impl Core {
    /// Starts core `i`'s OS thread and runtime.
    fn start(i: usize) -> io::Result<Self> {
        let (made_tx, made_rx) = mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("tt-core-{i}"))
            .spawn(move || {
                let runtime = match Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = made_tx.send(Err(err));
                        return 0;
                    }
                };
                let _ = made_tx.send(Ok(runtime.handle().clone()));
                // Sent or dropped: either ends the core.
                let _ = runtime.block_on(stopped);
                // No task is in a poll now: every task that has ended is gone, and what is
                // left is cancelled by the shutdown.
                let alive = runtime.metrics().num_alive_tasks();
                runtime.shutdown_timeout(Duration::ZERO);
                alive
            })?;
        let handle = match made_rx.recv() {
            Ok(made) => made?,
            Err(_) => {
                let why = if thread.join().is_err() {
                    "it panicked"
                } else {
                    "it ended"
                };
                return Err(io::Error::other(format!(
                    "the OS thread of core {i} ended before its runtime was made: {why}"
                )));
            }
        };
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Tells the core's OS thread to shut its runtime down.
    fn signal(&mut self) {
        drop(self.stop.take());
    }

    /// Waits for the core's OS thread to end; how many tasks its shutdown cancelled. A
    /// core shut down from its own OS thread (a thread on it dropped the `Cores`) ends once
    /// the running task returns to its `block_on`, and is not waited for.
    fn join(&mut self) -> usize {
        match self.thread.take() {
            Some(thread) if thread.thread().id() != std::thread::current().id() => {
                thread.join().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        // Every core is told first, so that they shut down together.
        for core in self.cores.iter_mut() {
            core.signal();
        }
        let cancelled: usize = self.cores.iter_mut().map(Core::join).sum();
        if cancelled > 0 {
            tracing::warn!(
                tasks = cancelled,
                "`taskthread::Cores` dropped with tasks still on its runtimes: they are cancelled"
            );
        }
    }
}

impl Drop for Core {
    /// A core dropped on its own (a `Cores` whose making failed part way) is shut down too.
    fn drop(&mut self) {
        self.signal();
        self.join();
    }
}

impl fmt::Debug for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cores")
            .field("len", &self.cores.len())
            .finish_non_exhaustive()
    }
}
