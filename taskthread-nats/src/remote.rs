//! The parent's side: [`Remotes`], a process's endpoint for remote children, and the life
//! of one remote child's proxy — the `ChildRef` its parent holds is an ordinary one, and the
//! proxy carries what is sent to it to the host, and the host's UP messages, answers and
//! exit back.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::poll_fn;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use taskthread::proxy::{Proxy, ProxyEnd, Remote};
use taskthread::supervise::{AfterLife, RestartPolicy, Restarts};
use taskthread::{
    ChildOptions, ChildRef, Ctx, Error, Exit, HandlesUp, RemoteLink, Thread, ThreadState,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::codec::{Encoder, PendingAnswer, UpDecoder};
use crate::endpoint::{self, Edge, Endpoint, Event, SendError, Side, host_address};
use crate::error::{SpawnError, TransportError, check_name};
use crate::frame::{EdgeId, Head, Kind, SpawnHead};
use crate::link::{Link, window};
use crate::settings::{DEFAULT_REMOTE_CAPACITY, MAX_REMOTE_CAPACITY, Settings};
use crate::transport::Transport;
use crate::tree;

/// A process's endpoint for remote children: spawn a child on a [`Host`](crate::Host) and
/// get an ordinary [`ChildRef`]. Cheap to clone; the endpoint lives while a clone or a
/// remote child does.
///
/// What a remote child's `ChildRef` promises, as a local one does:
///
/// - **Order**: what one sender sends arrives in the order sent; UP messages reach the
///   parent's `#[up]` handlers in the order the child sent them.
/// - **Backpressure**: the child's queue capacity bounds every message sent and not yet
///   taken by the child, wherever it is (here, on the way, or queued on the host): senders
///   wait, in arrival order, and `try_send` reports `Full`.
/// - **Nothing lost silently**: a send to an ended child gives the message back; messages
///   the child never took are counted in its `ChildExit::dropped`; an ask whose answer
///   cannot come fails with `AskError::NoReply`.
/// - **Liveness**: a host that dies or a link that stays down ends the child with
///   [`Exit::Lost`] (see [`Settings`] for when).
/// - **Stop**: stopping the child (or its parent) sends what was queued, then asks the host
///   to stop it gracefully within the child's stop deadline; past the deadline it is
///   aborted there and reported `Aborted` here.
#[derive(Clone)]
pub struct Remotes {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Arc<Endpoint>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Remotes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remotes")
            .field("address", &self.inner.endpoint.address)
            .field("children", &self.inner.endpoint.edge_count())
            .finish()
    }
}

impl Remotes {
    /// Starts an endpoint for remote children on `transport`, with the default
    /// [`Settings`].
    pub async fn start(transport: impl Transport) -> Result<Self, TransportError> {
        Self::start_with(transport, Settings::default()).await
    }

    /// Starts an endpoint for remote children on `transport`, with `settings` for every
    /// child spawned through it.
    pub async fn start_with(
        transport: impl Transport,
        settings: Settings,
    ) -> Result<Self, TransportError> {
        let address = format!("parent.{:016x}", random_u64());
        let (endpoint, frames) = Endpoint::listen(Arc::new(transport), address, settings).await?;
        let task = tokio::spawn(endpoint::run(Arc::clone(&endpoint), frames, ParentSide));
        Ok(Self {
            inner: Arc::new(Inner { endpoint, task }),
        })
    }

    /// How many remote children run through this endpoint now.
    pub fn children(&self) -> usize {
        self.inner.endpoint.edge_count()
    }

    /// Spawns a child of type `C` on a host, as a child of the thread whose `ctx` this is,
    /// and returns its address at once; messages sent before the host has started it wait
    /// for it.
    ///
    /// `Self`'s thread must have an `#[up]` handler for `C`'s up type, as for a local child.
    /// The child ends [`Exit::Failed`] if the host refuses it (the type is not registered
    /// there, or differs), and [`Exit::Lost`] if the host does not answer within the
    /// settings' `lost_after`.
    pub fn spawn<C, P>(
        &self,
        ctx: &mut Ctx<P>,
        options: RemoteOptions,
    ) -> Result<ChildRef<C>, SpawnError>
    where
        C: Remote,
        P: Thread + HandlesUp<C::Up>,
    {
        for host in &options.hosts {
            check_name(host).map_err(SpawnError::HostName)?;
        }
        let args = options.args.map_err(SpawnError::Args)?;
        let type_name = options.type_name.unwrap_or_else(|| C::TYPE_NAME.to_owned());
        // The spawn frame: its head (the names, the child's path, a few numbers) and the
        // arguments. A path longer than allowed for here is caught when the frame is sent.
        let names: usize = C::DOWN_TYPES.iter().map(|t| t.len() + 1).sum::<usize>()
            + C::UP_TYPE.map_or(0, str::len)
            + type_name.len()
            + self.inner.endpoint.address.len();
        let size = args.len() + names + 128;
        let max = self.inner.endpoint.transport.max_frame();
        if size > max {
            return Err(SpawnError::TooLarge { size, max });
        }
        let plan = Plan {
            remotes: self.clone(),
            hosts: options.hosts,
            type_name,
            args,
            restart: options.restart,
        };
        let capacity = options
            .child
            .chosen_capacity()
            .or(C::DECLARED_CAPACITY)
            .unwrap_or(DEFAULT_REMOTE_CAPACITY);
        let child = options
            .child
            .capacity(capacity.clamp(1, MAX_REMOTE_CAPACITY));
        Ok(ctx.spawn_proxy(child, move |proxy| run(proxy, plan)))
    }
}

/// Where and how to spawn a remote child: see [`Remotes::spawn`].
///
/// ```
/// use taskthread::ChildOptions;
/// use taskthread_nats::RemoteOptions;
///
/// let options = RemoteOptions::on("worker-1")
///     .args(("eu", 3u32)) // what the host's factory of the type takes
///     .child(ChildOptions::new().name("sorter").capacity(16));
/// # let _ = options;
/// ```
#[derive(Debug)]
pub struct RemoteOptions {
    hosts: Vec<String>,
    args: Result<Vec<u8>, postcard::Error>,
    type_name: Option<String>,
    child: ChildOptions,
    restart: Option<RestartPolicy>,
}

impl RemoteOptions {
    /// On the host named `host`, with no arguments (`()`), under the type's own name, with
    /// the default [`ChildOptions`].
    pub fn on(host: impl Into<String>) -> Self {
        Self {
            hosts: vec![host.into()],
            args: Ok(Vec::new()),
            type_name: None,
            child: ChildOptions::new(),
            restart: None,
        }
    }

    /// Another host, where a [supervised](Self::restart) child starts again after its
    /// host was lost (the hosts are taken in turn). A child that failed starts again on
    /// the same host.
    pub fn or_on(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Supervises the child: after a life ends as `policy` says to restart (a lost host
    /// is a failure), another life starts, after the policy's backoff and within its limit,
    /// as [`Ctx::supervise`](taskthread::Ctx::supervise) does for a local child: the
    /// `ChildRef` stays valid, what is queued for the child waits for the next life, the
    /// parent receives a [`ChildRestart`](taskthread::ChildRestart) for each restart, and
    /// past the limit an escalated exit. Messages a life had taken and not delivered when
    /// it ended are counted in the final exit's `dropped`. Each life is a new *epoch* of
    /// the edge: a frame of an earlier life that arrives late is dropped on both sides.
    /// The policy's restart group does not apply to a remote child.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = Some(policy);
        self
    }

    /// The arguments the host's factory of the type is called with.
    pub fn args<A: Serialize>(mut self, args: A) -> Self {
        self.args = postcard::to_allocvec(&args);
        self
    }

    /// The name the type is registered under on the host, if not its type name (see
    /// [`HostBuilder::register_as`](crate::HostBuilder::register_as)).
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_name = Some(name.into());
        self
    }

    /// The child's name, queue capacity, stop stage and stop deadline. The capacity bounds
    /// the messages sent to it and not yet taken by it on the host, and the UP messages
    /// on their way from it. Without one here, the child takes its type's declared
    /// capacity, else [`DEFAULT_REMOTE_CAPACITY`]; either way at most
    /// [`MAX_REMOTE_CAPACITY`].
    pub fn child(mut self, options: ChildOptions) -> Self {
        self.child = options;
        self
    }
}

/// What a proxy needs to ask its hosts for the child.
struct Plan {
    remotes: Remotes,
    /// The host of the first life, then the others in turn after a host is lost.
    hosts: Vec<String>,
    type_name: String,
    args: Vec<u8>,
    restart: Option<RestartPolicy>,
}

/// A random number for edge ids and addresses: no two processes, nor two edges of one, get
/// the same.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((n, std::process::id(), std::time::SystemTime::now()))
}

/// The most DOWN messages sent at once.
const BATCH: usize = 64;

/// What the proxy's loop waits for.
enum Next<D> {
    Event(Option<Event>),
    Down(D),
    /// The queue is closed and empty.
    DownDone,
    StopRequested,
    Deadline,
}

/// One life of a remote child's proxy.
struct Life<'a, C: Remote> {
    proxy: &'a mut Proxy<C>,
    edge: Arc<Edge>,
    host: String,
    /// Asked questions waiting for their answers, by ask number.
    asks: HashMap<u64, PendingAnswer>,
    next_ask: u64,
    /// The places the host has freed so far (what it has taken), and how many of them this
    /// side has released.
    released: u64,
    /// DOWN messages taken here that never left (they could not be written or carried).
    unsent: usize,
    buf: Vec<u8>,
}

/// How a life ended.
struct Ending {
    exit: Exit,
    /// Messages taken from the queue and not delivered.
    dropped: usize,
}

async fn run<C: Remote>(mut proxy: Proxy<C>, plan: Plan) -> ProxyEnd<C> {
    let edge = random_u64();
    let mut restarts = plan.restart.clone().map(Restarts::new);
    let mut host = 0;
    // Messages dropped by lives that were followed by another.
    let mut dropped_before = 0;
    let mut epoch = 0;
    loop {
        epoch += 1;
        let ending = live(&mut proxy, &plan, &plan.hosts[host], edge, epoch).await;
        // A stop from outside, and an abort past the stop deadline, are final.
        let final_end = proxy.is_stop_requested() || matches!(ending.exit, Exit::Aborted { .. });
        let after = match &mut restarts {
            Some(restarts) if !final_end => restarts.after(&ending.exit),
            _ => AfterLife::End,
        };
        match after {
            AfterLife::Restart {
                backoff,
                restarts_left,
            } => {
                dropped_before += ending.dropped;
                // A lost host is left for the next one; a failure is tried again in place.
                if matches!(ending.exit, Exit::Lost(_)) {
                    host = (host + 1) % plan.hosts.len();
                }
                proxy.report_restart(ending.exit, backoff, restarts_left);
                let stopped = tokio::select! {
                    () = tokio::time::sleep(backoff) => false,
                    () = poll_fn(|cx| proxy.poll_stop_requested(cx)) => true,
                };
                if stopped {
                    return proxy.end(Exit::Stopped, dropped_before);
                }
                proxy.restarted();
            }
            AfterLife::Escalate { restarts } => {
                let error = Error::msg(format!(
                    "supervised `{}` ({}) {} after {restarts} restart{} in its window",
                    proxy.path(),
                    C::TYPE_NAME,
                    ending.exit,
                    if restarts == 1 { "" } else { "s" },
                ));
                return proxy.end_escalated(Exit::Failed(error), dropped_before + ending.dropped);
            }
            _ => return proxy.end(ending.exit, dropped_before + ending.dropped),
        }
    }
}

/// One life of a remote child, epoch `epoch` of its edge, on `host`.
async fn live<C: Remote>(
    proxy: &mut Proxy<C>,
    plan: &Plan,
    host: &str,
    edge: EdgeId,
    epoch: u32,
) -> Ending {
    let endpoint = &plan.remotes.inner.endpoint;
    let settings = endpoint.settings;
    let capacity = proxy.capacity() as u64;
    let link = Link::new(edge, epoch, host_address(host), capacity, window(capacity));
    let (edge_state, events) = endpoint.add_edge(link, settings.heartbeat, settings.lost_after);
    let _forget = Forget {
        endpoint: Arc::clone(endpoint),
        edge,
        epoch,
    };
    let spawn = SpawnHead {
        type_name: plan.type_name.clone(),
        down_types: C::DOWN_TYPES.iter().map(|&t| t.to_owned()).collect(),
        up_type: C::UP_TYPE.map(str::to_owned),
        path: proxy.path().to_owned(),
        reply_to: endpoint.address.clone(),
        capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        heartbeat_ms: millis(settings.heartbeat),
        lost_after_ms: millis(settings.lost_after),
    };
    let mut life = Life {
        proxy,
        edge: edge_state,
        host: host.to_owned(),
        asks: HashMap::new(),
        next_ask: 1,
        released: 0,
        unsent: 0,
        buf: Vec::new(),
    };
    // Shown on this host from now on; the threads below it come with its host's reports.
    life.proxy
        .show_remote(RemoteLink::new(host, None, epoch), Vec::new());
    let sent = life
        .edge
        .send_reliable::<SendError>(Kind::Spawn(Box::new(spawn)), |buf| {
            buf.extend_from_slice(&plan.args);
            Ok(())
        })
        .await;
    let ending = match sent {
        Ok(()) => life.run(events).await,
        Err(e) => Ending {
            exit: Exit::Failed(Error::msg(format!("the spawn request was not sent: {e}"))),
            dropped: 0,
        },
    };
    // Asks still waiting get no answer, and the places of messages the life took are free
    // for the next (those messages are counted in `ending.dropped`).
    life.asks.clear();
    let held = life.proxy.held();
    life.proxy.release(held);
    ending
}

/// Takes the edge off the endpoint when the life ends, however it ends.
struct Forget {
    endpoint: Arc<Endpoint>,
    edge: EdgeId,
    epoch: u32,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.endpoint.remove_edge(self.edge, self.epoch);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<C: Remote> Life<'_, C> {
    async fn run(&mut self, mut events: mpsc::UnboundedReceiver<Event>) -> Ending {
        let mut stop_at: Option<Instant> = None;
        let mut down_done = false;
        let mut deadline: Option<Pin<Box<Sleep>>> = None;
        loop {
            let next = poll_fn(|cx| {
                // Woken by a credit too: the places the host freed go to waiting senders
                // before the queue is looked at.
                self.release_taken();
                if let Poll::Ready(event) = events.poll_recv(cx) {
                    return Poll::Ready(Next::Event(event));
                }
                if !down_done {
                    if self.edge.poll_credit(cx).is_ready() {
                        match self.proxy.poll_recv(cx) {
                            Poll::Ready(Some(down)) => return Poll::Ready(Next::Down(down)),
                            Poll::Ready(None) => return Poll::Ready(Next::DownDone),
                            Poll::Pending => {}
                        }
                    }
                    if stop_at.is_none() && self.proxy.poll_stop_requested(cx).is_ready() {
                        return Poll::Ready(Next::StopRequested);
                    }
                }
                if let Some(sleep) = deadline.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Next::Deadline);
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Down(down) => self.send_downs(down).await,
                Next::StopRequested | Next::DownDone => {
                    if stop_at.is_none() {
                        stop_at = Some(Instant::now());
                        self.proxy.set_state(ThreadState::Stopping);
                        // Senders get their messages back from now on; what is queued
                        // still goes.
                        self.proxy.close();
                        if let Some(limit) = self.proxy.stop_deadline() {
                            deadline = Some(Box::pin(tokio::time::sleep(limit)));
                        }
                    }
                    if matches!(next, Next::DownDone) {
                        down_done = true;
                        self.send_stop(stop_at.unwrap_or_else(Instant::now)).await;
                    }
                }
                Next::Deadline => {
                    self.edge.send_bare(Kind::Abort).await;
                    tracing::warn!(child = %self.proxy.path(), host = %self.host, "the remote child's stop took longer than its deadline: aborted");
                    let dropped = self.proxy.held();
                    return Ending {
                        exit: Exit::Aborted { dropped },
                        dropped,
                    };
                }
                Next::Event(None) => {
                    return Ending {
                        exit: Exit::Lost("the remotes' endpoint closed".to_owned()),
                        dropped: self.proxy.held(),
                    };
                }
                Next::Event(Some(event)) => {
                    if let Some(ending) = self.event(event, &events).await {
                        return ending;
                    }
                }
            }
        }
    }

    /// Frees the places of the messages the host has taken since last time.
    fn release_taken(&mut self) {
        let capacity = self.proxy.capacity() as u64;
        let taken = self.edge.link().peer_credit().saturating_sub(capacity);
        if taken > self.released {
            self.proxy.release((taken - self.released) as usize);
            self.released = taken;
        }
    }

    /// Sends `first` and the messages queued behind it, as many as the credit allows (at
    /// most [`BATCH`]), in as few datagrams as the transport's size allows.
    async fn send_downs(&mut self, first: C::Down) {
        let mut frames = Vec::new();
        let mut next = Some(first);
        while let Some(down) = next {
            if let Some(frame) = self.frame_down(down) {
                frames.push(frame);
            }
            if frames.len() >= BATCH || !self.edge.link().has_credit() {
                break;
            }
            next = self.proxy.try_recv();
        }
        self.edge.send_frames(frames).await;
    }

    /// The frame of one DOWN message; `None` if it cannot be made (the message is then
    /// dropped and counted).
    fn frame_down(&mut self, down: C::Down) -> Option<Bytes> {
        self.buf.clear();
        let ask = self.next_ask;
        let written = C::write_down(
            down,
            Encoder {
                buf: &mut self.buf,
                ask,
            },
        );
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.unsent(format!("it cannot be written: {e}"));
                return None;
            }
        };
        if let Kind::Ask { .. } = written.kind {
            self.next_ask += 1;
        }
        let buf = &self.buf;
        let frame = self.edge.reliable_frame::<SendError>(written.kind, |out| {
            out.extend_from_slice(buf);
            Ok(())
        });
        match frame {
            Ok(frame) => {
                if let Some(answer) = written.answer {
                    self.asks.insert(ask, answer);
                }
                Some(frame)
            }
            Err(e) => {
                self.unsent(e.to_string());
                None
            }
        }
    }

    /// A message taken from the queue could not be sent: it is dropped, counted, and its
    /// place freed; an asker of it gets no answer.
    fn unsent(&mut self, why: String) {
        tracing::error!(child = %self.proxy.path(), "a DOWN message was dropped: {why}");
        self.unsent += 1;
        self.proxy.release(1);
    }

    async fn send_stop(&mut self, stop_at: Instant) {
        let deadline_ms = self.proxy.stop_deadline().map(|limit| {
            let rtt = self.edge.link().rtt.unwrap_or_default();
            millis(limit.saturating_sub(stop_at.elapsed()).saturating_sub(rtt))
        });
        let _ = self
            .edge
            .send_reliable::<SendError>(Kind::Stop { deadline_ms }, |_| Ok(()))
            .await;
    }

    /// An event of the edge; `Some` if it ends the life.
    async fn event(
        &mut self,
        event: Event,
        events: &mpsc::UnboundedReceiver<Event>,
    ) -> Option<Ending> {
        let (kind, payload) = match event {
            Event::Frame(kind, payload) => (kind, payload),
            Event::Lost(reason) => {
                let dropped = self.proxy.held() + self.unsent;
                return Some(Ending {
                    exit: Exit::Lost(format!("host `{}`: {reason}", self.host)),
                    dropped,
                });
            }
            Event::HostStopping(_) | Event::Kill => return None,
        };
        match kind {
            Kind::Spawned => self.proxy.set_state(ThreadState::Running),
            Kind::Tree(subtree) => {
                let link = self.edge.link();
                let shown = RemoteLink::new(self.host.clone(), link.rtt, link.epoch);
                drop(link);
                match tree::entries(&subtree, self.proxy.path()) {
                    Ok(subtree) => self.proxy.show_remote(shown, subtree),
                    // The last report that kept the rules stays shown.
                    Err(why) => tracing::debug!(
                        child = %self.proxy.path(),
                        host = %self.host,
                        "a report of the remote subtree was refused: {why}"
                    ),
                }
            }
            Kind::Up => {
                self.deliver_up(&payload).await;
                self.edge.link().grant(1);
                if events.is_empty() {
                    self.edge.send_ack_if_owed().await;
                }
            }
            Kind::Answer { ask, answered } => {
                if let Some(answer) = self.asks.remove(&ask) {
                    answer(answered.then_some(&payload[..]));
                }
            }
            Kind::Exit(exit) => {
                let undelivered = self
                    .edge
                    .link()
                    .credited_sent()
                    .saturating_sub(exit.received);
                let dropped =
                    usize::try_from(exit.dropped + undelivered).unwrap_or(usize::MAX) + self.unsent;
                return Some(Ending {
                    exit: exit.into_exit(),
                    dropped,
                });
            }
            Kind::Refused(reason) => {
                let error = format!(
                    "host `{}` refused to run `{}`: {reason}",
                    self.host,
                    C::TYPE_NAME
                );
                return Some(Ending {
                    exit: Exit::Failed(Error::msg(error)),
                    dropped: self.proxy.held() + self.unsent,
                });
            }
            _ => {}
        }
        None
    }

    async fn deliver_up(&self, payload: &Bytes) {
        match C::read_up(UpDecoder(payload)) {
            Ok(msg) => {
                // The parent gone means its subtree is being torn down: nobody to tell.
                let _ = self.proxy.up(msg).await;
            }
            Err(e) => tracing::error!(
                child = %self.proxy.path(),
                "an UP message that cannot be read was dropped: {e}"
            ),
        }
    }
}

/// The parent's side of the endpoint: a frame of an edge that has ended here is dropped.
/// (A host whose exit report was acked by a frame that got lost sends it again until the
/// edge is silent for `lost_after`, then forgets it: the parent has its exit already.)
struct ParentSide;

impl Side for ParentSide {
    fn unknown(
        &self,
        _endpoint: &Arc<Endpoint>,
        _head: Head,
        _payload: Bytes,
    ) -> Option<(String, Bytes)> {
        None
    }
}
