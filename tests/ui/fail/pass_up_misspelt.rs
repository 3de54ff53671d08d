use taskthread::prelude::*;

struct Frame;
struct Middle;

#[taskthread(up = Frame, pass_upp)]
impl Middle {}

fn main() {}
