//! The wire protocol, compatible with the original TaskThread streaming example.
//!
//! Everything on the wire is a *frame*: a 4-byte big-endian length, then that many bytes of
//! payload. On connect the server sends one greeting frame holding the UTF-8 JSON
//! [`GREETING`]; the client then streams frames. TCP delivers them split and merged
//! arbitrarily; [`FrameDecoder`] puts them back together.
//!
//! # Receipts
//!
//! With acknowledgements on (`relay serve --ack`), the server writes to the client, after
//! each database commit that stored some of its frames, an *acknowledgement*: a 4-byte
//! big-endian count of the client's frames stored so far, counted from its first frame
//! (modulo 2^32; see [`ack`]). Frames 1 to N of the client are then committed to the
//! database. Counts only grow, one per commit at most, so a client may see 12 after 5; the
//! last count comes before the server closes the connection. The server writes nothing
//! else after the greeting, and without `--ack` nothing at all.
//!
//! The relay is *lossless* in this sense: every acknowledged frame is in the database,
//! whatever happens to the relay after (a crash, `kill -9`, a power cut: commits are
//! synchronous).
//!
//! How the server ends a connection is a receipt too. It closes it cleanly (a TCP FIN)
//! only once everything the client sent is stored: the client had closed its side (or
//! the server stopped, or the client was idle) on a frame boundary, and every one of its
//! frames is committed. Otherwise (bad input, a frame cut off, a frame the relay could not
//! store because it failed or was aborted) it resets the connection (a TCP RST). Only
//! acknowledgements survive a crash of the server: the kernel closes the connections of a
//! killed process cleanly.
//!
//! ```
//! use bytes::BytesMut;
//! use taskthread_examples::relay::frame::{FrameDecoder, encode};
//!
//! let mut wire = BytesMut::new();
//! encode(b"hello", &mut wire);
//! encode(b"world", &mut wire);
//!
//! let mut decoder = FrameDecoder::new(1024);
//! for packet in wire.chunks(3) {
//!     decoder.push(packet);
//! }
//! assert_eq!(&decoder.next_frame().unwrap().unwrap()[..], b"hello");
//! assert_eq!(&decoder.next_frame().unwrap().unwrap()[..], b"world");
//! assert_eq!(decoder.next_frame().unwrap(), None);
//! assert!(decoder.finish().is_ok());
//! ```

use std::{fmt, mem};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The payload of the greeting the server sends on connect.
pub const GREETING: &str = r#"{"message": "hello!"}"#;

/// Appends one frame (length prefix and payload) to `out`.
///
/// # Panics
/// If the payload is longer than `u32::MAX` bytes, which the protocol cannot express.
pub fn encode(payload: &[u8], out: &mut BytesMut) {
    let len = u32::try_from(payload.len()).expect("a frame holds at most u32::MAX bytes");
    out.reserve(HEADER_LEN + payload.len());
    out.put_u32(len);
    out.put_slice(payload);
}

/// The size of an acknowledgement.
pub const ACK_LEN: usize = 4;

/// The acknowledgement of `stored` frames, as written on the wire: the count modulo
/// 2^32, big-endian.
///
/// ```
/// use taskthread_examples::relay::frame::ack;
///
/// assert_eq!(ack(258), [0, 0, 1, 2]);
/// assert_eq!(ack(u64::from(u32::MAX) + 2), [0, 0, 0, 1]);
/// ```
pub fn ack(stored: u64) -> [u8; ACK_LEN] {
    (stored as u32).to_be_bytes()
}

/// The greeting frame, ready to write.
pub fn greeting() -> Bytes {
    let mut out = BytesMut::new();
    encode(GREETING.as_bytes(), &mut out);
    out.freeze()
}

/// Bad input on a client's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A length prefix above the limit: an oversized frame, or bytes that are not this
    /// protocol at all.
    TooLong {
        /// The length the prefix announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    Truncated {
        /// The bytes of the incomplete frame (prefix included) that were discarded.
        buffered: usize,
        /// The length the prefix announced, if the prefix was complete.
        len: Option<u64>,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooLong { len, max } => write!(
                f,
                "a frame of {len} bytes is over the limit of {max} bytes \
                 (an oversized frame, or garbage that is not this protocol)"
            ),
            Self::Truncated {
                buffered,
                len: Some(len),
            } => write!(
                f,
                "the stream ended in the middle of a frame: {} of its {len} payload bytes \
                 had arrived, {buffered} bytes discarded",
                buffered - HEADER_LEN
            ),
            Self::Truncated {
                buffered,
                len: None,
            } => write!(
                f,
                "the stream ended in the middle of a length prefix: {buffered} bytes discarded"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Rebuilds frames from a byte stream cut into packets of any size.
///
/// Push each packet as it arrives, then take the complete frames with
/// [`next_frame`](Self::next_frame). Payloads are handed out without copying them again.
/// After an error the decoder stays in error: the stream cannot be resynchronised.
///
/// A frame whose length is known is assembled in a buffer of its own size (see
/// [`reserve_frame`](Self::reserve_frame)): the bytes that follow it in the packet that
/// completes it wait beside it, so the frame's buffer never grows past the frame (which
/// would copy it, and leave its payload in an allocation twice its size).
#[derive(Debug)]
pub struct FrameDecoder {
    /// The frame at the front (and, until its length is known, whatever follows it).
    buf: BytesMut,
    /// Bytes after the end of the frame at the front, once it is complete.
    tail: BytesMut,
    max_len: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            tail: BytesMut::new(),
            max_len,
        }
    }

    /// Appends a packet.
    pub fn push(&mut self, mut packet: &[u8]) {
        // While the frame at the front is incomplete, its buffer holds nothing past it: its
        // length prefix first, then the rest of it; what follows waits in the tail.
        while !packet.is_empty() && self.tail.is_empty() {
            let n = self
                .frame_end()
                .saturating_sub(self.buf.len())
                .min(packet.len());
            if n == 0 {
                break; // the frame is complete: the rest goes to the tail
            }
            self.buf.extend_from_slice(&packet[..n]);
            packet = &packet[n..];
        }
        self.tail.extend_from_slice(packet);
    }

    /// The payload length the frame at the front announces, once its length prefix is
    /// complete; an error if it is over the limit.
    pub fn frame_len(&self) -> Result<Option<usize>, FrameError> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header);
        match usize::try_from(len) {
            Ok(len) if len <= self.max_len => Ok(Some(len)),
            _ => Err(FrameError::TooLong {
                len: u64::from(len),
                max: self.max_len,
            }),
        }
    }

    /// Where the frame at the front ends in its buffer, as far as is known.
    fn frame_end(&self) -> usize {
        match self.frame_len() {
            Ok(Some(len)) => HEADER_LEN + len,
            Ok(None) => HEADER_LEN,
            Err(_) => 0,
        }
    }

    /// Makes room for the rest of the frame at the front at once, instead of growing step
    /// by step as its bytes arrive. Call it once the frame is admitted: the room is memory
    /// it holds.
    pub fn reserve_frame(&mut self) {
        if let Ok(Some(len)) = self.frame_len() {
            self.buf
                .reserve((HEADER_LEN + len).saturating_sub(self.buf.len()));
        }
    }

    /// The next complete frame's payload, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if !self.tail.is_empty() && self.buf.len() < self.frame_end() {
            // Pushed again before the frames were taken: the frame now at the front takes
            // its bytes from the tail.
            let tail = mem::take(&mut self.tail);
            self.push(&tail);
        }
        let Some(len) = self.frame_len()? else {
            return Ok(None);
        };
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        if self.buf.is_empty() {
            // Not a swap: the emptied buffer would keep the payload's allocation alive (and
            // reuse it) long after the payload is gone.
            self.buf = mem::take(&mut self.tail);
        }
        Ok(Some(payload))
    }

    /// How many bytes of an incomplete frame are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.tail.len()
    }

    /// Discards the bytes of an incomplete frame; returns how many there were.
    pub fn discard(&mut self) -> usize {
        let n = self.buffered();
        self.buf = BytesMut::new();
        self.tail = BytesMut::new();
        n
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffered() == 0 {
            return Ok(());
        }
        let len = self
            .buf
            .first_chunk::<HEADER_LEN>()
            .map(|h| u64::from(u32::from_be_bytes(*h)));
        Err(FrameError::Truncated {
            buffered: self.buffered(),
            len,
        })
    }
}

/// An order-independent checksum of a set of payloads: their count, their total size and
/// the wrapping sum of a digest of each (its CRC-32 and its length).
///
/// Frames from different clients interleave differently at every destination, so the sum
/// ignores order; two sets of payloads with the same checksum are the same set, barring a
/// collision.
///
/// ```
/// use taskthread_examples::relay::frame::Checksum;
///
/// let mut a = Checksum::default();
/// a.add(b"one");
/// a.add(b"two");
/// let mut b = Checksum::default();
/// b.add(b"two");
/// b.add(b"one");
/// assert_eq!(a, b);
/// assert_eq!((a.frames, a.bytes), (2, 6));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    /// How many payloads.
    pub frames: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The wrapping sum of their digests.
    pub sum: u64,
}

impl Checksum {
    /// The digest of one payload: its CRC-32 in the low half, its length in the high half.
    pub fn digest(payload: &[u8]) -> u64 {
        (payload.len() as u64) << 32 | u64::from(crc32fast::hash(payload))
    }

    /// The checksum of a single payload.
    pub fn of(payload: &[u8]) -> Self {
        let mut checksum = Self::default();
        checksum.add(payload);
        checksum
    }

    /// Adds one payload.
    pub fn add(&mut self, payload: &[u8]) {
        self.add_digest(payload.len(), Self::digest(payload));
    }

    /// Adds one payload whose digest is already known.
    pub fn add_digest(&mut self, len: usize, digest: u64) {
        self.frames += 1;
        self.bytes += len as u64;
        self.sum = self.sum.wrapping_add(digest);
    }

    /// Adds every payload of another checksum.
    pub fn merge(&mut self, other: Checksum) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames, {} bytes, sum {:016x}",
            self.frames, self.bytes, self.sum
        )
    }
}
