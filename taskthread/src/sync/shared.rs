//! What every clone of a [`BackgroundHandle`](super::BackgroundHandle) shares: the tree's
//! handle, its UP buffer, and the flow of UP messages.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::child::ChildRef;
use crate::driver::panic_message;
use crate::exit::Exit;
use crate::lock::lock;
use crate::root::Handle;
use crate::thread::Thread;

use super::TREE_OF_THREAD;
use super::error::JoinError;

/// What the handles ask of the tree's OS thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Forward UP messages, waiting for room in the handles' buffer (backpressure).
    Run,
    /// A join waits: UP messages that find the buffer full are dropped (and counted), so
    /// the root never blocks on them while it stops.
    Join,
    /// Abort the tree.
    Abort,
}

/// The tree's side: forwards the root's UP messages to the handles until the root ends,
/// then joins (or aborts) it.
pub(super) async fn forward<T: Thread>(
    mut root: Handle<T>,
    up: mpsc::Sender<T::Up>,
    mut control: watch::Receiver<Flow>,
) -> Exit {
    let mut dropped = 0usize;
    // False once every handle is gone: then nothing changes any more.
    let mut watching = true;
    let abort = loop {
        let mode = *control.borrow_and_update();
        if mode == Flow::Abort {
            break true;
        }
        let next = tokio::select! {
            next = root.recv() => next,
            changed = control.changed(), if watching => {
                watching = changed.is_ok();
                continue;
            }
        };
        let Some(msg) = next else {
            break false;
        };
        if mode != Flow::Run || !watching {
            dropped += usize::from(up.try_send(msg).is_err());
            continue;
        }
        tokio::select! {
            permit = up.reserve() => match permit {
                Ok(permit) => permit.send(msg),
                Err(_) => dropped += 1,
            },
            changed = control.changed() => {
                watching = changed.is_ok();
                dropped += usize::from(up.try_send(msg).is_err());
            }
        }
    };
    drop(up);
    if dropped > 0 {
        tracing::warn!(
            root = %root.child_ref().path(),
            dropped,
            "background tree: dropped UP messages that no handle received"
        );
    }
    let exit = if abort {
        root.abort().await
    } else {
        root.join().await
    };
    tracing::debug!("background tree ended: {exit}");
    exit
}

pub(super) fn in_async_context() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

pub(super) fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too long to represent is no timeout.
    Instant::now().checked_add(timeout)
}

/// What every clone of a handle shares; dropping it stops the tree and joins its thread.
pub(super) struct Shared<T: Thread> {
    pub(super) child: ChildRef<T>,
    pub(super) up: tokio::sync::Mutex<mpsc::Receiver<T::Up>>,
    pub(super) control: watch::Sender<Flow>,
    pub(super) finished: watch::Receiver<bool>,
    pub(super) exit: Arc<Mutex<Option<Exit>>>,
    pub(super) os_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(super) tree: u64,
}

impl<T: Thread> Shared<T> {
    /// Whether the caller is part of the tree: on an OS thread of its runtime, or a thread
    /// of it placed on another runtime (only a thread's own task can be one, so no other
    /// task walks the tree).
    pub(super) fn joined_from_inside(&self) -> bool {
        TREE_OF_THREAD.get() == self.tree
            || (crate::node::in_thread_task()
                && tokio::task::try_id()
                    .is_some_and(|me| self.child.node.path_of_task(me).is_some()))
    }

    /// Switches the forwarding to `mode` unless it is already more final.
    pub(super) fn request(&self, mode: Flow) {
        self.control.send_if_modified(|current| {
            let raise = matches!(
                (*current, mode),
                (Flow::Run, Flow::Join | Flow::Abort) | (Flow::Join, Flow::Abort)
            );
            if raise {
                *current = mode;
            }
            raise
        });
    }

    /// Takes the exit of a tree that has ended, joining its OS thread.
    pub(super) fn take_exit(&self) -> Result<Exit, JoinError> {
        let os_thread = lock(&self.os_thread).take();
        // The thread has ended or is returning: this join is short.
        let panicked = os_thread.and_then(|t| t.join().err());
        if let Some(exit) = lock(&self.exit).take() {
            return Ok(exit);
        }
        match panicked {
            Some(payload) => Ok(Exit::Panicked(panic_message(&*payload))),
            None => Err(JoinError::AlreadyJoined),
        }
    }
}

impl<T: Thread> Drop for Shared<T> {
    fn drop(&mut self) {
        self.child.stop();
        // Nobody can receive UP messages any more: the tree's thread drops them rather
        // than waiting for room.
        self.up.get_mut().close();
        self.join_on_drop();
        let unread = self.up.get_mut().len();
        if unread > 0 {
            tracing::warn!(
                root = %self.child.path(),
                unread,
                "the last BackgroundHandle was dropped: dropped UP messages that no handle received"
            );
        }
    }
}

impl<T: Thread> Shared<T> {
    /// Waits for the tree's thread, unless a join already did or waiting could deadlock;
    /// reports a failure nobody joined to hear.
    pub(super) fn join_on_drop(&mut self) {
        let Some(os_thread) = self
            .os_thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if in_async_context() || TREE_OF_THREAD.get() == self.tree {
            tracing::warn!(
                root = %self.child.path(),
                "the last BackgroundHandle was dropped inside an async context: the tree \
                 stops gracefully on its own thread, which is not waited for"
            );
            return;
        }
        let panicked = os_thread.join().err();
        let exit = lock(&self.exit).take();
        match (exit, panicked) {
            (Some(exit), _) if exit.is_failure() => {
                tracing::error!(root = %self.child.path(), "background tree ended: {exit}");
            }
            (None, Some(payload)) => tracing::error!(
                root = %self.child.path(),
                "background tree's thread panicked: {}",
                panic_message(&*payload)
            ),
            _ => {}
        }
    }
}
