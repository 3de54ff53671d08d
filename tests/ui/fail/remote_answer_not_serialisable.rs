// `#[taskthread(remote)]`: an answer type that is not serialisable is named in the error.
use taskthread::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Query;

struct Handle(std::fs::File);

struct Worker;

#[taskthread(remote)]
impl Worker {
    #[down]
    async fn query(&mut self, _ctx: &mut Ctx<Self>, _q: Query) -> Result<Handle> {
        Err(Error::msg("no file"))
    }
}

fn main() {}
