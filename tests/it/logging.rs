//! Every thread logs inside a tracing span carrying its path, and child exits without a
//! handler are logged at a fitting level. The subscriber is scoped to the test's thread,
//! where the tree runs; tracing caches per-callsite interest process-wide, so the test first
//! makes that cache consider every subscriber ([`crate::tracing_interest`]).

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::common::{Accept, Crash, Packet, TcpServer};

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
    crate::tracing_interest::share_callsite_interest();
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

/// Fails on every message.
struct Flaky;

#[taskthread::taskthread]
impl Flaky {
    #[down]
    async fn fail(&mut self, _ctx: &mut taskthread::Ctx<Self>, _n: u32) -> taskthread::Result<()> {
        Err(taskthread::Error::msg("oops"))
    }
}

/// Supervises a `Flaky` that fails once, with no handler for restarts.
struct Keeper;

#[taskthread::taskthread]
impl Keeper {
    async fn enter(&mut self, ctx: &mut taskthread::Ctx<Self>) -> taskthread::Result<()> {
        let policy = taskthread::supervise::RestartPolicy::on_failure()
            .backoff(std::time::Duration::ZERO, std::time::Duration::ZERO);
        let flaky = ctx.supervise(|| Flaky, policy);
        flaky.send(1u32).await?;
        Ok(())
    }
}

#[test]
fn unhandled_restarts_are_logged_by_the_parent_as_warnings() {
    crate::tracing_interest::share_callsite_interest();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let root = taskthread::spawn(Keeper);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        root.stop();
        root.join().await;
    });
    let seen = capture.0.lock().unwrap().clone();
    let restart = seen
        .iter()
        .find(|s| s.message.starts_with("child `keeper/flaky`"))
        .expect("the unhandled restart is logged");
    assert_eq!(restart.level, tracing::Level::WARN);
    assert_eq!(restart.span_path.as_deref(), Some("keeper"));
    assert!(
        restart.message.contains(
            "child `keeper/flaky` (Flaky) life 1 failed: oops, on `u32` after 0 messages"
        ),
        "{restart:?}"
    );
}
