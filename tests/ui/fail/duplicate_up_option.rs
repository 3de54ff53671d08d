use taskthread::prelude::*;

struct Frame;

struct Worker;

#[taskthread(up = Frame, up = u32)]
impl Worker {}

fn main() {}
