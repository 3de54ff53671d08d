use taskthread::prelude::*;

struct Ping;
struct Read;
struct Size;

#[derive(Default)]
struct Disk;

#[taskthread]
impl Disk {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) {}

    #[down]
    async fn read(&mut self, _ctx: &mut Ctx<Self>, _r: Read) -> Result<(), std::io::Error> {
        Err(std::io::Error::other("disk gone"))
    }

    #[down]
    async fn size(&mut self, _ctx: &mut Ctx<Self>, _s: Size) -> Result<u64, std::io::Error> {
        Ok(0)
    }
}

async fn drive(disk: ChildRef<Disk>) -> Result<u64> {
    disk.send(Ping).await?;
    disk.send(Read).await?;
    Ok(disk.ask(Size).await?)
}

fn main() {
    let _ = drive;
}
