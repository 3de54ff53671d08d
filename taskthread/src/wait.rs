//! What a thread waits on: the kinds of waits ([`WaitKind`]), and the cycle of waits that
//! would never end ([`WaitCycle`]), which fails the wait that closes it.

use std::fmt;

/// How one thread waits on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitKind {
    /// For room in the other thread's DOWN queue
    /// ([`ChildRef::send`](crate::ChildRef::send), the question of
    /// [`ChildRef::ask`](crate::ChildRef::ask), [`Ctx::broadcast`](crate::Ctx::broadcast)).
    Down,
    /// For room in the parent's inbound queue ([`Ctx::up`](crate::Ctx::up)): the
    /// grandparent's, or higher, when the parent passes the message on (`pass_up`).
    Up,
    /// For the answer to a question ([`ChildRef::ask`](crate::ChildRef::ask)).
    Answer,
}

impl WaitKind {
    /// What a thread waiting this way waits for, as the words before the other thread's
    /// path: "room in the queue of", "room UP in", "an answer from".
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::WaitKind;
    ///
    /// assert_eq!(WaitKind::Up.describe(), "room UP in");
    /// assert_eq!(format!("waits for {} boss", WaitKind::Answer.describe()), "waits for an answer from boss");
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            Self::Down => "room in the queue of",
            Self::Up => "room UP in",
            Self::Answer => "an answer from",
        }
    }
}

impl fmt::Display for WaitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Down => "down",
            Self::Up => "up",
            Self::Answer => "answer",
        })
    }
}

/// Threads that wait on each other in a ring, so that none of their waits would ever end:
/// the first waits on the second, the second on the third, ..., the last on the first.
///
/// A wait that would close such a ring fails at once with it, instead of waiting forever
/// (see [`SendError::cycle`](crate::SendError::cycle) and
/// [`AskError::Cycle`](crate::AskError::Cycle)). The first thread of the cycle is the one
/// whose wait failed. It renders as the threads' paths, back to the first:
/// `boss → boss/chatty → boss`.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitCycle {
    links: Box<[(String, WaitKind)]>,
}

impl WaitCycle {
    /// A cycle of these threads (paths), each waiting on the next as its kind says, the
    /// last on the first.
    pub(crate) fn new(links: Vec<(String, WaitKind)>) -> Self {
        Self {
            links: links.into_boxed_slice(),
        }
    }

    /// The paths of the threads in the cycle, starting with the thread whose wait failed;
    /// each waits on the next, and the last on the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::WaitKind;
    ///
    /// struct Me(ChildRef<Mirror>);
    /// struct Note;
    /// struct Mirror;
    ///
    /// #[taskthread(capacity = 1)]
    /// impl Mirror {
    ///     #[down]
    ///     async fn me(&mut self, _ctx: &mut Ctx<Self>, Me(me): Me) -> Result<(Vec<String>, Vec<WaitKind>)> {
    ///         me.send(Note).await?; // its own queue's one place
    ///         let err = me.send(Note).await.unwrap_err(); // room only this handler could make
    ///         let cycle = err.cycle().unwrap();
    ///         Ok((cycle.threads().map(String::from).collect(), cycle.kinds().collect()))
    ///     }
    ///     #[down]
    ///     async fn note(&mut self, _ctx: &mut Ctx<Self>, _n: Note) {}
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mirror = taskthread::spawn(Mirror);
    /// let (threads, kinds) = mirror.ask(Me(mirror.child_ref())).await.unwrap();
    /// assert_eq!(threads, ["mirror"]); // a cycle of one: "mirror → mirror"
    /// # let _ = kinds;
    /// # }
    /// ```
    pub fn threads(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.links.iter().map(|(path, _)| path.as_str())
    }

    /// How each thread of the cycle waits on the next, in the order of
    /// [`threads`](Self::threads).
    ///
    /// # Examples
    ///
    /// ```
    /// # use taskthread::prelude::*;
    /// # use taskthread::WaitKind;
    /// #
    /// # struct Me(ChildRef<Mirror>);
    /// # struct Note;
    /// # struct Mirror;
    /// #
    /// # #[taskthread(capacity = 1)]
    /// # impl Mirror {
    /// #     #[down]
    /// #     async fn me(&mut self, _ctx: &mut Ctx<Self>, Me(me): Me) -> Result<(Vec<String>, Vec<WaitKind>)> {
    /// #         me.send(Note).await?; // its own queue's one place
    /// #         let err = me.send(Note).await.unwrap_err(); // room only this handler could make
    /// #         let cycle = err.cycle().unwrap();
    /// #         Ok((cycle.threads().map(String::from).collect(), cycle.kinds().collect()))
    /// #     }
    /// #     #[down]
    /// #     async fn note(&mut self, _ctx: &mut Ctx<Self>, _n: Note) {}
    /// # }
    /// #
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mirror = taskthread::spawn(Mirror);
    /// let (threads, kinds) = mirror.ask(Me(mirror.child_ref())).await.unwrap();
    /// assert_eq!(kinds, [WaitKind::Down]); // it waited for room in a DOWN queue
    /// # let _ = threads;
    /// # }
    /// ```
    pub fn kinds(&self) -> impl ExactSizeIterator<Item = WaitKind> + '_ {
        self.links.iter().map(|&(_, kind)| kind)
    }
}

impl fmt::Display for WaitCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, _) in self.links.iter() {
            write!(f, "{path} → ")?;
        }
        match self.links.first() {
            Some((first, _)) => f.write_str(first),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for WaitCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitCycle({self})")
    }
}
