use taskthread::prelude::*;

struct Ping;

struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<(), String> {
        Err(String::from("no"))
    }
}

fn main() {}
