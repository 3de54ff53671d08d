use taskthread::prelude::*;

struct Middle;

#[taskthread(pass_up)]
impl Middle {}

fn main() {}
