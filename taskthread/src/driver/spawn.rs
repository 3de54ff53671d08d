//! Starting children: [`Ctx::spawn`] and [`Ctx::spawn_with`], and the one seam every way of
//! starting a child goes through, [`Ctx::launch_child`] (supervision and the worker pool
//! use it with their own port, rules and task).

use std::borrow::Cow;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{Prepared, prepare};
use crate::child::{ChildOptions, ChildRef};
use crate::ctx::Ctx;
use crate::exit::{ChildId, Exit};
use crate::node::{ChildEntry, ChildNode, NodeInit, ThreadMeta};
use crate::port::{ForwardPort, UpPort};
use crate::thread::{Thread, UpHandledBy};

impl ThreadMeta {
    /// The one of thread type `T`.
    pub(crate) fn of<T: Thread>() -> &'static Self {
        <T as MetaOf>::META
    }
}

trait MetaOf {
    const META: &'static ThreadMeta;
}

impl<T: Thread> MetaOf for T {
    const META: &'static ThreadMeta = &ThreadMeta {
        type_name: T::TYPE_NAME,
        down_types: T::DOWN_TYPES,
        up_type: T::UP_TYPE,
        tasks: T::TASKS,
    };
}

/// The port of an ordinary child: its UP messages and its exit go to its parent `T`,
/// through the sink all of `T`'s children share (no allocation per child) — unless `T`
/// passes messages of the child's up type on to its own parent (`pass_up`): then they go
/// there, as `T`'s own, through a port `T`'s children share.
pub(crate) fn parent_port<T, C>(ctx: &mut Ctx<T>) -> Arc<dyn UpPort<C::Up>>
where
    T: Thread,
    C: Thread,
    C::Up: UpHandledBy<T>,
{
    match <C::Up as UpHandledBy<T>>::__route_to(ctx) {
        Some(route) => route.0,
        None => Arc::clone(ctx.family().sink()) as Arc<dyn UpPort<C::Up>>,
    }
}

impl<T: Thread> Ctx<T> {
    /// The port through which this thread's children send UP as the thread itself: their
    /// messages go to this thread's parent with this thread's id, their exits to this
    /// thread. Made once per life of the thread, shared by its children.
    pub(crate) fn forward_port(&mut self) -> Arc<dyn UpPort<T::Up>> {
        let (family, up, id) = self.family_up_and_id();
        family.forward_port(|exits| {
            let up = Arc::clone(up);
            Arc::new(ForwardPort { up, id, exits }) as Arc<dyn UpPort<T::Up>>
        })
    }

    /// Spawns a child with default options and returns its address.
    ///
    /// `Self` must have an `#[up]` handler for the child's up type, or pass it on
    /// (`#[taskthread(up = ..., pass_up)]` with that type); this is checked at compile time.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Greeter;
    ///
    /// #[taskthread(up = String)]
    /// impl Greeter {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up(format!("hello from {}", ctx.path())).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// struct App;
    ///
    /// #[taskthread(up = String)]
    /// impl App {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.spawn(Greeter);
    ///         Ok(())
    ///     }
    ///
    ///     #[up] // required: `Greeter` sends `String` UP
    ///     async fn greeting(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, text: String) -> Result<()> {
    ///         ctx.up(text).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut app = taskthread::spawn(App);
    /// assert_eq!(app.recv().await.unwrap(), "hello from app/greeter");
    /// # }
    /// ```
    pub fn spawn<C>(&mut self, child: C) -> ChildRef<C>
    where
        C: Thread,
        C::Up: UpHandledBy<T>,
    {
        self.spawn_with(child, ChildOptions::new())
    }

    /// Spawns a child with a name, a queue capacity, a stop stage or a stop deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Conn;
    /// # #[taskthread] impl Conn {}
    ///
    /// struct Accept;
    /// struct Server;
    ///
    /// #[taskthread]
    /// impl Server {
    ///     #[down]
    ///     async fn accept(&mut self, ctx: &mut Ctx<Self>, _a: Accept) -> Result<(String, usize)> {
    ///         let options = ChildOptions::new().name("client").capacity(8);
    ///         let conn = ctx.spawn_with(Conn, options);
    ///         Ok((conn.path().to_owned(), conn.snapshot().queue_capacity))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(Server);
    /// assert_eq!(server.ask(Accept).await.unwrap(), ("server/client".to_owned(), 8));
    /// # }
    /// ```
    pub fn spawn_with<C>(&mut self, child: C, options: ChildOptions) -> ChildRef<C>
    where
        C: Thread,
        C::Up: UpHandledBy<T>,
    {
        self.launch_child(options, parent_port::<T, C>, |prepared| {
            prepared.launch(child, true)
        })
    }

    /// Starts a child of this thread: names it among its siblings, makes its node under
    /// this one with `port` as its way UP, starts its task with `start` (which says how its
    /// lives run), and lists it as a child (in its stop stage).
    pub(crate) fn launch_child<C: Thread>(
        &mut self,
        options: ChildOptions,
        port: impl FnOnce(&mut Self) -> Arc<dyn UpPort<C::Up>>,
        start: impl FnOnce(Prepared<'_, C>) -> JoinHandle<Exit>,
    ) -> ChildRef<C> {
        let id = ChildId::next();
        let port = port(self);
        let stopping = self.stop_begun();
        // Borrowed side by side: the family mutably, this thread's node (the parent) shared.
        let (family, parent) = self.family_and_node();
        let (name, suffix) =
            family.name_suffix(options.name.unwrap_or(Cow::Borrowed(C::DEFAULT_NAME)));
        let init = NodeInit {
            parent: Some(Arc::clone(parent.path())),
            name,
            suffix,
            meta: ThreadMeta::of::<C>(),
            capacity: options.capacity.unwrap_or(C::CAPACITY),
            stop_deadline: options.stop_deadline.resolve(parent.stop_deadline),
            blocking_limit: options
                .blocking_limit
                .unwrap_or(crate::blocking::DEFAULT_BLOCKING_LIMIT),
        };
        // On a runtime of its own, the child's task may still be in its last step on
        // another OS thread when its report is handled: its `JoinHandle` is kept.
        let elsewhere = options.runtime.is_some();
        let place = options.runtime.as_ref().map_or(0, |r| family.place_of(r));
        let runtime = options.runtime.as_ref().or(family.runtime());
        let (child_ref, prepared) = prepare::<C>(id, init, port, runtime);
        let join = start(prepared);
        // Dropped now where it is not needed: see `ChildEntry::join`.
        let keep_join = elsewhere || family.keeps_join(stopping);
        child_ref.node.set_task(join.abort_handle(), !keep_join);
        let entry = ChildEntry {
            child: Arc::clone(&child_ref.node) as Arc<dyn ChildNode>,
            stage: options.stage,
            place,
            join: keep_join.then_some(join),
        };
        family.add_child(entry, stopping);
        child_ref
    }
}
