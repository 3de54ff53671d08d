//! Typed DOWN and UP messages: send, try_send, ask, backpressure, errors that give the
//! message back, broadcast, lookup by id, the root's UP messages.

use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::{AskError, Handle, TrySendError};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq)]
struct Add(u64);
#[derive(Debug, Clone, PartialEq)]
struct Total;
#[derive(Debug, Clone, PartialEq)]
struct Fail;
#[derive(Debug, Clone, PartialEq)]
struct Hold(Duration);

#[derive(Default)]
struct Counter {
    total: u64,
}

#[taskthread(capacity = 2)]
impl Counter {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, a: Add) -> Result<()> {
        self.total += a.0;
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
        Ok(self.total)
    }

    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<u64> {
        Err(Error::msg("refusing to answer"))
    }

    #[down]
    async fn hold(&mut self, _ctx: &mut Ctx<Self>, h: Hold) {
        tokio::time::sleep(h.0).await;
    }
}

#[tokio::test(start_paused = true)]
async fn send_then_ask_sees_every_message_in_order() {
    let root = taskthread::spawn(Counter::default());
    for n in 1..=100 {
        root.send(Add(n)).await.unwrap();
    }
    assert_eq!(root.ask(Total).await.unwrap(), 5050);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// Like `Counter`, with a queue deep enough for the loop to take messages in batches.
#[derive(Default)]
struct DeepCounter {
    seen: Vec<u64>,
}

#[taskthread(capacity = 256)]
impl DeepCounter {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, a: Add) {
        self.seen.push(a.0);
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<Vec<u64>> {
        Ok(std::mem::take(&mut self.seen))
    }
}

#[tokio::test(start_paused = true)]
async fn a_deep_queue_loses_nothing_and_keeps_the_order() {
    let root = taskthread::spawn(DeepCounter::default());
    for round in 0..5u64 {
        let expected: Vec<u64> = (round * 1000..(round + 1) * 1000).collect();
        for &n in &expected {
            root.send(Add(n)).await.unwrap();
        }
        assert_eq!(root.ask(Total).await.unwrap(), expected);
    }
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn try_send_reports_a_full_queue_and_returns_the_message() {
    let root = taskthread::spawn(Counter::default());
    // Keep the loop busy so the queue (capacity 2) fills up.
    root.send(Hold(Duration::from_secs(10))).await.unwrap();
    tokio::task::yield_now().await;
    root.try_send(Add(1)).unwrap();
    root.try_send(Add(2)).unwrap();
    match root.try_send(Add(3)) {
        Err(TrySendError::Full(msg)) => assert_eq!(msg, Add(3)),
        other => panic!("expected a full queue, got {other:?}"),
    }
    // Backpressure: `send` waits until the loop frees a slot, then delivers.
    root.send(Add(4)).await.unwrap();
    assert_eq!(root.ask(Total).await.unwrap(), 7);
    root.stop();
    root.join().await;
}

#[tokio::test(start_paused = true)]
async fn sends_to_an_ended_thread_give_the_message_back() {
    let root = taskthread::spawn(Counter::default());
    let addr = root.child_ref();
    root.stop();
    root.join().await;
    assert!(addr.is_closed());
    let err = addr.send(Add(7)).await.unwrap_err();
    assert_eq!(err.thread(), "counter");
    assert_eq!(err.into_inner(), Add(7));
    match addr.try_send(Add(8)) {
        Err(TrySendError::Ended(msg)) => assert_eq!(msg, Add(8)),
        other => panic!("expected ended, got {other:?}"),
    }
    match addr.ask(Total).await {
        Err(AskError::Ended(Total)) => {}
        other => panic!("expected ended, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_ask_whose_handler_fails_gets_no_reply_and_the_thread_fails() {
    let root = taskthread::spawn(Counter::default());
    match root.ask(Fail).await {
        Err(AskError::NoReply) => {}
        other => panic!("expected no reply, got {other:?}"),
    }
    match root.join().await {
        Exit::Failed(e) => assert_eq!(e.to_string(), "refusing to answer"),
        other => panic!("expected failure, got {other}"),
    }
}

/// A question that is answered with its own number.
#[derive(Debug, Clone, PartialEq)]
struct Echo(u64);
#[derive(Debug, Clone, PartialEq)]
struct Boom;

struct Echoer;

#[taskthread(capacity = 64)]
impl Echoer {
    #[down]
    async fn echo(&mut self, _ctx: &mut Ctx<Self>, q: Echo) -> Result<u64> {
        Ok(q.0)
    }

    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: Boom) {
        panic!("boom");
    }
}

#[tokio::test(start_paused = true)]
async fn every_asker_of_one_batch_gets_its_own_answer() {
    let root = taskthread::spawn(Echoer);
    let askers: Vec<_> = (0..20u64)
        .map(|n| {
            let echo = root.child_ref();
            tokio::spawn(async move { (n, echo.ask(Echo(n)).await.unwrap()) })
        })
        .collect();
    // Every question is queued before the thread runs again: it answers them in one turn.
    for asker in askers {
        let (asked, answered) = asker.await.unwrap();
        assert_eq!(asked, answered);
    }
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn askers_on_every_worker_get_every_answer() {
    let root = taskthread::spawn(Echoer);
    let askers: Vec<_> = (0..4u64)
        .map(|task| {
            let echo = root.child_ref();
            tokio::spawn(async move {
                for n in 0..2_000u64 {
                    let q = task * 1_000_000 + n;
                    assert_eq!(echo.ask(Echo(q)).await.unwrap(), q);
                }
            })
        })
        .collect();
    for asker in askers {
        asker.await.unwrap();
    }
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn an_ask_first_polled_by_another_waker_is_answered_where_it_is_awaited() {
    let root = taskthread::spawn(Echoer);
    let mut ask = Box::pin(root.ask(Echo(9)));
    // The first poll queues the question with a waker that wakes nobody.
    let mut elsewhere = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(ask.as_mut().poll(&mut elsewhere).is_pending());
    // Awaited here, the answer wakes this task.
    assert_eq!(ask.await.unwrap(), 9);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn an_answer_arrives_when_the_thread_panics_right_after_sending_it() {
    let root = taskthread::spawn(Echoer);
    let echo = root.child_ref();
    let asker = tokio::spawn(async move { echo.ask(Echo(7)).await });
    tokio::task::yield_now().await; // the question is queued
    root.send(Boom).await.unwrap();
    // One turn answers the question and panics on the next message.
    assert_eq!(asker.await.unwrap().unwrap(), 7);
    match root.join().await {
        Exit::Panicked(message) => assert_eq!(message, "boom"),
        other => panic!("expected a panic, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_ask_given_up_before_its_answer_leaves_the_thread_answering_others() {
    let root = taskthread::spawn(Counter::default());
    root.send(Hold(Duration::from_secs(10))).await.unwrap();
    // The question is queued behind the hold; the asker stops waiting before it is answered.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), root.ask(Total)).await;
    assert!(gave_up.is_err());
    root.send(Add(5)).await.unwrap();
    assert_eq!(root.ask(Total).await.unwrap(), 5);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

// ---- UP, broadcast, lookup ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Ping(u32);
#[derive(Debug, Clone, PartialEq)]
struct Pong {
    worker: String,
    n: u32,
}
#[derive(Debug, Clone, PartialEq)]
struct Fanout(u32);
#[derive(Debug, Clone, PartialEq)]
struct Names;
#[derive(Debug, Clone, PartialEq)]
struct PingOne(u32);

struct Worker;

#[taskthread(up = Pong)]
impl Worker {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, p: Ping) -> Result<()> {
        ctx.up(Pong {
            worker: ctx.name().to_owned(),
            n: p.0,
        })
        .await?;
        Ok(())
    }
}

struct Other;

#[taskthread]
impl Other {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        panic!("broadcast to Worker must not reach Other");
    }
}

#[derive(Default)]
struct Boss {
    first: Option<ChildId>,
}

#[taskthread(up = Pong)]
impl Boss {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..3 {
            let w = ctx.spawn(Worker);
            self.first.get_or_insert(w.id());
        }
        ctx.spawn(Other);
        Ok(())
    }

    #[down]
    async fn fanout(&mut self, ctx: &mut Ctx<Self>, f: Fanout) -> Result<usize> {
        Ok(ctx.broadcast::<Worker, _>(Ping(f.0)).await)
    }

    #[down]
    async fn ping_one(&mut self, ctx: &mut Ctx<Self>, p: PingOne) -> Result<bool> {
        let id = self.first.expect("spawned in enter");
        let Some(worker) = ctx.child::<Worker>(id) else {
            return Ok(false);
        };
        // The same id with the wrong type finds nothing.
        assert!(ctx.child::<Other>(id).is_none());
        worker.send(Ping(p.0)).await?;
        Ok(true)
    }

    #[down]
    async fn names(
        &mut self,
        ctx: &mut Ctx<Self>,
        _q: Names,
    ) -> Result<Vec<(String, &'static str)>> {
        Ok(ctx
            .children()
            .map(|c| (c.name().to_owned(), c.type_name()))
            .collect())
    }

    #[up]
    async fn pong(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, p: Pong) -> Result<()> {
        ctx.up(p).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn broadcast_reaches_every_child_of_the_type_and_up_reaches_the_root() {
    let mut root = taskthread::spawn(Boss::default());
    assert_eq!(root.ask(Fanout(9)).await.unwrap(), 3);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(root.recv().await.unwrap());
    }
    got.sort_by(|a, b| a.worker.cmp(&b.worker));
    let workers: Vec<_> = got.iter().map(|p| p.worker.as_str()).collect();
    assert_eq!(workers, ["worker", "worker-2", "worker-3"]);
    assert!(got.iter().all(|p| p.n == 9));
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn children_are_listed_and_found_by_id() {
    let mut root = taskthread::spawn(Boss::default());
    let names = root.ask(Names).await.unwrap();
    assert_eq!(
        names,
        [
            ("worker".to_owned(), "Worker"),
            ("worker-2".to_owned(), "Worker"),
            ("worker-3".to_owned(), "Worker"),
            ("other".to_owned(), "Other"),
        ]
    );
    assert!(root.ask(PingOne(5)).await.unwrap());
    assert_eq!(
        root.recv().await,
        Some(Pong {
            worker: "worker".into(),
            n: 5
        })
    );
    root.stop();
    root.join().await;
}

#[tokio::test(start_paused = true)]
async fn the_roots_up_channel_closes_after_the_root_ends() {
    let mut root = taskthread::spawn(Boss::default());
    root.ask(Fanout(1)).await.unwrap();
    root.stop();
    let mut received = 0;
    while let Some(p) = root.recv().await {
        assert_eq!(p.n, 1);
        received += 1;
    }
    assert_eq!(received, 3, "UP messages sent before the stop are not lost");
    root.join().await;
}

// ---- generic threads ------------------------------------------------------------------------

/// A generic thread: stores values of any type and sends each one UP.
struct Store<T> {
    items: Vec<T>,
}

#[derive(Debug)]
struct Len;

#[taskthread(up = T)]
impl<T: Clone + std::fmt::Debug> Store<T> {
    #[down]
    async fn put(&mut self, ctx: &mut Ctx<Self>, item: T) -> Result<()> {
        self.items.push(item.clone());
        ctx.up(item).await?;
        Ok(())
    }

    #[down]
    async fn len(&mut self, _ctx: &mut Ctx<Self>, _q: Len) -> Result<usize> {
        Ok(self.items.len())
    }
}

#[tokio::test(start_paused = true)]
async fn generic_thread_types_work() {
    let mut strings = taskthread::spawn(Store::<String> { items: Vec::new() });
    let mut numbers = taskthread::spawn(Store::<u8> { items: Vec::new() });
    strings.send("a".to_owned()).await.unwrap();
    numbers.send(1u8).await.unwrap();
    numbers.send(2u8).await.unwrap();
    assert_eq!(strings.ask(Len).await.unwrap(), 1);
    assert_eq!(numbers.ask(Len).await.unwrap(), 2);
    assert_eq!(strings.recv().await.as_deref(), Some("a"));
    assert_eq!(numbers.recv().await, Some(1));
    assert_eq!(strings.snapshot().name, "store");
    strings.stop();
    numbers.stop();
    strings.join().await;
    numbers.join().await;
}

/// A root that floods UP, and sends UP from its exit hook too.
struct Flood;

#[taskthread(up = u32, capacity = 4)]
impl Flood {
    #[rescheduling(every = "1ms")]
    async fn flood(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        ctx.up(1).await?;
        Ok(Reschedule::Again)
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(2).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn joining_a_root_whose_up_messages_nobody_reads_neither_hangs_nor_fails_it() {
    let root = taskthread::spawn(Flood);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The UP queue (capacity 4) is full and the root is blocked sending; joining takes the
    // unread messages off (with a warning), so its stop completes cleanly.
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}

/// DOWN to a producer: send this many numbers UP.
#[derive(Clone)]
struct Burst(u64);

struct Producer;

#[taskthread(up = u64)]
impl Producer {
    #[down]
    async fn burst(&mut self, ctx: &mut Ctx<Self>, b: Burst) -> Result<()> {
        for n in 0..b.0 {
            ctx.up(n).await?;
        }
        Ok(())
    }
}

/// DOWN to a gatherer: have every producer send this many numbers UP.
struct Fire(u64);

/// A parent with a queue of two places and many producers sending UP into it at once.
struct Gatherer {
    producers: u64,
    expected: u64,
    got: u64,
    sum: u64,
}

#[taskthread(capacity = 2, up = (u64, u64))]
impl Gatherer {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..self.producers {
            ctx.spawn(Producer);
        }
        Ok(())
    }

    #[down]
    async fn fire(&mut self, ctx: &mut Ctx<Self>, f: Fire) -> Result<()> {
        self.got = 0;
        self.sum = 0;
        self.expected = f.0 * self.producers;
        ctx.broadcast::<Producer, _>(Burst(f.0)).await;
        Ok(())
    }

    #[up]
    async fn number(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, n: u64) -> Result<()> {
        self.got += 1;
        self.sum += n;
        if self.got == self.expected {
            ctx.up((self.got, self.sum)).await?;
        }
        Ok(())
    }
}

/// Many children on every worker send UP into a parent whose queue is nearly always full:
/// round after round, every message arrives, and no child is left asleep while the parent
/// gives places back (a lost wake-up would leave a round waiting for ever: the guard below
/// turns that into a failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn children_on_every_worker_sending_up_into_a_full_queue_all_get_through() {
    const PRODUCERS: u64 = 100;
    const EACH: u64 = 200;
    let mut root = taskthread::spawn(Gatherer {
        producers: PRODUCERS,
        expected: 0,
        got: 0,
        sum: 0,
    });
    for round in 0..50 {
        root.send(Fire(EACH)).await.unwrap();
        // A guard, not a measure: a round takes milliseconds, and a lost wake-up forever.
        let report = tokio::time::timeout(Duration::from_secs(120), root.recv()).await;
        let (got, sum) = report
            .unwrap_or_else(|_| panic!("round {round}: children left waiting"))
            .unwrap();
        assert_eq!(got, PRODUCERS * EACH, "round {round}");
        assert_eq!(sum, PRODUCERS * (EACH * (EACH - 1) / 2), "round {round}");
    }
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// Messages for [`Gate`]: one whose handler waits for the gate to open, one whose handler
/// holds its worker at a barrier, and numbers.
#[derive(Debug)]
struct WaitForGate(Arc<Notify>);
#[derive(Debug)]
struct Block(Arc<std::sync::Barrier>);
#[derive(Debug)]
struct Number(u32);
#[derive(Debug)]
struct Seen;

/// A thread with three places whose handler of [`WaitForGate`] awaits the gate, and whose
/// handler of [`Block`] holds its worker.
#[derive(Default)]
struct Gate {
    seen: Vec<u32>,
}

#[taskthread(capacity = 3)]
impl Gate {
    #[down]
    async fn wait_for_gate(&mut self, _ctx: &mut Ctx<Self>, gate: WaitForGate) -> Result<()> {
        gate.0.notified().await;
        Ok(())
    }

    #[down]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, n: Number) -> Result<()> {
        self.seen.push(n.0);
        Ok(())
    }

    /// Holds the worker without waiting: meets the test at the barrier twice, once on
    /// entering, once to go on.
    #[down]
    async fn block(&mut self, _ctx: &mut Ctx<Self>, block: Block) -> Result<()> {
        block.0.wait();
        block.0.wait();
        Ok(())
    }

    #[down]
    async fn seen(&mut self, _ctx: &mut Ctx<Self>, _q: Seen) -> Result<Vec<u32>> {
        Ok(self.seen.clone())
    }
}

/// Sends `n` to `gate` from a task of its own; whether it was sent.
fn send_from_a_task(gate: &Handle<Gate>, n: u32) -> tokio::task::JoinHandle<bool> {
    let gate = gate.child_ref();
    tokio::spawn(async move { gate.send(Number(n)).await.is_ok() })
}

/// A handler that waits, with messages taken out behind it, does not keep a sender waiting
/// for the place its own message freed: the place is promised before the thread waits.
#[tokio::test(start_paused = true)]
async fn a_sender_waiting_for_room_gets_the_place_of_a_message_whose_handler_waits() {
    let (first_gate, second_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let root = taskthread::spawn(Gate::default());
    root.try_send(WaitForGate(Arc::clone(&first_gate))).unwrap();
    tokio::task::yield_now().await;
    // The thread waits at the first gate; the queue fills, and two senders wait for room.
    root.try_send(Number(1)).unwrap();
    root.try_send(WaitForGate(Arc::clone(&second_gate)))
        .unwrap();
    root.try_send(Number(3)).unwrap();
    let first = send_from_a_task(&root, 10);
    let second = send_from_a_task(&root, 11);
    tokio::task::yield_now().await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "the queue is full"
    );
    // The thread takes the three queued messages at once and stops at the second gate with
    // 3 still taken out: the place of the gate's message is the second sender's. The paused
    // clock runs ahead only once every task is idle, so the send must end while the gate's
    // handler waits.
    first_gate.notify_one();
    assert!(first.await.unwrap(), "the place of 1");
    let sent = tokio::time::timeout(Duration::from_secs(60), second).await;
    assert!(
        matches!(sent, Ok(Ok(true))),
        "the place of the second gate's message"
    );
    second_gate.notify_one();
    assert_eq!(root.ask(Seen).await.unwrap(), [1, 3, 10, 11]);
    root.stop();
    root.join().await;
}

/// A place is free to `try_send` as soon as its message is handed out, while the thread
/// still handles, without waiting, the messages it took out with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_is_free_to_try_send_as_soon_as_its_message_is_handed_out() {
    let (first, second) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    let root = taskthread::spawn(Gate::default());
    root.try_send(Block(Arc::clone(&first))).unwrap();
    first.wait();
    // The thread is held in the first handler; the queue fills. (What is seen is judged
    // once the thread is let go: a failed assertion must not leave it held.)
    root.try_send(Number(1)).unwrap();
    root.try_send(Block(Arc::clone(&second))).unwrap();
    root.try_send(Number(3)).unwrap();
    let full = root.try_send(Number(9));
    first.wait();
    // The thread takes the three at once, handles 1 and is held in the second handler,
    // with 3 still taken out.
    second.wait();
    let (fourth, fifth, sixth) = (
        root.try_send(Number(4)),
        root.try_send(Number(5)),
        root.try_send(Number(6)),
    );
    second.wait();
    assert!(matches!(full, Err(TrySendError::Full(_))));
    assert!(fourth.is_ok(), "the place of 1");
    assert!(fifth.is_ok(), "the place of the second handler's message");
    assert!(
        matches!(sixth, Err(TrySendError::Full(_))),
        "3 and the two sent keep the three places"
    );
    assert_eq!(root.ask(Seen).await.unwrap(), [1, 3, 4, 5]);
    root.stop();
    root.join().await;
}
