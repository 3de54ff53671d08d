//! Handlers returning `Result` aliases of other names and other error types.

use std::fmt;

use taskthread::prelude::*;

#[derive(Debug)]
struct MyError;

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

type Res<T> = std::result::Result<T, MyError>;
type Outcome = std::result::Result<(), MyError>;
type Count = std::result::Result<u32, std::io::Error>;
type Fallible<T, E = taskthread::Error> = std::result::Result<T, E>;

struct Ping;
struct Question;
struct Other;
struct Third;

#[derive(Default)]
struct Worker {
    pings: u32,
}

#[taskthread]
impl Worker {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Outcome {
        Ok(())
    }

    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Res<()> {
        self.pings += 1;
        Ok(())
    }

    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Res<u32> {
        Ok(self.pings)
    }

    #[down]
    async fn other(&mut self, _ctx: &mut Ctx<Self>, _o: Other) -> Count {
        Ok(self.pings + 1)
    }

    #[down]
    async fn third(&mut self, _ctx: &mut Ctx<Self>, _t: Third) -> std::io::Result<u32> {
        Ok(self.pings + 2)
    }

    #[stream]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, _line: String) -> Outcome {
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Fallible<Reschedule> {
        Ok(Reschedule::Again)
    }

    #[rescheduling(every = "1s")]
    async fn tock(&mut self, _ctx: &mut Ctx<Self>) -> Res<Reschedule> {
        Ok(Reschedule::Again)
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) -> Fallible<()> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = taskthread::spawn(Worker::default());
    root.send(Ping).await.unwrap();
    assert_eq!(root.ask(Question).await.unwrap(), 1);
    assert_eq!(root.ask(Other).await.unwrap(), 2);
    assert_eq!(root.ask(Third).await.unwrap(), 3);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}
