//! The relay's delivery bookkeeping without the network: a frame's shared `Delivery`
//! state, a websocket sub's `Outbox`, and the reconnection `Backoff`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use taskthread_examples::relay::backoff::Backoff;
use taskthread_examples::relay::outbox::Outbox;
use taskthread_examples::relay::{Frame, RelayStats};

fn frame(stats: &Arc<RelayStats>, seq: u64) -> Frame {
    let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    Frame::received(client, seq, Bytes::from(vec![seq as u8; 10]), stats)
}

/// A frame received and put on its way to `destinations` destinations.
fn frame_to(stats: &Arc<RelayStats>, destinations: usize) -> Frame {
    let frame = frame(stats, stats.received() + 1);
    frame.delivery.open(destinations);
    frame
}

/// (forwarded, undelivered, in flight)
fn counts(stats: &RelayStats) -> (u64, u64, u64) {
    (
        stats.forwarded(),
        stats.undelivered(),
        stats.frames_in_flight(),
    )
}

#[test]
fn a_frame_is_forwarded_once_every_destination_confirms_it() {
    let stats = Arc::new(RelayStats::new());
    let f = frame_to(&stats, 3);
    let copies = [f.clone(), f.clone(), f];
    copies[0].delivery.delivered();
    copies[1].delivery.delivered();
    assert_eq!(counts(&stats), (0, 0, 1));
    copies[2].delivery.delivered();
    assert_eq!(counts(&stats), (1, 0, 0));
    assert_eq!(stats.confirmed(), 3);
}

#[test]
fn a_frame_lost_by_any_destination_is_undelivered_once() {
    let stats = Arc::new(RelayStats::new());
    let f = frame_to(&stats, 3);
    f.delivery.lost();
    f.delivery.delivered();
    f.delivery.lost();
    assert_eq!(counts(&stats), (0, 1, 0));
}

#[test]
fn a_frame_with_no_destination_is_forwarded_at_once() {
    let stats = Arc::new(RelayStats::new());
    frame_to(&stats, 0);
    assert_eq!(counts(&stats), (1, 0, 0));
}

#[test]
fn a_frame_dropped_before_every_destination_settled_counts_as_lost() {
    let stats = Arc::new(RelayStats::new());
    let f = frame_to(&stats, 2);
    f.delivery.delivered();
    drop(f); // the other destination failed with the frame in its queue
    assert_eq!(counts(&stats), (0, 1, 0));

    // A frame never put on its way (it did not reach the websocket side) is no concern
    // of the delivery: `lost = received - min(forwarded, stored)` counts it.
    drop(frame(&stats, 2));
    assert_eq!(counts(&stats), (0, 1, 0));
}

/// An outbox holding up to `frames` of the 10-byte frames above.
fn outbox(stats: &Arc<RelayStats>, frames: usize) -> Outbox {
    Outbox::new("ws://test/", frames * 10, Arc::clone(stats))
}

#[test]
fn a_full_outbox_drops_the_oldest_as_lost_and_abandoning_settles_the_rest() {
    let stats = Arc::new(RelayStats::new());
    let mut outbox = outbox(&stats, 4);
    for _ in 0..10 {
        outbox.push(frame_to(&stats, 1));
    }
    assert_eq!((outbox.len(), outbox.dropped()), (4, 6));
    assert_eq!(counts(&stats), (0, 6, 4));
    assert!(outbox.is_lagging());

    // A link breaking with nothing confirmed changes nothing: the frames wait.
    outbox.requeue();
    assert_eq!(outbox.len(), 4);
    assert_eq!(outbox.abandon(), 4);
    assert!(outbox.is_empty());
    assert_eq!(counts(&stats), (0, 10, 0));
    assert_eq!((outbox.dropped(), stats.ws_dropped()), (10, 10));
}

#[test]
fn pongs_that_are_not_the_outboxs_confirm_nothing() {
    let stats = Arc::new(RelayStats::new());
    let mut outbox = outbox(&stats, 4);
    outbox.push(frame_to(&stats, 1));
    outbox.confirm(b"hello");
    outbox.confirm(&5u64.to_be_bytes()); // nothing was written: nothing to confirm
    assert_eq!((outbox.len(), outbox.delivered()), (1, 0));
    assert_eq!(counts(&stats), (0, 0, 1));
}

#[test]
fn backoff_doubles_up_to_its_maximum_and_resets() {
    let ms = Duration::from_millis;
    let mut backoff = Backoff::new(ms(20), ms(200));
    let waits: Vec<_> = (0..6).map(|_| backoff.next_wait()).collect();
    assert_eq!(waits, [ms(20), ms(40), ms(80), ms(160), ms(200), ms(200)]);
    backoff.reset();
    assert_eq!(backoff.next_wait(), ms(20));
}
