//! One generic type made a thread twice, at two instantiations.

use taskthread::prelude::*;

#[derive(Default)]
struct Store<T> {
    items: Vec<T>,
}

#[taskthread(name = "numbers")]
impl Store<u32> {
    #[down]
    async fn put(&mut self, _ctx: &mut Ctx<Self>, n: u32) -> Result<()> {
        self.items.push(n);
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u32> {
        Ok(self.items.iter().sum())
    }
}

#[taskthread(name = "words")]
impl Store<String> {
    #[down]
    async fn put(&mut self, _ctx: &mut Ctx<Self>, word: String) -> Result<()> {
        self.items.push(word);
        Ok(())
    }

    #[rescheduling(every = "1s")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }
}

struct Total;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let numbers = taskthread::spawn(Store::<u32>::default());
    numbers.send(2).await.unwrap();
    numbers.send(3).await.unwrap();
    assert_eq!(numbers.ask(Total).await.unwrap(), 5);
    numbers.stop();
    numbers.join().await;
    let words = taskthread::spawn(Store::<String>::default());
    words.send(String::from("a")).await.unwrap();
    let _ = Store::<String>::TICK;
    words.stop();
    words.join().await;
}
