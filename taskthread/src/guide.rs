//! The guide, chapter by chapter. Every Rust snippet in it is compiled and run as a doctest.

#[doc = include_str!("../../docs/01-introduction.md")]
pub mod introduction {}

#[doc = include_str!("../../docs/02-anatomy-of-a-thread.md")]
pub mod anatomy_of_a_thread {}

#[doc = include_str!("../../docs/03-rescheduling-tasks.md")]
pub mod rescheduling_tasks {}

#[doc = include_str!("../../docs/04-messages-up-and-down.md")]
pub mod messages_up_and_down {}

#[doc = include_str!("../../docs/05-stopping.md")]
pub mod stopping {}

#[doc = include_str!("../../docs/06-failure-and-supervision.md")]
pub mod failure_and_supervision {}

#[doc = include_str!("../../docs/07-pools-and-control.md")]
pub mod pools_and_control {}

#[doc = include_str!("../../docs/08-sync-interop.md")]
pub mod sync_interop {}

#[doc = include_str!("../../docs/10-observing-a-tree.md")]
pub mod observing_a_tree {}
