//! Driving a tree from synchronous code: [`background`] starts it on its own OS thread with
//! its own tokio runtime and returns a [`BackgroundHandle`] usable from any thread.

mod async_api;
mod ending;
mod error;
mod handle;
mod park;
mod shared;

pub use self::error::{BlockingError, JoinError, RecvError};
pub use self::handle::BackgroundHandle;

use self::shared::{Flow, Shared, forward};

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::child::ChildOptions;
use crate::exit::Exit;
use crate::lock::lock;
use crate::root::spawn_with;
use crate::thread::Thread;

thread_local! {
    /// The background tree whose runtime runs on this OS thread (0: none), so that a join
    /// from inside the tree is refused rather than waiting for itself.
    pub(super) static TREE_OF_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Starts `thread` as the root of a tree on a new OS thread with its own current-thread
/// tokio runtime, and returns a handle to drive it from synchronous code.
///
/// The handle is `Send + Sync + Clone`: give a clone to every OS thread that talks to the
/// tree. Dropping the last clone stops the tree gracefully and joins its OS thread. Use
/// [`Background`] for a multi-thread runtime, a thread name or a stop deadline.
///
/// ```
/// use taskthread::prelude::*;
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// #[taskthread]
/// impl Counter {
///     #[down]
///     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
///         self.total += n;
///         Ok(())
///     }
///     #[down]
///     async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
///         Ok(self.total)
///     }
/// }
/// struct Total;
///
/// // A plain `fn main`: no runtime, no `async`.
/// fn main() {
///     let counter = taskthread::sync::background(Counter::default());
///     let workers: Vec<_> = (0..4)
///         .map(|_| {
///             let counter = counter.clone();
///             std::thread::spawn(move || counter.send(10u64).unwrap())
///         })
///         .collect();
///     for worker in workers {
///         worker.join().unwrap();
///     }
///     assert_eq!(counter.ask(Total).unwrap(), 40);
///     assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
/// }
/// ```
///
/// # Panics
/// If the OS cannot start a thread or a runtime (see [`Background::spawn`] for the fallible
/// form).
pub fn background<T: Thread>(thread: T) -> BackgroundHandle<T> {
    match Background::new().spawn(thread) {
        Ok(handle) => handle,
        Err(e) => panic!("cannot start a background tree: {e}"),
    }
}

/// Options for a tree run on its own OS thread: the runtime, the thread's name, the
/// root's options and stop deadline, and whether Ctrl-C / SIGTERM stop it. [`spawn`](Self::spawn) starts it.
///
/// ```
/// use std::time::Duration;
/// use taskthread::ChildOptions;
/// use taskthread::sync::Background;
/// # use taskthread::prelude::*;
/// # #[derive(Default)] struct Mailer;
/// # #[taskthread] impl Mailer {}
///
/// let mailer = Background::new()
///     .worker_threads(2)
///     .thread_name("mailer")
///     .options(ChildOptions::new().capacity(128).blocking_limit(4))
///     .stop_deadline(Duration::from_secs(5))
///     .spawn(Mailer)
///     .expect("a thread and a runtime");
/// # mailer.stop_and_join().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Background {
    options: ChildOptions,
    worker_threads: Option<usize>,
    thread_name: Option<String>,
    stop_on_signals: bool,
}

impl Background {
    /// The defaults: a current-thread runtime on one OS thread named `taskthread`, the
    /// root's default options, the [default stop deadline](crate::DEFAULT_STOP_DEADLINE),
    /// and signals left to the process (see [`stop_on_signals`](Self::stop_on_signals)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the tree on a multi-thread runtime with `n` worker threads (by default, a
    /// current-thread runtime on the tree's own OS thread).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn worker_threads(mut self, n: usize) -> Self {
        assert!(n > 0, "a runtime needs at least one worker thread");
        self.worker_threads = Some(n);
        self
    }

    /// The name of the tree's OS thread and of its runtime's threads (by default
    /// `taskthread`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = Some(name.into());
        self
    }

    /// The root's options (name, queue capacity, blocking limit, stop deadline). Replaces
    /// any given before, including a [`stop_deadline`](Self::stop_deadline).
    pub fn options(mut self, options: ChildOptions) -> Self {
        self.options = options;
        self
    }

    /// How long a stop of the tree may take — on [`BackgroundHandle::stop_and_join`], on
    /// dropping the last handle, or on [`BackgroundHandle::stop`] — before what remains
    /// of it is aborted (see [`ChildOptions::stop_deadline`]).
    pub fn stop_deadline(mut self, deadline: Duration) -> Self {
        self.options = self.options.stop_deadline(deadline);
        self
    }

    /// Lets Ctrl-C and SIGTERM stop the tree gracefully, as [`BackgroundHandle::stop`] does
    /// (by default a signal ends the process at once, and no `exit` hook runs; once a tree
    /// has listened, one that comes after it ended does nothing). A second
    /// signal during the graceful stop aborts the tree. The synchronous code waiting on the
    /// tree sees it end: [`join`](BackgroundHandle::join) returns, [`recv`](BackgroundHandle::recv)
    /// gives the last UP messages, then an error. See [`Handle::stop_on_signals`](crate::Handle::stop_on_signals).
    ///
    /// ```no_run
    /// use taskthread::sync::Background;
    /// # use taskthread::prelude::*;
    /// # #[derive(Default)] struct Mailer;
    /// # #[taskthread] impl Mailer {}
    ///
    /// let mailer = Background::new()
    ///     .stop_on_signals()
    ///     .spawn(Mailer)
    ///     .expect("a thread and a runtime");
    /// // ... until Ctrl-C: the tree stops gracefully, and `join` returns.
    /// let exit = mailer.join().expect("joined");
    /// println!("mailer {exit}");
    /// ```
    pub fn stop_on_signals(mut self) -> Self {
        self.stop_on_signals = true;
        self
    }

    /// Starts `thread` as the root of a tree on a new OS thread and returns its handle.
    ///
    /// # Errors
    /// If the OS cannot start the thread or the runtime.
    pub fn spawn<T: Thread>(self, thread: T) -> std::io::Result<BackgroundHandle<T>> {
        static NEXT_TREE: AtomicU64 = AtomicU64::new(1);
        let tree = NEXT_TREE.fetch_add(1, Ordering::Relaxed);
        let name = self.thread_name.unwrap_or_else(|| "taskthread".to_owned());
        let mut builder = match self.worker_threads {
            None => tokio::runtime::Builder::new_current_thread(),
            Some(n) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(n);
                builder
            }
        };
        builder
            .enable_all()
            .thread_name(name.clone())
            .on_thread_start(move || TREE_OF_THREAD.set(tree));
        let runtime = builder.build()?;
        let root = {
            let _entered = runtime.enter();
            let root = spawn_with(thread, self.options);
            if self.stop_on_signals {
                root.stop_on_signals()
            } else {
                root
            }
        };
        let runtime = RuntimeGuard(Some(runtime));
        let child = root.child_ref();
        let (up_tx, up_rx) = mpsc::channel(child.node.capacity());
        let (control_tx, control_rx) = watch::channel(Flow::Run);
        let (finished_tx, finished_rx) = watch::channel(false);
        let exit = Arc::new(Mutex::new(None));
        let exit_slot = Arc::clone(&exit);

        let os_thread = std::thread::Builder::new().name(name).spawn(move || {
            TREE_OF_THREAD.set(tree);
            let mut runtime = runtime;
            let mut aborted = false;
            if let Some(rt) = &runtime.0 {
                let ended = rt.block_on(forward(root, up_tx, control_rx));
                aborted = matches!(ended, Exit::Aborted { .. });
                *lock(&exit_slot) = Some(ended);
            }
            // After a graceful end nothing of the tree is left on the runtime: wait (briefly)
            // for its worker and idle blocking threads to go too. After an abort,
            // `spawn_blocking` jobs that were running are left to finish on their own (they
            // cannot be cancelled), as under any runtime: do not wait for them.
            runtime.shut_down(if aborted {
                Duration::ZERO
            } else {
                SHUTDOWN_WAIT
            });
            finished_tx.send_replace(true);
        })?;

        Ok(BackgroundHandle {
            shared: Arc::new(Shared {
                child,
                up: tokio::sync::Mutex::new(up_rx),
                control: control_tx,
                finished: finished_rx,
                exit,
                os_thread: Mutex::new(Some(os_thread)),
                tree,
            }),
        })
    }
}

/// Shuts the runtime down without waiting when dropped, so that dropping it (after a failed
/// start, or from an async context) never blocks or panics.
struct RuntimeGuard(Option<Runtime>);

/// How long the tree's thread waits for its runtime's other threads after a graceful end:
/// they are idle and go at once, unless code outside the tree still runs a blocking task.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

impl RuntimeGuard {
    fn shut_down(&mut self, wait: Duration) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(wait);
        }
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        self.shut_down(Duration::ZERO);
    }
}
