//! A parent's view of its children through its [`Ctx`]: list them ([`ChildInfo`]), find
//! them by id or by type, broadcast to them, stop one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::ChildRef;
use crate::ctx::Ctx;
use crate::exit::{ChildId, ThreadState};
use crate::node::ChildNode;
use crate::thread::{Accepts, Thread};

/// A brief description of a child, from [`Ctx::children`].
#[derive(Clone)]
pub struct ChildInfo {
    child: Arc<dyn ChildNode>,
}

impl ChildInfo {
    /// The child's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Check;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn check(&mut self, ctx: &mut Ctx<Self>, _c: Check) -> Result<bool> {
    ///         let worker = ctx.spawn(Worker);
    ///         let info = ctx.children().next().unwrap();
    ///         Ok(info.id() == worker.id())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert!(team.ask(Check).await.unwrap());
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.child.node().id
    }

    /// Its name among its siblings, e.g. `tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Names;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn names(&mut self, ctx: &mut Ctx<Self>, _n: Names) -> Result<Vec<String>> {
    ///         ctx.spawn(Worker);
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.name().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Names).await.unwrap(), ["worker", "worker-2"]);
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.child.node().name()
    }

    /// Its path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Paths;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn paths(&mut self, ctx: &mut Ctx<Self>, _p: Paths) -> Result<Vec<String>> {
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.path().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Paths).await.unwrap(), ["team/worker"]);
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        self.child.node().path()
    }

    /// Its type, e.g. `"TcpConnection"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # #[derive(Default)]
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Types;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn types(&mut self, ctx: &mut Ctx<Self>, _t: Types) -> Result<Vec<&'static str>> {
    ///         ctx.spawn(Worker);
    ///         Ok(ctx.children().map(|c| c.type_name()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Types).await.unwrap(), ["Worker"]);
    /// # }
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.child.node().meta.type_name
    }

    /// Where it is in its lifecycle now.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::ThreadState;
    /// # struct Ping;
    /// # struct Worker;
    /// # #[taskthread]
    /// # impl Worker {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<bool> { Ok(true) }
    /// # }
    ///
    /// struct States;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn states(&mut self, ctx: &mut Ctx<Self>, _s: States) -> Result<Vec<ThreadState>> {
    ///         let worker = ctx.spawn(Worker);
    ///         worker.ask(Ping).await?; // answered: it has started
    ///         Ok(ctx.children().map(|c| c.state()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(States).await.unwrap(), [ThreadState::Running]);
    /// # }
    /// ```
    pub fn state(&self) -> ThreadState {
        self.child.node().state()
    }
}

impl fmt::Debug for ChildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildInfo")
            .field("id", &self.id())
            .field("path", &self.path())
            .field("type_name", &self.type_name())
            .field("state", &self.state())
            .finish()
    }
}

impl<T: Thread> Ctx<T> {
    /// All live children, in spawn order.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Db;
    /// # #[taskthread] impl Db {}
    /// # struct Web;
    /// # #[taskthread] impl Web {}
    ///
    /// struct List;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn list(&mut self, ctx: &mut Ctx<Self>, _l: List) -> Result<Vec<String>> {
    ///         ctx.spawn(Db);
    ///         ctx.spawn(Web);
    ///         Ok(ctx.children().map(|c| format!("{} {}", c.type_name(), c.path())).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(List).await.unwrap(), ["Db app/db", "Web app/web"]);
    /// # }
    /// ```
    pub fn children(&self) -> impl ExactSizeIterator<Item = ChildInfo> + use<T> {
        self.node()
            .children_now()
            .into_iter()
            .map(|child| ChildInfo { child })
    }

    /// The number of live children.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Count;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn count(&mut self, ctx: &mut Ctx<Self>, _c: Count) -> Result<usize> {
    ///         for _ in 0..3 {
    ///             ctx.spawn(Worker);
    ///         }
    ///         Ok(ctx.child_count())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Count).await.unwrap(), 3);
    /// # }
    /// ```
    pub fn child_count(&self) -> usize {
        self.family_ref().map_or(0, |f| f.child_count())
    }

    /// Asks the child with this id to stop gracefully; `false` if there is no such child.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Fire;
    /// struct Boss;
    ///
    /// #[taskthread(up = String)]
    /// impl Boss {
    ///     #[down]
    ///     async fn fire(&mut self, ctx: &mut Ctx<Self>, _f: Fire) -> Result<bool> {
    ///         let worker = ctx.spawn(Worker);
    ///         Ok(ctx.stop_child(worker.id()))
    ///     }
    ///
    ///     #[up]
    ///     async fn exited(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
    ///         ctx.up(exit.to_string()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut boss = taskthread::spawn(Boss);
    /// assert!(boss.ask(Fire).await.unwrap());
    /// assert_eq!(boss.recv().await.unwrap(), "`boss/worker` (Worker) stopped");
    /// # }
    /// ```
    pub fn stop_child(&self, id: ChildId) -> bool {
        match self.node().child(id) {
            Some(child) => {
                child.node().request_stop();
                true
            }
            None => false,
        }
    }

    /// The address of the child with this id, if it is alive and of type `C`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread] impl Worker {}
    ///
    /// struct Find;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn find(&mut self, ctx: &mut Ctx<Self>, _f: Find) -> Result<(bool, bool)> {
    ///         let id = ctx.spawn(Worker).id();
    ///         Ok((ctx.child::<Worker>(id).is_some(), ctx.child::<Team>(id).is_some()))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Find).await.unwrap(), (true, false)); // a `Worker`, not a `Team`
    /// # }
    /// ```
    pub fn child<C: Thread>(&self, id: ChildId) -> Option<ChildRef<C>> {
        ChildRef::downcast(self.node().child(id)?)
    }

    /// The addresses of all live children of type `C`, in spawn order.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Db;
    /// # #[taskthread] impl Db {}
    /// # struct Web;
    /// # #[taskthread] impl Web {}
    ///
    /// struct Webs;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn webs(&mut self, ctx: &mut Ctx<Self>, _w: Webs) -> Result<Vec<String>> {
    ///         ctx.spawn(Web);
    ///         ctx.spawn(Db);
    ///         ctx.spawn(Web);
    ///         Ok(ctx.children_of::<Web>().iter().map(|w| w.name().to_owned()).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(Webs).await.unwrap(), ["web", "web-2"]);
    /// # }
    /// ```
    pub fn children_of<C: Thread>(&self) -> Vec<ChildRef<C>> {
        self.node()
            .children_now()
            .into_iter()
            .filter_map(ChildRef::downcast)
            .collect()
    }

    /// Sends a clone of `msg` to every live child of type `C`; returns how many accepted it.
    ///
    /// Children that are stopping refuse it and are not counted, and so is a child that
    /// waits on this thread while its queue is full: it could never take the message (see
    /// [waits that would never end](crate::guide::messages_up_and_down#waits-that-would-never-end)).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Worker;
    /// # #[taskthread]
    /// # impl Worker {
    /// #     #[down]
    /// #     async fn reload(&mut self, _ctx: &mut Ctx<Self>, _r: Reload) {}
    /// # }
    ///
    /// #[derive(Clone)]
    /// struct Reload;
    /// struct Team;
    ///
    /// #[taskthread]
    /// impl Team {
    ///     #[down]
    ///     async fn reload(&mut self, ctx: &mut Ctx<Self>, r: Reload) -> Result<usize> {
    ///         for _ in 0..3 {
    ///             ctx.spawn(Worker);
    ///         }
    ///         Ok(ctx.broadcast::<Worker, _>(r).await)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let team = taskthread::spawn(Team);
    /// assert_eq!(team.ask(Reload).await.unwrap(), 3);
    /// # }
    /// ```
    pub fn broadcast<'a, C, M>(&'a self, msg: M) -> BroadcastFuture<'a>
    where
        C: Accepts<M>,
        M: Clone + Send + 'a,
    {
        // A named future rather than an `async fn`, so that a message the children do not
        // handle is reported once, at the call, and not again at the call's value and at
        // the `.await`. Boxed, as its state (the children's list and a send to one of them)
        // has no name; a broadcast lists the children anyway.
        let children = self.node().children_now();
        BroadcastFuture {
            sends: Box::pin(async move {
                let mut accepted = 0;
                for child in children {
                    if let Some(child) = ChildRef::<C>::downcast(child)
                        && child.send(msg.clone()).await.is_ok()
                    {
                        accepted += 1;
                    }
                }
                accepted
            }),
        }
    }
}

/// The future of [`Ctx::broadcast`]: resolves to how many children accepted the message.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct BroadcastFuture<'a> {
    sends: Pin<Box<dyn Future<Output = usize> + Send + 'a>>,
}

impl Future for BroadcastFuture<'_> {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.sends.as_mut().poll(cx)
    }
}

impl fmt::Debug for BroadcastFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastFuture").finish_non_exhaustive()
    }
}
