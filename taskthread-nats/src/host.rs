//! [`Host`]: a process that runs, for parents elsewhere, the subtrees they ask for. Thread
//! types are registered by name with a factory; each spawn request starts one *agent*,
//! which runs the thread as a root of this process ([`spawn_hosted`]) and carries its
//! messages, answers, UP messages and exit over its edge.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use taskthread::proxy::{Remote, spawn_hosted};
use taskthread::{ChildOptions, DEFAULT_STOP_DEADLINE, Exit, Handle, TrySendError};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Sleep};

use crate::codec::{Answering, Decoder, UpEncoder};
use crate::endpoint::{self, Edge, Endpoint, Event, SendError, Side, host_address};
use crate::error::{HostError, check_name};
use crate::frame::{self, EdgeId, Head, Kind, SpawnHead, VERSION, WireExit};
use crate::link::{Link, window};
use crate::settings::{DEFAULT_MAX_REMOTE_CHILDREN, MAX_REMOTE_CAPACITY, Settings};
use crate::transport::Transport;

/// Edges whose latest epoch a host remembers as finished (so that a late copy of a spawn
/// request never starts a life again), and as refused (so that a refusal is logged once).
const EPOCHS_KEPT: usize = 4096;

/// A process that runs the subtrees parents elsewhere ask for.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread_nats::{Host, memory::MemoryTransport};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Job(u32);
///
/// struct Worker { id: u32 }
///
/// #[taskthread(remote)]
/// impl Worker {
///     #[down]
///     async fn job(&mut self, _ctx: &mut Ctx<Self>, Job(n): Job) -> Result<u32> {
///         Ok(n + self.id)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let transport = MemoryTransport::new();
/// let host = Host::builder("worker-1", transport)
///     .register(|id: u32| Worker { id }) // parents pass the `u32`
///     .start()
///     .await
///     .unwrap();
/// assert_eq!(host.name(), "worker-1");
/// host.stop().await;
/// # }
/// ```
#[must_use = "a host dropped at once ends at once: keep it, and `stop` it at the end"]
pub struct Host {
    shared: Arc<HostShared>,
    task: JoinHandle<()>,
}

/// A host dropped without [`stop`](Host::stop) or [`kill`](Host::kill) ends as `kill` ends
/// it, without waiting for its subtrees' tasks: its address is given up, nothing more is
/// sent, and its parents find their children lost.
impl Drop for Host {
    fn drop(&mut self) {
        self.shared.endpoint.close();
        self.task.abort();
        let edges: Vec<Arc<Edge>> = {
            let mut agents = self.shared.agents();
            agents.killed = true;
            agents.running.values().map(|a| a.edge.clone()).collect()
        };
        for edge in edges {
            edge.tell(Event::Kill);
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.shared.name)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

/// Registers thread types and starts a [`Host`].
pub struct HostBuilder {
    name: String,
    transport: Arc<dyn Transport>,
    settings: Settings,
    stop_deadline: Duration,
    max_remote_children: usize,
    types: HashMap<String, Arc<dyn Factory>>,
    duplicate: Option<String>,
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("name", &self.name)
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host named `name` (ASCII letters, digits, `-` and `_`), reached through
    /// `transport`.
    pub fn builder(name: impl Into<String>, transport: impl Transport) -> HostBuilder {
        HostBuilder {
            name: name.into(),
            transport: Arc::new(transport),
            settings: Settings::default(),
            stop_deadline: DEFAULT_STOP_DEADLINE,
            max_remote_children: DEFAULT_MAX_REMOTE_CHILDREN,
            types: HashMap::new(),
            duplicate: None,
        }
    }

    /// The host's name, which parents spawn on.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many of its [places](HostBuilder::max_remote_children) are taken: the remote
    /// children it runs, those whose thread has ended and whose exit waits for its
    /// parent's ack included. A child's earlier life that a restart replaced is not
    /// counted while its subtree is being aborted.
    pub fn running(&self) -> usize {
        self.shared.agents().running.len()
    }

    /// Stops every subtree it runs, gracefully (each reports its exit to its parent), and
    /// then the host.
    ///
    /// It returns within the host's [stop deadline](HostBuilder::stop_deadline) plus its
    /// [`Settings`]' `lost_after`, whatever the subtrees, their parents and the transport
    /// do:
    ///
    /// - Each subtree is told to stop at once, and has until the stop deadline to stop (or
    ///   the earlier deadline its parent gave it); past it, it is aborted there, and its
    ///   parent gets [`Exit::Aborted`].
    /// - Its exit is then sent to its parent until the parent acks it, for at most the
    ///   host's `lost_after` (or the parent's, if shorter) and never past the stop deadline
    ///   plus the host's `lost_after`; a parent that never acks it finds the child lost
    ///   instead.
    /// - A send the transport does not take (a NATS server that has stopped reading, and
    ///   the client's buffer is full) waits at most until the stop deadline while the
    ///   subtrees stop (they are told to stop all the same, and their `exit` hooks run),
    ///   and at most until the end of that `lost_after` while their exits are sent; then
    ///   it is given up as if the frame were lost on the way, and a parent that hears
    ///   nothing more finds its child lost.
    /// - Spawn requests that arrive meanwhile are not answered: their parents find the host
    ///   lost, as they would once it is gone.
    pub async fn stop(self) {
        let now = Instant::now();
        // A deadline past what the clock counts to is as good as thirty years.
        let by = now
            .checked_add(self.shared.stop_deadline)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600));
        let agents: Vec<Arc<Edge>> = {
            let mut agents = self.shared.agents();
            agents.stop_by = Some(by);
            agents.running.values().map(|a| a.edge.clone()).collect()
        };
        // Reaches the agents' sends that wait for the transport now, before their events.
        self.shared.stopping.send_replace(Some(by));
        for edge in agents {
            edge.tell(Event::HostStopping(by));
        }
        poll_fn(|cx| {
            self.shared.all_gone.register(cx.waker());
            if self.shared.agents().running.is_empty() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        self.shared.endpoint.close();
        self.task.abort();
    }

    /// Ends the host at once, as if its process died: its subtrees are aborted and nothing
    /// more is sent (a send waiting for the transport to take it is given up), so their
    /// parents find them lost. For tests of what a dead host does to its parents.
    pub async fn kill(self) {
        self.shared.endpoint.close();
        self.task.abort();
        let agents: Vec<(Arc<Edge>, JoinHandle<()>)> = {
            let mut agents = self.shared.agents();
            agents.killed = true;
            agents
                .running
                .drain()
                .map(|(_, a)| (a.edge, a.task))
                .collect()
        };
        // All told before any is waited for: a `kill` cancelled part-way leaves none running.
        for (edge, _) in &agents {
            edge.tell(Event::Kill);
        }
        for (_, task) in agents {
            let _ = task.await;
        }
    }
}

impl HostBuilder {
    /// Registers thread type `T` under its type name (`T::TYPE_NAME`); `factory` makes a
    /// thread from the arguments a parent passes (`()` if it needs none).
    pub fn register<T, A, F>(self, factory: F) -> Self
    where
        T: Remote,
        A: DeserializeOwned + Send + 'static,
        F: Fn(A) -> T + Send + Sync + 'static,
    {
        self.register_as(T::TYPE_NAME, factory)
    }

    /// Registers thread type `T` under `name` (parents spawn it with
    /// [`RemoteOptions::type_name`](crate::RemoteOptions::type_name)).
    pub fn register_as<T, A, F>(mut self, name: &str, factory: F) -> Self
    where
        T: Remote,
        A: DeserializeOwned + Send + 'static,
        F: Fn(A) -> T + Send + Sync + 'static,
    {
        let registered = Arc::new(Registered {
            factory,
            _types: PhantomData,
        });
        if self.types.insert(name.to_owned(), registered).is_some() {
            self.duplicate.get_or_insert_with(|| name.to_owned());
        }
        self
    }

    /// The timing of its edges' pings (each edge's limit of silence is its parent's), and
    /// with `lost_after` how long it sends an exit its parent does not ack.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// How long [`Host::stop`] gives the subtrees to stop before it aborts them; by default
    /// [`DEFAULT_STOP_DEADLINE`] (30 s), as for a local root.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread_nats::{Host, memory::MemoryTransport};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder("worker-1", MemoryTransport::new())
    ///     .stop_deadline(Duration::from_secs(5))
    ///     .start()
    ///     .await
    ///     .unwrap();
    /// host.stop().await; // within 5 s and the settings' `lost_after`
    /// # }
    /// ```
    pub fn stop_deadline(mut self, deadline: Duration) -> Self {
        self.stop_deadline = deadline;
        self
    }

    /// How many remote children it runs at once, for all its parents together; by default
    /// [`DEFAULT_MAX_REMOTE_CHILDREN`] (4 096).
    ///
    /// A spawn request past the limit is refused, as one for a type it does not know: the
    /// parent's child ends [`Exit::Failed`] with the reason, the messages sent to it
    /// counted as dropped, and the host logs the refusal once at `WARN`. A remote child's
    /// place is free again once it has ended and its exit has been acked (or given up on,
    /// after the host's `lost_after`), or once the host's side of its edge fails (a
    /// message type's `Serialize` or `Deserialize` panics there: its subtree is aborted,
    /// and its parent finds it lost); a later life of a child (a restart) takes the place
    /// of the earlier one.
    ///
    /// ```
    /// use taskthread_nats::{Host, memory::MemoryTransport};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder("worker-1", MemoryTransport::new())
    ///     .max_remote_children(100)
    ///     .start()
    ///     .await
    ///     .unwrap();
    /// # host.stop().await;
    /// # }
    /// ```
    ///
    /// # Panics
    /// If `max` is zero.
    pub fn max_remote_children(mut self, max: usize) -> Self {
        assert!(max > 0, "a host must take at least one remote child");
        self.max_remote_children = max;
        self
    }

    /// Starts listening for spawn requests.
    pub async fn start(self) -> Result<Host, HostError> {
        check_name(&self.name).map_err(HostError::Name)?;
        if let Some(name) = self.duplicate {
            return Err(HostError::Duplicate(name));
        }
        let (endpoint, frames) =
            Endpoint::listen(self.transport, host_address(&self.name), self.settings)
                .await
                .map_err(HostError::Transport)?;
        let shared = Arc::new(HostShared {
            name: self.name,
            endpoint: Arc::clone(&endpoint),
            types: self.types,
            stop_deadline: self.stop_deadline,
            max_remote_children: self.max_remote_children,
            agents: Mutex::default(),
            stopping: watch::Sender::new(None),
            finished: Mutex::default(),
            refused: Mutex::default(),
            all_gone: atomic_waker::AtomicWaker::new(),
        });
        let task = tokio::spawn(endpoint::run(
            endpoint,
            frames,
            HostSide(Arc::clone(&shared)),
        ));
        Ok(Host { shared, task })
    }
}

struct AgentEntry {
    epoch: u32,
    edge: Arc<Edge>,
    task: JoinHandle<()>,
}

/// The agents of a host, and whether it is stopping.
#[derive(Default)]
struct Agents {
    running: HashMap<EdgeId, AgentEntry>,
    /// Once the host stops: when its subtrees must have stopped.
    stop_by: Option<Instant>,
    /// The host was killed (or dropped): a subtree that starts meanwhile is killed too.
    killed: bool,
}

struct HostShared {
    name: String,
    endpoint: Arc<Endpoint>,
    types: HashMap<String, Arc<dyn Factory>>,
    stop_deadline: Duration,
    max_remote_children: usize,
    agents: Mutex<Agents>,
    /// Once the host stops: when its subtrees must have stopped, for the agents' sends
    /// that wait for the transport.
    stopping: watch::Sender<Option<Instant>>,
    /// Edges whose epoch ended here.
    finished: Mutex<Epochs>,
    /// Edges whose spawn request was refused here.
    refused: Mutex<Epochs>,
    all_gone: atomic_waker::AtomicWaker,
}

/// The latest epoch of each of the last [`EPOCHS_KEPT`] edges whose latest epoch grew.
#[derive(Default)]
struct Epochs {
    latest: HashMap<EdgeId, u32>,
    /// The edges kept, the one whose latest epoch grew longest ago first.
    order: VecDeque<EdgeId>,
}

impl Epochs {
    /// The latest epoch noted of `edge`.
    fn get(&self, edge: EdgeId) -> Option<u32> {
        self.latest.get(&edge).copied()
    }

    /// Notes `epoch` of `edge`; `true` if it is later than every epoch of it noted yet. An
    /// epoch no later changes nothing: a late copy of an earlier life's frame never makes
    /// an edge look younger. Past [`EPOCHS_KEPT`] edges, the one whose latest epoch grew
    /// longest ago is forgotten.
    fn note(&mut self, edge: EdgeId, epoch: u32) -> bool {
        match self.latest.get_mut(&edge) {
            Some(latest) if *latest >= epoch => return false,
            Some(latest) => {
                *latest = epoch;
                // A later life of a kept edge: rare, so the walk costs little.
                if let Some(at) = self.order.iter().position(|&e| e == edge) {
                    self.order.remove(at);
                }
            }
            None => {
                self.latest.insert(edge, epoch);
            }
        }
        self.order.push_back(edge);
        if self.order.len() > EPOCHS_KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.latest.remove(&oldest);
        }
        true
    }
}

impl HostShared {
    fn agents(&self) -> MutexGuard<'_, Agents> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finished(&self) -> MutexGuard<'_, Epochs> {
        self.finished.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refused(&self) -> MutexGuard<'_, Epochs> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a life of `edge` may start: the host runs fewer remote children than it
    /// takes, not counting an earlier life of the edge, which a later one replaces. Only
    /// the endpoint's task starts lives, so none can take the place before this one does.
    fn has_room_for(&self, edge: EdgeId) -> Result<(), String> {
        let agents = self.agents();
        let others = agents.running.len() - usize::from(agents.running.contains_key(&edge));
        if others < self.max_remote_children {
            Ok(())
        } else {
            Err(format!(
                "it runs as many remote children as it takes ({})",
                self.max_remote_children
            ))
        }
    }

    /// An agent's life ended. It is noted finished before its place and its edge go, so
    /// that a copy of its spawn request read in between does not start it again, and so
    /// that an agent that ends before it is registered is not registered (see
    /// [`HostSide::unknown`]).
    fn agent_ended(&self, edge: EdgeId, epoch: u32) {
        self.finished().note(edge, epoch);
        {
            let mut agents = self.agents();
            if agents.running.get(&edge).is_some_and(|a| a.epoch == epoch) {
                agents.running.remove(&edge);
            }
        }
        self.endpoint.remove_edge(edge, epoch);
        self.all_gone.wake();
    }
}

struct HostSide(Arc<HostShared>);

impl Side for HostSide {
    fn unknown(
        &self,
        endpoint: &Arc<Endpoint>,
        head: Head,
        payload: Bytes,
    ) -> Option<(String, Bytes)> {
        let Kind::Spawn(spawn) = &head.kind else {
            // A frame of an edge that has ended here, or whose spawn has not arrived yet
            // (it will come again): nothing to do.
            return None;
        };
        if head.seq != 1 {
            return None;
        }
        let shared = &self.0;
        if shared.agents().stop_by.is_some() {
            // Stopping: no new life starts, and its parent finds the host lost.
            return None;
        }
        if shared
            .finished()
            .get(head.edge)
            .is_some_and(|ended| head.epoch <= ended)
        {
            return None;
        }
        // Answered each time the request comes (the parent sends it again until it hears),
        // logged the first time.
        let refuse = |reason: String| {
            if shared.refused().note(head.edge, head.epoch) {
                tracing::warn!(host = %shared.name, path = %spawn.path, "refused to run `{}`: {reason}", spawn.type_name);
            } else {
                tracing::debug!(host = %shared.name, path = %spawn.path, "refused to run `{}` again: {reason}", spawn.type_name);
            }
            let frame = frame::encode_bare(&Head {
                version: VERSION,
                edge: head.edge,
                epoch: head.epoch,
                seq: 0,
                ack: 0,
                credit: 0,
                kind: Kind::Refused(reason),
            });
            Some((spawn.reply_to.clone(), frame))
        };
        let Some(factory) = shared.types.get(&spawn.type_name) else {
            return refuse(format!(
                "no thread type is registered as `{}`",
                spawn.type_name
            ));
        };
        if let Err(reason) = factory.check(spawn) {
            return refuse(reason);
        }
        if crate::transport::check_address(&spawn.reply_to).is_err() {
            return None;
        }
        if let Err(reason) = shared.has_room_for(head.edge) {
            return refuse(reason);
        }
        // A later life of an edge replaces the earlier one, whose agent aborts its subtree.
        if let Some(old) = shared.agents().running.remove(&head.edge) {
            old.edge.tell(Event::Kill);
        }
        let spawn = within_limits(spawn);
        let capacity = u64::from(spawn.capacity);
        let link = Link::new(
            head.edge,
            head.epoch,
            spawn.reply_to.clone(),
            capacity,
            window(capacity),
        );
        let heartbeat = Duration::from_millis(spawn.heartbeat_ms);
        let lost_after = Duration::from_millis(spawn.lost_after_ms);
        let (edge, events) = endpoint.add_edge(link, heartbeat, lost_after);
        // The spawn itself is the edge's first frame: delivered through the link, so it
        // is acked like any other.
        let arrived = edge.link().receive(
            Head {
                kind: Kind::Ack,
                ..head
            },
            Bytes::new(),
            0,
        );
        debug_assert!(arrived.frames.len() == 1);
        let task = match factory.start(
            Arc::clone(&edge),
            events,
            &spawn,
            &payload,
            Arc::clone(shared),
        ) {
            Ok(task) => task,
            Err(reason) => {
                endpoint.remove_edge(head.edge, head.epoch);
                return refuse(reason);
            }
        };
        let mut agents = shared.agents();
        // The agent runs from the moment it is spawned: one that has ended already has
        // noted its life finished, and has no place to free.
        if shared
            .finished()
            .get(head.edge)
            .is_some_and(|ended| head.epoch <= ended)
        {
            return None;
        }
        if agents.killed {
            // The host was killed while this one started.
            edge.tell(Event::Kill);
        } else if let Some(by) = agents.stop_by {
            // The host began to stop while this one started.
            edge.tell(Event::HostStopping(by));
        }
        agents.running.insert(
            head.edge,
            AgentEntry {
                epoch: head.epoch,
                edge,
                task,
            },
        );
        None
    }
}

/// The spawn request with what the parent asked for brought within this side's limits: a
/// queue capacity of 1 to [`MAX_REMOTE_CAPACITY`], a heartbeat and a limit of silence of
/// 1 ms to [`Settings::MAX_HEARTBEAT`] and [`Settings::MAX_LOST_AFTER`].
fn within_limits(spawn: &SpawnHead) -> SpawnHead {
    let most = u32::try_from(MAX_REMOTE_CAPACITY).unwrap_or(u32::MAX);
    let millis = |limit: Duration| u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    SpawnHead {
        capacity: spawn.capacity.clamp(1, most),
        heartbeat_ms: spawn.heartbeat_ms.clamp(1, millis(Settings::MAX_HEARTBEAT)),
        lost_after_ms: spawn
            .lost_after_ms
            .clamp(1, millis(Settings::MAX_LOST_AFTER)),
        ..spawn.clone()
    }
}

/// A registered thread type.
trait Factory: Send + Sync {
    /// Whether the parent knows the type's messages as the host does.
    fn check(&self, spawn: &SpawnHead) -> Result<(), String>;
    /// Makes the thread from the arguments and starts its agent.
    fn start(
        &self,
        edge: Arc<Edge>,
        events: mpsc::UnboundedReceiver<Event>,
        spawn: &SpawnHead,
        args: &[u8],
        host: Arc<HostShared>,
    ) -> Result<JoinHandle<()>, String>;
}

struct Registered<T, A, F> {
    factory: F,
    _types: PhantomData<fn(A) -> T>,
}

impl<T, A, F> Factory for Registered<T, A, F>
where
    T: Remote,
    A: DeserializeOwned + Send + 'static,
    F: Fn(A) -> T + Send + Sync + 'static,
{
    fn check(&self, spawn: &SpawnHead) -> Result<(), String> {
        let same = spawn
            .down_types
            .iter()
            .map(String::as_str)
            .eq(T::DOWN_TYPES.iter().copied())
            && spawn.up_type.as_deref() == T::UP_TYPE;
        if same {
            Ok(())
        } else {
            Err(format!(
                "`{}` here takes {:?} and sends {:?} up; the parent's takes {:?} and sends {:?} up",
                spawn.type_name,
                T::DOWN_TYPES,
                T::UP_TYPE,
                spawn.down_types,
                spawn.up_type
            ))
        }
    }

    fn start(
        &self,
        edge: Arc<Edge>,
        events: mpsc::UnboundedReceiver<Event>,
        spawn: &SpawnHead,
        args: &[u8],
        host: Arc<HostShared>,
    ) -> Result<JoinHandle<()>, String> {
        let args: A =
            postcard::from_bytes(args).map_err(|e| format!("its arguments cannot be read: {e}"))?;
        let thread =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.factory)(args)))
                .map_err(|_| format!("the factory of `{}` panicked", spawn.type_name))?;
        // Its name here is its name in the parent's tree (a name has no `/`).
        let name = spawn.path.rsplit('/').next().unwrap_or_default();
        let name = if name.is_empty() { "remote" } else { name };
        let options = ChildOptions::new()
            .name(name.to_owned())
            .capacity(spawn.capacity as usize)
            .no_stop_deadline();
        let (handle, taken) = spawn_hosted(thread, options);
        let (id, epoch) = {
            let link = edge.link();
            (link.edge, link.epoch)
        };
        let agent = Agent {
            id,
            epoch,
            edge,
            events,
            handle: Some(handle),
            taken,
            host,
            credit_batch: u64::from(spawn.capacity / 4).max(1),
        };
        Ok(tokio::spawn(agent.run()))
    }
}

/// The host's side of one remote child.
struct Agent<T: Remote> {
    /// The edge's id and epoch, the agent's place among the host's.
    id: EdgeId,
    epoch: u32,
    edge: Arc<Edge>,
    events: mpsc::UnboundedReceiver<Event>,
    handle: Option<Handle<T>>,
    taken: taskthread::proxy::Taken,
    host: Arc<HostShared>,
    /// How many places freed make a credit worth telling at once; fewer are told as soon
    /// as the agent has nothing else to do.
    credit_batch: u64,
}

/// What the agent knows of the edge while its thread runs.
#[derive(Default)]
struct Tally {
    /// DOWN messages received (tells and asks).
    received: u64,
    /// DOWN messages received that never reached the thread.
    dropped: u64,
    /// Messages the thread has taken.
    taken: u64,
}

impl<T: Remote> Agent<T> {
    async fn run(mut self) {
        let spawned = self
            .edge
            .send_reliable::<SendError>(Kind::Spawned, |_| Ok(()));
        let _ = self.bounded(Patience::UntilHostStops, spawned).await;
        let mut tally = Tally::default();
        let mut answers: JoinSet<Answering> = JoinSet::new();
        let mut deadline: Option<Pin<Box<Sleep>>> = None;
        // The parent is gone (lost, or a later life replaced this one): nothing more is
        // sent, the subtree is stopped (or aborted) and forgotten.
        let mut parent_gone = false;
        let mut up_done = false;
        let mut killed = false;
        // Places freed and not told to the parent yet.
        let mut untold = 0;
        // The subtree below the thread, reported to the parent once per heartbeat.
        let mut report = tokio::time::interval(self.edge.heartbeat);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !up_done {
            let has_credit = self.edge.link().has_credit();
            let Some(handle) = self.handle.as_mut() else {
                break;
            };
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(Event::Frame(kind, payload)) => {
                        self.frame(kind, payload, &mut tally, &mut answers, &mut deadline).await;
                    }
                    Some(Event::Lost(reason)) => {
                        tracing::warn!(host = %self.host.name, "parent lost ({reason}): stopping its subtree");
                        parent_gone = true;
                        handle.stop();
                    }
                    Some(Event::HostStopping(by)) => {
                        handle.stop();
                        arm(&mut deadline, by);
                    }
                    Some(Event::Kill) | None => {
                        parent_gone = true;
                        killed = true;
                        if let Some(handle) = self.handle.take() {
                            handle.abort().await;
                        }
                    }
                },
                n = self.taken.above(tally.taken) => {
                    self.edge.link().grant(n - tally.taken);
                    untold += n - tally.taken;
                    tally.taken = n;
                    if untold >= self.credit_batch && !parent_gone {
                        untold = 0;
                        let ack = self.edge.send_ack_if_owed();
                        self.bounded(Patience::UntilHostStops, ack).await;
                    }
                }
                up = handle.recv(), if has_credit || parent_gone => match up {
                    Some(msg) if !parent_gone => {
                        let send = self
                            .edge
                            .send_reliable::<SendError>(Kind::Up, move |buf| {
                                T::write_up(msg, UpEncoder(buf))?;
                                Ok(())
                            });
                        if let Some(Err(e)) = self.bounded(Patience::UntilHostStops, send).await {
                            tracing::error!(host = %self.host.name, "an UP message not sent: {e}");
                        }
                    }
                    Some(_) => {}
                    None => up_done = true,
                },
                () = poll_fn(|cx| self.edge.poll_credit(cx)), if !has_credit && !parent_gone => {}
                Some(answered) = answers.join_next(), if !answers.is_empty() => {
                    if let Ok(answer) = answered && !parent_gone {
                        self.answer(answer, Patience::UntilHostStops).await;
                    }
                }
                () = async { deadline.as_mut().expect("armed").await }, if deadline.is_some() => {
                    deadline = None;
                    if let Some(handle) = self.handle.take() {
                        let exit = handle.abort().await;
                        self.report(exit, &tally, &mut answers, parent_gone).await;
                        return;
                    }
                }
                _ = report.tick(), if !parent_gone => {
                    let subtree = crate::tree::report(&handle.snapshot());
                    let send = self.edge.send_bare(Kind::Tree(subtree));
                    self.bounded(Patience::UntilHostStops, send).await;
                }
                () = std::future::ready(()), if untold > 0 && !parent_gone => {
                    // Nothing else to do: the credit goes now.
                    untold = 0;
                    let ack = self.edge.send_ack_if_owed();
                    self.bounded(Patience::UntilHostStops, ack).await;
                }
            }
        }
        if !killed && let Some(handle) = self.handle.take() {
            let exit = handle.join().await;
            self.report(exit, &tally, &mut answers, parent_gone).await;
        }
    }

    /// A frame from the parent, in order.
    async fn frame(
        &mut self,
        kind: Kind,
        payload: Bytes,
        tally: &mut Tally,
        answers: &mut JoinSet<Answering>,
        deadline: &mut Option<Pin<Box<Sleep>>>,
    ) {
        let Some(handle) = self.handle.as_ref() else {
            return;
        };
        let (index, ask) = match kind {
            Kind::Tell { index } => (index, None),
            Kind::Ask { index, ask } => (index, Some(ask)),
            Kind::Stop { deadline_ms } => {
                handle.stop();
                // A deadline too far to tell from none is none.
                if let Some(by) =
                    deadline_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)))
                {
                    arm(deadline, by);
                }
                return;
            }
            Kind::Abort => {
                arm(deadline, Instant::now());
                return;
            }
            _ => return,
        };
        tally.received += 1;
        let decoder = Decoder {
            payload: &payload,
            ask: ask.unwrap_or(0),
            answers,
        };
        let refused = match T::read_down(index as usize, decoder) {
            Ok(down) => match handle.child_ref().try_send_down(down) {
                Ok(()) => return,
                // Credits keep the queue from filling: only an ended thread refuses.
                Err(TrySendError::Ended(_) | TrySendError::Full(_)) => {
                    "the thread no longer takes messages".to_owned()
                }
            },
            Err(e) => e.to_string(),
        };
        tracing::error!(host = %self.host.name, "a DOWN message was dropped: {refused}");
        tally.dropped += 1;
        // Its place is free again.
        self.edge.link().grant(1);
        if let Some(ask) = ask {
            self.answer((ask, None), Patience::UntilHostStops).await;
        }
    }

    async fn answer(&self, (ask, bytes): Answering, patience: Patience) {
        let answered = bytes.is_some();
        let send = self
            .edge
            .send_reliable::<SendError>(Kind::Answer { ask, answered }, |buf| {
                if let Some(bytes) = bytes {
                    buf.extend_from_slice(&bytes);
                }
                Ok(())
            });
        if let Some(Err(e)) = self.bounded(patience, send).await {
            tracing::error!(host = %self.host.name, "an answer not sent: {e}");
        }
    }

    /// The thread has ended: the last answers, then the exit, sent until acked, the parent
    /// is lost, or the host's patience runs out (its `lost_after`, or the parent's if
    /// shorter, and once the host stops no later than its `lost_after` past the stop
    /// deadline): a parent that keeps the edge alive and never acks cannot hold the agent.
    async fn report(
        &mut self,
        exit: Exit,
        tally: &Tally,
        answers: &mut JoinSet<Answering>,
        parent_gone: bool,
    ) {
        tracing::debug!(host = %self.host.name, "hosted thread {exit}");
        if parent_gone {
            return;
        }
        let host_patience = self.edge.endpoint().settings.lost_after;
        let start = Instant::now();
        // At most `Settings::MAX_LOST_AFTER` away; once the host stops, at most its own
        // `lost_after` past its stop deadline, however late the thread ended, so that
        // `Host::stop` returns within its bound.
        let mut give_up_at = start + self.edge.lost_after.min(host_patience);
        if let Some(by) = *self.host.stopping.borrow()
            && let Some(latest) = by.checked_add(host_patience)
        {
            give_up_at = give_up_at.min(latest);
        }
        let patience = give_up_at.saturating_duration_since(start);
        let give_up = tokio::time::sleep_until(give_up_at);
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                answered = answers.join_next() => match answered {
                    Some(Ok(answer)) => self.answer(answer, Patience::Until(give_up_at)).await,
                    Some(Err(_)) => {}
                    None => break,
                },
                event = self.events.recv() => if ends_report(event.as_ref()) {
                    return;
                },
                () = &mut give_up => return self.give_up(patience),
            }
        }
        // Queued for the thread and never taken (it failed or was aborted first): dropped
        // there, as a local thread drops them.
        let queued = tally.received - tally.dropped;
        let untaken = queued.saturating_sub(self.taken.count());
        let exit = WireExit::new(&exit, tally.dropped + untaken, tally.received);
        let send = self
            .edge
            .send_reliable::<SendError>(Kind::Exit(exit), |_| Ok(()));
        let _ = self.bounded(Patience::Until(give_up_at), send).await;
        let retransmit = self.edge.endpoint().settings.retransmit;
        while !self.edge.link().all_acked() {
            tokio::select! {
                event = self.events.recv() => if ends_report(event.as_ref()) {
                    return;
                },
                () = tokio::time::sleep(retransmit) => {}
                () = &mut give_up => return self.give_up(patience),
            }
        }
    }

    /// Waits for `send` until the transport takes its frames, or until `patience` runs out:
    /// then the send is given up, as if its frames were lost on the way (a reliable frame
    /// is kept to be sent again until acked).
    async fn bounded<F: Future>(&self, patience: Patience, send: F) -> Option<F::Output> {
        // Whatever else the agent does waits meanwhile: only a bound reached from outside
        // ends the wait. The host's stop does not wait for it: the thread is told to stop
        // at once, so that its subtree stops gracefully (its `exit` hooks run) while the
        // send waits on, until the stop deadline.
        let run_out = async {
            let by = match patience {
                Patience::Until(by) => Some(by),
                Patience::UntilHostStops => {
                    let mut stopping = self.host.stopping.subscribe();
                    let by = stopping
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|by| *by);
                    if let Some(handle) = &self.handle {
                        handle.stop();
                    }
                    by
                }
            };
            match by {
                Some(by) => tokio::time::sleep_until(by).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            sent = send => Some(sent),
            () = run_out => {
                tracing::debug!(host = %self.host.name, "a send the transport did not take in time was given up");
                None
            }
        }
    }

    fn give_up(&self, patience: Duration) {
        tracing::warn!(
            host = %self.host.name,
            "the parent acked no exit within {patience:?}: it is left to find the child lost"
        );
    }
}

/// However an agent ends (its task returns, panics in a message type's `Serialize` or
/// `Deserialize`, or is aborted), its place is free again, and a thread it still holds is
/// aborted: nobody would carry that thread's messages any more.
impl<T: Remote> Drop for Agent<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = handle.abort().await;
            });
        }
        self.host.agent_ended(self.id, self.epoch);
    }
}

/// How long an agent's send may wait for the transport to take its frames.
#[derive(Debug, Clone, Copy)]
enum Patience {
    /// While the thread runs or stops: until the host's stop deadline, once it stops.
    UntilHostStops,
    /// While the thread's exit is reported: until then.
    Until(Instant),
}

/// Whether an event ends an agent's report of its thread's exit: its parent is gone.
fn ends_report(event: Option<&Event>) -> bool {
    matches!(event, Some(Event::Lost(_) | Event::Kill) | None)
}

/// Arms `deadline` for `by`, unless it is armed for earlier already.
fn arm(deadline: &mut Option<Pin<Box<Sleep>>>, by: Instant) {
    if deadline
        .as_ref()
        .is_some_and(|armed| armed.deadline() <= by)
    {
        return;
    }
    *deadline = Some(Box::pin(tokio::time::sleep_until(by)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(capacity: u32) -> SpawnHead {
        SpawnHead {
            type_name: "Worker".into(),
            down_types: Vec::new(),
            up_type: None,
            path: "app/worker".into(),
            reply_to: "parent.1".into(),
            capacity,
            heartbeat_ms: 1_000,
            lost_after_ms: 5_000,
        }
    }

    #[test]
    fn epochs_keep_the_latest_life_of_each_edge() {
        let mut epochs = Epochs::default();
        assert!(epochs.note(1, 2));
        assert!(!epochs.note(1, 2));
        // A late copy of an earlier life makes the edge no younger.
        assert!(!epochs.note(1, 1));
        assert_eq!(epochs.get(1), Some(2));
        assert!(epochs.note(1, 3));
        assert_eq!(epochs.get(1), Some(3));
        assert_eq!(epochs.get(2), None);
    }

    #[test]
    fn epochs_forget_the_edge_whose_latest_life_is_oldest() {
        let mut epochs = Epochs::default();
        let kept = EPOCHS_KEPT as EdgeId;
        for edge in 0..kept {
            assert!(epochs.note(edge, 1));
        }
        // Edge 0, the first noted, starts a later life: it is kept the longest now.
        assert!(epochs.note(0, 2));
        // And an earlier one again changes nothing.
        assert!(!epochs.note(1, 1));
        assert!(epochs.note(kept, 1));
        assert_eq!(epochs.get(0), Some(2));
        assert_eq!(epochs.get(1), None);
        assert_eq!(epochs.get(2), Some(1));
        assert_eq!(epochs.get(kept), Some(1));
        assert_eq!(
            (epochs.latest.len(), epochs.order.len()),
            (EPOCHS_KEPT, EPOCHS_KEPT)
        );
    }

    #[test]
    fn a_parent_gets_no_more_than_the_limits() {
        let most = MAX_REMOTE_CAPACITY as u32;
        assert_eq!(within_limits(&asked(u32::MAX)).capacity, most);
        assert_eq!(within_limits(&asked(most + 1)).capacity, most);
        assert_eq!(within_limits(&asked(0)).capacity, 1);
        assert_eq!(within_limits(&asked(64)), asked(64));
        let impatient = SpawnHead {
            heartbeat_ms: 0,
            lost_after_ms: 0,
            ..asked(64)
        };
        let limited = within_limits(&impatient);
        assert_eq!((limited.heartbeat_ms, limited.lost_after_ms), (1, 1));
        let patient = SpawnHead {
            heartbeat_ms: u64::MAX,
            lost_after_ms: u64::MAX,
            ..asked(64)
        };
        let limited = within_limits(&patient);
        assert_eq!(
            (limited.heartbeat_ms, limited.lost_after_ms),
            (60_000, 300_000)
        );
    }
}
