//! Statics and unit structs named like the bindings of the generated code.

#![allow(non_upper_case_globals, non_camel_case_types, dead_code)]

use taskthread::prelude::*;

static msg: u8 = 0;
static reply: u8 = 0;
static from: u8 = 0;
static answer: u8 = 0;
static event: u8 = 0;
static task: u8 = 0;
struct item;
struct exit;
struct ctx;
struct down;
struct never;

struct Ping;
struct Question;
struct Frame;

#[derive(Default)]
struct Child;

#[taskthread(up = Frame)]
impl Child {
    #[down]
    async fn ping(&mut self, cx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        cx.up(Frame).await?;
        Ok(())
    }

    #[down]
    async fn question(&mut self, _cx: &mut Ctx<Self>, _q: Question) -> Result<u32> {
        Ok(42)
    }

    #[stream]
    async fn line(&mut self, _cx: &mut Ctx<Self>, _line: String) -> Result<()> {
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _cx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

#[derive(Default)]
struct Parent;

#[taskthread]
impl Parent {
    async fn enter(&mut self, cx: &mut Ctx<Self>) -> Result<()> {
        let child = cx.spawn(Child);
        child.send(Ping).await?;
        assert_eq!(child.ask(Question).await?, 42);
        Ok(())
    }

    #[up]
    async fn frame(&mut self, cx: &mut Ctx<Self>, _id: ChildId, _f: Frame) -> Result<()> {
        cx.stop();
        Ok(())
    }

    #[up]
    async fn exited(&mut self, _cx: &mut Ctx<Self>, _id: ChildId, _e: ChildExit) -> Result<()> {
        Ok(())
    }

    async fn exit(&mut self, _cx: &mut Ctx<Self>) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = taskthread::spawn(Parent);
    assert!(matches!(root.join().await, Exit::Completed));
}
