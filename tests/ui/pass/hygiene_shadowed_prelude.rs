//! A module whose names shadow the prelude and the primitive types: a glob import that
//! brings other `Ok`, `Err`, `Some` and `None`, and types named `usize`, `str`, `Option`,
//! `Send` and `Box`.

#![allow(non_camel_case_types, dead_code)]

use taskthread::prelude::*;

mod shadow {
    pub enum Outcome {
        Ok,
        Err,
        Some,
        None,
    }
    pub use Outcome::*;
}
use shadow::*;

struct usize;
struct str;
struct Option;
struct Send;
struct Box;
struct Vec;
trait Future {}
trait Into {}

struct Ping;
struct Question;
struct Frame;

#[derive(Default)]
struct Child;

#[taskthread(up = Frame, capacity = 8)]
impl Child {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        ctx.up(Frame).await?;
        Result::Ok(())
    }

    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u8> {
        Result::Ok(1)
    }

    #[rescheduling(every = "1s", delay = "10ms")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Result::Ok(Reschedule::Again)
    }
}

#[derive(Default)]
struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        child.send(Ping).await?;
        Result::Ok(())
    }

    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<()> {
        ctx.stop();
        Result::Ok(())
    }
}

fn main() {
    let _ = (Ok, Err, Some, None);
}
