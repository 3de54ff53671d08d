use taskthread::prelude::*;

struct Middle<T>(T);

#[taskthread(up = T, pass_up)]
impl<T: Send + 'static> Middle<T> {}

fn main() {}
