//! A message type that is an alias of a `'static` reference: the macro sees a path, and the
//! generated impls for references sent by mistake do not overlap with its impl.

use taskthread::prelude::*;

type Name = &'static str;

struct Ping;

#[derive(Default)]
struct Greeter {
    last: Option<Name>,
}

#[taskthread]
impl Greeter {
    #[down]
    async fn hello(&mut self, _ctx: &mut Ctx<Self>, name: Name) -> Result<()> {
        self.last = Some(name);
        Ok(())
    }

    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<Option<Name>> {
        Ok(self.last)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = taskthread::spawn(Greeter::default());
    root.send("world").await.unwrap();
    assert_eq!(root.ask(Ping).await.unwrap(), Some("world"));
    root.stop();
    root.join().await;
}
