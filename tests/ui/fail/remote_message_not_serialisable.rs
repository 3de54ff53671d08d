// `#[taskthread(remote)]`: a message type that is not serialisable is named in the error.
use taskthread::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Job(u32);

struct Secret(std::sync::Mutex<u32>);

struct Worker;

#[taskthread(remote)]
impl Worker {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _job: Job) {}

    #[down]
    async fn secret(&mut self, _ctx: &mut Ctx<Self>, _secret: Secret) {}
}

fn main() {}
