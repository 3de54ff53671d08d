//! [`Watcher`]: one sampler of a subtree shared by every stream that watches it, and the
//! [`WatchStream`]s it hands out.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::sample::Sampler;
use super::subtree::Subtree;
use super::view::WatchMessage;
use crate::lock::lock;
use crate::node::Node;
use crate::record::Recording;

/// How often a [`Watcher`] samples its subtree unless told otherwise: once a second.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// How many samplings a stream may fall behind before it is sent a fresh snapshot.
const BEHIND: usize = 16;

/// Samples a subtree every interval while at least one [`WatchStream`] of it is open, and
/// sends each stream a snapshot, then the changes of each sampling.
///
/// One watcher serves any number of streams with one sampling: the control endpoint and
/// the web view each keep one for all their sessions. While any stream is open, every
/// thread of the process records the figures the views show (messages per kind, sampled
/// handler and queue-wait times, what runs now); when the last one closes, recording stops
/// at the next sampling. Cheap to clone: the clones share the sampling.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread::watch::{WatchMessage, Watcher};
///
/// #[derive(Default)]
/// struct App;
/// #[taskthread]
/// impl App {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = taskthread::spawn(App);
/// let mut stream = Watcher::new(&app).subscribe();
/// let WatchMessage::Snapshot(first) = stream.next().await else { unreachable!() };
/// assert_eq!(first.threads[0].path, "app");
/// # }
/// ```
#[derive(Clone)]
pub struct Watcher {
    hub: Arc<Hub>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("tree", self.hub.root.path())
            .field("interval", &self.hub.interval)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher of the subtree of `tree` that samples it every [`DEFAULT_INTERVAL`].
    pub fn new(tree: &impl Subtree) -> Self {
        Self::with_interval(tree, DEFAULT_INTERVAL)
    }

    /// A watcher of the subtree of `tree` that samples it every `interval`.
    ///
    /// # Panics
    /// If `interval` is zero.
    #[track_caller]
    pub fn with_interval(tree: &impl Subtree, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "a watch interval must not be zero");
        Self {
            hub: Arc::new(Hub {
                root: tree.__root().0,
                interval,
                state: Mutex::new(HubState::default()),
            }),
        }
    }

    /// How often it samples.
    pub fn interval(&self) -> Duration {
        self.hub.interval
    }

    /// Opens a stream: a snapshot of the last sampling first, then the changes of each
    /// sampling. The first stream starts the sampling (and recording), as a task on the
    /// runtime it is opened on, which must be driven for the samplings to come. Should that
    /// runtime shut down while streams are open, the sampling starts again with the next
    /// stream opened or read, on its runtime, and each open stream goes on with a fresh
    /// snapshot; a stream read on a runtime that is shutting down gets a fresh snapshot
    /// each time.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    pub fn subscribe(&self) -> WatchStream {
        let (first, rx) = self.hub.subscribe();
        WatchStream {
            hub: Arc::clone(&self.hub),
            rx,
            first: Some(first),
            seq: 0,
        }
    }

    /// A snapshot: the last sampling while streams are open, else one taken now.
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    pub(crate) fn snapshot(&self) -> WatchMessage {
        let state = self.hub.state();
        match (&state.sampler, &state.running) {
            (Some(sampler), Some(_)) => WatchMessage::Snapshot(sampler.snapshot()),
            _ => WatchMessage::Snapshot(Sampler::new(Arc::clone(&self.hub.root)).snapshot()),
        }
    }
}

/// One message of the stream, with its encodings made once for every session that sends
/// it (the control endpoint's and the web view's).
#[cfg_attr(not(any(feature = "control", feature = "web")), allow(dead_code))]
pub(crate) struct Update {
    pub(crate) message: WatchMessage,
    json: OnceLock<String>,
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    text: OnceLock<String>,
}

#[cfg_attr(not(any(feature = "control", feature = "web")), allow(dead_code))]
impl Update {
    fn new(message: WatchMessage) -> Arc<Self> {
        Arc::new(Self {
            message,
            json: OnceLock::new(),
            text: OnceLock::new(),
        })
    }

    /// The message as one line of JSON.
    pub(crate) fn json(&self) -> &str {
        self.json.get_or_init(|| self.message.to_json())
    }

    /// The message as text (without a final newline).
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn text(&self) -> &str {
        self.text
            .get_or_init(|| self.message.to_string().trim_end().to_owned())
    }
}

/// A stream of a [`Watcher`]: a snapshot, then the changes of each sampling, in order of
/// their sequence numbers. A stream that falls more than 16 samplings behind is sent a
/// fresh snapshot (with the sequence number it has got to) in place of the changes it
/// missed.
pub struct WatchStream {
    hub: Arc<Hub>,
    rx: broadcast::Receiver<Arc<Update>>,
    first: Option<Arc<Update>>,
    /// The sequence number of the last message given.
    seq: u64,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("tree", self.hub.root.path())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The next message: waits for the next sampling.
    pub async fn next(&mut self) -> WatchMessage {
        self.next_update().await.message.clone()
    }

    pub(crate) async fn next_update(&mut self) -> Arc<Update> {
        loop {
            if let Some(first) = self.first.take() {
                self.seq = first.message.seq();
                return first;
            }
            match self.rx.recv().await {
                Ok(update) if update.message.seq() <= self.seq => {}
                Ok(update) => {
                    self.seq = update.message.seq();
                    return update;
                }
                // Fallen behind (or the sampling stopped and started again): start afresh.
                Err(_) => {
                    let (first, rx) = self.hub.subscribe();
                    self.rx = rx;
                    self.first = Some(first);
                }
            }
        }
    }
}

struct Hub {
    root: Arc<Node>,
    interval: Duration,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    /// Kept between runs of the sampling, so sequence numbers go on.
    sampler: Option<Sampler>,
    /// While sampling: the streams' channel, the recording switch, the sampling task.
    running: Option<Running>,
    /// How many times the sampling has started.
    runs: u64,
}

struct Running {
    tx: broadcast::Sender<Arc<Update>>,
    _recording: Recording,
    /// The sampling task, once spawned.
    ticker: Option<AbortHandle>,
    /// Which start of the sampling this is (see [`TickerGone`]).
    run: u64,
}

impl Hub {
    fn state(&self) -> MutexGuard<'_, HubState> {
        lock(&self.state)
    }

    /// A snapshot of the last sampling and a receiver of the samplings after it, starting
    /// the sampling if it is not running.
    fn subscribe(self: &Arc<Self>) -> (Arc<Update>, broadcast::Receiver<Arc<Update>>) {
        // Outside a runtime this panics here, before the state changes.
        let runtime = tokio::runtime::Handle::current();
        let mut guard = self.state();
        let state = &mut *guard;
        let mut started = None;
        if state.running.is_none() {
            // Recording first, so the first sampling sees what happens from now on.
            let recording = Recording::start();
            match &mut state.sampler {
                Some(sampler) => {
                    sampler.sample();
                }
                None => state.sampler = Some(Sampler::new(Arc::clone(&self.root))),
            }
            let (tx, _) = broadcast::channel(BEHIND);
            state.runs += 1;
            state.running = Some(Running {
                tx,
                _recording: recording,
                ticker: None,
                run: state.runs,
            });
            started = Some(state.runs);
        }
        let (Some(sampler), Some(running)) = (&state.sampler, &state.running) else {
            unreachable!("started above")
        };
        let snapshot = WatchMessage::Snapshot(sampler.snapshot());
        let subscribed = (Update::new(snapshot), running.tx.subscribe());
        drop(guard);
        if let Some(run) = started {
            self.start_ticker(&runtime, run);
        }
        subscribed
    }

    /// Spawns the sampling task of `run`, with the state unlocked: on a runtime that is
    /// shutting down, tokio drops the task's future at once, and with it the task's
    /// [`TickerGone`], which takes the state's lock to stop its run.
    fn start_ticker(self: &Arc<Self>, runtime: &tokio::runtime::Handle, run: u64) {
        let gone = TickerGone {
            hub: Arc::downgrade(self),
            run,
        };
        let ticker = runtime.spawn(tick(gone, self.interval)).abort_handle();
        let mut state = self.state();
        match &mut state.running {
            Some(running) if running.run == run => running.ticker = Some(ticker),
            // Stopped already (its task gone, or no stream left), and maybe started again.
            _ => ticker.abort(),
        }
    }

    /// One sampling, sent to the streams; `false` once no stream is left (the sampling
    /// stops, and so does recording).
    fn tick(&self) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        let (Some(sampler), Some(running)) = (&mut state.sampler, &state.running) else {
            return false;
        };
        if running.tx.receiver_count() == 0 {
            state.running = None;
            return false;
        }
        let changes = sampler.sample();
        let _ = running.tx.send(Update::new(WatchMessage::Changes(changes)));
        true
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let state = self.state();
        if let Some(ticker) = state.running.as_ref().and_then(|r| r.ticker.as_ref()) {
            ticker.abort();
        }
    }
}

/// The sampling task: one sampling every `interval` until no stream is left.
async fn tick(gone: TickerGone, interval: Duration) {
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(hub) = gone.hub.upgrade() else {
            return;
        };
        if !hub.tick() {
            return;
        }
    }
}

/// Owned by the sampling task (its future holds it from the spawn on, polled or not): when
/// the task is gone, ended or dropped with the runtime it ran on, its run of the sampling
/// stops. The streams then find their channel closed and start the sampling again, on the
/// runtime they run on, rather than wait for samplings that no task takes any more.
struct TickerGone {
    hub: Weak<Hub>,
    /// The start of the sampling the task belongs to: a later start is left alone.
    run: u64,
}

impl Drop for TickerGone {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let ended = {
            let mut state = hub.state();
            if state.running.as_ref().is_some_and(|r| r.run == self.run) {
                state.running.take()
            } else {
                None
            }
        };
        drop(ended);
    }
}
