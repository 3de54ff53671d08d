//! The relay's wire protocol: the frame decoder rebuilds the same frames from any split of
//! a valid byte stream, and rejects oversized and truncated input. Also the command line's
//! size and duration parsers.

use bytes::BytesMut;
use proptest::prelude::*;
use taskthread_examples::relay::frame::{
    Checksum, FrameDecoder, FrameError, GREETING, HEADER_LEN, encode, greeting,
};
use taskthread_examples::relay::units::{parse_duration, parse_size};

/// Encodes frames back to back.
fn wire(frames: &[Vec<u8>]) -> BytesMut {
    let mut out = BytesMut::new();
    for f in frames {
        encode(f, &mut out);
    }
    out
}

/// Feeds `bytes` cut at `cuts` (sorted or not) and collects the frames.
fn decode_split(bytes: &[u8], cuts: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    for pair in cuts.windows(2) {
        decoder.push(&bytes[pair[0]..pair[1]]);
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame.to_vec());
        }
    }
    decoder.finish()?;
    Ok(frames)
}

proptest! {
    #[test]
    fn any_split_gives_back_the_same_frames(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = wire(&frames);
        prop_assert_eq!(decode_split(&bytes, &cuts, 300).unwrap(), frames);
    }

    #[test]
    fn packets_pushed_before_the_frames_are_taken_give_back_the_same_frames(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        takes in prop::collection::vec(any::<bool>(), 0..40),
    ) {
        // Frames are taken only after some of the packets, the rest at the end.
        let bytes = wire(&frames);
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (bytes.len() + 1)).collect();
        cuts.extend([0, bytes.len()]);
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new(300);
        let mut got = Vec::new();
        for (i, pair) in cuts.windows(2).enumerate() {
            decoder.push(&bytes[pair[0]..pair[1]]);
            if takes.get(i).copied().unwrap_or(false) {
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame.to_vec());
                }
            }
        }
        while let Some(frame) = decoder.next_frame().unwrap() {
            got.push(frame.to_vec());
        }
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn byte_by_byte_gives_back_the_same_frames(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let bytes = wire(&frames);
        let cuts: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(decode_split(&bytes, &cuts, 64).unwrap(), frames);
    }

    #[test]
    fn oversized_lengths_are_rejected(
        max in 0usize..100_000,
        excess in 1u64..1_000_000,
        cut in 0usize..4,
    ) {
        let len = (max as u64 + excess).min(u64::from(u32::MAX));
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"whatever follows");
        let err = decode_split(&bytes, &[cut], max).unwrap_err();
        prop_assert_eq!(err, FrameError::TooLong { len, max });
    }

    #[test]
    fn truncated_streams_are_rejected(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..10),
        cut in any::<usize>(),
    ) {
        let bytes = wire(&frames);
        // Cut strictly inside the last frame.
        let last = HEADER_LEN + frames.last().unwrap().len();
        let start = bytes.len() - last;
        let end = start + 1 + cut % (last - 1);
        let err = decode_split(&bytes[..end], &[], 100).unwrap_err();
        let len = (end - start >= HEADER_LEN).then(|| frames.last().unwrap().len() as u64);
        prop_assert_eq!(err, FrameError::Truncated { buffered: end - start, len });
    }
}

#[test]
fn a_frame_exactly_at_the_limit_is_accepted() {
    let bytes = wire(&[vec![7; 1000]]);
    assert_eq!(
        decode_split(&bytes, &[3, 500], 1000).unwrap(),
        [vec![7; 1000]]
    );
    let err = decode_split(&bytes, &[], 999).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLong {
            len: 1000,
            max: 999
        }
    );
}

#[test]
fn the_decoder_stays_in_error_after_a_bad_length() {
    let mut decoder = FrameDecoder::new(10);
    decoder.push(&100u32.to_be_bytes());
    assert!(decoder.next_frame().is_err());
    decoder.push(&wire(&[b"ok".to_vec()]));
    assert!(
        decoder.next_frame().is_err(),
        "the stream cannot be resynchronised"
    );
}

#[test]
fn garbage_reads_as_an_oversized_length() {
    let mut decoder = FrameDecoder::new(16 << 20);
    decoder.push(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n");
    let err = decoder.next_frame().unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLong {
            len: u64::from(u32::from_be_bytes(*b"GET ")),
            max: 16 << 20
        }
    );
    assert!(err.to_string().contains("garbage"), "{err}");
}

#[test]
fn errors_say_what_happened() {
    let truncated = FrameError::Truncated {
        buffered: 10,
        len: Some(100),
    };
    assert_eq!(
        truncated.to_string(),
        "the stream ended in the middle of a frame: 6 of its 100 payload bytes had arrived, \
         10 bytes discarded"
    );
    let header = FrameError::Truncated {
        buffered: 2,
        len: None,
    };
    assert_eq!(
        header.to_string(),
        "the stream ended in the middle of a length prefix: 2 bytes discarded"
    );
}

#[test]
fn the_greeting_is_the_original_json_framed() {
    let g = greeting();
    assert_eq!(&g[..4], &(GREETING.len() as u32).to_be_bytes());
    assert_eq!(&g[4..], br#"{"message": "hello!"}"#);
}

#[test]
fn checksums_ignore_order_but_not_content() {
    let mut a = Checksum::default();
    a.add(b"one");
    a.add(b"two");
    let mut b = Checksum::of(b"two");
    b.merge(Checksum::of(b"one"));
    assert_eq!(a, b);
    assert_ne!(a, {
        let mut c = Checksum::of(b"one");
        c.add(b"twO");
        c
    });
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("64k"), Ok(65536));
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
    assert_eq!(parse_size("512B"), Ok(512));
}

#[test]
fn bad_sizes_are_rejected_with_a_reason() {
    assert!(
        parse_size("")
            .unwrap_err()
            .contains("does not start with a number")
    );
    assert!(
        parse_size("KiB")
            .unwrap_err()
            .contains("does not start with a number")
    );
    assert!(
        parse_size("-1")
            .unwrap_err()
            .contains("does not start with a number")
    );
    assert!(
        parse_size("12 parsecs")
            .unwrap_err()
            .contains("unknown size unit")
    );
    assert!(
        parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large")
    );
    assert!(
        parse_size("99999999999GiB")
            .unwrap_err()
            .contains("too large")
    );
}

#[test]
fn durations_parse_with_units() {
    use std::time::Duration;
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
}

#[test]
fn bad_durations_are_rejected_with_a_reason() {
    assert!(
        parse_duration("soon")
            .unwrap_err()
            .contains("does not start with a number")
    );
    assert!(
        parse_duration("1.5s")
            .unwrap_err()
            .contains("unknown duration unit")
    );
    assert!(
        parse_duration("3 fortnights")
            .unwrap_err()
            .contains("unknown duration unit")
    );
}
