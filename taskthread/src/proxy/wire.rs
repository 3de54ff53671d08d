//! Threads whose messages can cross a process boundary: [`Remote`], implemented by
//! `#[taskthread(remote)]`, shows a thread's message types to a [`MessageVisitor`], and on
//! that takes its DOWN and UP messages apart for a writer ([`WriteDown`], [`WriteUp`]) and
//! puts them together again from a reader ([`ReadDown`], [`ReadUp`]). The format is the
//! writer's and reader's business; the messages only need to be serde-serialisable
//! ([`WireMessage`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::reply::Reply;
use crate::thread::Thread;

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
/// type, every answer and the up type are [`WireMessage`]s, each mistake reported once, on
/// the type as written.
///
/// The generated part is [`visit_messages`](Self::visit_messages), which names each message
/// type once; [`write_down`](Self::write_down), [`read_down`](Self::read_down),
/// [`write_up`](Self::write_up) and [`read_up`](Self::read_up) are built on it.
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
pub trait Remote: Thread {
    /// The queue capacity the type declares with `#[taskthread(capacity = N)]`, or `None`
    /// when it declares none (and takes [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY) where
    /// it runs locally). A transport may choose another default for a remote child of a type
    /// that declares none, as its link's round trips call for.
    const DECLARED_CAPACITY: Option<usize> = None;

    /// Shows `visitor` each DOWN message type (with its index, and how to make a DOWN
    /// message of it and take it out again) and the up type.
    fn visit_messages<V: MessageVisitor<Self>>(visitor: &mut V);

    /// Hands the message inside `down` to `out`: its index, the message itself, and for a
    /// question its reply slot (`None` if it was sent rather than asked).
    fn write_down<W: WriteDown>(down: Self::Down, out: W) -> W::Output {
        let mut writer = DownWriter::<Self, W> {
            index: Self::__down_index(&down),
            down: Some(down),
            out: Some(out),
            output: None,
        };
        Self::visit_messages(&mut writer);
        writer
            .output
            .expect("every DOWN message is of a type `visit_messages` shows")
    }

    /// Reads a DOWN message of index `index` from `input`; an index the thread does not
    /// have is `input`'s [`unknown`](ReadDown::unknown) error.
    fn read_down<R: ReadDown>(index: usize, input: R) -> Result<Self::Down, R::Error> {
        let mut reader = DownReader::<Self, R> {
            index,
            input: Some(input),
            read: None,
        };
        Self::visit_messages(&mut reader);
        match (reader.read, reader.input) {
            (Some(read), _) => read,
            (None, Some(input)) => Err(input.unknown(index)),
            (None, None) => unreachable!("the input is used only to read a message"),
        }
    }

    /// Hands an UP message to `out`.
    fn write_up<W: WriteUp>(up: Self::Up, out: W) -> W::Output {
        let mut writer = UpWriter::<Self, W> {
            up: Some(up),
            out: Some(out),
            output: None,
        };
        Self::visit_messages(&mut writer);
        writer.output.expect("`visit_messages` shows the up type")
    }

    /// Reads an UP message from `input`.
    fn read_up<R: ReadUp>(input: R) -> Result<Self::Up, R::Error> {
        let mut reader = UpReader::<Self, R> {
            input: Some(input),
            read: None,
        };
        Self::visit_messages(&mut reader);
        reader.read.expect("`visit_messages` shows the up type")
    }
}

/// What [`Remote::visit_messages`] shows a thread's message types to. Implement it to
/// do something with each type; [`Remote`]'s provided methods are built this way.
pub trait MessageVisitor<T: Thread> {
    /// A message type `M` of index `index`, whose handler answers nothing: `wrap` makes
    /// the DOWN message of one, `unwrap` takes it out of a DOWN message of its type (and
    /// gives back one of another type).
    fn tell<M: WireMessage>(
        &mut self,
        index: usize,
        wrap: fn(M) -> T::Down,
        unwrap: fn(T::Down) -> Result<M, T::Down>,
    );

    /// A question type `Q` of index `index`, whose handler answers `R`: `wrap` makes the
    /// DOWN message of one with its reply slot, `unwrap` takes it and its slot (`None` if
    /// it was sent rather than asked) out again.
    fn ask<Q: WireMessage, R: WireMessage>(
        &mut self,
        index: usize,
        wrap: fn(Q, Reply<R>) -> T::Down,
        unwrap: TakeQuestion<T, Q, R>,
    );

    /// The up type, as `U` (which is `T::Up`): `into` and `from` convert.
    fn up<U: WireMessage>(&mut self, into: fn(T::Up) -> U, from: fn(U) -> T::Up);
}

/// Takes a question of type `Q` and its reply slot (for answers of type `R`) out of a DOWN
/// message of thread `T`, or gives back a message of another type: see
/// [`MessageVisitor::ask`].
pub type TakeQuestion<T, Q, R> =
    fn(<T as Thread>::Down) -> Result<(Q, Option<Reply<R>>), <T as Thread>::Down>;

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

/// What [`Remote::write_up`] hands an UP message to.
pub trait WriteUp {
    /// What writing gives.
    type Output;
    /// Writes the UP message.
    fn write<U: WireMessage>(self, up: U) -> Self::Output;
}

/// What [`Remote::read_up`] reads an UP message from.
pub trait ReadUp {
    /// Why a message could not be read.
    type Error;
    /// Reads the UP message.
    fn read<U: WireMessage>(self) -> Result<U, Self::Error>;
}

struct DownWriter<T: Thread, W: WriteDown> {
    index: usize,
    down: Option<T::Down>,
    out: Option<W>,
    output: Option<W::Output>,
}

impl<T: Thread, W: WriteDown> MessageVisitor<T> for DownWriter<T, W> {
    fn tell<M: WireMessage>(
        &mut self,
        index: usize,
        _wrap: fn(M) -> T::Down,
        unwrap: fn(T::Down) -> Result<M, T::Down>,
    ) {
        if index != self.index {
            return;
        }
        if let (Some(down), Some(out)) = (self.down.take(), self.out.take()) {
            match unwrap(down) {
                Ok(msg) => self.output = Some(out.tell(index, msg)),
                Err(down) => (self.down, self.out) = (Some(down), Some(out)),
            }
        }
    }

    fn ask<Q: WireMessage, R: WireMessage>(
        &mut self,
        index: usize,
        _wrap: fn(Q, Reply<R>) -> T::Down,
        unwrap: TakeQuestion<T, Q, R>,
    ) {
        if index != self.index {
            return;
        }
        if let (Some(down), Some(out)) = (self.down.take(), self.out.take()) {
            match unwrap(down) {
                Ok((question, reply)) => self.output = Some(out.ask(index, question, reply)),
                Err(down) => (self.down, self.out) = (Some(down), Some(out)),
            }
        }
    }

    fn up<U: WireMessage>(&mut self, _into: fn(T::Up) -> U, _from: fn(U) -> T::Up) {}
}

struct DownReader<T: Thread, R: ReadDown> {
    index: usize,
    input: Option<R>,
    read: Option<Result<T::Down, R::Error>>,
}

impl<T: Thread, R: ReadDown> MessageVisitor<T> for DownReader<T, R> {
    fn tell<M: WireMessage>(
        &mut self,
        index: usize,
        wrap: fn(M) -> T::Down,
        _unwrap: fn(T::Down) -> Result<M, T::Down>,
    ) {
        if index == self.index
            && let Some(input) = self.input.take()
        {
            self.read = Some(input.tell::<M>().map(wrap));
        }
    }

    fn ask<Q: WireMessage, A: WireMessage>(
        &mut self,
        index: usize,
        wrap: fn(Q, Reply<A>) -> T::Down,
        _unwrap: TakeQuestion<T, Q, A>,
    ) {
        if index == self.index
            && let Some(input) = self.input.take()
        {
            self.read = Some(
                input
                    .ask::<Q, A>()
                    .map(|(question, reply)| wrap(question, reply)),
            );
        }
    }

    fn up<U: WireMessage>(&mut self, _into: fn(T::Up) -> U, _from: fn(U) -> T::Up) {}
}

struct UpWriter<T: Thread, W: WriteUp> {
    up: Option<T::Up>,
    out: Option<W>,
    output: Option<W::Output>,
}

impl<T: Thread, W: WriteUp> MessageVisitor<T> for UpWriter<T, W> {
    fn tell<M: WireMessage>(
        &mut self,
        _index: usize,
        _wrap: fn(M) -> T::Down,
        _unwrap: fn(T::Down) -> Result<M, T::Down>,
    ) {
    }

    fn ask<Q: WireMessage, R: WireMessage>(
        &mut self,
        _index: usize,
        _wrap: fn(Q, Reply<R>) -> T::Down,
        _unwrap: TakeQuestion<T, Q, R>,
    ) {
    }

    fn up<U: WireMessage>(&mut self, into: fn(T::Up) -> U, _from: fn(U) -> T::Up) {
        if let (Some(up), Some(out)) = (self.up.take(), self.out.take()) {
            self.output = Some(out.write(into(up)));
        }
    }
}

struct UpReader<T: Thread, R: ReadUp> {
    input: Option<R>,
    read: Option<Result<T::Up, R::Error>>,
}

impl<T: Thread, R: ReadUp> MessageVisitor<T> for UpReader<T, R> {
    fn tell<M: WireMessage>(
        &mut self,
        _index: usize,
        _wrap: fn(M) -> T::Down,
        _unwrap: fn(T::Down) -> Result<M, T::Down>,
    ) {
    }

    fn ask<Q: WireMessage, A: WireMessage>(
        &mut self,
        _index: usize,
        _wrap: fn(Q, Reply<A>) -> T::Down,
        _unwrap: TakeQuestion<T, Q, A>,
    ) {
    }

    fn up<U: WireMessage>(&mut self, _into: fn(T::Up) -> U, from: fn(U) -> T::Up) {
        if let Some(input) = self.input.take() {
            self.read = Some(input.read::<U>().map(from));
        }
    }
}
