//! Every thread logs inside a tracing span carrying its path, and child exits without a
//! handler are logged at a fitting level. Its own test binary: tracing caches per-callsite
//! interest process-wide, so other tests logging on other threads would race with the
//! scoped subscriber installed here.

use std::sync::{Arc, Mutex};

use taskthread::prelude::*;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Debug, Clone)]
struct Packet(Vec<u8>);
#[derive(Debug, Clone)]
struct Frame(#[allow(dead_code)] Vec<u8>);
#[derive(Debug)]
struct Accept;
#[derive(Debug)]
struct Crash;

#[derive(Default)]
struct DataProcessor;

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
struct TcpConnection {
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
struct TcpServer {
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

#[derive(Debug, Clone)]
struct Seen {
    level: tracing::Level,
    message: String,
    span_path: Option<String>,
    fields: String,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

#[derive(Default)]
struct Fields {
    message: String,
    path: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "path" => self.path = Some(format!("{value:?}")),
            name => self.rest.push_str(&format!("{name}={value:?} ")),
        }
    }
}

struct SpanPath(String);

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(path), Some(span)) = (fields.path, ctx.span(id)) {
            span.extensions_mut().insert(SpanPath(path));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let span_path = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<SpanPath>().map(|p| p.0.clone()));
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            message: fields.message,
            span_path,
            fields: fields.rest,
        });
    }
}

#[test]
fn every_thread_logs_inside_a_span_carrying_its_path_and_unhandled_exits_are_logged() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut root = taskthread::spawn(TcpServer::default());
        root.ask(Accept).await.unwrap();
        root.send(Packet(vec![9; 5])).await.unwrap();
        root.recv().await.unwrap();
        // The processor fails; TcpConnection has no exit handler, so the exit is logged.
        root.send(Crash).await.unwrap();
        root.stop();
        root.join().await;
    });
    let seen = capture.0.lock().unwrap().clone();
    let packet = seen
        .iter()
        .find(|s| s.message == "packet of 5")
        .expect("the handler's event");
    assert_eq!(
        packet.span_path.as_deref(),
        Some("tcp_server/conn/data_processor")
    );
    let failure = seen
        .iter()
        .find(|s| s.message.contains("child failed"))
        .expect("the unhandled failure is logged");
    assert_eq!(failure.level, tracing::Level::ERROR);
    assert!(failure.message.contains("bad frame"), "{failure:?}");
    assert_eq!(failure.span_path.as_deref(), Some("tcp_server/conn"));
    assert!(
        failure.fields.contains("tcp_server/conn/data_processor"),
        "{failure:?}"
    );
    let stopped = seen
        .iter()
        .find(|s| s.message.contains("child stopped"))
        .expect("the unhandled graceful exit is logged");
    assert_eq!(stopped.level, tracing::Level::DEBUG);
}
