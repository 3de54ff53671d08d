use taskthread::prelude::*;

#[derive(Default)]
struct Idle;

#[taskthread]
impl Idle {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let handle = taskthread::spawn(Idle);
    handle.stop();
    handle.join().await.into_result()
}
