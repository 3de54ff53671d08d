use std::rc::Rc;

use taskthread::prelude::*;

struct Worker;

#[taskthread(up = Rc<u32>)]
impl Worker {}

fn main() {}
