//! Unit tests of the DOWN queue.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(feature = "watch")]
use std::time::Duration;

use super::*;

fn block_on<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(test)
}

/// A task that sends `n` and says whether it got in.
fn sender(queue: &Arc<DownQueue<i32>>, n: i32) -> tokio::task::JoinHandle<Result<(), i32>> {
    let queue = Arc::clone(queue);
    tokio::spawn(async move { queue.send(n).await })
}

#[test]
fn bounded_fifo_and_closed_gives_messages_back() {
    let queue = DownQueue::new(2);
    assert!(queue.try_send(1).is_ok());
    assert!(queue.try_send(2).is_ok());
    assert!(matches!(queue.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.try_recv(), Some(1));
    assert!(queue.try_send(3).is_ok());
    queue.close();
    assert!(matches!(queue.try_send(4), Err(TrySendError::Ended(4))));
    // What was queued before the close is still received, in order, then the end.
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(2)));
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(3)));
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));
}

#[test]
fn a_queue_closed_with_nothing_left_stays_ended() {
    let queue = DownQueue::new(2);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    // The receiver waits with its waker stored, then closes the queue itself.
    assert_eq!(queue.poll_recv(&mut cx), Poll::Pending);
    assert!(queue.close(), "nothing left to receive");
    assert!(
        queue.state().receiver.is_none(),
        "the receiver's waker is let go"
    );
    assert!(matches!(queue.try_send(1), Err(TrySendError::Ended(1))));
    assert!(queue.is_empty());
    assert_eq!(queue.try_recv(), None);
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));
    // The receiver goes: nothing is left to do, and the queue stays ended.
    queue.close_for_good();
    assert!(queue.close());
    assert!(matches!(queue.try_send(2), Err(TrySendError::Ended(2))));
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));
}

#[test]
fn a_held_place_delivers_after_a_close_and_gives_the_message_back_once_the_receiver_went() {
    let queue = DownQueue::new(2);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let permit = block_on(queue.reserve()).expect("open");
    assert!(!queue.close(), "a place is held: the end is not reached");
    // Taken before the close, the place still delivers.
    assert_eq!(permit.send(1), Ok(()));
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));

    let queue = DownQueue::new(2);
    let permit = block_on(queue.reserve()).expect("open");
    // The receiver goes (an abort) while the place is held: the message comes back
    // instead of being dropped with no one told.
    queue.close_for_good();
    assert_eq!(permit.send(2), Err(2));
    assert!(queue.is_empty());
}

#[test]
fn a_large_buffer_is_given_back_once_drained() {
    let queue = DownQueue::new(100_000);
    for n in 0..5_000 {
        queue.try_send(n).expect("room");
    }
    assert!(queue.state().items.capacity() >= 5_000);
    for n in 0..5_000 {
        assert_eq!(queue.try_recv(), Some(n));
    }
    assert!(queue.state().items.capacity() <= KEEP_BUFFER);
    // The same through the receiver's batch: the burst goes into it, and its large buffer
    // is given back once handed out.
    let mut batch = Batch::default();
    for n in 0..5_000 {
        queue.try_send(n).expect("room");
    }
    for n in 0..5_000 {
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(n));
    }
    assert!(batch.buffer() <= KEEP_BUFFER);
    assert!(queue.state().items.capacity() <= KEEP_BUFFER);
    // Small buffers are kept: the queue's and the batch's change places, and a thread with
    // the default capacity never reallocates once both were used.
    let small = DownQueue::new(64);
    let mut batch = Batch::default();
    for _ in 0..2 {
        small.try_send(1).expect("room");
        small.try_send(2).expect("room");
        assert_eq!(small.try_recv_sampled(&mut batch, |_| {}), Some(1));
        assert_eq!(small.try_recv_sampled(&mut batch, |_| {}), Some(2));
    }
    assert!(small.state().items.capacity() > 0);
    assert!(batch.buffer() > 0);
}

/// A loop over a queue that never waits (it always has a message, or always room)
/// still lets the other tasks of its worker run, as tokio's channels do.
#[test]
fn a_busy_queue_spends_the_cooperative_budget() {
    for receive in [true, false] {
        let other_ran = block_on(async {
            let other_ran = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&other_ran);
            tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
            let queue = DownQueue::new(4);
            for n in 0..10_000 {
                if receive {
                    queue.try_send(n).expect("room");
                    poll_fn(|cx| queue.poll_recv(cx)).await.expect("a message");
                } else {
                    queue.send(n).await.expect("open");
                    queue.try_recv().expect("a message");
                }
            }
            other_ran.load(Ordering::SeqCst)
        });
        assert!(other_ran, "the other task ran (receiving: {receive})");
    }
}

#[test]
fn waiting_senders_go_in_arrival_order_and_a_later_one_cannot_overtake() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(1));
        queue.try_send(0).expect("room for one");
        let mut waiting = Vec::new();
        for n in 1..=3 {
            waiting.push(sender(&queue, n));
            tokio::task::yield_now().await;
        }
        // A place is freed: promised to sender 1, so a try_send cannot take it.
        assert_eq!(queue.try_recv(), Some(0));
        assert!(matches!(queue.try_send(99), Err(TrySendError::Full(99))));
        let mut got = Vec::new();
        while got.len() < 3 {
            // The woken sender runs and takes its place; then the next is promised one.
            tokio::task::yield_now().await;
            while let Some(n) = queue.try_recv() {
                got.push(n);
            }
        }
        assert_eq!(got, [1, 2, 3]);
        for w in waiting {
            assert_eq!(w.await.expect("no panic"), Ok(()));
        }
    });
}

#[test]
fn a_sender_that_gives_up_passes_its_promise_on() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(1));
        queue.try_send(0).expect("room for one");
        let first = sender(&queue, 1);
        tokio::task::yield_now().await;
        let second = sender(&queue, 2);
        tokio::task::yield_now().await;
        // The place is promised to the first, which is dropped before it takes it.
        assert_eq!(queue.try_recv(), Some(0));
        first.abort();
        assert!(first.await.is_err(), "aborted");
        assert_eq!(second.await.expect("no panic"), Ok(()), "promised on");
        assert_eq!(queue.try_recv(), Some(2));
    });
}

/// A send whose turn came (a place was promised to it) but that is dropped, or gives up,
/// before it runs again has sent nothing, as a dropped send of a tokio channel: the place
/// goes to the next in line.
#[test]
fn a_send_dropped_when_its_turn_came_has_sent_nothing() {
    block_on(async {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let queue = Arc::new(DownQueue::new(1));
        queue.try_send(0).expect("room for one");
        let mut first = queue.send(1);
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        let second = sender(&queue, 2);
        tokio::task::yield_now().await;
        assert_eq!(queue.try_recv(), Some(0));
        assert!(matches!(queue.try_send(9), Err(TrySendError::Full(9))));
        drop(first);
        assert_eq!(second.await.expect("no panic"), Ok(()));
        assert_eq!(queue.try_recv(), Some(2));
        assert_eq!(queue.try_recv(), None, "1 was never sent");
        // Taken back after its turn came: the message comes back, the place is free.
        queue.try_send(5).expect("room");
        let mut sending = queue.send(6);
        assert!(Pin::new(&mut sending).poll(&mut cx).is_pending());
        assert_eq!(queue.try_recv(), Some(5));
        assert_eq!(sending.take_back(), Some(6));
        assert_eq!(queue.try_recv(), None);
        assert!(queue.try_send(7).is_ok(), "its place was given back");
    });
}

#[test]
fn a_close_wakes_waiting_senders_with_their_messages() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(1));
        queue.try_send(0).expect("room for one");
        let waiting = sender(&queue, 7);
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(waiting.await.expect("no panic"), Err(7));
    });
}

#[test]
fn many_senders_on_many_threads_lose_nothing() {
    let four_workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build();
    four_workers.expect("a runtime").block_on(async {
        const SENDERS: usize = 8;
        const EACH: usize = 2_000;
        let queue = Arc::new(DownQueue::new(2));
        let sent = Arc::new(AtomicUsize::new(0));
        for s in 0..SENDERS {
            let queue = Arc::clone(&queue);
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let v = s * EACH + i;
                    // Half wait, half retry `try_send`: both paths race.
                    if s % 2 == 0 {
                        queue.send(v).await.expect("open");
                    } else {
                        let mut v = v;
                        loop {
                            match queue.try_send(v) {
                                Ok(()) => break,
                                Err(e) => v = e.into_inner(),
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut seen = vec![false; SENDERS * EACH];
        let mut batch = Batch::default();
        for _ in 0..SENDERS * EACH {
            let v = poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {}))
                .await
                .expect("open while messages come");
            assert!(!seen[v], "{v} arrived twice");
            seen[v] = true;
            assert!(queue.len() <= 2, "never more than the capacity queued");
        }
        assert!(seen.iter().all(|s| *s), "every message arrived");
    });
}

#[test]
fn held_places_keep_senders_waiting_until_released() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(2));
        let mut batch = Batch::default();
        queue.try_send(1).unwrap();
        queue.try_send(2).unwrap();
        // Taken, but their places stay held: the queue is still full.
        assert_eq!(
            poll_fn(|cx| queue.poll_recv_held(&mut batch, cx)).await,
            Some(1)
        );
        assert_eq!(queue.try_recv_held(&mut batch), Some(2));
        assert_eq!(queue.try_recv_held(&mut batch), None);
        assert_eq!(queue.held(), 2);
        assert!(matches!(queue.try_send(3), Err(TrySendError::Full(3))));
        let waiting = sender(&queue, 3);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // One place freed: the waiting sender gets it, and the queue is full again.
        queue.release_held(1);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert!(matches!(queue.try_send(4), Err(TrySendError::Full(4))));
        // Releasing more than is held frees what is held, no more.
        queue.release_held(5);
        assert_eq!(queue.held(), 0);
        assert!(queue.try_send(4).is_ok());
        assert!(matches!(queue.try_send(5), Err(TrySendError::Full(5))));
        // A closed queue ends once empty, whatever is held.
        assert_eq!(
            poll_fn(|cx| queue.poll_recv_held(&mut batch, cx)).await,
            Some(3)
        );
        queue.close();
        assert_eq!(
            poll_fn(|cx| queue.poll_recv_held(&mut batch, cx)).await,
            Some(4)
        );
        assert_eq!(
            poll_fn(|cx| queue.poll_recv_held(&mut batch, cx)).await,
            None
        );
    });
}

/// Counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_receiver_that_takes_the_last_message_is_woken_by_the_next() {
    let queue = DownQueue::new(4);
    let count = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&count));
    let mut cx = Context::from_waker(&waker);
    queue.try_send(1).expect("room");
    queue.try_send(2).expect("room");
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(1)));
    // Not the last: the receiver does not wait yet, and a send does not wake it.
    queue.try_send(3).expect("room");
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert_eq!(queue.try_recv(), Some(2));
    // The last one: from now on the receiver waits, and looking again finds nothing.
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(3)));
    assert_eq!(queue.try_recv(), None);
    assert_eq!(queue.poll_recv(&mut cx), Poll::Pending);
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    queue.try_send(4).expect("room");
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "woken by the next message"
    );
    assert_eq!(queue.try_recv(), Some(4));
    // A close after the last message is seen too.
    queue.try_send(5).expect("room");
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(5)));
    queue.close();
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));
}

#[test]
fn a_waiting_receiver_sees_its_queue_empty_until_a_message_comes() {
    let queue = DownQueue::new(4);
    let count = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&count));
    let mut cx = Context::from_waker(&waker);
    assert!(queue.is_empty());
    queue.try_send(1).expect("room");
    assert!(!queue.is_empty(), "a message before the receiver waits");
    // Taking the last message, the receiver begins to wait: empty, without a lock.
    assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(1)));
    assert!(queue.is_empty());
    queue.try_send(2).expect("room");
    assert!(!queue.is_empty(), "a message while the receiver waits");
    assert_eq!(queue.try_recv(), Some(2));
    assert!(queue.is_empty());
    assert_eq!(queue.poll_recv(&mut cx), Poll::Pending);
    assert!(queue.is_empty());
    queue.try_send(3).expect("room");
    queue.close();
    assert!(
        !queue.is_empty(),
        "what is queued at the close is still there"
    );
}

/// A multi-thread runtime with four workers, so senders and the receiver run at once.
fn four_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("a runtime")
}

/// Sends `msg`, giving up (dropping the send unpolled) once it has been woken `patience`
/// times without getting in; whether it got in.
async fn send_or_give_up<D>(queue: &DownQueue<D>, msg: D, patience: usize) -> bool {
    let mut sending = queue.send(msg);
    let mut woken = 0;
    poll_fn(|cx| {
        if woken == patience {
            return Poll::Ready(false);
        }
        match Pin::new(&mut sending).poll(cx) {
            Poll::Ready(sent) => Poll::Ready(sent.is_ok()),
            Poll::Pending => {
                woken += 1;
                Poll::Pending
            }
        }
    })
    .await
}

/// Many senders on a multi-thread runtime, each waiting for room in a small queue and
/// some giving up when their turn comes: every message sent arrives once, each sender's
/// in the order sent, none given up arrives, and the queue never holds more than its
/// capacity.
#[test]
fn many_senders_giving_up_on_many_workers_keep_order_and_bounds() {
    four_workers().block_on(async {
        const SENDERS: usize = 16;
        const EACH: usize = 3_000;
        const CAPACITY: usize = 4;
        const END: usize = usize::MAX;
        let queue = Arc::new(DownQueue::new(CAPACITY));
        let mut tasks = Vec::new();
        for s in 0..SENDERS {
            let queue = Arc::clone(&queue);
            tasks.push(tokio::spawn(async move {
                let mut given_up = 0;
                for i in 0..EACH {
                    // Senders of odd numbers give up now and then, after 1 to 3 wake-ups.
                    let patience = if s % 2 == 1 && i % 7 == 0 {
                        1 + i % 3
                    } else {
                        usize::MAX
                    };
                    if !send_or_give_up(&queue, (s, i), patience).await {
                        given_up += 1;
                    }
                }
                queue.send((s, END)).await.expect("open");
                given_up
            }));
        }
        let mut next = [0; SENDERS];
        let mut got = [0; SENDERS];
        let mut ended = 0;
        let mut batch = Batch::default();
        while ended < SENDERS {
            let (s, i) = poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {}))
                .await
                .expect("open while messages come");
            assert!(
                queue.len() <= CAPACITY,
                "never more than the capacity queued"
            );
            if i == END {
                ended += 1;
                continue;
            }
            assert!(i >= next[s], "sender {s}'s messages in order");
            next[s] = i + 1;
            got[s] += 1;
        }
        for (s, task) in tasks.into_iter().enumerate() {
            let given_up = task.await.expect("a sender ends");
            assert_eq!(
                got[s] + given_up,
                EACH,
                "sender {s}: each message in or given up"
            );
        }
        assert_eq!(queue.try_recv(), None);
        for _ in 0..CAPACITY {
            assert!(queue.try_send((0, 0)).is_ok(), "every place given back");
        }
    });
}

/// Senders racing a close on a multi-thread runtime: each message is either received or
/// given back to its sender, never both and never neither.
#[test]
fn a_close_among_waiting_senders_loses_nothing() {
    let runtime = four_workers();
    for round in 0..20 {
        runtime.block_on(async {
            const SENDERS: usize = 8;
            let queue = Arc::new(DownQueue::new(2));
            let back = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for s in 0..SENDERS {
                let queue = Arc::clone(&queue);
                let back = Arc::clone(&back);
                tasks.push(tokio::spawn(async move {
                    let mut sent = 0;
                    for i in 0.. {
                        if queue.send(s * 1_000_000 + i).await.is_err() {
                            back.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        sent += 1;
                    }
                    sent
                }));
            }
            let mut got = 0;
            let mut batch = Batch::default();
            while got < 200 + round * 50 {
                poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {}))
                    .await
                    .expect("open");
                got += 1;
            }
            queue.close();
            while poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {}))
                .await
                .is_some()
            {
                got += 1;
            }
            let mut sent = 0;
            for task in tasks {
                sent += task.await.expect("a sender ends");
            }
            assert_eq!(got, sent, "every accepted message was received");
            assert_eq!(
                back.load(Ordering::SeqCst),
                SENDERS,
                "every sender was told"
            );
        });
    }
}

/// The receiver takes everything queued in one go; each message's place stays taken until
/// it is handed out (for `try_send`), and the place of the one it takes with the batch goes
/// to a waiting sender at once.
#[test]
fn a_batch_frees_its_places_one_message_at_a_time() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(3));
        let mut batch = Batch::default();
        for n in 1..=3 {
            queue.try_send(n).expect("room");
        }
        let waiting = sender(&queue, 4);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "full: it waits");
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
        assert!(!batch.is_empty(), "2 and 3 went into the batch");
        assert_eq!(queue.len(), 2, "the messages in the batch are counted");
        assert!(
            matches!(queue.try_send(9), Err(TrySendError::Full(9))),
            "the freed place is the waiting sender's"
        );
        assert_eq!(waiting.await.expect("no panic"), Ok(()), "it got the place");
        assert_eq!(queue.len(), 3);
        // 2 is handed out from the batch, with nobody waiting: its place is free at once to
        // `try_send`.
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(2));
        assert!(queue.try_send(5).is_ok(), "the place of 2 is free");
        assert!(matches!(queue.try_send(9), Err(TrySendError::Full(9))));
        let got: Vec<_> =
            std::iter::from_fn(|| queue.try_recv_sampled(&mut batch, |_| {})).collect();
        assert_eq!(got, [3, 4, 5], "in order, batch first");
        assert!(batch.is_empty());
        for n in 0..3 {
            assert!(queue.try_send(n).is_ok(), "every place given back");
        }
    });
}

/// A sender waiting for room gets the place of a message handed out of the batch once the
/// receiver gives the places back (here, as it looks for more).
#[test]
fn a_place_freed_from_the_batch_goes_to_the_waiting_sender() {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let queue = DownQueue::new(2);
    let mut batch = Batch::default();
    queue.try_send(1).expect("room");
    queue.try_send(2).expect("room");
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
    // 2 in the batch, its place taken; one place is free again (1 was handed out).
    assert!(queue.try_send(3).is_ok());
    let mut sending = queue.send(4);
    assert!(Pin::new(&mut sending).poll(&mut cx).is_pending(), "full");
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(2));
    assert!(
        Pin::new(&mut sending).poll(&mut cx).is_pending(),
        "the place of 2 is not given back yet"
    );
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(3));
    assert!(
        Pin::new(&mut sending).poll(&mut cx).is_ready(),
        "the place of 2 went to the waiting sender"
    );
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(4));
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), None);
}

/// A place freed as a message is handed out of the batch is free at once to `try_send`,
/// which cannot wait; a `send` that finds the queue full waits for the receiver to give the
/// places back, and is then promised one.
#[test]
fn a_place_handed_out_is_free_to_try_send_at_once_and_to_send_once_given_back() {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let queue = DownQueue::new(3);
    let mut batch = Batch::default();
    for n in 1..=3 {
        queue.try_send(n).expect("room");
    }
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(2));
    assert_eq!(queue.len(), 1, "only 3 is left");
    assert!(queue.try_send(4).is_ok(), "the place of 1");
    assert!(queue.try_send(5).is_ok(), "the place of 2, handed out");
    assert!(
        matches!(queue.try_send(6), Err(TrySendError::Full(6))),
        "no place is taken twice"
    );
    assert_eq!(queue.len(), 3);
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(3));
    let mut sending = queue.send(6);
    assert!(
        Pin::new(&mut sending).poll(&mut cx).is_pending(),
        "a send waits for the place of 3 to be given back"
    );
    assert!(
        matches!(queue.try_send(7), Err(TrySendError::Full(7))),
        "a try_send does not take it from the waiting sender"
    );
    queue.give_back(&mut batch);
    assert!(
        Pin::new(&mut sending).poll(&mut cx).is_ready(),
        "promised the place of 3"
    );
    assert_eq!(queue.len(), 3);
    let got: Vec<_> = std::iter::from_fn(|| queue.try_recv_sampled(&mut batch, |_| {})).collect();
    assert_eq!(got, [4, 5, 6]);
    for n in 0..3 {
        assert!(queue.try_send(n).is_ok(), "every place given back");
    }
}

/// Places freed as messages are handed out of a batch while senders wait are promised to
/// them once the receiver looks for more, or before its task waits (`give_back`), in the
/// order the senders came.
#[test]
fn places_freed_from_a_batch_while_senders_wait_are_theirs_once_given_back() {
    block_on(async {
        let queue = Arc::new(DownQueue::new(4));
        let mut batch = Batch::default();
        for n in 1..=4 {
            queue.try_send(n).expect("room");
        }
        let first = sender(&queue, 5);
        tokio::task::yield_now().await;
        let second = sender(&queue, 6);
        tokio::task::yield_now().await;
        let third = sender(&queue, 7);
        tokio::task::yield_now().await;
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
        assert_eq!(
            first.await.expect("no panic"),
            Ok(()),
            "taken with the batch"
        );
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(2));
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "owed, not promised yet");
        assert!(matches!(queue.try_send(9), Err(TrySendError::Full(9))));
        queue.give_back(&mut batch);
        assert_eq!(
            second.await.expect("no panic"),
            Ok(()),
            "promised as the receiver waits"
        );
        assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(3));
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "owed, not promised yet");
        assert_eq!(
            queue.try_recv_sampled(&mut batch, |_| {}),
            Some(4),
            "the last"
        );
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "owed, not promised yet");
        assert_eq!(
            queue.try_recv_sampled(&mut batch, |_| {}),
            Some(5),
            "the receiver looks for more"
        );
        assert_eq!(
            third.await.expect("no panic"),
            Ok(()),
            "promised as the receiver looked for more"
        );
        let got: Vec<_> =
            std::iter::from_fn(|| queue.try_recv_sampled(&mut batch, |_| {})).collect();
        assert_eq!(got, [6, 7], "in the order the senders came");
    });
}

/// A close with messages in the receiver's batch leaves them to be received: the queue is
/// not drained until the batch is.
#[test]
fn a_close_leaves_the_batch_to_be_received() {
    block_on(async {
        let queue = DownQueue::new(4);
        let mut batch = Batch::default();
        for n in 1..=3 {
            queue.try_send(n).expect("room");
        }
        assert_eq!(
            poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {})).await,
            Some(1)
        );
        assert!(!queue.close(), "2 and 3 are left, in the batch");
        assert!(matches!(queue.try_send(9), Err(TrySendError::Ended(9))));
        let mut rest = Vec::new();
        while let Some(n) = poll_fn(|cx| queue.poll_recv_sampled(&mut batch, cx, |_| {})).await {
            rest.push(n);
        }
        assert_eq!(rest, [2, 3]);
    });
}

/// A message taken out of the batch to be held keeps its place until released.
#[test]
fn a_held_message_from_the_batch_keeps_its_place() {
    let queue = DownQueue::new(2);
    let mut batch = Batch::default();
    queue.try_send(1).expect("room");
    queue.try_send(2).expect("room");
    assert_eq!(queue.try_recv_sampled(&mut batch, |_| {}), Some(1));
    assert_eq!(queue.try_recv_held(&mut batch), Some(2), "from the batch");
    assert_eq!(queue.held(), 1);
    assert_eq!(queue.len(), 0);
    assert!(queue.try_send(3).is_ok(), "the place of 1 is free");
    assert!(
        matches!(queue.try_send(4), Err(TrySendError::Full(4))),
        "the place of 2 is held"
    );
    queue.release_held(1);
    assert!(queue.try_send(4).is_ok());
}

/// A capacity beyond what the queue counts is taken as the largest it does.
#[test]
fn a_huge_capacity_is_clamped() {
    let queue: DownQueue<u8> = DownQueue::new(usize::MAX);
    assert_eq!(queue.capacity(), MAX_CAPACITY);
    assert!(queue.try_send(1).is_ok());
}

/// Receives what is queued through a batch, the way the loop does: each message with the
/// time it was queued, if it was sampled.
#[cfg(feature = "watch")]
fn receive_sampled(queue: &DownQueue<i32>, batch: &mut Batch<i32>) -> Vec<(i32, Option<Instant>)> {
    let mut got = Vec::new();
    loop {
        let mut stamp = None;
        let Some(msg) = queue.try_recv_sampled(batch, |queued| stamp = Some(queued)) else {
            return got;
        };
        got.push((msg, stamp));
    }
}

/// A watched queue (recording must be on) that stamps one message in `every`, with 0
/// queued (the first put counts the queue in, unstamped), then `1..=n`, one a millisecond
/// after the other. Returns the time `ms(k)` says message `k` was queued at.
#[cfg(feature = "watch")]
async fn watched_burst(every: u64, n: i32) -> (DownQueue<i32>, impl Fn(u64) -> Option<Instant>) {
    let queue = DownQueue::new(64);
    queue.try_send(0).expect("room");
    queue.sample_every(every);
    let start = Instant::now();
    for k in 1..=n {
        tokio::time::advance(Duration::from_millis(1)).await;
        queue.try_send(k).expect("room");
    }
    (queue, move |k| Some(start + Duration::from_millis(k)))
}

/// While watched, a burst is taken into the receiver's batch at once, and each sampled
/// message of it is told when it was queued as it is handed out, not before.
#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn a_burst_taken_at_once_keeps_the_stamps_of_its_sampled_messages() {
    let _recording = crate::record::Recording::start();
    // One message in two stamped: the second put, the fourth, ...
    let (queue, ms) = watched_burst(2, 8).await;
    let mut batch = Batch::default();
    assert_eq!(
        queue.try_recv_sampled(&mut batch, |_| panic!("not sampled")),
        Some(0)
    );
    assert_eq!(
        queue.batched.load(Ordering::Relaxed),
        8,
        "the rest taken at once"
    );
    assert_eq!(
        receive_sampled(&queue, &mut batch),
        [
            (1, ms(1)),
            (2, None),
            (3, ms(3)),
            (4, None),
            (5, ms(5)),
            (6, None),
            (7, ms(7)),
            (8, None),
        ]
    );

    // A second burst, whose first message (handed out as the batch is taken) is sampled.
    for n in 9..=12 {
        tokio::time::advance(Duration::from_millis(1)).await;
        queue.try_send(n).expect("room");
    }
    assert_eq!(
        receive_sampled(&queue, &mut batch),
        [(9, ms(9)), (10, None), (11, ms(11)), (12, None)]
    );
}

/// A message held from the batch (a proxy's) tells no stamp, and the sampled messages after
/// it still tell theirs.
#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn a_held_message_from_the_batch_passes_its_stamp_by() {
    let _recording = crate::record::Recording::start();
    let (queue, ms) = watched_burst(1, 3).await;
    let mut batch = Batch::default();
    let mut first = None;
    assert_eq!(
        queue.try_recv_sampled(&mut batch, |queued| first = Some(queued)),
        Some(0)
    );
    assert_eq!(first, None, "put before the stamps were kept");
    assert_eq!(queue.try_recv_held(&mut batch), Some(1));
    assert_eq!(
        receive_sampled(&queue, &mut batch),
        [(2, ms(2)), (3, ms(3))]
    );
}

/// Stamps first kept with messages queued already (put before anyone watched) count those
/// in below zero: the stamps of a burst taken across that start still go to their own
/// messages.
#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn stamps_counted_from_below_zero_go_to_their_own_messages() {
    let _recording = crate::record::Recording::start();
    let queue = DownQueue::new(64);
    let mut batch = Batch::default();
    queue.try_send(0).expect("room");
    queue.try_send(1).expect("room");
    // As if 0 and 1 had been put before anyone watched.
    queue.state().stamps = None;
    // Counts 0 and 1 in: the first message taken is numbered two below the first put.
    queue.try_send(2).expect("room");
    queue.sample_every(1);
    let start = Instant::now();
    for n in 3..=4 {
        tokio::time::advance(Duration::from_millis(1)).await;
        queue.try_send(n).expect("room");
    }
    let ms = |n: u64| Some(start + Duration::from_millis(n - 2));
    assert_eq!(
        receive_sampled(&queue, &mut batch),
        [(0, None), (1, None), (2, None), (3, ms(3)), (4, ms(4))]
    );
}
