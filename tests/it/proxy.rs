//! The seams of remoting (`taskthread::proxy`): a child whose life a `Proxy` carries out
//! (held places, UP messages and its own place in the parent's queue, stop, its end as a
//! `ChildExit`, `Exit::Lost`), a hosted root whose taken messages are counted, and the
//! `Remote` impl of `#[taskthread(remote)]`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::proxy::{Proxy, ProxyEnd, ReadDown, Remote, Reply, WireMessage, WriteDown};
use taskthread::{SendError, ThreadState, TrySendError};
use tokio::sync::mpsc;

/// The type the proxies of these tests stand in for.
struct Far;

#[taskthread(up = String)]
impl Far {
    #[down]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, _n: u32) -> Result<()> {
        Ok(())
    }
}

/// What a test's proxy is told to do, and what it saw.
enum Step {
    /// Take one message (its place stays held) and say so.
    Take(mpsc::UnboundedSender<()>),
    /// Free `n` held places.
    Release(usize),
    /// Send a line UP.
    Up(String),
    /// `try_up` each line, at once, and say which were sent.
    TryUps(Vec<String>, mpsc::UnboundedSender<Vec<bool>>),
    /// Wait for a stop request, then say so.
    AwaitStop(mpsc::UnboundedSender<()>),
    /// End with this exit and these dropped messages.
    End(Exit, usize),
    /// Show this state.
    SetState(ThreadState),
}

/// A proxy driven step by step by the test.
fn scripted(mut steps: mpsc::UnboundedReceiver<Step>) -> impl FnOnce(Proxy<Far>) -> ScriptedLife {
    move |mut proxy| {
        Box::pin(async move {
            proxy.set_state(ThreadState::Running);
            while let Some(step) = steps.recv().await {
                match step {
                    Step::Take(told) => {
                        proxy.recv().await.expect("a message");
                        let _ = told.send(());
                    }
                    Step::Release(n) => proxy.release(n),
                    Step::Up(line) => proxy.up(line).await.expect("the parent is there"),
                    Step::TryUps(lines, told) => {
                        let sent = lines.into_iter().map(|l| proxy.try_up(l).is_ok()).collect();
                        let _ = told.send(sent);
                    }
                    Step::AwaitStop(told) => {
                        std::future::poll_fn(|cx| proxy.poll_stop_requested(cx)).await;
                        let _ = told.send(());
                    }
                    Step::End(exit, dropped) => return proxy.end(exit, dropped),
                    Step::SetState(state) => proxy.set_state(state),
                }
            }
            proxy.end(Exit::Stopped, 0)
        })
    }
}

type ScriptedLife = std::pin::Pin<Box<dyn Future<Output = ProxyEnd<Far>> + Send>>;

/// Spawns a scripted proxy child on `Spawn`; reports its UP lines and its exit.
struct Parent {
    heard: Arc<Mutex<Vec<String>>>,
}

struct Spawn(mpsc::UnboundedReceiver<Step>, usize);

#[taskthread]
impl Parent {
    #[down]
    async fn spawn(
        &mut self,
        ctx: &mut Ctx<Self>,
        Spawn(steps, capacity): Spawn,
    ) -> Result<ChildRef<Far>> {
        let options = ChildOptions::new().name("far").capacity(capacity);
        Ok(ctx.spawn_proxy(options, scripted(steps)))
    }

    #[up]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, line: String) -> Result<()> {
        self.heard.lock().unwrap().push(line);
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        let line = format!("{} {} dropped={}", exit.path(), exit.exit, exit.dropped);
        self.heard.lock().unwrap().push(line);
        Ok(())
    }
}

struct Setup {
    parent: Handle<Parent>,
    child: ChildRef<Far>,
    steps: mpsc::UnboundedSender<Step>,
    heard: Arc<Mutex<Vec<String>>>,
}

async fn setup(capacity: usize) -> Setup {
    setup_under(capacity, ChildOptions::new()).await
}

/// [`setup`], the parent started with `parent_options`.
async fn setup_under(capacity: usize, parent_options: ChildOptions) -> Setup {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let parent = taskthread::spawn_with(
        Parent {
            heard: heard.clone(),
        },
        parent_options,
    );
    let (steps, rx) = mpsc::unbounded_channel();
    let child = parent.ask(Spawn(rx, capacity)).await.unwrap();
    Setup {
        parent,
        child,
        steps,
        heard,
    }
}

async fn take(steps: &mpsc::UnboundedSender<Step>) {
    let (told, mut done) = mpsc::unbounded_channel();
    steps.send(Step::Take(told)).unwrap();
    done.recv().await.unwrap();
}

/// Yields until `check` holds (the other tasks get to run), at most a few thousand times.
async fn until(mut check: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if check() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

#[tokio::test(start_paused = true)]
async fn a_proxy_child_is_a_child_of_its_parent() {
    let Setup {
        parent,
        child,
        steps,
        heard,
    } = setup(4).await;
    assert_eq!(child.path(), "parent/far");
    let snapshot = parent.snapshot();
    assert_eq!(snapshot.children.len(), 1);
    assert_eq!(snapshot.children[0].type_name, "Far");
    assert_eq!(snapshot.children[0].queue_capacity, 4);
    until(|| child.state() == ThreadState::Running).await;

    // UP messages reach the parent's `#[up]` handler.
    steps.send(Step::Up("hello".into())).unwrap();
    until(|| heard.lock().unwrap().len() == 1).await;

    // The end reaches the parent's `#[up]` handler as a `ChildExit`.
    steps
        .send(Step::End(Exit::Lost("no heartbeat for 5s".into()), 2))
        .unwrap();
    until(|| heard.lock().unwrap().len() == 2).await;
    assert_eq!(
        *heard.lock().unwrap(),
        ["hello", "parent/far lost: no heartbeat for 5s dropped=2"]
    );
    assert_eq!(child.state(), ThreadState::Exited);
    assert!(parent.snapshot().children.is_empty());
    // Ended: a send gives the message back.
    let err: SendError<u32> = child.send(7u32).await.unwrap_err();
    assert_eq!(err.into_inner(), 7);
    parent.stop();
    assert!(matches!(parent.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_proxy_child_has_its_own_place_in_its_parents_queue() {
    // One shared place in the parent's queue: the second line goes in the child's own
    // place, the third finds no room (the parent has not run in between).
    let s = setup_under(8, ChildOptions::new().capacity(1)).await;
    let (told, mut sent) = mpsc::unbounded_channel();
    let lines = ["a", "b", "c"].map(String::from).to_vec();
    s.steps.send(Step::TryUps(lines, told)).unwrap();
    assert_eq!(sent.recv().await.unwrap(), [true, true, false]);
    until(|| s.heard.lock().unwrap().len() == 2).await;
    assert_eq!(*s.heard.lock().unwrap(), ["a", "b"]);
    s.parent.stop();
    s.parent.join().await;
}

#[tokio::test(start_paused = true)]
async fn held_places_apply_backpressure_until_released() {
    let Setup {
        parent,
        child,
        steps,
        heard,
    } = setup(2).await;
    child.send(1u32).await.unwrap();
    child.send(2u32).await.unwrap();
    take(&steps).await;
    take(&steps).await;
    // Both taken, both places held: the queue is still full.
    assert!(matches!(child.try_send(3u32), Err(TrySendError::Full(3))));
    let sender = child.clone();
    let waiting = tokio::spawn(async move { sender.send(3u32).await });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished());
    // The other side took one: the waiting sender goes on.
    steps.send(Step::Release(1)).unwrap();
    waiting.await.unwrap().unwrap();
    assert!(matches!(child.try_send(4u32), Err(TrySendError::Full(4))));

    // Ended with one queued, untaken: it is dropped and counted, with those the proxy
    // reports.
    steps.send(Step::End(Exit::Stopped, 1)).unwrap();
    until(|| heard.lock().unwrap().len() == 1).await;
    assert_eq!(*heard.lock().unwrap(), ["parent/far stopped dropped=2"]);
    parent.stop();
    parent.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_proxy_sees_its_stop_and_its_parent_waits_for_its_end() {
    let Setup {
        parent,
        child: _child,
        steps,
        heard,
    } = setup(4).await;
    let (told, mut stopped) = mpsc::unbounded_channel();
    steps.send(Step::AwaitStop(told)).unwrap();
    parent.stop();
    stopped.recv().await.unwrap();
    // The parent's stop waits for the proxy to end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(heard.lock().unwrap().is_empty());
    steps.send(Step::End(Exit::Stopped, 0)).unwrap();
    assert!(matches!(parent.join().await, Exit::Stopped));
    assert_eq!(*heard.lock().unwrap(), ["parent/far stopped dropped=0"]);
}

#[tokio::test(start_paused = true)]
async fn a_proxy_may_not_show_its_child_exited_before_it_ends() {
    let Setup {
        parent,
        child,
        steps,
        heard,
    } = setup(4).await;
    steps.send(Step::SetState(ThreadState::Stopping)).unwrap();
    until(|| child.state() == ThreadState::Stopping).await;
    // Refused: the proxy's life panics, and the parent hears of its end all the same.
    steps.send(Step::SetState(ThreadState::Exited)).unwrap();
    until(|| !heard.lock().unwrap().is_empty()).await;
    let line = heard.lock().unwrap()[0].clone();
    assert!(line.starts_with("parent/far panicked"), "{line}");
    assert_eq!(child.state(), ThreadState::Exited);
    parent.stop();
    assert!(matches!(parent.join().await, Exit::Stopped));
}

#[test]
fn lost_is_a_failure_and_says_why() {
    let lost = Exit::Lost("host a is gone".into());
    assert!(lost.is_failure());
    assert_eq!(lost.to_string(), "lost: host a is gone");
    assert_eq!(
        lost.into_result().unwrap_err().to_string(),
        "lost: host a is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hosted_root_counts_what_it_takes() {
    struct Slow;

    #[taskthread]
    impl Slow {
        #[down]
        async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    let (slow, taken) = taskthread::proxy::spawn_hosted(Slow, ChildOptions::new().capacity(4));
    assert_eq!(taken.count(), 0);
    for n in 0..3u32 {
        slow.send(n).await.unwrap();
    }
    // The first is taken at once, the others one a second.
    assert_eq!(taken.above(0).await, 1);
    assert_eq!(taken.above(1).await, 2);
    assert_eq!(taken.above(2).await, 3);
    slow.stop();
    assert!(matches!(slow.join().await, Exit::Stopped));
    assert_eq!(taken.count(), 3);
}

// ---- `#[taskthread(remote)]` ------------------------------------------------------------

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Add(u64);

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Total;

#[derive(Default)]
struct Adder {
    total: u64,
}

#[taskthread(up = u64, remote)]
impl Adder {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, Add(n): Add) -> Result<()> {
        self.total += n;
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> {
        Ok(self.total)
    }
}

/// A message written as JSON, with its index and, for a question, the asker's slot.
struct Written {
    index: usize,
    json: String,
    /// Answers the asker from a JSON answer.
    answer: Option<Answer>,
}

/// Answers an asker from a JSON answer.
type Answer = Box<dyn FnOnce(&str) + Send>;

struct ToJson;

impl WriteDown for ToJson {
    type Output = Written;

    fn tell<M: WireMessage>(self, index: usize, msg: M) -> Written {
        Written {
            index,
            json: serde_json::to_string(&msg).unwrap(),
            answer: None,
        }
    }

    fn ask<Q: WireMessage, R: WireMessage>(
        self,
        index: usize,
        question: Q,
        reply: Option<Reply<R>>,
    ) -> Written {
        Written {
            index,
            json: serde_json::to_string(&question).unwrap(),
            answer: reply.map(|reply| {
                Box::new(move |json: &str| reply.send(serde_json::from_str(json).unwrap()))
                    as Answer
            }),
        }
    }
}

/// Reads a message from JSON; a question's answer comes back as JSON on `answer`.
struct FromJson<'a> {
    json: &'a str,
    answer: &'a mut Option<tokio::sync::oneshot::Receiver<String>>,
}

impl ReadDown for FromJson<'_> {
    type Error = String;

    fn tell<M: WireMessage>(self) -> Result<M, String> {
        serde_json::from_str(self.json).map_err(|e| e.to_string())
    }

    fn ask<Q: WireMessage, R: WireMessage>(self) -> Result<(Q, Reply<R>), String> {
        let question = serde_json::from_str(self.json).map_err(|e| e.to_string())?;
        let (reply, answer) = Reply::pair();
        let (json_tx, json_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Ok(answer) = answer.await {
                let _ = json_tx.send(serde_json::to_string(&answer).unwrap());
            }
        });
        *self.answer = Some(json_rx);
        Ok((question, reply))
    }

    fn unknown(self, index: usize) -> String {
        format!("no message {index}")
    }
}

/// A proxy that carries each message to `far` as JSON, and each answer back.
async fn carry(mut proxy: Proxy<Adder>, far: ChildRef<Adder>) -> ProxyEnd<Adder> {
    proxy.set_state(ThreadState::Running);
    while let Some(down) = proxy.recv().await {
        let written = Adder::write_down(down, ToJson);
        let mut answer = None;
        let input = FromJson {
            json: &written.json,
            answer: &mut answer,
        };
        let read = Adder::read_down(written.index, input).expect("readable");
        assert!(far.send_down(read).await.is_ok(), "far is running");
        proxy.release(1);
        if let (Some(reply), Some(answer)) = (written.answer, answer) {
            reply(&answer.await.unwrap());
        }
    }
    proxy.end(Exit::Stopped, 0)
}

struct Near;

struct Carry(ChildRef<Adder>);

#[taskthread]
impl Near {
    #[down]
    async fn carry(&mut self, ctx: &mut Ctx<Self>, Carry(far): Carry) -> Result<ChildRef<Adder>> {
        Ok(ctx.spawn_proxy(ChildOptions::new(), move |proxy| carry(proxy, far)))
    }

    #[up]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u64) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_remote_thread_writes_and_reads_its_messages() {
    let far = taskthread::spawn(Adder::default());
    let near_root = taskthread::spawn(Near);
    let near = near_root.ask(Carry(far.child_ref())).await.unwrap();
    near.send(Add(2)).await.unwrap();
    near.send(Add(40)).await.unwrap();
    assert_eq!(near.ask(Total).await.unwrap(), 42);

    // An index the thread has no message of.
    let mut answer = None;
    let input = FromJson {
        json: "null",
        answer: &mut answer,
    };
    assert_eq!(Adder::read_down(2, input).err().unwrap(), "no message 2");
    // A message that does not read as its type.
    let input = FromJson {
        json: "\"two\"",
        answer: &mut answer,
    };
    assert!(Adder::read_down(0, input).is_err());

    near_root.stop();
    near_root.join().await;
    far.stop();
    far.join().await;
}

// ---- restarts of a proxied child ------------------------------------------------------

/// A proxy that runs three "lives" elsewhere under a policy: each ends lost.
async fn three_lives(proxy: Proxy<Far>) -> ProxyEnd<Far> {
    use taskthread::supervise::{AfterLife, RestartPolicy, Restarts};
    let policy = RestartPolicy::on_failure()
        .backoff(Duration::ZERO, Duration::ZERO)
        .max_restarts(2, Duration::from_secs(60));
    let mut restarts = Restarts::new(policy);
    loop {
        proxy.set_state(ThreadState::Running);
        let exit = Exit::Lost("host gone".into());
        match restarts.after(&exit) {
            AfterLife::Restart {
                backoff,
                restarts_left,
            } => {
                proxy.report_restart(exit, backoff, restarts_left);
                tokio::time::sleep(backoff).await;
                proxy.restarted();
            }
            AfterLife::Escalate { restarts } => {
                let error = Error::msg(format!("lost after {restarts} restarts"));
                return proxy.end_escalated(Exit::Failed(error), 0);
            }
            _ => return proxy.end(exit, 0),
        }
    }
}

struct Supervisor {
    heard: Arc<Mutex<Vec<String>>>,
}

struct Start;

#[taskthread]
impl Supervisor {
    #[down]
    async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<ChildRef<Far>> {
        Ok(ctx.spawn_proxy(ChildOptions::new(), three_lives))
    }

    #[up]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _line: String) -> Result<()> {
        Ok(())
    }

    #[up]
    async fn restarted(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        r: ChildRestart,
    ) -> Result<()> {
        let line = format!(
            "life {} {}, {:?}, {} left",
            r.life, r.exit, r.backoff, r.restarts_left
        );
        self.heard.lock().unwrap().push(line);
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        let line = format!("exit {} escalated={}", exit.exit, exit.escalated);
        self.heard.lock().unwrap().push(line);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_proxy_reports_its_restarts_and_escalates_past_the_limit() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let supervisor = taskthread::spawn(Supervisor {
        heard: heard.clone(),
    });
    let far = supervisor.ask(Start).await.unwrap();
    // Past the limit the parent fails with the escalated exit, once it has seen it.
    let exit = supervisor.join().await;
    assert_eq!(exit.to_string(), "failed: lost after 2 restarts");
    assert_eq!(
        *heard.lock().unwrap(),
        [
            "life 1 lost: host gone, 0ns, 1 left",
            "life 2 lost: host gone, 0ns, 0 left",
            "exit failed: lost after 2 restarts escalated=true",
        ]
    );
    assert_eq!(far.snapshot().restarts, 2);
}
