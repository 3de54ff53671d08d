use taskthread::prelude::*;

struct Middle<I: Iterator>(I);

#[taskthread(up = I::Item, pass_up)]
impl<I: Iterator + Send + 'static> Middle<I> where I::Item: Send + 'static {}

fn main() {}
