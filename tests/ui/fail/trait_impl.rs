use taskthread::prelude::*;

trait Named {
    fn name(&self) -> &'static str;
}

struct Worker;

#[taskthread]
impl Named for Worker {
    fn name(&self) -> &'static str {
        "worker"
    }
}

fn main() {}
