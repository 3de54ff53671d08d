//! What a `BackgroundHandle` cannot hand back is reported: UP messages nobody received and
//! a failure nobody joined to hear are logged when the last handle is dropped.
//!
//! The background tree logs on its own OS thread, so the capture is the process's global
//! subscriber; this is a test binary of its own so that the subscriber sees no other test's
//! events and changes nothing for them.

use std::sync::{Mutex, Once};

use taskthread::prelude::*;
use taskthread::sync::Background;
use taskthread::sync::BackgroundHandle;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

#[path = "../it/panics.rs"]
mod panics;

/// One event: its level, message and other fields.
#[derive(Debug, Clone, Default)]
struct Logged {
    level: Option<tracing::Level>,
    message: String,
    fields: String,
}

impl Visit for Logged {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.fields.push_str(&format!("{name}={value:?} ")),
        }
    }
}

static LOGGED: Mutex<Vec<Logged>> = Mutex::new(Vec::new());

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut logged = Logged {
            level: Some(*event.metadata().level()),
            ..Logged::default()
        };
        event.record(&mut logged);
        LOGGED.lock().unwrap().push(logged);
    }
}

fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        panics::hide_expected_panics("nobody hears");
    });
}

/// What was logged about the root named `root`.
fn logged_about(root: &str) -> Vec<Logged> {
    let field = format!("root={root} ");
    let logged = LOGGED.lock().unwrap();
    logged
        .iter()
        .filter(|l| l.fields.contains(&field))
        .cloned()
        .collect()
}

struct Shout;
struct Explode;

/// Sends UP when told to; panics when told to.
#[derive(Default)]
struct Talker;

#[taskthread(up = u32)]
impl Talker {
    #[down]
    async fn shout(&mut self, ctx: &mut Ctx<Self>, _s: Shout) -> Result<()> {
        ctx.up(1).await?;
        Ok(())
    }

    #[down]
    async fn explode(&mut self, _ctx: &mut Ctx<Self>, _e: Explode) -> Result<()> {
        panic!("nobody hears this one");
    }
}

fn talker(name: &'static str) -> BackgroundHandle<Talker> {
    Background::new()
        .options(ChildOptions::new().name(name))
        .spawn(Talker)
        .unwrap()
}

#[test]
fn up_messages_nobody_received_are_counted_when_the_last_handle_goes() {
    capture();
    let talker = talker("unread");
    for _ in 0..4 {
        talker.send(Shout).unwrap();
    }
    // The stop handles all four; each message is either still buffered for the handles
    // when they go, or refused by their closed buffer: counted either way.
    drop(talker);
    let logged = logged_about("unread");
    let counted: usize = logged
        .iter()
        .filter(|l| l.message.contains("no handle received"))
        .inspect(|l| assert_eq!(l.level, Some(tracing::Level::WARN)))
        .map(|l| count_in(&l.fields, "unread") + count_in(&l.fields, "dropped"))
        .sum();
    assert_eq!(counted, 4, "{logged:?}");
}

/// The number in the field `name=N ` of `fields`, 0 if there is none.
fn count_in(fields: &str, name: &str) -> usize {
    fields
        .split(' ')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_failure_nobody_joined_is_logged_when_the_last_handle_goes() {
    capture();
    let talker = talker("lonely");
    talker.send(Explode).unwrap();
    drop(talker);
    let logged = logged_about("lonely");
    let ended = logged
        .iter()
        .find(|l| l.message.contains("background tree ended"))
        .unwrap_or_else(|| panic!("{logged:?}"));
    assert_eq!(ended.level, Some(tracing::Level::ERROR));
    assert!(ended.message.contains("panicked: nobody hears this one"));
}
