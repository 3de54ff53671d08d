//! Items the generated code names. Not public API: no stability promises.
//!
//! Besides the runtime's items, the traits here check what handlers return and what is
//! sent, so that a mistake gives one error on the user's tokens with a message that names
//! the fix (`#[diagnostic::on_unimplemented]`), and the placeholder impls keep the rest of
//! an expansion compiling when one handler is malformed.

pub use std::convert::Infallible;
pub use std::future::Future;
pub use std::marker::PhantomData;
pub use std::option::Option;
pub use std::time::Duration;

pub use crate::ctx::Ctx;
pub use crate::error::{Error, Result};
pub use crate::exit::{ChildExit, ChildId, ChildRestart};
pub use crate::reply::Reply;
pub use crate::reschedule::{
    InTask, MissedTicks, NoTasks, Reschedule, Room, TaskRef, TaskRun, TaskSpec, TimetableRoom,
};
pub use crate::thread::{Accepts, Asks, HandlesStream, HandlesUp, NoUp, Thread, UpRoute, UpType};

use std::pin::Pin;
use std::result::Result as StdResult;
use std::task::{Context, Poll};

/// What a handler that does not answer returns: nothing, or `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not what this handler returns: it returns nothing or `Result<()>`",
    label = "expected nothing or `Result<()>`",
    note = "only `#[down]` handlers answer (`Result<Answer>`), and only `#[rescheduling]` tasks return `Reschedule`"
)]
pub trait UnitOutput {
    /// The error type.
    type Err;
    /// The success and the error, apart.
    fn into_parts(self) -> StdResult<(), Self::Err>;
}

impl UnitOutput for () {
    type Err = Infallible;
    fn into_parts(self) -> StdResult<(), Infallible> {
        Ok(())
    }
}

impl<E> UnitOutput for StdResult<(), E> {
    type Err = E;
    fn into_parts(self) -> Self {
        self
    }
}

/// What a `#[down]` handler that answers returns: `Result<Answer, E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not what a `#[down]` handler returns",
    label = "expected nothing, `Result<()>`, or `Result<Answer>` to be asked",
    note = "the answer of an asked handler is the success value of its `Result`"
)]
pub trait AnswerOutput {
    /// The answer.
    type Ok;
    /// The error type.
    type Err;
    /// The answer and the error, apart.
    fn into_parts(self) -> StdResult<Self::Ok, Self::Err>;
}

impl<T, E> AnswerOutput for StdResult<T, E> {
    type Ok = T;
    type Err = E;
    fn into_parts(self) -> Self {
        self
    }
}

/// What a `#[rescheduling]` task returns: `Reschedule` or `Result<Reschedule, E>`.
#[diagnostic::on_unimplemented(
    message = "`#[rescheduling]` tasks return `Result<Reschedule>` (or `Reschedule`) to say when they run next",
    label = "`{Self}` is not `Result<Reschedule>`",
    note = "`Reschedule` is `taskthread::Reschedule`: `Again`, `Now`, `After(duration)`, `At(instant)`, `Done` or `Stop`"
)]
pub trait TaskOutput {
    /// The error type.
    type Err;
    /// When to run next and the error, apart.
    fn into_parts(self) -> StdResult<Reschedule, Self::Err>;
}

impl TaskOutput for Reschedule {
    type Err = Infallible;
    fn into_parts(self) -> StdResult<Reschedule, Infallible> {
        Ok(self)
    }
}

impl<E> TaskOutput for StdResult<Reschedule, E> {
    type Err = E;
    fn into_parts(self) -> Self {
        self
    }
}

/// An error a handler, hook or task can fail with: anything that converts into
/// [`Error`].
#[diagnostic::on_unimplemented(
    message = "a handler cannot fail with `{Self}`: it does not convert into `taskthread::Error`",
    label = "this error type does not convert into `taskthread::Error`",
    note = "return `taskthread::Result<T>` and convert where the error arises: `.map_err(taskthread::Error::msg)?` for a message such as a `String`, `.map_err(taskthread::Error::from_boxed)?` for a `Box<dyn Error + Send + Sync>`; any `std::error::Error + Send + Sync + 'static` converts with `?` alone"
)]
pub trait HandlerError {
    /// Converts into the framework's error.
    fn into_error(self) -> Error;
}

// Not recommended, so that an error type that does not convert is reported as such,
// with the conversions to use, rather than as a missing `From` impl of `Error`.
#[diagnostic::do_not_recommend]
impl<E: Into<Error>> HandlerError for E {
    fn into_error(self) -> Error {
        self.into()
    }
}

/// For every type but [`ChildExit`], which has inherent items of the same names: the
/// generated code calls `<M>::__from_exit` and reads `<M>::__IS_CHILD_EXIT` to find
/// the handler of the framework's `ChildExit`, whatever its name in the user's code.
pub trait NotChildExit: Sized {
    /// `false`: not the framework's `ChildExit`.
    const __IS_CHILD_EXIT: bool = false;
    /// Gives the exit back: not the framework's `ChildExit`.
    #[allow(clippy::result_large_err)] // moved once per exit, never stored
    fn __from_exit(exit: ChildExit) -> StdResult<Self, ChildExit> {
        Err(exit)
    }
}

impl<T> NotChildExit for T {}

pin_project_lite::pin_project! {
    /// The future of a child-report hook that found the `#[up]` handler taking the report:
    /// the handler's own future, its output converted.
    pub struct Handled<F, C> {
        #[pin]
        handler: F,
        convert: Option<C>,
    }
}

/// `handler`'s future with its output converted by `convert`.
pub fn handled<F, C>(handler: F, convert: C) -> Handled<F, C>
where
    F: Future,
    C: FnOnce(F::Output) -> Result<()>,
{
    Handled {
        handler,
        convert: Some(convert),
    }
}

impl<F, C> Future for Handled<F, C>
where
    F: Future,
    C: FnOnce(F::Output) -> Result<()>,
{
    type Output = Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.project();
        let output = std::task::ready!(this.handler.poll(cx));
        let convert = this
            .convert
            .take()
            .expect("a child-report hook polled after it finished");
        Poll::Ready(convert(output))
    }
}

pin_project_lite::pin_project! {
    /// One of two futures with the same output: a child-report hook's handlers, tried in
    /// turn, each `Left` under as many `Right`s as handlers come before it.
    #[project = EitherProj]
    pub enum Either<A, B> {
        /// The first.
        Left { #[pin] first: A },
        /// The second.
        Right { #[pin] second: B },
    }
}

impl<A, B> Either<A, B> {
    /// The first.
    pub fn left(first: A) -> Self {
        Self::Left { first }
    }

    /// The second.
    pub fn right(second: B) -> Self {
        Self::Right { second }
    }
}

impl<A, B> Future for Either<A, B>
where
    A: Future,
    B: Future<Output = A::Output>,
{
    type Output = A::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.project() {
            EitherProj::Left { first } => first.poll(cx),
            EitherProj::Right { second } => second.poll(cx),
        }
    }
}

/// Logs a child's exit as a thread without an exit handler does.
pub fn log_exit<T: Thread>(ctx: &Ctx<T>, exit: &ChildExit) {
    crate::exit::log_exit(ctx.path(), exit);
}

/// For every type but [`ChildRestart`], which has inherent items of the same names: the
/// generated code calls `<M>::__from_restart` and reads `<M>::__IS_CHILD_RESTART` to find
/// the handler of the framework's `ChildRestart`, as [`NotChildExit`] does for exits.
pub trait NotChildRestart: Sized {
    /// `false`: not the framework's `ChildRestart`.
    const __IS_CHILD_RESTART: bool = false;
    /// Gives the restart back: not the framework's `ChildRestart`.
    #[allow(clippy::result_large_err)] // moved once per restart, never stored
    fn __from_restart(restart: ChildRestart) -> StdResult<Self, ChildRestart> {
        Err(restart)
    }
}

impl<T> NotChildRestart for T {}

/// Logs a child's restart as a thread without a restart handler does.
pub fn log_restart<T: Thread>(ctx: &Ctx<T>, restart: &ChildRestart) {
    crate::exit::log_restart(ctx.path(), restart);
}

// The diagnostics the generated code relies on live here rather than in the
// expansion: `#[diagnostic::...]` cannot be written in a `#![no_implicit_prelude]`
// module, which has no tool prelude.

/// A message type of the thread whose generated event type is `E`: implemented by the
/// generated code for each handler's type (numbered `N`), and assumed by the thread's
/// `Thread` impl. Its supertraits are checked at the generated impl, so a message type that
/// is not `Send` is reported there, on the type in the handler's signature, once.
pub trait Message<E, const N: usize>: Send + 'static {}

/// The bound of the impls of `Accepts<&M>` and `Asks<&M>` below, which never apply:
/// `send(&msg)` is then reported as a reference sent, whether or not the thread handles
/// `M`, and never as a missing handler for `&M`, which the macro forbids.
///
/// Keyed on the thread, so that the error names no generated type. Its one impl is not
/// recommended: what fails in it (the thread does not handle `M`; no reference is ever
/// sent by value) is reported as this trait, once.
#[diagnostic::on_unimplemented(
    message = "messages are sent by value, and `{Self}` is a reference",
    label = "send the message itself, not a reference to it",
    note = "a message moves into the receiving thread's queue: pass it by value (move it, or clone it)"
)]
pub trait SentByValue<T> {}

#[diagnostic::do_not_recommend]
impl<'a, T: Thread, M: ?Sized> SentByValue<T> for &'a M
where
    T::Event: DownType<M>,
    &'a M: Unreachable,
{
}

/// Implemented for no reference: the condition of [`SentByValue`]'s impl that never
/// holds.
pub trait Unreachable {}

// Some impl, so that the compiler does not suggest writing one.
impl Unreachable for Never {}

/// On a generated event type, for every `#[down]` type `M` of its thread: `&M` then
/// has the impls of `Accepts` and `Asks` below, which never apply and say why. Keyed
/// on the event type, like the placeholders, and bounded by a trait of this crate that
/// a reference never implements, so they overlap with no handler's impl, even one for
/// an alias of a reference type.
pub trait DownType<M: ?Sized> {}

/// On a generated event type whose thread's `#[down]` types are all known (none is a
/// type parameter, which could be a reference). Bounds the impls below besides
/// [`DownType`], which other crates could implement for the hand-written threads of this
/// one, or for a generated event type at a type of theirs: this trait, without
/// parameters, they cannot.
pub trait KnownDownTypes {}

#[doc(hidden)]
impl<'a, T: Thread, M: ?Sized> Accepts<&'a M> for T
where
    T::Event: KnownDownTypes,
    &'a M: SentByValue<T>,
{
    fn __wrap(_: &'a M) -> T::Down {
        unreachable!("a reference is never a message")
    }
    fn __unwrap(_: T::Down) -> &'a M {
        unreachable!("a reference is never a message")
    }
}

#[doc(hidden)]
impl<'a, T: Thread, M: ?Sized> Asks<&'a M> for T
where
    T::Event: KnownDownTypes,
    &'a M: SentByValue<T>,
{
    type Reply = Never;
    fn __wrap_ask(_: &'a M, _: Reply<Never>) -> T::Down {
        unreachable!("a reference is never a message")
    }
}

/// Has no values: the type of the placeholder impls below, which are never used.
#[derive(Debug)]
pub enum Never {}

/// Has no values: the second placeholder up type.
#[derive(Debug)]
pub enum NeverEither {}

/// On a generated event type: its thread has the placeholder impls of `Accepts` and
/// `Asks` (none of its `#[down]` types could be `Never`).
///
/// The placeholder impls are there for the errors. When a trait has exactly one impl
/// for a type, rustc infers the trait's parameter from it and reports "mismatched
/// types" instead of the trait's `#[diagnostic::on_unimplemented]` message; with none,
/// it reports that message before the argument's type is known ("no handler for `_`").
/// With one more impl that can never be used, `child.send(pong)` for a type with no
/// handler says "`Child` has no `#[down]` handler for `Pong`". They are keyed on the
/// event type, which every expansion makes anew, so that two expansions for one type
/// conflict on `Thread` alone.
pub trait PlaceholderDown {}
/// On a generated event type: its thread has the placeholder impl of `HandlesUp`.
pub trait PlaceholderUp {}
/// On a generated event type: its thread has the placeholder impl of `HandlesStream`.
pub trait PlaceholderStream {}
/// The placeholder impls of `Accepts`, `Asks` and `HandlesStream`, for each of the two
/// placeholder types: with a single one, the compiler would infer it as the message type
/// of a thread that has no handler.
macro_rules! placeholders {
    ($($never:ident),*) => {$(
        #[doc(hidden)]
        #[diagnostic::do_not_recommend]
        impl<T: Thread> Accepts<$never> for T
        where
            T::Event: PlaceholderDown,
        {
            fn __wrap(msg: $never) -> T::Down {
                match msg {}
            }
            fn __unwrap(_: T::Down) -> $never {
                unreachable!("no message has a type without values")
            }
        }

        #[doc(hidden)]
        #[diagnostic::do_not_recommend]
        impl<T: Thread> Asks<$never> for T
        where
            T::Event: PlaceholderDown,
        {
            type Reply = $never;
            fn __wrap_ask(question: $never, _: Reply<$never>) -> T::Down {
                match question {}
            }
        }

        #[doc(hidden)]
        #[diagnostic::do_not_recommend]
        impl<T: Thread> HandlesStream<$never> for T
        where
            T::Event: PlaceholderStream,
        {
            fn __wrap_item(item: $never) -> T::Event {
                match item {}
            }
        }

        #[doc(hidden)]
        #[diagnostic::do_not_recommend]
        impl UpType<$never> for NoUp {
            fn __from_msg(msg: $never) -> NoUp {
                match msg {}
            }
        }
    )*};
}

placeholders!(Never, NeverEither);

#[doc(hidden)]
#[diagnostic::do_not_recommend]
impl<T: Thread> HandlesUp<Never> for T
where
    T::Event: PlaceholderUp,
{
    fn __wrap_up(_: ChildId, msg: Never) -> T::Event {
        match msg {}
    }
}

/// For a thread declared `pass_up`: its children's messages of its up type go straight to
/// its parent, as its own.
#[inline]
pub fn pass_route<T: Thread>(ctx: &mut Ctx<T>) -> UpRoute<T::Up> {
    UpRoute(ctx.forward_port())
}

/// For a thread declared `pass_up`, a message of its up type that reached its own queue all
/// the same: it goes on UP.
pub async fn pass_up<T: Thread>(ctx: &mut Ctx<T>, msg: T::Up) -> Result<()> {
    ctx.up(msg).await?;
    Ok(())
}
