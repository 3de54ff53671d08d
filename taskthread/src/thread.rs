//! The [`Thread`] trait the `#[taskthread]` macro implements, and the traits that wire
//! messages to handlers by type.

use std::future::Future;
use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::{Result, TrySendError};
use crate::exit::{ChildExit, ChildId, ChildRestart, ExitReport, log_exit, log_restart};
use crate::node::Node;
use crate::port::{Inbound, ParentSink, UpPort};
use crate::queue::{HoldsOwnPlace, Meter, Places};
use crate::reply::Reply;
use crate::reschedule::{Reschedule, TaskSpec, TimetableRoom};

/// The default capacity of a thread's DOWN queue and of its inbound (UP) queue.
///
/// A thread type can change it with `#[taskthread(capacity = N)]`, and a single child with
/// [`ChildOptions::capacity`](crate::ChildOptions::capacity).
pub const DEFAULT_CAPACITY: usize = 64;

/// A long-lived unit of state with its own serial event loop: a node of the tree.
///
/// Implemented by the [`#[taskthread]`](macro@crate::taskthread) attribute on an `impl`
/// block; the hidden methods are the generated wiring and are not meant to be written by
/// hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a thread",
    label = "`{Self}` has no `#[taskthread]` impl block",
    note = "a type becomes a thread through `#[taskthread]` on an `impl` block of it, which holds its handlers and hooks: `#[taskthread] impl {Self} {{ ... }}`"
)]
pub trait Thread: Send + Sized + 'static {
    /// The generated enum of DOWN messages (one variant per `#[down]` handler).
    type Down: Send + 'static;
    /// The type this thread sends UP to its parent (`#[taskthread(up = T)]`), or [`NoUp`].
    type Up: Send + 'static;
    /// The generated enum of events: UP messages from children and `#[stream]` items.
    type Event: Send + 'static;

    /// The type's name as written, e.g. `"TcpServer"`.
    const TYPE_NAME: &'static str;
    /// The default name of a thread of this type, e.g. `"tcp_server"`.
    const DEFAULT_NAME: &'static str;
    /// The types its `#[down]` handlers take, as written.
    const DOWN_TYPES: &'static [&'static str];
    /// The type it sends UP, as written, if it declares one.
    const UP_TYPE: Option<&'static str>;
    /// The capacity of its queues unless the parent says otherwise.
    const CAPACITY: usize = DEFAULT_CAPACITY;
    /// Its `#[rescheduling]` tasks, in declaration order.
    #[doc(hidden)]
    const TASKS: &'static [TaskSpec] = &[];
    /// Where its task keeps the timetable of those tasks: in the task if it has any,
    /// nowhere if it has none.
    #[doc(hidden)]
    type Timetable: TimetableRoom;

    // The methods that run the thread's code declare `for<'s> Self: Send`, which the
    // supertrait implies: the generated impl assumes it, so its futures, which hold `self`,
    // are `Send` even for a type that is not, and that type is reported once, at the impl,
    // rather than again at every future.

    #[doc(hidden)]
    fn __enter<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send;

    #[doc(hidden)]
    fn __exit<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send;

    #[doc(hidden)]
    fn __down<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        msg: Self::Down,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send;

    #[doc(hidden)]
    fn __event<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        event: Self::Event,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send;

    #[doc(hidden)]
    fn __exited<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        from: ChildId,
        exit: ChildExit,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send,
    {
        // Logged at once, so the future holds nothing: it is part of every thread's task.
        let _ = from;
        log_exit(ctx.path(), &exit);
        std::future::ready(Ok(()))
    }

    #[doc(hidden)]
    fn __restarted<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        from: ChildId,
        restart: ChildRestart,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        for<'s> Self: Send,
    {
        // Logged at once, as exits are.
        let _ = from;
        log_restart(ctx.path(), &restart);
        std::future::ready(Ok(()))
    }

    /// The index in [`DOWN_TYPES`](Self::DOWN_TYPES) of a DOWN message's type.
    #[doc(hidden)]
    fn __down_index(down: &Self::Down) -> usize
    where
        for<'s> Self: Send;

    #[doc(hidden)]
    fn __task<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        task: usize,
    ) -> impl Future<Output = Result<Reschedule>> + Send + 'a
    where
        for<'s> Self: Send;
}

/// The items of a [`Thread`] impl that takes no messages, sends nothing UP, has no
/// children and no tasks: the extensions' server threads (the control endpoint, the web
/// view, the metrics publisher), written by hand because the `macros` feature may be off.
/// Its `enter` and `exit` hooks, its names, are the impl's own.
#[cfg(any(feature = "control", feature = "web", feature = "metrics"))]
macro_rules! serving_thread_items {
    () => {
        type Down = ::std::convert::Infallible;
        type Up = $crate::thread::NoUp;
        type Event = ::std::convert::Infallible;
        type Timetable = $crate::reschedule::NoTasks;

        const DOWN_TYPES: &'static [&'static str] = &[];
        const UP_TYPE: Option<&'static str> = None;

        async fn __down(
            &mut self,
            _ctx: &mut $crate::ctx::Ctx<Self>,
            msg: ::std::convert::Infallible,
        ) -> $crate::error::Result<()> {
            match msg {}
        }

        fn __down_index(msg: &::std::convert::Infallible) -> usize {
            match *msg {}
        }

        async fn __event(
            &mut self,
            _ctx: &mut $crate::ctx::Ctx<Self>,
            event: ::std::convert::Infallible,
        ) -> $crate::error::Result<()> {
            match event {}
        }

        async fn __exited(
            &mut self,
            _ctx: &mut $crate::ctx::Ctx<Self>,
            _from: $crate::exit::ChildId,
            _exit: $crate::exit::ChildExit,
        ) -> $crate::error::Result<()> {
            // It has no children.
            Ok(())
        }

        async fn __task(
            &mut self,
            _ctx: &mut $crate::ctx::Ctx<Self>,
            _task: usize,
        ) -> $crate::error::Result<$crate::reschedule::Reschedule> {
            Ok($crate::reschedule::Reschedule::Done)
        }
    };
}

#[cfg(any(feature = "control", feature = "web", feature = "metrics"))]
pub(crate) use serving_thread_items;

/// `Self` has a `#[down]` handler for messages of type `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[down]` handler for `{M}`",
    label = "`{Self}` cannot receive `{M}`",
    note = "add `#[down] async fn name(&mut self, ctx: &mut Ctx<Self>, msg: {M}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`"
)]
pub trait Accepts<M>: Thread {
    #[doc(hidden)]
    fn __wrap(msg: M) -> Self::Down;
    #[doc(hidden)]
    fn __unwrap(down: Self::Down) -> M;
}

/// `Self` has a `#[down]` handler for `Q` that returns a value, so `Q` can be
/// [asked](crate::ChildRef::ask).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[down]` handler for `{Q}` that returns a value",
    label = "`{Self}` cannot answer `{Q}`",
    note = "to ask, the handler must return the answer: `#[down] async fn name(&mut self, ctx: &mut Ctx<Self>, q: {Q}) -> Result<Answer>`"
)]
pub trait Asks<Q>: Accepts<Q> {
    /// The type of the answer.
    type Reply: Send + 'static;
    #[doc(hidden)]
    fn __wrap_ask(question: Q, reply: Reply<Self::Reply>) -> Self::Down;
}

/// `Self` has an `#[up]` handler for messages of type `U` from its children.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[up]` handler for `{U}`, the up type of the child it spawns",
    label = "the child sends `{U}` up, and `{Self}` has no handler for it",
    note = "add `#[up] async fn name(&mut self, ctx: &mut Ctx<Self>, from: ChildId, msg: {U}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`, or pass it on to the parent of `{Self}` with `#[taskthread(up = {U}, pass_up)]`"
)]
pub trait HandlesUp<U>: Thread {
    #[doc(hidden)]
    fn __wrap_up(from: ChildId, msg: U) -> Self::Event;

    /// The way UP of a child that sends `U`, if not this thread's inbound queue: a thread
    /// declared `pass_up` passes its children's messages of its own up type straight to
    /// its parent.
    #[doc(hidden)]
    #[inline]
    fn __route(_ctx: &mut Ctx<Self>) -> Option<UpRoute<U>> {
        None
    }
}

/// A way UP for a child other than its parent's inbound queue (see
/// [`HandlesUp::__route`]).
#[doc(hidden)]
pub struct UpRoute<U>(pub(crate) std::sync::Arc<dyn UpPort<U>>);

impl<U> std::fmt::Debug for UpRoute<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UpRoute").field(&self.0.target()).finish()
    }
}

/// `Self`, the up type of a child, is handled by its parent `P`: `P` has an `#[up]` handler
/// for it. The bound of [`Ctx::spawn`] and the other ways to start a child, implemented for
/// every type `P` implements [`HandlesUp`] for.
///
/// The child's up type is the trait's `Self` rather than a parameter of [`HandlesUp`] so
/// that, when the child's type has an error of its own (two `#[taskthread]` impls), the
/// compiler has nothing to infer here and adds no error to the one of the child's type.
#[diagnostic::on_unimplemented(
    message = "`{P}` has no `#[up]` handler for `{Self}`, the up type of the child it spawns",
    label = "the child sends `{Self}` up, and `{P}` has no handler for it",
    note = "add `#[up] async fn name(&mut self, ctx: &mut Ctx<Self>, from: ChildId, msg: {Self}) -> Result<()>` to the `#[taskthread]` impl of `{P}`, or pass it on to the parent of `{P}` with `#[taskthread(up = {Self}, pass_up)]`"
)]
pub trait UpHandledBy<P: Thread>: Sized {
    #[doc(hidden)]
    fn __wrap_up_to(from: ChildId, msg: Self) -> P::Event;
    #[doc(hidden)]
    fn __route_to(ctx: &mut Ctx<P>) -> Option<UpRoute<Self>>;
}

impl<P: HandlesUp<U>, U> UpHandledBy<P> for U {
    #[inline]
    fn __wrap_up_to(from: ChildId, msg: U) -> P::Event {
        P::__wrap_up(from, msg)
    }

    #[inline]
    fn __route_to(ctx: &mut Ctx<P>) -> Option<UpRoute<U>> {
        P::__route(ctx)
    }
}

/// `Self` has a `#[stream]` handler for items of type `I` (from
/// [`Ctx::attach`], [`Ctx::spawn_task`] or [`Ctx::spawn_blocking`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[stream]` handler for `{I}`",
    label = "items of type `{I}` would have nowhere to go",
    note = "add `#[stream] async fn name(&mut self, ctx: &mut Ctx<Self>, item: {I}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`"
)]
pub trait HandlesStream<I>: Thread {
    #[doc(hidden)]
    fn __wrap_item(item: I) -> Self::Event;
}

/// `Self` sends messages of type `M` up to its parent: `M` is the type it declares with
/// `#[taskthread(up = M)]`. The bound of [`Ctx::up`] and [`Ctx::try_up`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not send `{M}` up",
    label = "`{M}` is not the up type of `{Self}`",
    note = "a thread sends up the one type it declares: to send `{M}`, write `#[taskthread(up = {M})]` on the `#[taskthread]` impl of `{Self}`"
)]
pub trait SendsUp<M>: Thread {
    #[doc(hidden)]
    fn __into_up(msg: M) -> Self::Up;
}

// Through `UpType` rather than `Up = M`, so that a thread that declares no up type has
// no single candidate: the compiler then reports the message's type instead of inferring
// `NoUp` and reporting a type mismatch. And on the up type, not on a generated type of the
// thread, so that when a type has two `#[taskthread]` impls (an error of its own) nothing
// here is ambiguous but the `Thread` impl, which the compiler does not report again.
#[diagnostic::do_not_recommend]
impl<T: Thread, M> SendsUp<M> for T
where
    T::Up: UpType<M>,
{
    #[inline]
    fn __into_up(msg: M) -> T::Up {
        <T::Up as UpType<M>>::__from_msg(msg)
    }
}

/// `Self` is the up type of a thread that sends `M` up: `M` itself. [`NoUp`] has two
/// placeholder impls instead (in `__private`), which never apply, so that the message
/// type is taken from the message rather than inferred as `NoUp`.
#[doc(hidden)]
pub trait UpType<M>: Sized {
    fn __from_msg(msg: M) -> Self;
}

impl<M> UpType<M> for M {
    #[inline]
    fn __from_msg(msg: M) -> M {
        msg
    }
}

/// The up type of a thread that sends nothing up. It has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "remote", derive(serde::Serialize, serde::Deserialize))]
pub enum NoUp {}

impl<T: Thread> HandlesUp<NoUp> for T {
    fn __wrap_up(_from: ChildId, msg: NoUp) -> T::Event {
        match msg {}
    }
}

/// A parent's sink takes every type the parent has an `#[up]` handler for.
impl<P, U> UpPort<U> for ParentSink<P, P::Event>
where
    P: Thread,
    U: UpHandledBy<P> + Send + 'static,
{
    #[inline]
    fn try_send(&self, from: ChildId, msg: U) -> Result<(), TrySendError<U>> {
        self.tx
            .try_send_with(msg, |m| Inbound::Event(U::__wrap_up_to(from, m)))
            .map_err(|(refused, m)| refused.with(m))
    }

    fn meter(&self) -> &Meter {
        self.tx.meter()
    }

    fn places(&self) -> Places {
        self.tx.places()
    }

    fn send_permitted(&self, from: ChildId, msg: U) {
        self.tx
            .send_permitted(Inbound::Event(U::__wrap_up_to(from, msg)));
    }

    fn send_own(&self, from: ChildId, msg: U, owner: Arc<dyn HoldsOwnPlace>) -> Result<(), U> {
        self.tx
            .send_own(msg, |m| Inbound::Unmetered(U::__wrap_up_to(from, m)), owner)
    }

    fn report(&self, from: ChildId, exit: ExitReport) {
        self.report_exit(from, exit);
    }

    fn report_restart(&self, from: ChildId, restart: Box<ChildRestart>) {
        ParentSink::report_restart(self, from, restart);
    }

    fn target(&self) -> &str {
        self.parent.path()
    }

    fn receiver(&self) -> Option<&Node> {
        Some(&self.parent)
    }
}
