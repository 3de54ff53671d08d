use taskthread::prelude::*;

struct Worker;

#[taskthread(queue = 8)]
impl Worker {}

fn main() {}
