//! Resizing a pool from outside: [`PoolHandle`], its [`PoolCommand`]s and the
//! [`PoolStatus`] it answers with, and the control they go through.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};

use super::{PoolError, WorkerPool};
use crate::child::ChildRef;
use crate::lock::lock;
use crate::node::{Node, Queue};
use crate::thread::Thread;

/// A resize command for a worker pool (see [`PoolHandle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolCommand {
    /// Start this many more workers.
    Start(usize),
    /// Stop this many workers, newest first, gracefully.
    Stop(usize),
    /// Start or stop workers until this many run.
    Resize(usize),
}

type Pending = (PoolCommand, oneshot::Sender<Result<PoolStatus, PoolError>>);

/// The type-erased side of a pool that handles and the control endpoint reach through the
/// pool's node: queued commands, and the counts the pool publishes.
pub(crate) struct PoolControl {
    commands: Mutex<VecDeque<Pending>>,
    /// Wakes the pool's loop for a command; a new one for each life of a supervised pool.
    wake: Mutex<Option<mpsc::Sender<()>>>,
    pub(super) notify: Notify,
    pub(super) running: AtomicUsize,
    pub(super) max: AtomicUsize,
    closed: AtomicBool,
}

impl Default for PoolControl {
    fn default() -> Self {
        Self {
            commands: Mutex::new(VecDeque::new()),
            wake: Mutex::new(None),
            notify: Notify::new(),
            running: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }
}

impl PoolControl {
    /// The control of the pool running as `node`, made by whichever asks first: the pool
    /// or a handle.
    pub(super) fn of<Q: ?Sized + Queue>(node: &Node<Q>) -> Arc<Self> {
        node.attachment_or_init(Self::default)
            .unwrap_or_else(|| unreachable!("a pool's node keeps only its control"))
    }

    /// A life of the pool begins: commands are taken again, and this wakes it for them.
    pub(super) fn open(&self) -> mpsc::Receiver<()> {
        let (wake, woken) = mpsc::channel(1);
        let _commands = lock(&self.commands);
        *lock(&self.wake) = Some(wake);
        self.closed.store(false, Ordering::Release);
        woken
    }

    pub(super) fn take(&self) -> Option<Pending> {
        lock(&self.commands).pop_front()
    }

    pub(super) fn status(&self) -> PoolStatus {
        PoolStatus {
            running: self.running.load(Ordering::Acquire),
            max: self.max.load(Ordering::Acquire),
        }
    }

    /// The pool has ended: commands queued and to come are answered with an error.
    pub(super) fn close(&self) {
        let mut commands = lock(&self.commands);
        self.closed.store(true, Ordering::Release);
        self.running.store(0, Ordering::Release);
        *lock(&self.wake) = None;
        for (_, reply) in commands.drain(..) {
            let _ = reply.send(Err(PoolError::Ended { pool: None }));
        }
    }

    pub(super) fn submit(
        &self,
        command: PoolCommand,
    ) -> oneshot::Receiver<Result<PoolStatus, PoolError>> {
        let (reply, answer) = oneshot::channel();
        {
            let mut commands = lock(&self.commands);
            if self.closed.load(Ordering::Acquire) {
                let _ = reply.send(Err(PoolError::Ended { pool: None }));
                return answer;
            }
            commands.push_back((command, reply));
        }
        // A full wake queue already has a wake-up pending; none before the pool starts,
        // which applies what is queued as it starts.
        if let Some(wake) = &*lock(&self.wake) {
            let _ = wake.try_send(());
        }
        self.notify.notify_one();
        answer
    }
}

/// What a worker pool looks like now: how many workers run, and the most it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Workers taking jobs (those being stopped are not counted).
    pub running: usize,
    /// The most workers it may run.
    pub max: usize,
}

/// The resize handle of a [`WorkerPool`]: start, stop and count its workers while it runs.
///
/// Get it with [`ChildRef::pool`] (or [`Handle::child_ref`](crate::Handle::child_ref) then
/// `pool()` for a pool at the root). Cheap to clone; it does not keep the pool alive. Each
/// command is applied by the pool's loop, between jobs or while it waits for a free worker,
/// and answers with the pool's new [`PoolStatus`].
#[derive(Clone)]
pub struct PoolHandle {
    control: Arc<PoolControl>,
    path: Arc<str>,
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("pool", &self.path)
            .finish_non_exhaustive()
    }
}

impl<W: Thread> ChildRef<WorkerPool<W>> {
    /// The pool's resize handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).max(8));
    /// let workers = pool.child_ref().pool();
    /// assert_eq!(workers.resize(4).await.unwrap().running, 4);
    /// # }
    /// ```
    pub fn pool(&self) -> PoolHandle {
        PoolHandle {
            control: PoolControl::of(&self.node),
            path: Arc::clone(self.node.path()),
        }
    }
}

impl PoolHandle {
    /// The handle of the pool running as `node`, if it is one.
    #[cfg(feature = "watch")]
    pub(crate) fn of(node: &Node) -> Option<Self> {
        Some(Self {
            control: node.attachment::<PoolControl>()?,
            path: Arc::clone(node.path()),
        })
    }

    /// The pool's path in the tree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let options = ChildOptions::new().name("doublers");
    /// let pool = taskthread::spawn_with(WorkerPool::new(|| Doubler), options);
    /// assert_eq!(pool.child_ref().pool().path(), "doublers");
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Starts `n` more workers.
    ///
    /// Fails if that would make more than the pool's maximum, or if the pool has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).size(1).max(4));
    /// let workers = pool.child_ref().pool();
    /// assert_eq!(workers.start(2).await.unwrap().running, 3);
    /// assert!(workers.start(2).await.is_err()); // 5 would be over the maximum
    /// # }
    /// ```
    pub async fn start(&self, n: usize) -> Result<PoolStatus, PoolError> {
        self.command(PoolCommand::Start(n)).await
    }

    /// Stops the `n` newest workers, gracefully: each finishes the jobs it holds, and the
    /// jobs waiting in the pool go to the others.
    ///
    /// Fails if fewer than `n` workers run, or if the pool has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::{PoolError, WorkerPool};
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).size(3));
    /// let workers = pool.child_ref().pool();
    /// assert_eq!(workers.stop(2).await.unwrap().running, 1);
    /// assert!(matches!(workers.stop(2).await, Err(PoolError::TooFew { .. })));
    /// # }
    /// ```
    pub async fn stop(&self, n: usize) -> Result<PoolStatus, PoolError> {
        self.command(PoolCommand::Stop(n)).await
    }

    /// Starts or stops workers (newest first) until `n` run.
    ///
    /// Fails if `n` is more than the pool's maximum, or if the pool has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).max(8));
    /// let workers = pool.child_ref().pool();
    /// assert_eq!(workers.resize(6).await.unwrap().running, 6);
    /// assert_eq!(workers.resize(2).await.unwrap().running, 2);
    /// # }
    /// ```
    pub async fn resize(&self, n: usize) -> Result<PoolStatus, PoolError> {
        self.command(PoolCommand::Resize(n)).await
    }

    /// Sends a command and waits for the pool to apply it.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::{PoolCommand, WorkerPool};
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler));
    /// let workers = pool.child_ref().pool();
    /// // A command from elsewhere (a config file, an admin request) applied as it is.
    /// let command = PoolCommand::Resize(3);
    /// assert_eq!(workers.command(command).await.unwrap().running, 3);
    /// # }
    /// ```
    pub async fn command(&self, command: PoolCommand) -> Result<PoolStatus, PoolError> {
        let ended = || PoolError::Ended {
            pool: Some(self.path.to_string()),
        };
        match self.control.submit(command).await {
            Ok(Err(PoolError::Ended { pool: None })) | Err(_) => Err(ended()),
            Ok(answer) => answer,
        }
    }

    /// The number of workers taking jobs now (0 once the pool has ended).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).size(2));
    /// let workers = pool.child_ref().pool();
    /// pool.ask(Double(1)).await.unwrap(); // answered: the pool has started
    /// assert_eq!(workers.running(), 2);
    /// pool.stop();
    /// pool.join().await;
    /// assert_eq!(workers.running(), 0);
    /// # }
    /// ```
    pub fn running(&self) -> usize {
        self.control.running.load(Ordering::Acquire)
    }

    /// The counts as last published by the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).max(8));
    /// let workers = pool.child_ref().pool();
    /// workers.resize(5).await.unwrap();
    /// let status = workers.status();
    /// assert_eq!((status.running, status.max), (5, 8));
    /// # }
    /// ```
    pub fn status(&self) -> PoolStatus {
        self.control.status()
    }

    /// Whether the pool has ended (a supervised pool, between two lives, too).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler));
    /// let workers = pool.child_ref().pool();
    /// assert!(!workers.is_ended());
    /// pool.stop();
    /// pool.join().await;
    /// assert!(workers.is_ended());
    /// assert!(workers.start(1).await.is_err()); // an ended pool takes no command
    /// # }
    /// ```
    pub fn is_ended(&self) -> bool {
        self.control.closed.load(Ordering::Acquire)
    }
}
