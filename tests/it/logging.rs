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
