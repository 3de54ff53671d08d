//! What the tests that run the binary share: a worker pool for the tree they inspect.

use taskthread::pool::WorkerPool;
use taskthread::prelude::*;

/// Takes numbers and does nothing with them.
#[derive(Default)]
pub(crate) struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _n: u64) -> Result<()> {
        Ok(())
    }
}

/// A pool of `size` workers, at most `max`.
pub(crate) fn pool(size: usize, max: usize) -> WorkerPool<Worker> {
    WorkerPool::new(|| Worker).size(size).max(max)
}
