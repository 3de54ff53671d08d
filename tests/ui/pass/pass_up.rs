//! `pass_up`: beside other `#[up]` handlers and exit handlers, on a generic thread, and in
//! a chain of two.

use taskthread::prelude::*;

pub struct Data<X>(pub X);
pub struct Other;

pub struct Leaf<X>(X);

#[taskthread(up = Data<X>)]
impl<X: Send + Clone + 'static> Leaf<X> {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Data(self.0.clone())).await?;
        Ok(())
    }
}

pub struct Other2;

#[taskthread(up = Other)]
impl Other2 {}

pub struct Middle<X>(X);

#[taskthread(up = Data<X>, pass_up)]
impl<X: Send + Clone + 'static> Middle<X> {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Leaf(self.0.clone()));
        ctx.spawn(Other2);
        Ok(())
    }

    #[up]
    async fn other(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _o: Other) {}

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _exit: ChildExit) {}
}

pub struct Upper;

#[taskthread(up = Data<u8>, pass_up, capacity = 8)]
impl Upper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Middle(1u8));
        Ok(())
    }
}

pub struct Top;

#[taskthread]
impl Top {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Upper);
        Ok(())
    }

    #[up]
    async fn data(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Data<u8>) {}
}

fn main() {
    let _ = taskthread::spawn::<Top>;
}
