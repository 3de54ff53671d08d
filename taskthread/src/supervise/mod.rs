//! Supervision: a child started again by its own task when it fails (or whenever it ends),
//! with backoff, a limit on restarts in a window, escalation to the parent past it, and
//! groups of siblings restarted together.
//!
//! - [`Ctx::supervise`] starts a supervised child; its address stays valid across lives.
//! - [`RestartPolicy`] says when it starts again, after which wait, how often at most;
//!   [`Restart`] is the "when".
//! - [`RestartGroup`] restarts siblings together ("one for all").
//! - [`Restarts`] makes the policy's decisions for a child whose lives run elsewhere (a
//!   [proxy](crate::proxy)'s).
//! - Each restart reaches the parent as a [`ChildRestart`](crate::ChildRestart) (which life,
//!   why, which message failed, the backoff), and an escalation as an
//!   [escalated](crate::ChildExit::escalated) [`ChildExit`](crate::ChildExit).
//!
//! ```
//! use std::time::Duration;
//! use taskthread::prelude::*;
//! use taskthread::supervise::RestartPolicy;
//!
//! #[derive(Default)]
//! struct Flaky;
//!
//! #[taskthread]
//! impl Flaky {
//!     #[down]
//!     async fn fail(&mut self, _ctx: &mut Ctx<Self>, _n: u32) -> Result<()> {
//!         Err(Error::msg("flaky"))
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Parent;
//!
//! #[taskthread]
//! impl Parent {
//!     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
//!         let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
//!         let child = ctx.supervise(|| Flaky, policy);
//!         child.send(1u32).await?;   // fails, and is started again
//!         child.send(2u32).await?;   // handled by its next life
//!         ctx.stop();
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let root = taskthread::spawn(Parent);
//! assert!(matches!(root.join().await, Exit::Completed));
//! # }
//! ```

mod group;
mod life;
mod policy;
mod restarts;

pub use group::RestartGroup;
pub use policy::{Restart, RestartPolicy};
pub use restarts::{AfterLife, Restarts};

use crate::child::{ChildOptions, ChildRef};
use crate::ctx::Ctx;
use crate::driver::{DownLog, LifeRules, parent_port};
use crate::thread::{Thread, UpHandledBy};

impl<T: Thread> Ctx<T> {
    /// Spawns a supervised child: `factory` makes it, and makes it again after it fails (or
    /// whenever it ends, as `policy` says), with backoff and a limit on restarts in a window;
    /// past the limit the child ends for good and this thread fails with an error naming it
    /// and its last failure.
    ///
    /// The returned address stays valid across restarts (same id, same queue): messages
    /// queued for the child wait for its next life instead of being lost, and between two
    /// lives it shows as [`Restarting`](crate::ThreadState::Restarting) with its queue open.
    /// Each restart is counted in the [snapshot](crate::TreeSnapshot::restarts) and reported
    /// to this thread as a [`ChildRestart`](crate::ChildRestart), which an `#[up]` handler
    /// can take (it is logged otherwise). A stop from outside (this thread stopping,
    /// [`ChildRef::stop`], [`stop_child`](Self::stop_child)) is final.
    ///
    /// The [module](crate::supervise) has more: restart limits, escalation, restart groups.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::supervise::RestartPolicy;
    /// # struct Count;
    /// # struct Fail;
    /// # /// Counts the `Count`s it is asked, and fails on a `Fail`.
    /// # #[derive(Default)]
    /// # struct Counter { n: u32 }
    /// # #[taskthread]
    /// # impl Counter {
    /// #     #[down]
    /// #     async fn count(&mut self, _ctx: &mut Ctx<Self>, _c: Count) -> Result<u32> {
    /// #         self.n += 1;
    /// #         Ok(self.n)
    /// #     }
    /// #     #[down]
    /// #     async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
    /// #         Err(Error::msg("boom"))
    /// #     }
    /// # }
    ///
    /// struct Run;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn run(&mut self, ctx: &mut Ctx<Self>, _r: Run) -> Result<(u32, u32)> {
    ///         let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
    ///         let counter = ctx.supervise(Counter::default, policy);
    ///         counter.ask(Count).await?; // 1
    ///         counter.send(Fail).await?; // fails, and is started again
    ///         let n = counter.ask(Count).await?; // same address, a fresh `Counter`
    ///         Ok((n, counter.snapshot().restarts))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Counter` answers `Count` with how often it was asked, and fails on `Fail`.
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(Run).await.unwrap(), (1, 1));
    /// # }
    /// ```
    pub fn supervise<C, F>(&mut self, factory: F, policy: RestartPolicy) -> ChildRef<C>
    where
        C: Thread,
        F: FnMut() -> C + Send + 'static,
        C::Up: UpHandledBy<T>,
    {
        self.supervise_with(factory, policy, ChildOptions::new())
    }

    /// [`supervise`](Self::supervise) with spawn options.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::supervise::RestartPolicy;
    /// # struct Count;
    /// # struct Fail;
    /// # /// Counts the `Count`s it is asked, and fails on a `Fail`.
    /// # #[derive(Default)]
    /// # struct Counter { n: u32 }
    /// # #[taskthread]
    /// # impl Counter {
    /// #     #[down]
    /// #     async fn count(&mut self, _ctx: &mut Ctx<Self>, _c: Count) -> Result<u32> {
    /// #         self.n += 1;
    /// #         Ok(self.n)
    /// #     }
    /// #     #[down]
    /// #     async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
    /// #         Err(Error::msg("boom"))
    /// #     }
    /// # }
    ///
    /// struct Run;
    /// struct App;
    ///
    /// #[taskthread]
    /// impl App {
    ///     #[down]
    ///     async fn run(&mut self, ctx: &mut Ctx<Self>, _r: Run) -> Result<String> {
    ///         let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
    ///         let options = ChildOptions::new().name("tally");
    ///         let counter = ctx.supervise_with(Counter::default, policy, options);
    ///         counter.send(Fail).await?;
    ///         counter.ask(Count).await?; // answered by its next life
    ///         Ok(counter.path().to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Counter` answers `Count` with how often it was asked, and fails on `Fail`.
    /// let app = taskthread::spawn(App);
    /// assert_eq!(app.ask(Run).await.unwrap(), "app/tally");
    /// # }
    /// ```
    pub fn supervise_with<C, F>(
        &mut self,
        factory: F,
        policy: RestartPolicy,
        options: ChildOptions,
    ) -> ChildRef<C>
    where
        C: Thread,
        F: FnMut() -> C + Send + 'static,
        C::Up: UpHandledBy<T>,
    {
        let rules = LifeRules {
            keep_queue: policy.keep_queue(),
            done: None,
            taken: None,
            log: Some(DownLog::default()),
        };
        self.launch_child(options, parent_port::<T, C>, move |prepared| {
            prepared.launch_with(|ctx, rx| life::supervise(factory, ctx, rx, rules, policy))
        })
    }
}
