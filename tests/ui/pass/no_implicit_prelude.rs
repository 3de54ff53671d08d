//! A module without the implicit prelude.

#![no_implicit_prelude]

use ::taskthread::prelude::*;

struct Ping;
struct Question;
struct Frame;

struct Child;

#[taskthread(up = Frame, capacity = 8)]
impl Child {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        ctx.up(Frame).await?;
        ::std::result::Result::Ok(())
    }

    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u8> {
        ::std::result::Result::Ok(1)
    }

    #[stream]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, _line: ::std::string::String) -> Result<()> {
        ::std::result::Result::Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        ::std::result::Result::Ok(Reschedule::Again)
    }
}

struct Parent<T> {
    last: ::std::option::Option<T>,
}

#[taskthread]
impl<T> Parent<T> {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let child = ctx.spawn(Child);
        child.send(Ping).await?;
        ::std::result::Result::Ok(())
    }

    #[down]
    async fn keep(&mut self, _ctx: &mut Ctx<Self>, value: T) -> Result<()> {
        self.last = ::std::option::Option::Some(value);
        ::std::result::Result::Ok(())
    }

    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _f: Frame) -> Result<()> {
        ::std::result::Result::Ok(())
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _e: ChildExit) -> Result<()> {
        ::std::result::Result::Ok(())
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
