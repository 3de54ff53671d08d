//! Procedural macros for [taskthread](https://docs.rs/taskthread). Use them through the
//! `taskthread` crate, which re-exports them; this crate is an implementation detail.

mod ast;
mod attr;
mod diag;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Turns an annotated `impl` block into a thread of the taskthread tree.
///
/// ```ignore
/// #[taskthread(up = Frame)]
/// impl DataProcessor {
///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> { Ok(()) }   // optional
///
///     #[down]                                   // a message from the parent, by type
///     async fn packet(&mut self, ctx: &mut Ctx<Self>, p: Packet) -> Result<()> { .. }
///
///     #[down]                                   // returns a value: can be asked
///     async fn stats(&mut self, ctx: &mut Ctx<Self>, q: Stats) -> Result<Counts> { .. }
///
///     #[up]                                     // a message from a child, by type
///     async fn frame(&mut self, ctx: &mut Ctx<Self>, from: ChildId, f: Frame) -> Result<()> { .. }
///
///     #[up]                                     // a child's exit report
///     async fn exited(&mut self, ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit) -> Result<()> { .. }
///
///     #[up]                                     // a supervised child's restart
///     async fn restarted(&mut self, ctx: &mut Ctx<Self>, from: ChildId, r: ChildRestart) -> Result<()> { .. }
///
///     #[stream]                                 // an item of an attached stream or task
///     async fn line(&mut self, ctx: &mut Ctx<Self>, line: String) -> Result<()> { .. }
///
///     #[rescheduling(every = "5s", delay = "1s", missed = "skip")]
///     async fn report(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> { .. }
///
///     async fn exit(&mut self, ctx: &mut Ctx<Self>) { }                        // optional
/// }
/// ```
///
/// # Options of `#[taskthread(...)]`
/// - `up = Type`: the type this thread sends UP to its parent (default: nothing).
/// - `capacity = N`: the capacity of its queues (default 64).
/// - `name = "..."`: its default name in the tree (default: the type in snake case).
/// - `crate = "path"`: where the `taskthread` crate is, for a crate that reaches it through
///   a re-export. A dependency renamed in `Cargo.toml` is found without it.
/// - `remote`: its messages can cross a process boundary (taskthread's feature `remote`):
///   implements `taskthread::proxy::Remote`, and every `#[down]` message type, every answer
///   and the up type must be serde-serialisable, else a compile error names the type.
/// - `pass_up`: its children's messages of its up type go straight to its parent, as its
///   own (the parent's `from` is this thread's id), without passing through this thread's
///   queue or loop; its children's exits still come to it. It needs `up = Type`, and no
///   `#[up]` handler of its own for that type.
///
/// # Options of `#[rescheduling(...)]`
/// - `every = "5s"`: run periodically (units ns, us, ms, s, m, h; decimals allowed).
/// - `delay = "1s"`: wait this long after starting before the first run (default: none).
/// - `manual`: do not start with the thread; start with `ctx.start_task(Self::NAME)`.
/// - `missed = "skip" | "burst" | "delay"`: what to do when a run overruns the next tick
///   (default `skip`).
///
/// Each task gets an associated constant named after it in upper case (`Self::REPORT`;
/// `r#loop` gives `Self::LOOP`), used to start, reschedule or cancel it by a name the
/// compiler checks.
///
/// # What the expansion holds
/// Next to the impl block, as it was written without the handler attributes, the macro
/// generates the thread's message and event enums, its `Thread` impl with the dispatch, the
/// `Accepts` / `Asks` / `HandlesUp` / `HandlesStream` impls and the task constants, all
/// inside one `const _: () = { ... };`: two types of one name, or two instantiations of one
/// generic type, never clash, and nothing the module defines or imports changes what the
/// expansion means. A method under `#[cfg(...)]` is in the dispatch when it is compiled in.
/// A mistake is reported on the tokens that make it, once: the method in error keeps its
/// place in the dispatch, so the rest of the crate sees its message type handled.
#[proc_macro_attribute]
pub fn taskthread(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::taskthread(args.into(), input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
