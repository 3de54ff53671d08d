use taskthread::prelude::*;

struct Worker;

#[taskthread(capacity = 0)]
impl Worker {}

fn main() {}
