//! The wire format: one frame per transport message, a [`Head`] written with postcard
//! followed by the payload's bytes (a message, a question, an answer, an UP message or spawn
//! arguments, themselves postcard), so a message is written once, straight into the frame.
//!
//! Every frame names its *edge* (one remote child, for its whole life under its parent),
//! the *epoch* of the child's life it belongs to (frames of another life are dropped), a
//! *sequence number* (0 for frames that need no delivery guarantee: acks, heartbeats), the
//! sender's cumulative *ack* (every reliable frame up to it has arrived) and its cumulative
//! *credit* (how many credited messages the other side may have sent in all: DOWN messages
//! towards a host, UP messages towards a parent).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::tree::WireThread;

/// The version of the format; a frame of another version is refused.
pub(crate) const VERSION: u8 = 2;

/// Identifies one remote child for its whole life under its parent, across restarts.
pub(crate) type EdgeId = u64;

/// What precedes the payload in every frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) version: u8,
    pub(crate) edge: EdgeId,
    pub(crate) epoch: u32,
    /// 0 for a frame without delivery guarantee; reliable frames count from 1 in each
    /// direction of each epoch.
    pub(crate) seq: u64,
    pub(crate) ack: u64,
    pub(crate) credit: u64,
    pub(crate) kind: Kind,
}

/// What a frame says. Those marked *payload* are followed by bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// Parent to host, reliable, the first frame of an epoch: run a thread. Payload: the
    /// arguments of the type's factory.
    Spawn(Box<SpawnHead>),
    /// Host to parent, reliable: the thread runs.
    Spawned,
    /// Host to parent, without guarantee (sent again for each copy of the spawn): the host
    /// will not run it, and why.
    Refused(String),
    /// Parent to host, reliable, credited: a DOWN message. Payload: the message.
    Tell { index: u32 },
    /// Parent to host, reliable, credited: a question. Payload: the question.
    Ask { index: u32, ask: u64 },
    /// Host to parent, reliable: the answer to a question, or none (`answered: false`: the
    /// handler failed, or the thread ended before it). Payload: the answer.
    Answer { ask: u64, answered: bool },
    /// Host to parent, reliable, credited: an UP message. Payload: the message.
    Up,
    /// Parent to host, reliable, after the last DOWN message: stop gracefully, within
    /// `deadline_ms` if given.
    Stop { deadline_ms: Option<u64> },
    /// Parent to host, without guarantee: abort the thread's subtree now.
    Abort,
    /// Host to parent, reliable, the last frame of an epoch: how the thread ended.
    Exit(WireExit),
    /// Either way, without guarantee: only the head's ack and credit.
    Ack,
    /// Either way, without guarantee: a heartbeat, answered at once by a `Pong` with the
    /// same stamp.
    Ping(u64),
    /// The answer to a `Ping`.
    Pong(u64),
    /// Host to parent, without guarantee, once per heartbeat: the threads below the hosted
    /// thread, for the parent's snapshots, depth first and each with its depth (no type of
    /// a frame nests itself, so reading one never recurses).
    Tree(Vec<WireThread>),
}

impl Kind {
    /// The kind's name, for logs and tests.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Spawn(_) => "spawn",
            Self::Spawned => "spawned",
            Self::Refused(_) => "refused",
            Self::Tell { .. } => "tell",
            Self::Ask { .. } => "ask",
            Self::Answer { .. } => "answer",
            Self::Up => "up",
            Self::Stop { .. } => "stop",
            Self::Abort => "abort",
            Self::Exit(_) => "exit",
            Self::Ack => "ack",
            Self::Ping(_) => "ping",
            Self::Pong(_) => "pong",
            Self::Tree(_) => "tree",
        }
    }

    /// Whether the kind counts against the other side's credit.
    pub(crate) fn is_credited(&self) -> bool {
        matches!(self, Self::Tell { .. } | Self::Ask { .. } | Self::Up)
    }
}

/// What a parent asks a host to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpawnHead {
    /// The name the type is registered under on the host.
    pub(crate) type_name: String,
    /// The type's `DOWN_TYPES` and `UP_TYPE` as the parent knows them: the host refuses a
    /// type whose messages it knows otherwise.
    pub(crate) down_types: Vec<String>,
    pub(crate) up_type: Option<String>,
    /// The child's path in the parent's tree, its name on the host.
    pub(crate) path: String,
    /// Where the host sends this edge's frames.
    pub(crate) reply_to: String,
    pub(crate) capacity: u32,
    pub(crate) heartbeat_ms: u64,
    pub(crate) lost_after_ms: u64,
}

/// How a hosted thread ended, as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireExit {
    pub(crate) how: ExitKind,
    /// The error or panic message.
    pub(crate) message: String,
    /// Messages it dropped unhandled on the host.
    pub(crate) dropped: u64,
    /// How many DOWN messages (tells and asks) the host received on this edge: the parent
    /// counts those it sent beyond them as undelivered.
    pub(crate) received: u64,
}

/// The kinds of [`taskthread::Exit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ExitKind {
    Completed,
    Stopped,
    Failed,
    Panicked,
    Aborted,
    Lost,
}

/// The first byte of a datagram that carries several frames, each after its length as a
/// varint. A datagram of one frame is the frame itself (which starts with [`VERSION`]).
const BUNDLE: u8 = 0xB1;

/// One datagram carrying `frames` (at least one), in order.
pub(crate) fn bundle(frames: &[Bytes]) -> Bytes {
    if let [frame] = frames {
        return frame.clone();
    }
    let size = frames.iter().map(|f| f.len() + 5).sum::<usize>() + 1;
    let mut out = BytesMut::with_capacity(size);
    out.put_u8(BUNDLE);
    for frame in frames {
        let mut len = [0u8; 5];
        let len = postcard::to_slice(&(frame.len() as u32), &mut len)
            .expect("a u32 is written in at most 5 bytes");
        out.put_slice(len);
        out.put_slice(frame);
    }
    out.freeze()
}

/// Splits `frames` into datagrams of at most `max` bytes (a frame larger than that goes
/// alone, and the transport refuses it).
pub(crate) fn bundles(frames: Vec<Bytes>, max: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut group: Vec<Bytes> = Vec::new();
    let mut size = 1;
    for frame in frames {
        if !group.is_empty() && size + frame.len() + 5 > max {
            out.push(bundle(&group));
            group.clear();
            size = 1;
        }
        size += frame.len() + 5;
        group.push(frame);
    }
    if !group.is_empty() {
        out.push(bundle(&group));
    }
    out
}

/// The frames a datagram carries; what cannot be read ends the list.
pub(crate) fn unbundle(datagram: &Bytes) -> Vec<Bytes> {
    if datagram.first() != Some(&BUNDLE) {
        return vec![datagram.clone()];
    }
    let mut frames = Vec::new();
    let mut rest = &datagram[1..];
    while !rest.is_empty() {
        let Ok((len, after)) = postcard::take_from_bytes::<u32>(rest) else {
            break;
        };
        let len = len as usize;
        if len > after.len() {
            break;
        }
        frames.push(datagram.slice_ref(&after[..len]));
        rest = &after[len..];
    }
    frames
}

/// Writes a frame: the head, then the payload written by `payload`.
pub(crate) fn encode<E>(
    head: &Head,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Bytes, E>
where
    E: From<postcard::Error>,
{
    let mut buf = postcard::to_extend(head, Vec::with_capacity(64))?;
    payload(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Writes a frame without payload.
pub(crate) fn encode_bare(head: &Head) -> Bytes {
    let mut out = BytesMut::with_capacity(32).writer();
    // A head is plain data: writing it to memory cannot fail.
    postcard::to_io(head, &mut out).expect("a frame head is always written");
    out.into_inner().freeze()
}

/// Reads a frame's head; the payload is the rest.
pub(crate) fn decode(frame: &Bytes) -> Result<(Head, Bytes), FrameError> {
    let (head, rest): (Head, &[u8]) = postcard::take_from_bytes(frame).map_err(FrameError::Head)?;
    if head.version != VERSION {
        return Err(FrameError::Version(head.version));
    }
    let payload = frame.slice_ref(rest);
    Ok((head, payload))
}

/// What a frame is, for a test's fault injection: see
/// [`MemoryTransport::set_faults`](crate::memory::MemoryTransport::set_faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// `"spawn"`, `"spawned"`, `"refused"`, `"tell"`, `"ask"`, `"answer"`, `"up"`, `"stop"`,
    /// `"abort"`, `"exit"`, `"ack"`, `"ping"`, `"pong"` or `"tree"`.
    pub kind: &'static str,
    /// The edge: one remote child under its parent.
    pub edge: u64,
    /// The life of the child the frame belongs to.
    pub epoch: u32,
    /// The sequence number; 0 for a frame without delivery guarantee.
    pub seq: u64,
    /// The sender's cumulative ack.
    pub ack: u64,
    /// The sender's cumulative credit.
    pub credit: u64,
}

impl FrameInfo {
    /// What each frame a datagram carries is, in order (none if it carries no frame of
    /// this crate).
    pub fn all(datagram: &[u8]) -> Vec<Self> {
        unbundle(&Bytes::copy_from_slice(datagram))
            .iter()
            .map_while(|frame| Self::of(frame))
            .collect()
    }

    /// Reads what a frame is; `None` if it is not a frame of this crate.
    pub fn of(frame: &[u8]) -> Option<Self> {
        let (head, _): (Head, _) = postcard::take_from_bytes(frame).ok()?;
        Some(Self {
            kind: head.kind.name(),
            edge: head.edge,
            epoch: head.epoch,
            seq: head.seq,
            ack: head.ack,
            credit: head.credit,
        })
    }
}

/// A frame that cannot be read: dropped where it arrives.
#[derive(Debug)]
pub(crate) enum FrameError {
    Head(postcard::Error),
    Version(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(e) => write!(f, "unreadable frame: {e}"),
            Self::Version(v) => write!(f, "a frame of format version {v}, not {}", VERSION),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: Kind) -> Head {
        Head {
            version: VERSION,
            edge: 0xDEAD_BEEF,
            epoch: 3,
            seq: 17,
            ack: 12,
            credit: 64,
            kind,
        }
    }

    #[test]
    fn a_frame_reads_back_as_written() {
        let kinds = [
            Kind::Spawn(Box::new(SpawnHead {
                type_name: "Worker".into(),
                down_types: vec!["Job".into()],
                up_type: Some("Done".into()),
                path: "app/worker".into(),
                reply_to: "tt.parent.1".into(),
                capacity: 8,
                heartbeat_ms: 1000,
                lost_after_ms: 5000,
            })),
            Kind::Tell { index: 2 },
            Kind::Ask { index: 1, ask: 9 },
            Kind::Answer {
                ask: 9,
                answered: true,
            },
            Kind::Exit(WireExit {
                how: ExitKind::Failed,
                message: "disk full".into(),
                dropped: 2,
                received: 7,
            }),
            Kind::Ping(123_456),
        ];
        for kind in kinds {
            let written = head(kind);
            let frame = encode::<postcard::Error>(&written, |buf| {
                buf.extend_from_slice(b"payload");
                Ok(())
            })
            .unwrap();
            let (read, payload) = decode(&frame).unwrap();
            assert_eq!(read, written);
            assert_eq!(&payload[..], b"payload");
            let info = FrameInfo::of(&frame).unwrap();
            assert_eq!((info.edge, info.epoch, info.seq), (0xDEAD_BEEF, 3, 17));
        }
        let bare = encode_bare(&head(Kind::Ack));
        let (read, payload) = decode(&bare).unwrap();
        assert_eq!(read.kind, Kind::Ack);
        assert!(payload.is_empty());
    }

    #[test]
    fn bundles_carry_frames_in_order_within_the_size() {
        let frames: Vec<Bytes> = (0..10u64)
            .map(|n| {
                let mut h = head(Kind::Tell { index: 0 });
                h.seq = n + 1;
                encode_bare(&h)
            })
            .collect();
        let one = bundles(frames[..1].to_vec(), 1000);
        assert_eq!(one, [frames[0].clone()]);
        assert_eq!(unbundle(&one[0]), [frames[0].clone()]);
        let all = bundles(frames.clone(), 1000);
        assert_eq!(all.len(), 1);
        assert_eq!(unbundle(&all[0]), frames);
        let seqs: Vec<u64> = FrameInfo::all(&all[0]).iter().map(|i| i.seq).collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        // Split to fit.
        let small = bundles(frames.clone(), frames[0].len() * 3 + 20);
        assert!(small.len() > 1);
        let again: Vec<Bytes> = small.iter().flat_map(unbundle).collect();
        assert_eq!(again, frames);
        // A truncated bundle gives what it holds whole.
        let cut = all[0].slice(..all[0].len() - 3);
        assert_eq!(unbundle(&cut), frames[..9].to_vec());
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(matches!(
            decode(&Bytes::from_static(b"")),
            Err(FrameError::Head(_))
        ));
        assert!(matches!(
            decode(&Bytes::from_static(&[1, 0xFF, 0xFF])),
            Err(FrameError::Head(_))
        ));
        let mut other = head(Kind::Ack);
        other.version = 9;
        assert!(matches!(
            decode(&encode_bare(&other)),
            Err(FrameError::Version(9))
        ));
        assert_eq!(FrameInfo::of(b"\x01"), None);
    }
}
