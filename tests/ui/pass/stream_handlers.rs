use taskthread::prelude::*;

struct Line(String);
struct Checksum(u32);
struct Loaded(Vec<u8>);

#[derive(Default)]
struct Tail;

#[taskthread]
impl Tail {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.attach(tokio_stream::iter(vec![Line("a".into()), Line("b".into())]));
        ctx.spawn_task(async { Checksum(7) });
        ctx.spawn_blocking(|| Loaded(vec![0; 16]));
        Ok(())
    }

    #[stream]
    async fn line(&mut self, _ctx: &mut Ctx<Self>, line: Line) -> Result<()> {
        let _ = line.0;
        Ok(())
    }

    #[stream]
    async fn checksum(&mut self, _ctx: &mut Ctx<Self>, sum: Checksum) {
        let _ = sum.0;
    }

    #[stream]
    async fn loaded(&mut self, _ctx: &mut Ctx<Self>, data: Loaded) -> Result<()> {
        let _ = data.0;
        Ok(())
    }
}

fn main() {}
