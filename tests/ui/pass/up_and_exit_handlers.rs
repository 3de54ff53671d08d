use taskthread::prelude::*;

struct Frame(Vec<u8>);

#[derive(Default)]
struct Reader;

#[taskthread(up = Frame)]
impl Reader {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Frame(vec![1, 2, 3])).await?;
        Ok(())
    }
}

#[derive(Default)]
struct Master {
    frames: usize,
}

#[taskthread]
impl Master {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Reader);
        ctx.spawn_with(Reader, ChildOptions::new().name("second").capacity(4));
        Ok(())
    }

    #[up]
    async fn frame(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        self.frames += frame.0.len();
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit) -> Result<()> {
        if exit.exit.is_failure() {
            return exit.exit.into_result();
        }
        let _ = from;
        if ctx.children().len() == 0 {
            ctx.stop();
        }
        Ok(())
    }
}

fn main() {}
