//! A tree on its own OS thread driven from plain synchronous code: `taskthread::sync::background`
//! and its `BackgroundHandle`, from `#[test]` functions without a tokio test macro, on
//! several OS threads at once. Nothing here measures time: every wait is on something the
//! test controls, and timeouts are only used where they must expire.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use taskthread::TrySendError;
use taskthread::prelude::*;
use taskthread::sync::BackgroundHandle;
use taskthread::sync::{Background, BlockingError, JoinError, RecvError};
use tokio::sync::oneshot;

/// A gate a handler waits on until the test opens it.
struct Gate(oneshot::Receiver<()>);

fn gate() -> (oneshot::Sender<()>, Gate) {
    let (open, wait) = oneshot::channel();
    (open, Gate(wait))
}

struct Total;
struct Echo(u64);
struct Boom;
struct Finish;
struct Crash;
/// DOWN: join the tree of this handle (the asked thread's own, in most tests).
struct JoinSelf(BackgroundHandle<Counter>);
/// DOWN: stop and join the tree of this handle.
struct StopAndJoinSelf(BackgroundHandle<Counter>);

/// DOWN: have a child on this core join the tree through this handle.
struct JoinFromCore(BackgroundHandle<Counter>, tokio::runtime::Handle);

/// What the tests drive: adds numbers, answers totals, echoes UP, waits on gates, panics.
#[derive(Default)]
struct Counter {
    total: u64,
    handled: Arc<AtomicU64>,
    exited: Arc<AtomicBool>,
    crasher: Option<ChildRef<Crasher>>,
}

#[taskthread(up = String)]
impl Counter {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        self.total += n;
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
        Ok(self.total)
    }

    #[down]
    async fn echo(&mut self, ctx: &mut Ctx<Self>, Echo(n): Echo) -> Result<()> {
        ctx.up(n.to_string()).await?;
        Ok(())
    }

    #[down]
    async fn wait(&mut self, _ctx: &mut Ctx<Self>, Gate(gate): Gate) -> Result<u64> {
        let _ = gate.await;
        Ok(self.total)
    }

    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: Boom) -> Result<u64> {
        panic!("the root blew up");
    }

    #[down]
    async fn finish(&mut self, ctx: &mut Ctx<Self>, _f: Finish) -> Result<()> {
        ctx.stop();
        Ok(())
    }

    #[down]
    async fn crash_child(&mut self, ctx: &mut Ctx<Self>, _c: Crash) -> Result<()> {
        let child = self.crasher.get_or_insert_with(|| ctx.spawn(Crasher));
        child.send(Crash).await?;
        Ok(())
    }

    #[down]
    async fn join_self(&mut self, _ctx: &mut Ctx<Self>, JoinSelf(me): JoinSelf) -> Result<String> {
        Ok(match me.join_async().await {
            Err(e) => e.to_string(),
            Ok(exit) => format!("joined: {exit}"),
        })
    }

    #[down]
    async fn stop_and_join_self(
        &mut self,
        _ctx: &mut Ctx<Self>,
        StopAndJoinSelf(me): StopAndJoinSelf,
    ) -> Result<String> {
        Ok(match me.stop_and_join_async().await {
            Err(e) => e.to_string(),
            Ok(exit) => format!("joined: {exit}"),
        })
    }

    #[down]
    async fn join_from_core(
        &mut self,
        ctx: &mut Ctx<Self>,
        JoinFromCore(me, core): JoinFromCore,
    ) -> Result<String> {
        let joiner = ctx.spawn_with(Joiner, ChildOptions::new().runtime(core));
        Ok(joiner.ask(JoinSelf(me)).await?)
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) -> Result<()> {
        self.crasher = None;
        ctx.up(format!("child {exit}")).await?;
        Ok(())
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        self.exited.store(true, Ordering::SeqCst);
    }
}

/// A child that panics when told to.
struct Crasher;

#[taskthread]
impl Crasher {
    #[down]
    async fn crash(&mut self, _ctx: &mut Ctx<Self>, _c: Crash) -> Result<()> {
        panic!("the child blew up");
    }
}

/// A child that joins the tree it belongs to, from wherever it runs.
struct Joiner;

#[taskthread]
impl Joiner {
    #[down]
    async fn join_self(&mut self, _ctx: &mut Ctx<Self>, JoinSelf(me): JoinSelf) -> Result<String> {
        Ok(match me.join_async().await {
            Err(e) => e.to_string(),
            Ok(exit) => format!("joined: {exit}"),
        })
    }
}

/// A background `Counter` whose queues hold `capacity` messages.
fn with_capacity(capacity: usize, counter: Counter) -> BackgroundHandle<Counter> {
    Background::new()
        .options(ChildOptions::new().capacity(capacity))
        .spawn(counter)
        .unwrap()
}

#[test]
fn the_handle_is_send_sync_clone_and_drives_the_tree_without_a_runtime() {
    fn assert_shareable<H: Send + Sync + Clone + 'static>(_: &H) {}
    let counter = taskthread::sync::background(Counter::default());
    assert_shareable(&counter);
    counter.send(2u64).unwrap();
    counter.try_send(3u64).unwrap();
    assert_eq!(counter.ask(Total).unwrap(), 5);
    counter.send(Echo(7)).unwrap();
    assert_eq!(counter.recv().unwrap(), "7");
    let snapshot = counter.snapshot().to_string();
    assert!(snapshot.starts_with("Counter: IN: u64"), "{snapshot}");
    assert!(!counter.is_finished());
    assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn several_os_threads_send_ask_and_receive_at_once() {
    const THREADS: u64 = 8;
    const EACH: u64 = 500;
    let counter = Background::new()
        .worker_threads(2)
        .thread_name("counter")
        .spawn(Counter::default())
        .unwrap();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (counter, start) = (counter.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..EACH {
                    counter.send(t * EACH + i).unwrap();
                    if i % 100 == 0 {
                        counter.ask(Total).unwrap();
                        counter.send(Echo(t)).unwrap();
                    }
                }
            })
        })
        .collect();
    // Two receivers share the UP messages: each message reaches exactly one of them.
    let expected_echoes = THREADS * EACH.div_ceil(100);
    let received = Arc::new(AtomicU64::new(0));
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let (counter, received) = (counter.clone(), Arc::clone(&received));
            thread::spawn(move || {
                let mut mine = 0;
                while received.load(Ordering::SeqCst) < expected_echoes {
                    match counter.recv_timeout(Duration::from_millis(10)) {
                        Ok(_) => {
                            received.fetch_add(1, Ordering::SeqCst);
                            mine += 1;
                        }
                        Err(RecvError::Timeout) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                mine
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let by_receiver: u64 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(by_receiver, expected_echoes);
    let n = THREADS * EACH;
    assert_eq!(counter.ask(Total).unwrap(), n * (n - 1) / 2);
    assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn a_stop_under_load_loses_nothing() {
    let handled = Arc::new(AtomicU64::new(0));
    let counter = with_capacity(
        8,
        Counter {
            handled: Arc::clone(&handled),
            ..Counter::default()
        },
    );
    let start = Arc::new(Barrier::new(5));
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let (counter, start) = (counter.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut accepted = 0u64;
                for i in 0.. {
                    let n = t * 1_000_000 + i;
                    match counter.send(n) {
                        Ok(()) => accepted += 1,
                        Err(BlockingError::Ended(back)) => {
                            assert_eq!(back, n, "the refused message comes back");
                            break;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                accepted
            })
        })
        .collect();
    start.wait();
    // Stop while the senders are still sending: wait until some work was done.
    while handled.load(Ordering::SeqCst) < 1_000 {
        thread::yield_now();
    }
    let exit = counter.stop_and_join().unwrap();
    assert!(matches!(exit, Exit::Stopped), "{exit}");
    let accepted: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(accepted >= 1_000);
    assert_eq!(
        handled.load(Ordering::SeqCst),
        accepted,
        "every accepted message was handled, every other one returned"
    );
}

#[test]
fn dropping_the_last_handle_stops_the_tree_and_joins_its_thread() {
    let exited = Arc::new(AtomicBool::new(false));
    let counter = taskthread::sync::background(Counter {
        exited: Arc::clone(&exited),
        ..Counter::default()
    });
    let elsewhere = counter.clone();
    thread::spawn(move || {
        elsewhere.send(1u64).unwrap();
        drop(elsewhere); // not the last: the tree goes on
    })
    .join()
    .unwrap();
    assert_eq!(counter.ask(Total).unwrap(), 1);
    assert!(!exited.load(Ordering::SeqCst));
    counter.send(Echo(1)).unwrap(); // an UP message nobody receives does not hold up the stop
    drop(counter);
    assert!(
        exited.load(Ordering::SeqCst),
        "the exit hook ran before the drop returned"
    );
}

#[test]
fn a_dropped_handle_stops_the_tree_even_with_unread_up_messages_filling_the_buffer() {
    let exited = Arc::new(AtomicBool::new(false));
    let counter = with_capacity(
        2,
        Counter {
            exited: Arc::clone(&exited),
            ..Counter::default()
        },
    );
    // Nobody receives: the handles' buffer (2) and the root's UP queue (2) fill, and the
    // root waits in `ctx.up` (backpressure, as with any full queue). Few enough messages
    // that the sends themselves still find room.
    for n in 0..6 {
        counter.send(Echo(n)).unwrap();
    }
    drop(counter);
    assert!(exited.load(Ordering::SeqCst));
}

#[test]
fn blocking_calls_inside_an_async_context_are_refused_with_a_clear_error() {
    let counter = taskthread::sync::background(Counter::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = counter.clone();
    runtime.block_on(async move {
        let err = inside.send(1u64).unwrap_err();
        assert!(err.to_string().contains("inside an async context"), "{err}");
        assert!(matches!(err.into_inner(), Some(1)));
        assert!(matches!(
            inside.ask(Total),
            Err(BlockingError::InAsyncContext(Total))
        ));
        assert_eq!(inside.recv(), Err(RecvError::InAsyncContext));
        assert_eq!(
            inside.join_timeout(Duration::ZERO).unwrap_err(),
            JoinError::InAsyncContext
        );
        // The async methods work on any runtime.
        inside.send_async(41u64).await.unwrap();
        inside.send_async(Echo(1)).await.unwrap();
        assert_eq!(inside.recv_async().await.as_deref(), Some("1"));
        assert_eq!(inside.ask_async(Total).await.unwrap(), 41);
    });
    assert!(matches!(
        runtime.block_on(counter.stop_and_join_async()),
        Ok(Exit::Stopped)
    ));
}

#[test]
fn a_join_from_inside_the_tree_is_refused() {
    let counter = taskthread::sync::background(Counter::default());
    let answer = counter.ask(JoinSelf(counter.clone())).unwrap();
    assert_eq!(answer, JoinError::InsideTree.to_string());
    assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn a_stop_and_join_from_inside_the_tree_is_refused_and_still_stops_it() {
    let counter = taskthread::sync::background(Counter::default());
    let answer = counter.ask(StopAndJoinSelf(counter.clone())).unwrap();
    assert_eq!(answer, JoinError::InsideTree.to_string());
    assert!(matches!(counter.join(), Ok(Exit::Stopped)));
}

#[test]
fn a_join_from_a_thread_of_the_tree_on_another_runtime_is_refused() {
    let cores = taskthread::Cores::new(1).unwrap();
    let counter = taskthread::sync::background(Counter::default());
    // Generous: the refusal is at once; a join that waited for itself would never end.
    let answer = counter
        .ask_timeout(
            JoinFromCore(counter.clone(), cores.next_handle()),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(answer, JoinError::InsideTree.to_string());
    assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn a_thread_of_another_tree_on_another_runtime_joins_the_tree() {
    let cores = taskthread::Cores::new(1).unwrap();
    let joined = taskthread::sync::background(Counter::default());
    let joining = taskthread::sync::background(Counter::default());
    joined.send(Finish).unwrap();
    let answer = joining
        .ask_timeout(
            JoinFromCore(joined.clone(), cores.next_handle()),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(answer, "joined: completed");
    assert!(matches!(joining.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn calls_after_the_tree_ended_return_the_message() {
    let counter = taskthread::sync::background(Counter::default());
    let later = counter.clone();
    counter.send(Echo(1)).unwrap();
    counter.send(Finish).unwrap();
    assert!(matches!(counter.join(), Ok(Exit::Completed)));
    assert!(later.is_finished());
    assert!(matches!(later.send(5u64), Err(BlockingError::Ended(5))));
    assert!(matches!(later.try_send(6u64), Err(TrySendError::Ended(6))));
    assert!(matches!(later.ask(Total), Err(BlockingError::Ended(Total))));
    // What the root sent before it ended can still be received; then the end.
    assert_eq!(later.recv().unwrap(), "1");
    assert_eq!(later.recv(), Err(RecvError::Ended));
    assert_eq!(later.snapshot().state, taskthread::ThreadState::Exited);
    assert_eq!(later.join().unwrap_err(), JoinError::AlreadyJoined);
}

#[test]
fn a_panic_in_a_child_is_reported_and_the_handle_keeps_working() {
    crate::panics::hide_expected_panics("blew up");
    let counter = taskthread::sync::background(Counter::default());
    counter.send(Crash).unwrap();
    let report = counter.recv().unwrap();
    assert!(report.contains("panicked: the child blew up"), "{report}");
    counter.send(3u64).unwrap();
    assert_eq!(counter.ask(Total).unwrap(), 3);
    assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
}

#[test]
fn a_panic_in_the_root_ends_the_tree_and_the_handle_says_so() {
    crate::panics::hide_expected_panics("blew up");
    let counter = taskthread::sync::background(Counter::default());
    let later = counter.clone();
    assert!(matches!(counter.ask(Boom), Err(BlockingError::NoReply)));
    let exit = counter.join().unwrap();
    assert!(
        matches!(&exit, Exit::Panicked(m) if m.contains("the root blew up")),
        "{exit}"
    );
    assert!(matches!(later.send(1u64), Err(BlockingError::Ended(1))));
}

#[test]
fn timeouts_expire_while_the_root_waits_and_give_back_what_was_not_delivered() {
    let counter = with_capacity(1, Counter::default());
    let (open, held) = gate();
    // The handler waits on the gate: no answer can come before it opens.
    assert!(matches!(
        counter.ask_timeout(held, Duration::from_millis(20)),
        Err(BlockingError::ReplyTimeout)
    ));
    // Once a number finds room behind the question, the root has taken the question and
    // waits in its handler for good: the queue (capacity 1) then fills and stays full.
    let mut accepted = 0;
    loop {
        match counter.try_send(1u64) {
            Ok(()) => accepted += 1,
            Err(full) if accepted > 0 && full.is_full() => break,
            Err(_) => thread::yield_now(),
        }
    }
    assert!(matches!(
        counter.send_timeout(2u64, Duration::from_millis(20)),
        Err(BlockingError::Timeout(2))
    ));
    assert_eq!(
        counter.recv_timeout(Duration::from_millis(20)),
        Err(RecvError::Timeout)
    );
    counter.stop();
    assert_eq!(
        counter.join_timeout(Duration::from_millis(20)).unwrap_err(),
        JoinError::Timeout
    );
    open.send(()).unwrap();
    assert!(matches!(counter.join(), Ok(Exit::Stopped)));
}

#[test]
fn abort_ends_a_tree_whose_stop_would_wait() {
    let counter = taskthread::sync::background(Counter::default());
    let (_held_shut, held) = gate();
    counter.send(held).unwrap();
    counter.send(1u64).unwrap();
    let exit = counter.abort().unwrap();
    assert!(matches!(exit, Exit::Aborted { .. }), "{exit}");
}

#[test]
fn stop_and_join_timeout_aborts_what_the_deadline_did_not_see_end() {
    let counter = taskthread::sync::background(Counter::default());
    let (_held_shut, held) = gate();
    counter.send(held).unwrap();
    let exit = counter
        .stop_and_join_timeout(Duration::from_millis(20))
        .unwrap();
    assert!(matches!(exit, Exit::Aborted { .. }), "{exit}");
}

#[test]
fn the_stop_deadline_bounds_stop_and_join() {
    let counter = Background::new()
        .stop_deadline(Duration::from_millis(50))
        .spawn(Counter::default())
        .unwrap();
    let (_held_shut, held) = gate();
    counter.send(held).unwrap();
    let exit = counter.stop_and_join().unwrap();
    assert!(matches!(exit, Exit::Aborted { .. }), "{exit}");
}

#[test]
fn messages_sent_up_while_stopping_can_be_received_to_the_end() {
    let counter = with_capacity(4, Counter::default());
    let received = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (counter, received) = (counter.clone(), Arc::clone(&received));
        thread::spawn(move || {
            while let Ok(msg) = counter.recv() {
                received.lock().unwrap().push(msg);
            }
        })
    };
    for n in 0..50 {
        counter.send(Echo(n)).unwrap();
    }
    counter.stop();
    reader.join().unwrap();
    assert!(matches!(counter.join(), Ok(Exit::Stopped)));
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 50);
    assert_eq!(received[49], "49");
}

#[test]
fn a_tree_started_and_dropped_inside_an_async_context_stops_without_blocking_it() {
    let exited = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let counter = taskthread::sync::background(Counter {
            exited: Arc::clone(&exited),
            ..Counter::default()
        });
        counter.send_async(1u64).await.unwrap();
        assert_eq!(counter.ask_async(Total).await.unwrap(), 1);
        // The last handle: the tree stops, and its thread is not waited for here.
        drop(counter);
    });
    // It stops on its own thread all the same.
    while !exited.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
}
