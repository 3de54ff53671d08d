//! `taskthread-ctl top` drawn on ratatui's test backend from a live tree's watch stream: the
//! tree with its sparklines, the selected thread's details, the events; the keys that
//! select, stop a subtree and resize a pool, each only after a confirmation; and the
//! requests they make, answered by a live control endpoint.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use taskthread::pool::WorkerPool;
use taskthread::prelude::*;
use taskthread::watch::{WatchStream, Watcher};
use taskthread_ctl::top::{Action, Mode, Top, draw, spark};

/// Takes `ms` per job.
#[derive(Default)]
struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, ms: u64) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

/// An idle thread.
#[derive(Default)]
struct Idle;

#[taskthread]
impl Idle {}

/// A pool of two workers (at most four) and an idle thread.
#[derive(Default)]
struct App;

#[taskthread]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(
            WorkerPool::new(|| Worker).size(2).max(4),
            ChildOptions::new().name("workers"),
        );
        ctx.spawn(Idle);
        Ok(())
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The view drawn on a 120 x 40 test terminal, as text.
fn screen(top: &Top) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|frame| draw(top, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

/// Applies the stream to the view until `done` holds (at most 500 samplings).
async fn until(stream: &mut WatchStream, top: &mut Top, done: impl Fn(&Top) -> bool) {
    for _ in 0..500 {
        top.apply(stream.next().await);
        if done(top) {
            return;
        }
    }
    panic!("not seen in 500 samplings:\n{}", screen(top));
}

#[tokio::test(start_paused = true)]
async fn the_view_shows_the_tree_with_sparklines_the_details_and_the_events() {
    let app = taskthread::spawn_with(App, ChildOptions::new().name("top-app"));
    let mut stream = Watcher::with_interval(&app, Duration::from_millis(100)).subscribe();
    let mut top = Top::new();
    assert!(screen(&top).contains("waiting for the first snapshot..."));
    until(&mut stream, &mut top, |t| t.tree().len() == 5).await;
    let text = screen(&top);
    assert!(text.contains("taskthread top · 5 threads"), "{text}");
    assert!(text.contains("top-app (App)"), "{text}");
    assert!(text.contains("  workers (WorkerPool)"), "{text}");
    assert!(text.contains("    worker (Worker)"), "{text}");
    assert!(text.contains("  idle (Idle)"), "{text}");
    // The root is selected first; its details and the events show.
    assert_eq!(top.selected().unwrap().path, "top-app");
    assert!(text.contains(" top-app "), "{text}");
    assert!(text.contains("DOWN: -"), "{text}");
    assert!(text.contains(" events "), "{text}");
    assert!(
        text.contains("spawned   top-app/workers: WorkerPool"),
        "{text}"
    );
    assert!(
        text.contains("↑↓ select  s stop subtree  r resize pool  q quit"),
        "{text}"
    );
}

/// Sends jobs to the pool at `top-busy/workers`.
#[derive(Default)]
struct Busy {
    pool: Option<ChildRef<WorkerPool<Worker>>>,
}

struct Jobs(u64);

#[taskthread]
impl Busy {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let pool = WorkerPool::new(|| Worker).size(2).max(4);
        self.pool = Some(ctx.spawn_with(pool, ChildOptions::new().name("workers")));
        Ok(())
    }

    #[down]
    async fn jobs(&mut self, _ctx: &mut Ctx<Self>, Jobs(n): Jobs) -> Result<()> {
        for _ in 0..n {
            self.pool.as_ref().unwrap().send(10u64).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_pool_shows_its_rate_and_utilisation() {
    let app = taskthread::spawn_with(Busy::default(), ChildOptions::new().name("top-busy"));
    let mut stream = Watcher::with_interval(&app, Duration::from_millis(100)).subscribe();
    let mut top = Top::new();
    until(&mut stream, &mut top, |t| t.tree().len() == 4).await;
    app.send(Jobs(200)).await.unwrap();
    until(&mut stream, &mut top, |t| {
        t.tree()
            .find("top-busy/workers")
            .is_some_and(|p| p.pool.is_some_and(|p| p.busy == 2))
    })
    .await;
    until(&mut stream, &mut top, |t| {
        let id = t.tree().find("top-busy/workers").unwrap().id;
        t.rates(id).filter(|r| *r > 0).count() >= 3
    })
    .await;
    top.key(key(KeyCode::Down));
    assert_eq!(top.selected().unwrap().path, "top-busy/workers");
    let text = screen(&top);
    let row = text
        .lines()
        .find(|l| l.contains("workers (WorkerPool)"))
        .unwrap();
    assert!(row.chars().any(|c| "▁▂▃▄▅▆▇█".contains(c)), "{row}");
    assert!(
        text.contains("workers 2 busy of 2 (100 %), at most 4"),
        "{text}"
    );
    assert!(text.contains("messages per sampling"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn stopping_and_resizing_ask_for_a_confirmation() {
    let app = taskthread::spawn_with(App, ChildOptions::new().name("top-keys"));
    let mut stream = Watcher::with_interval(&app, Duration::from_millis(100)).subscribe();
    let mut top = Top::new();
    until(&mut stream, &mut top, |t| t.tree().len() == 5).await;

    // `r` on a thread that is not a pool says so.
    assert_eq!(top.key(key(KeyCode::Char('r'))), Action::None);
    assert_eq!(top.status(), "top-keys is not a worker pool");

    // Resize the pool: the size is typed, then confirmed.
    top.key(key(KeyCode::Down));
    assert_eq!(top.selected().unwrap().path, "top-keys/workers");
    assert_eq!(top.key(key(KeyCode::Char('r'))), Action::None);
    assert_eq!(
        top.mode(),
        &Mode::EnterSize {
            path: "top-keys/workers".to_owned(),
            input: "2".to_owned()
        }
    );
    top.key(key(KeyCode::Backspace));
    top.key(key(KeyCode::Char('x')));
    top.key(key(KeyCode::Char('3')));
    assert!(screen(&top).contains("workers for top-keys/workers: 3_"));
    assert_eq!(top.key(key(KeyCode::Enter)), Action::None);
    assert!(screen(&top).contains("resize top-keys/workers to 3 workers? (y/n)"));
    assert_eq!(
        top.key(key(KeyCode::Char('z'))),
        Action::None,
        "only y or n"
    );
    assert_eq!(
        top.key(key(KeyCode::Char('y'))),
        Action::Request("pool top-keys/workers size 3".to_owned())
    );
    assert_eq!(top.mode(), &Mode::Browse);

    // Stop a subtree: `n` keeps it, `y` stops it.
    top.key(key(KeyCode::End));
    let last = top.selected().unwrap().path.clone();
    assert_eq!(last, "top-keys/idle");
    top.key(key(KeyCode::Char('s')));
    assert!(screen(&top).contains("stop top-keys/idle and its subtree? (y/n)"));
    assert_eq!(top.key(key(KeyCode::Char('n'))), Action::None);
    assert_eq!(top.status(), "not stopped");
    top.key(key(KeyCode::Char('s')));
    assert_eq!(
        top.key(key(KeyCode::Char('y'))),
        Action::Request("stop top-keys/idle".to_owned())
    );

    // Esc leaves a prompt; q and Ctrl-C leave the view.
    top.key(key(KeyCode::Char('s')));
    assert_eq!(top.key(key(KeyCode::Esc)), Action::None);
    assert_eq!(top.mode(), &Mode::Browse);
    assert_eq!(top.key(key(KeyCode::Char('q'))), Action::Quit);
    assert_eq!(
        top.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
    top.key(key(KeyCode::Home));
    assert_eq!(top.selected().unwrap().path, "top-keys");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_of_the_keys_are_answered_by_a_live_endpoint() {
    use taskthread::control::{ControlClient, ControlEndpoint};

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("top.sock");
    let app = taskthread::spawn_with(App, ChildOptions::new().name("top-live"));
    let endpoint = ControlEndpoint::unix(&socket).watch_interval(Duration::from_millis(20));
    let _control = taskthread::spawn(endpoint.bind(&app).await.unwrap());
    let mut watch = ControlClient::connect_unix(&socket)
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();
    let mut commands = ControlClient::connect_unix(&socket).await.unwrap();
    let mut top = Top::new();
    while top.tree().len() < 5 {
        top.apply(watch.next().await.unwrap());
    }
    top.key(key(KeyCode::Down));
    top.key(key(KeyCode::Char('r')));
    top.key(key(KeyCode::Backspace));
    top.key(key(KeyCode::Char('3')));
    top.key(key(KeyCode::Enter));
    let Action::Request(line) = top.key(key(KeyCode::Char('y'))) else {
        panic!("a request");
    };
    top.answered(commands.request(&line).await);
    assert_eq!(
        top.status(),
        "pool `top-live/workers`: 3 running, at most 4"
    );
    while top.tree().len() < 6 {
        top.apply(watch.next().await.unwrap());
    }
    // Stopping the pool's subtree: it goes from the view.
    let Action::None = top.key(key(KeyCode::Char('s'))) else {
        panic!("a confirmation first");
    };
    let Action::Request(line) = top.key(key(KeyCode::Char('y'))) else {
        panic!("a request");
    };
    top.answered(commands.request(&line).await);
    assert_eq!(top.status(), "stopping `top-live/workers`");
    while top.tree().find("top-live/workers").is_some() {
        top.apply(watch.next().await.unwrap());
    }
    assert_eq!(top.tree().len(), 2);
    top.answered(commands.request("pool nowhere size 1").await);
    assert_eq!(top.status(), "refused: no thread at `nowhere`");
}

#[test]
fn sparklines_scale_to_their_largest_value() {
    assert_eq!(spark([0, 1, 2, 4, 8].into_iter(), 6), "  ▁▂▄█");
    assert_eq!(spark([5, 5].into_iter(), 3), " ██");
    assert_eq!(spark(std::iter::empty(), 2), "  ");
    assert_eq!(spark((0..40).map(|_| 0), 4), "    ");
    assert_eq!(spark((1..=20).rev(), 4), "█▆▄▂");
}

#[test]
fn a_wait_cycle_shows_in_red_with_the_selected_thread() {
    // Three threads waiting on each other in a ring, and one waiting on the ring.
    let thread = |id: u64, path: &str, target: &str| {
        serde_json::json!({
            "id": id, "parent": if id == 1 { None } else { Some(1) }, "name": path,
            "path": path, "type": "Node", "down": [], "up": null, "state": "running",
            "handled": 0, "queue": { "depth": 0, "capacity": 64, "waiting": 0 },
            "inbound": null, "restarts": 0, "budget": null, "messages": [], "tasks": [],
            "pool": null, "stop": null,
            "waits": [{ "on": "child", "target": target, "detail": "", "for_ms": 1000 }]
        })
    };
    let snapshot = serde_json::json!({
        "kind": "snapshot", "seq": 1, "at_ms": 0, "events": [],
        "threads": [thread(1, "a", "b"), thread(2, "b", "c"), thread(3, "c", "a"), thread(4, "d", "a")]
    });
    let mut top = Top::new();
    top.apply(serde_json::from_value(snapshot).unwrap());
    top.key(key(KeyCode::End));
    assert_eq!(top.selected().unwrap().path, "d");
    let text = screen(&top);
    assert!(
        text.contains("wait chain: d -> a -> b -> c -> a (cycle)"),
        "{text}"
    );
    assert!(text.contains("waits on the stop of a for 1.0 s"), "{text}");
}
