// `remote` is a flag.
use taskthread::prelude::*;

struct Worker;

#[taskthread(remote = true)]
impl Worker {}

fn main() {}
