use taskthread::prelude::*;

struct Frame;
struct Middle;

#[taskthread(up = Frame, pass_up = true)]
impl Middle {}

fn main() {}
