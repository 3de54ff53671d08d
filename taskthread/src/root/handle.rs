//! [`Handle`]: the handle of a root thread.

use std::fmt;

use tokio::task::{AbortHandle, JoinHandle};

use crate::child::{AskFuture, ChildRef, SendFuture};
use crate::error::{Result, TrySendError};
use crate::exit::{ChildId, Exit};
use crate::node::TreeSnapshot;
use crate::port::Inbound;
use crate::queue::Inbox;
use crate::thread::{Accepts, Asks, Thread};

use super::signals::{Signals, stop_on};
use super::{abort_tree, exit_of, recv_up};

/// The handle of a root thread: its address, its UP messages and its exit.
///
/// Dropping the handle does not stop the tree (like a tokio `JoinHandle`); call
/// [`stop`](Self::stop) and [`join`](Self::join), or let Ctrl-C and SIGTERM stop it with
/// [`stop_on_signals`](Self::stop_on_signals).
pub struct Handle<T: Thread> {
    pub(super) child: ChildRef<T>,
    pub(super) up: Inbox<Inbound<T::Up>>,
    /// The root's task, or the task that watches for signals and ends with it.
    pub(super) join: JoinHandle<Exit>,
    /// The root's own task (`join` may be the watcher's).
    pub(super) task: AbortHandle,
}

impl<T: Thread> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("root", &self.child).finish()
    }
}

impl<T: Thread> Handle<T> {
    /// The root's address, to hand to other code that sends to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// let addr = echo.child_ref(); // cheap to clone, `Send`: give it to other tasks
    /// let asker = tokio::spawn(async move { addr.ask(Ping).await.unwrap() });
    /// assert_eq!(asker.await.unwrap(), "pong");
    /// # }
    /// ```
    pub fn child_ref(&self) -> ChildRef<T> {
        self.child.clone()
    }

    /// The root's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// assert_eq!(echo.id(), echo.child_ref().id());
    /// assert_eq!(echo.id(), echo.snapshot().id);
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.child.id()
    }

    /// Sends a message DOWN to the root, waiting while its queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Printer;
    ///
    /// #[taskthread(up = String)]
    /// impl Printer {
    ///     #[down]
    ///     async fn print(&mut self, ctx: &mut Ctx<Self>, text: String) -> Result<()> {
    ///         ctx.up(format!("printed {text}")).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut printer = taskthread::spawn(Printer);
    /// printer.send("hello".to_owned()).await.unwrap();
    /// assert_eq!(printer.recv().await.unwrap(), "printed hello");
    /// # }
    /// ```
    pub fn send<M>(&self, msg: M) -> SendFuture<'_, T, M>
    where
        T: Accepts<M>,
    {
        self.child.send(msg)
    }

    /// Sends a message DOWN to the root if its queue has room now.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::TrySendError;
    /// # struct Sink;
    /// # #[taskthread]
    /// # impl Sink {
    /// #     #[down]
    /// #     async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {}
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Sink` takes `u32`s.
    /// // A queue of one, and the root has not run yet.
    /// let sink = taskthread::spawn_with(Sink, ChildOptions::new().capacity(1));
    /// assert!(sink.try_send(1u32).is_ok());
    /// assert!(matches!(sink.try_send(2u32), Err(TrySendError::Full(2))));
    /// # }
    /// ```
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        self.child.try_send(msg)
    }

    /// Asks the root a question and waits for the answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Double(u64);
    /// struct Calculator;
    ///
    /// #[taskthread]
    /// impl Calculator {
    ///     #[down]
    ///     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    ///         Ok(n * 2)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let calc = taskthread::spawn(Calculator);
    /// assert_eq!(calc.ask(Double(21)).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn ask<Q, R>(&self, question: Q) -> AskFuture<'_, T, Q, R>
    where
        T: Asks<Q, Reply = R>,
    {
        self.child.ask(question)
    }

    /// Receives the next message the root sent UP; `None` once the root has ended and every
    /// message it sent has been received.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Countdown;
    ///
    /// #[taskthread(up = u32)]
    /// impl Countdown {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         for n in (1..=3).rev() {
    ///             ctx.up(n).await?;
    ///         }
    ///         ctx.stop();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut countdown = taskthread::spawn(Countdown);
    /// let mut heard = Vec::new();
    /// while let Some(n) = countdown.recv().await {
    ///     heard.push(n);
    /// }
    /// assert_eq!(heard, [3, 2, 1]); // then `None`: ended, and all received
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<T::Up> {
        recv_up(&mut self.up).await
    }

    /// Asks the root to stop gracefully (and with it the whole tree). Returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Saver;
    ///
    /// #[taskthread(up = &'static str)]
    /// impl Saver {
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up("saved").await?; // cleanup runs on a graceful stop
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut saver = taskthread::spawn(Saver);
    /// saver.stop();
    /// assert_eq!(saver.recv().await, Some("saved"));
    /// assert!(matches!(saver.join().await, Exit::Stopped));
    /// # }
    /// ```
    pub fn stop(&self) {
        self.child.stop();
    }

    /// Lets Ctrl-C and SIGTERM stop the tree gracefully, as [`stop`](Self::stop) does, and
    /// keeps the handle: the program still sends to the root, receives its UP messages and
    /// joins it. A second signal during the graceful stop aborts the tree at once (see
    /// [`abort`](Self::abort)); [`join`](Self::join) then returns [`Exit::Aborted`]. This is
    /// what [`run`](super::run) does, for a root whose handle you need.
    ///
    /// The signals are listened for from the moment this returns: one that arrives later is
    /// never missed, and no longer ends the process at once (Ctrl-C is SIGINT on Unix; on
    /// other systems only Ctrl-C is listened for). The listening ends with the tree, but
    /// the signals do not go back to ending the process: tokio keeps the handler it
    /// installed, so one that comes once no tree listens does nothing. A program that goes
    /// on after the tree ends listens again, or ends. Call it once per process: every tree
    /// listening would stop on the same signal.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// A server that stops on Ctrl-C, and still talks to its root (compiled only: it
    /// waits for a signal).
    ///
    /// ```no_run
    /// use taskthread::prelude::*;
    ///
    /// struct Server;
    ///
    /// #[taskthread(up = &'static str)]
    /// impl Server {
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up("connections closed").await?; // runs on the signal's graceful stop
    ///         Ok(())
    ///     }
    /// }
    ///
    /// #[tokio::main]
    /// async fn main() -> taskthread::Result<()> {
    ///     let mut server = taskthread::spawn(Server).stop_on_signals();
    ///     // Ctrl-C: the tree stops gracefully; the root's UP messages still arrive.
    ///     while let Some(line) = server.recv().await {
    ///         println!("{line}");
    ///     }
    ///     server.join().await.into_result()
    /// }
    /// ```
    pub fn stop_on_signals(self) -> Self {
        let Handle {
            child,
            up,
            join,
            task,
        } = self;
        let signals = Signals::listen();
        let (watched, root_task) = (child.clone(), task.clone());
        let watcher = tokio::spawn(async move {
            let (exit, _) = stop_on(signals, &watched, &root_task, join).await;
            exit
        });
        Handle {
            child,
            up,
            join: watcher,
            task,
        }
    }

    /// Aborts the whole tree at once: every task of it is cancelled, no `exit` hook runs,
    /// and queued messages are dropped. Returns [`Exit::Aborted`] with how many were dropped
    /// (or how the root ended, if it ended first). When it returns, no task of the tree is
    /// alive. Prefer [`stop`](Self::stop) and [`join`](Self::join): a stop past its deadline
    /// (see [`ChildOptions::stop_deadline`](crate::ChildOptions::stop_deadline)) ends in an abort anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Stuck;
    ///
    /// #[taskthread]
    /// impl Stuck {
    ///     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
    ///         std::future::pending::<()>().await; // never finishes cleaning up
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stuck = taskthread::spawn(Stuck);
    /// stuck.stop(); // would wait for `exit` until the stop deadline
    /// assert!(matches!(stuck.abort().await, Exit::Aborted { .. }));
    /// # }
    /// ```
    pub async fn abort(self) -> Exit {
        let Handle {
            child,
            mut join,
            task,
            ..
        } = self;
        abort_tree(&*child.node, &task, &mut join).await.0
    }

    /// A snapshot of the whole tree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Ready;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn(Worker);
    ///         ctx.spawn(Worker);
    ///         Ok(())
    ///     }
    ///
    ///     #[down]
    ///     async fn ready(&mut self, _ctx: &mut Ctx<Self>, _r: Ready) -> Result<bool> {
    ///         Ok(true)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// team.ask(Ready).await.unwrap(); // answered after `enter`
    /// let snapshot = team.snapshot();
    /// assert_eq!(snapshot.len(), 3);
    /// assert!(snapshot.find("team/worker-2").is_some());
    /// println!("{snapshot}"); // one thread per line, children indented
    /// # }
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.child.snapshot()
    }

    /// Waits until the root has ended and returns how. When it returns, no task of the tree
    /// is alive.
    ///
    /// While waiting, UP messages from the root that nobody receives any more are taken off
    /// its queue, so the root never blocks on (or fails at) sending UP during its stop; they
    /// are counted and reported in one warning. To keep them, call [`stop`](Self::stop) and
    /// [`recv`](Self::recv) until `None` before joining.
    ///
    /// # Panics
    /// If called from a thread of this very tree: it would wait for itself forever. (The
    /// panic ends that thread as `Panicked`, with this explanation, instead of a hang.) A
    /// task a thread started with `spawn_task` is not a thread and is not detected: such a
    /// join waits until the tree is stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Fail;
    /// struct Fragile;
    ///
    /// #[taskthread]
    /// impl Fragile {
    ///     #[down]
    ///     async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
    ///         Err(Error::msg("disk full"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let fragile = taskthread::spawn(Fragile);
    /// fragile.send(Fail).await.unwrap();
    /// match fragile.join().await {
    ///     Exit::Failed(e) => assert_eq!(e.to_string(), "disk full"),
    ///     other => panic!("expected a failure, got {other}"),
    /// }
    /// # }
    /// ```
    pub async fn join(self) -> Exit {
        // Only a thread's own task can be one of the tree's: from any other task (or
        // none) the tree is not walked, which for a large tree is most of a join's work.
        if crate::node::in_thread_task()
            && let Some(me) = tokio::task::try_id()
            && let Some(path) = self.child.node.path_of_task(me)
        {
            panic!(
                "Handle::join called from `{path}`, a thread of the tree it joins: it would \
                 wait for itself forever; stop the tree and let its owner join it"
            );
        }
        let Handle {
            child,
            mut up,
            mut join,
            ..
        } = self;
        let mut dropped = 0usize;
        let joined = loop {
            tokio::select! {
                biased;
                joined = &mut join => break joined,
                Some(_) = recv_up(&mut up) => dropped += 1,
            }
        };
        while up.try_recv().is_some() {
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(root = %child.path(), dropped, "join: dropped UP messages that nobody received");
        }
        exit_of(joined)
    }
}
