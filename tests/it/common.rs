//! The sample problem's TCP side without the network, shared by `tree.rs` and
//! `logging.rs`: `TcpServer` spawns a `TcpConnection` per `Accept`, each with a
//! `DataProcessor` child that sends every packet back UP as a frame.

#![allow(unreachable_pub)]

use taskthread::prelude::*;

#[derive(Debug, Clone)]
pub struct Packet(pub Vec<u8>);
#[derive(Debug, Clone)]
pub struct Frame(pub Vec<u8>);
#[derive(Debug)]
pub struct Accept;
#[derive(Debug)]
pub struct Crash;

#[derive(Default)]
pub struct DataProcessor;

#[taskthread(up = Frame)]
impl DataProcessor {
    #[down]
    async fn packet(&mut self, ctx: &mut Ctx<Self>, p: Packet) -> Result<()> {
        tracing::info!("packet of {}", p.0.len());
        ctx.up(Frame(p.0)).await?;
        Ok(())
    }

    #[down]
    async fn crash(&mut self, _ctx: &mut Ctx<Self>, _c: Crash) -> Result<()> {
        Err(Error::msg("bad frame"))
    }
}

#[derive(Default)]
pub struct TcpConnection {
    processor: Option<ChildRef<DataProcessor>>,
}

#[taskthread(up = Frame)]
impl TcpConnection {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.processor = Some(ctx.spawn(DataProcessor));
        Ok(())
    }

    #[down]
    async fn packet(&mut self, _ctx: &mut Ctx<Self>, p: Packet) -> Result<()> {
        self.processor.as_ref().unwrap().send(p).await?;
        Ok(())
    }

    #[down]
    async fn crash(&mut self, _ctx: &mut Ctx<Self>, c: Crash) -> Result<()> {
        self.processor.as_ref().unwrap().send(c).await?;
        Ok(())
    }

    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, f: Frame) -> Result<()> {
        ctx.up(f).await?;
        Ok(())
    }
}

#[derive(Default)]
pub struct TcpServer {
    conns: Vec<ChildRef<TcpConnection>>,
}

#[taskthread(up = Frame)]
impl TcpServer {
    #[down]
    async fn accept(&mut self, ctx: &mut Ctx<Self>, _a: Accept) -> Result<String> {
        let conn = ctx.spawn_with(TcpConnection::default(), ChildOptions::new().name("conn"));
        let path = conn.path().to_owned();
        self.conns.push(conn);
        Ok(path)
    }

    #[down]
    async fn packet(&mut self, _ctx: &mut Ctx<Self>, p: Packet) -> Result<()> {
        for c in &self.conns {
            c.send(p.clone()).await?;
        }
        Ok(())
    }

    #[down]
    async fn crash(&mut self, _ctx: &mut Ctx<Self>, c: Crash) -> Result<()> {
        self.conns[0].send(c).await?;
        Ok(())
    }

    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, f: Frame) -> Result<()> {
        ctx.up(f).await?;
        Ok(())
    }
}
