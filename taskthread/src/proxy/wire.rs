//! Threads whose messages can cross a process boundary: [`Remote`], implemented by
//! `#[taskthread(remote)]`, takes a thread's DOWN messages apart for a writer
//! ([`WriteDown`]) and puts them together again from a reader ([`ReadDown`]). The format is
//! the writer's and reader's business; the messages only need to be serde-serialisable
//! ([`WireMessage`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::thread::{Reply, Thread};

/// A type that can cross the wire: a DOWN message, an answer or an up type of a
/// `#[taskthread(remote)]` thread. Every `Serialize + DeserializeOwned + Send + 'static`
/// type is one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the wire: a `#[taskthread(remote)]` thread's messages, answers and up type must be serialisable",
    label = "`{Self}` is not `serde::Serialize + serde::Deserialize`",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]` on `{Self}`"
)]
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<M: Serialize + DeserializeOwned + Send + 'static> WireMessage for M {}

/// A thread whose DOWN messages and UP messages can be carried to another process:
/// implemented by `#[taskthread(remote)]`, which checks at compile time that every message
/// type, every answer and the up type are [`WireMessage`]s.
///
/// A message is known on the wire by its *index*: the position of its type in
/// [`Thread::DOWN_TYPES`]. Both sides must be built from the same thread type; a remoting
/// crate compares the types' `DOWN_TYPES` and `UP_TYPE` before trusting the indices.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread::proxy::{Remote, Reply, WireMessage, WriteDown};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Double(u64);
///
/// struct Calculator;
///
/// #[taskthread(remote)]
/// impl Calculator {
///     #[down]
///     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
///         Ok(n * 2)
///     }
/// }
///
/// /// Names the index of a message.
/// struct IndexOf;
///
/// impl WriteDown for IndexOf {
///     type Output = usize;
///     fn tell<M: WireMessage>(self, index: usize, _msg: M) -> usize {
///         index
///     }
///     fn ask<Q: WireMessage, R: WireMessage>(self, index: usize, _q: Q, _r: Option<Reply<R>>) -> usize {
///         index
///     }
/// }
///
/// /// The index of any remote thread's DOWN message.
/// fn index_of<T: Remote>(down: T::Down) -> usize {
///     T::write_down(down, IndexOf)
/// }
/// # let _ = index_of::<Calculator>;
/// ```
pub trait Remote: Thread<Up: WireMessage> {
    /// Hands the message inside `down` to `out`: its index, the message itself, and for a
    /// question its reply slot (`None` if it was sent rather than asked).
    fn write_down<W: WriteDown>(down: Self::Down, out: W) -> W::Output;

    /// Reads a DOWN message of index `index` from `input`; an index the thread does not
    /// have is `input`'s [`unknown`](ReadDown::unknown) error.
    fn read_down<R: ReadDown>(index: usize, input: R) -> Result<Self::Down, R::Error>;
}

/// What [`Remote::write_down`] hands a DOWN message to.
pub trait WriteDown {
    /// What writing gives.
    type Output;
    /// A message sent to a handler that answers nothing.
    fn tell<M: WireMessage>(self, index: usize, msg: M) -> Self::Output;
    /// A message to a handler that answers `R`, and the asker's reply slot if it was asked.
    fn ask<Q: WireMessage, R: WireMessage>(
        self,
        index: usize,
        question: Q,
        reply: Option<Reply<R>>,
    ) -> Self::Output;
}

/// What [`Remote::read_down`] reads a DOWN message from.
pub trait ReadDown {
    /// Why a message could not be read.
    type Error;
    /// Reads a message to a handler that answers nothing.
    fn tell<M: WireMessage>(self) -> Result<M, Self::Error>;
    /// Reads a question to a handler that answers `R`, and makes the reply slot its answer
    /// goes to.
    fn ask<Q: WireMessage, R: WireMessage>(self) -> Result<(Q, Reply<R>), Self::Error>;
    /// The error for an index the thread has no message of.
    fn unknown(self, index: usize) -> Self::Error;
}
