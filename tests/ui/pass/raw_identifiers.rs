//! Raw identifiers name tasks, handlers and types: the derived names drop the `r#`.

use taskthread::prelude::*;

struct Job;

#[derive(Default)]
#[allow(non_camel_case_types)]
struct r#Worker {
    runs: u32,
}

#[taskthread]
impl r#Worker {
    #[down]
    async fn r#type(&mut self, ctx: &mut Ctx<Self>, _job: Job) -> Result<()> {
        ctx.start_task(Self::LOOP);
        Ok(())
    }

    #[rescheduling(manual)]
    async fn r#loop(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.runs += 1;
        Ok(Reschedule::Stop)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(<r#Worker as Thread>::TYPE_NAME, "Worker");
    assert_eq!(<r#Worker as Thread>::DEFAULT_NAME, "worker");
    assert_eq!(<r#Worker as Thread>::TASKS[0].name, "loop");
    let root = taskthread::spawn(r#Worker::default());
    root.send(Job).await.unwrap();
    assert!(matches!(root.join().await, Exit::Completed));
}
