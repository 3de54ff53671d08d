//! Messages on the wire: a parent writes a DOWN message with postcard ([`Encoder`], keeping
//! an asker's reply slot to answer when the answer comes back), a host reads it back
//! ([`Decoder`], making a reply slot whose answer it sends back), and exits cross as
//! [`WireExit`].

use std::fmt;

use taskthread::proxy::{ReadDown, ReadUp, Reply, WireMessage, WriteDown, WriteUp};
use taskthread::{Error, Exit};
use tokio::task::JoinSet;

use crate::frame::{ExitKind, Kind, WireExit};

/// Answers an asker with the answer's bytes, or leaves it without an answer (`None`).
pub(crate) type PendingAnswer = Box<dyn FnOnce(Option<&[u8]>) + Send + Sync>;

/// What a parent writes for one DOWN message.
pub(crate) struct Written {
    pub(crate) kind: Kind,
    /// The asker's slot, for a question that was asked (not only sent).
    pub(crate) answer: Option<PendingAnswer>,
}

/// Writes a DOWN message into `buf`; a question gets the ask number `ask`.
pub(crate) struct Encoder<'a> {
    pub(crate) buf: &'a mut Vec<u8>,
    pub(crate) ask: u64,
}

impl WriteDown for Encoder<'_> {
    type Output = Result<Written, postcard::Error>;

    fn tell<M: WireMessage>(self, index: usize, msg: M) -> Self::Output {
        postcard::to_io(&msg, &mut *self.buf)?;
        Ok(Written {
            kind: Kind::Tell {
                index: index_u32(index),
            },
            answer: None,
        })
    }

    fn ask<Q: WireMessage, R: WireMessage>(
        self,
        index: usize,
        question: Q,
        reply: Option<Reply<R>>,
    ) -> Self::Output {
        postcard::to_io(&question, &mut *self.buf)?;
        let answer = reply.map(|reply| {
            Box::new(move |bytes: Option<&[u8]>| {
                let Some(bytes) = bytes else { return };
                match postcard::from_bytes::<R>(bytes) {
                    Ok(answer) => reply.send(answer),
                    Err(e) => tracing::error!("an answer that cannot be read: {e}"),
                }
            }) as PendingAnswer
        });
        Ok(Written {
            kind: Kind::Ask {
                index: index_u32(index),
                ask: self.ask,
            },
            answer,
        })
    }
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("a thread has fewer than 2^32 message types")
}

/// An answer on its way back: the ask's number and the answer's bytes, if there is one.
pub(crate) type Answering = (u64, Option<Vec<u8>>);

/// Reads a DOWN message; a question's answer is awaited in `answers`.
pub(crate) struct Decoder<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) ask: u64,
    pub(crate) answers: &'a mut JoinSet<Answering>,
}

/// A DOWN message that could not be read.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Unknown(usize),
    Bad(postcard::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(index) => write!(f, "no message type of index {index}"),
            Self::Bad(e) => write!(f, "a message that cannot be read: {e}"),
        }
    }
}

impl ReadDown for Decoder<'_> {
    type Error = DecodeError;

    fn tell<M: WireMessage>(self) -> Result<M, DecodeError> {
        postcard::from_bytes(self.payload).map_err(DecodeError::Bad)
    }

    fn ask<Q: WireMessage, R: WireMessage>(self) -> Result<(Q, Reply<R>), DecodeError> {
        let question = postcard::from_bytes(self.payload).map_err(DecodeError::Bad)?;
        let (reply, answer) = Reply::pair();
        let ask = self.ask;
        self.answers.spawn(async move {
            let bytes = answer.await.ok().and_then(|answer| {
                postcard::to_allocvec(&answer)
                    .inspect_err(|e| tracing::error!("an answer that cannot be written: {e}"))
                    .ok()
            });
            (ask, bytes)
        });
        Ok((question, reply))
    }

    fn unknown(self, index: usize) -> DecodeError {
        DecodeError::Unknown(index)
    }
}

/// Writes an UP message into a buffer.
pub(crate) struct UpEncoder<'a>(pub(crate) &'a mut Vec<u8>);

impl WriteUp for UpEncoder<'_> {
    type Output = Result<(), postcard::Error>;

    fn write<U: WireMessage>(self, up: U) -> Self::Output {
        postcard::to_io(&up, self.0).map(drop)
    }
}

/// Reads an UP message.
pub(crate) struct UpDecoder<'a>(pub(crate) &'a [u8]);

impl ReadUp for UpDecoder<'_> {
    type Error = postcard::Error;

    fn read<U: WireMessage>(self) -> Result<U, postcard::Error> {
        postcard::from_bytes(self.0)
    }
}

impl WireExit {
    /// How `exit` crosses the wire, with the messages dropped on the host and the number
    /// of DOWN messages the host received.
    pub(crate) fn new(exit: &Exit, dropped: u64, received: u64) -> Self {
        let (how, message) = match exit {
            Exit::Completed => (ExitKind::Completed, String::new()),
            Exit::Stopped => (ExitKind::Stopped, String::new()),
            Exit::Failed(e) => (ExitKind::Failed, format!("{e:#}")),
            Exit::Panicked(m) => (ExitKind::Panicked, m.clone()),
            Exit::Aborted { .. } => (ExitKind::Aborted, String::new()),
            Exit::Lost(reason) => (ExitKind::Lost, reason.clone()),
            other => (ExitKind::Failed, other.to_string()),
        };
        Self {
            how,
            message,
            dropped,
            received,
        }
    }

    /// The exit again, on the parent's side.
    pub(crate) fn into_exit(self) -> Exit {
        match self.how {
            ExitKind::Completed => Exit::Completed,
            ExitKind::Stopped => Exit::Stopped,
            ExitKind::Failed => Exit::Failed(Error::msg(self.message)),
            ExitKind::Panicked => Exit::Panicked(self.message),
            ExitKind::Aborted => Exit::Aborted {
                dropped: usize::try_from(self.dropped).unwrap_or(usize::MAX),
            },
            ExitKind::Lost => Exit::Lost(self.message),
        }
    }
}
