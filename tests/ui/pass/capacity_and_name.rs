use taskthread::prelude::*;

struct Frame;

#[derive(Default)]
struct Conn;

#[taskthread(up = Frame, capacity = 8, name = "conn")]
impl Conn {}

const _: () = {
    assert!(<Conn as Thread>::CAPACITY == 8);
};

fn main() {
    assert_eq!(<Conn as Thread>::DEFAULT_NAME, "conn");
}
