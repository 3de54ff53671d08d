//! The threads and the synchronous front of the `notify` example: a plain, blocking program
//! that hands e-mail jobs to a [`Mailer`](mailer::Mailer) thread running in a background
//! tree, which sends them with lettre off its loop (`ctx.spawn_blocking`, a bounded number
//! at once).
//!
//! - [`command`]: the command language and its parser (clear errors for bad input);
//! - [`lines`]: input lines of a bounded length, whatever their encoding;
//! - [`mailer`]: the `Mailer` thread and where mails go (a directory, or an SMTP server);
//! - [`session`]: the synchronous front: reads commands, prints deliveries, stops the tree.

pub mod command;
pub mod lines;
pub mod mailer;
pub mod session;
