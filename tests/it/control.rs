//! The control endpoint end to end through real sockets: every command in text and JSON,
//! framing of large answers, bad input (the session goes on), many concurrent sessions and
//! a slow one, the Unix socket's mode and its stale / live / foreign file handling, the
//! loopback rule of TCP, the server ending its sessions when it stops, the limit on
//! sessions (a closed one frees its place at once) and the idle timeout, for requests, for
//! `watch` sessions (acknowledged or not, half-closed) and for a pool that does not apply a
//! command.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use taskthread::ThreadState;
use taskthread::control::{
    Answer, ControlClient, ControlEndpoint, ControlError, DEFAULT_IDLE_TIMEOUT, MAX_LINE,
    MAX_SESSIONS,
};
use taskthread::pool::WorkerPool;
use taskthread::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A worker that sleeps on each job.
#[derive(Default)]
struct Sleeper;

#[taskthread]
impl Sleeper {
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

/// The application: a pool, a thread whose name has capitals and spaces, and `extra` idle
/// children.
struct App {
    extra: usize,
}

#[taskthread]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(
            WorkerPool::new(|| Sleeper).size(2).max(4),
            ChildOptions::new().name("workers"),
        );
        ctx.spawn_with(Idle, ChildOptions::new().name("Big Cheese"));
        for _ in 0..self.extra {
            ctx.spawn(Idle);
        }
        Ok(())
    }
}

struct Fixture {
    app: Handle<App>,
    control: Handle<taskthread::control::ControlServer>,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture(extra: usize) -> Fixture {
    fixture_on(extra, |endpoint| endpoint).await
}

/// The fixture, on an endpoint that `configure` sets up.
async fn fixture_on(
    extra: usize,
    configure: impl FnOnce(ControlEndpoint) -> ControlEndpoint,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let app = taskthread::spawn(App { extra });
    let server = configure(ControlEndpoint::unix(&socket))
        .bind(&app)
        .await
        .unwrap();
    assert_eq!(server.socket_path(), Some(socket.as_path()));
    let control = taskthread::spawn(server);
    while app.snapshot().children.len() < 2 + extra {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Wait until the pool has started (it publishes its counts then).
    let mut client = ControlClient::connect_unix(&socket).await.unwrap();
    while !client
        .request("pool app/workers running")
        .await
        .unwrap()
        .payload
        .contains("2 running")
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Fixture {
        app,
        control,
        socket,
        _dir: dir,
    }
}

impl Fixture {
    async fn client(&self) -> ControlClient {
        ControlClient::connect_unix(&self.socket).await.unwrap()
    }

    async fn end(self) {
        self.control.stop();
        self.control.join().await.into_result().unwrap();
        assert!(!self.socket.exists(), "the socket file is removed");
        self.app.stop();
        self.app.join().await.into_result().unwrap();
    }
}

fn ok(answer: Answer) -> String {
    assert!(answer.ok, "expected OK, got ERR: {}", answer.payload);
    answer.payload
}

fn err(answer: Answer) -> String {
    assert!(!answer.ok, "expected ERR, got OK: {}", answer.payload);
    answer.payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_tree_and_stats_in_text_and_json() {
    let f = fixture(0).await;
    let mut c = f.client().await;

    let help = ok(c.request("help").await.unwrap());
    for command in [
        "tree",
        "stats PATH",
        "stop PATH",
        "pool PATH start N",
        "--json",
    ] {
        assert!(help.contains(command), "{help}");
    }
    let help_json: serde_json::Value =
        serde_json::from_str(&ok(c.request("help --json").await.unwrap())).unwrap();
    assert_eq!(help_json.as_str(), Some(help.as_str()));

    let tree = ok(c.request("tree").await.unwrap());
    assert_eq!(tree, f.app.snapshot().to_string());
    assert!(tree.starts_with("App [app] running"), "{tree}");
    assert!(
        tree.contains("    WorkerPool: IN: u64 [app/workers] running"),
        "{tree}"
    );
    assert!(
        tree.contains("        Sleeper: IN: u64 [app/workers/sleeper-2]"),
        "{tree}"
    );
    assert!(tree.contains("    Idle [app/Big Cheese]"), "{tree}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(c.request("tree --json").await.unwrap())).unwrap();
    assert_eq!(json["path"], "app");
    assert_eq!(json["type"], "App");
    assert_eq!(json["children"][0]["path"], "app/workers");
    assert_eq!(json["children"][0]["down"][0], "u64");
    assert_eq!(json["children"][0]["children"].as_array().unwrap().len(), 2);
    assert_eq!(json["children"][1]["name"], "Big Cheese");

    let stats = ok(c.request("stats app/workers").await.unwrap());
    assert!(stats.contains("path: app/workers\n"), "{stats}");
    assert!(stats.contains("type: WorkerPool\n"), "{stats}");
    assert!(stats.contains("state: running\n"), "{stats}");
    assert!(stats.contains("children: 2\n"), "{stats}");
    // The id reads as `ChildId` displays it, and as its number in JSON.
    let id = f.app.snapshot().find("app/workers").unwrap().id;
    assert!(stats.contains(&format!("\nid: {id}\n")), "{stats}");
    assert!(stats.contains("\nid: #"), "{stats}");
    assert!(stats.ends_with("workers: 2 running, at most 4"), "{stats}");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(c.request("--json stats app/workers").await.unwrap())).unwrap();
    assert_eq!(stats["id"], id.get());
    assert_eq!(stats["pool"]["running"], 2);
    assert_eq!(stats["pool"]["max"], 4);
    assert_eq!(stats["queue_capacity"], 64);

    // Command words in any case; paths as written (with their spaces).
    assert!(ok(c.request("TREE").await.unwrap()).starts_with("App"));
    let cheese = ok(c.request("Stats app/Big Cheese").await.unwrap());
    assert!(cheese.contains("type: Idle"), "{cheese}");
    let wrong_case = err(c.request("stats app/big cheese").await.unwrap());
    assert_eq!(wrong_case, "no thread at `app/big cheese`");
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_commands_resize_a_live_pool() {
    let f = fixture(0).await;
    let mut c = f.client().await;
    let pool = f.app.snapshot().children[0].clone();
    assert_eq!(pool.path, "app/workers");

    assert_eq!(
        ok(c.request("pool app/workers start 2").await.unwrap()),
        "pool `app/workers`: 4 running, at most 4"
    );
    assert_eq!(
        ok(c.request("pool app/workers stop 3").await.unwrap()),
        "pool `app/workers`: 1 running, at most 4"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(c
        .request("pool app/workers size 3 --json")
        .await
        .unwrap()))
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"pool": "app/workers", "running": 3, "max": 4})
    );
    assert_eq!(
        ok(c.request("pool app/workers running").await.unwrap()),
        "pool `app/workers`: 3 running, at most 4"
    );
    // The pool's own refusals come back as errors.
    assert_eq!(
        err(c.request("pool app/workers start 2").await.unwrap()),
        "pool `app/workers` may run at most 4 workers: cannot run 5 (3 running)"
    );
    assert_eq!(
        err(c.request("pool app/workers stop 9").await.unwrap()),
        "pool `app/workers` runs 3 workers: cannot stop 9"
    );
    assert_eq!(
        err(c
            .request(&format!("pool app/workers start {}", usize::MAX))
            .await
            .unwrap()),
        format!(
            "pool `app/workers` may run at most 4 workers: cannot run {} (3 running)",
            usize::MAX
        )
    );
    assert_eq!(
        ok(c.request("pool app/workers running").await.unwrap()),
        "pool `app/workers`: 3 running, at most 4"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let live = f.app.snapshot().children[0].children.len();
    assert_eq!(live, 3);
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_stops_a_thread_by_path() {
    let f = fixture(3).await;
    let mut c = f.client().await;
    assert_eq!(
        ok(c.request("stop app/idle-2").await.unwrap()),
        "stopping `app/idle-2`"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(c.request("stop app/idle-3 --json").await.unwrap())).unwrap();
    assert_eq!(json["stopping"], "app/idle-3");
    while f.app.snapshot().children.len() != 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let names: Vec<_> = f
        .app
        .snapshot()
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["workers", "Big Cheese", "idle"]);
    assert_eq!(
        err(c.request("stop app/idle-2").await.unwrap()),
        "no thread at `app/idle-2`"
    );
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_error_and_the_session_goes_on() {
    let f = fixture(0).await;
    let mut c = f.client().await;
    let cases: &[(&str, &str)] = &[
        ("", "empty request: try `help`"),
        ("   ", "empty request: try `help`"),
        ("frobnicate", "unknown command `frobnicate`: try `help`"),
        ("tree extra", "`tree` takes no arguments"),
        ("help me", "`help` takes no arguments"),
        ("stats", "missing path: usage `stats PATH`"),
        ("stop", "missing path: usage `stop PATH`"),
        ("stats app/nope", "no thread at `app/nope`"),
        ("stats app/work", "no thread at `app/work`"),
        (
            "pool",
            "usage: `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool app/workers",
            "usage: `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool app/workers start",
            "`start` is not a number of workers; usage: `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool start 2",
            "missing path: usage `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool app/workers start many",
            "`many` is not a number of workers; usage: `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool app/workers start -1",
            "`-1` is not a number of workers; usage: `pool PATH start N | stop N | size N | running`",
        ),
        (
            "pool app/workers grow 2",
            "unknown pool action `grow`; usage: `pool PATH start N | stop N | size N | running`",
        ),
        ("pool app running", "`app` is not a worker pool"),
        ("pool app/nope running", "no thread at `app/nope`"),
    ];
    for (request, expected) in cases {
        assert_eq!(
            &err(c.request(request).await.unwrap()),
            expected,
            "for {request:?}"
        );
    }
    // Still serving on the same session.
    assert!(ok(c.request("tree").await.unwrap()).starts_with("App"));
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_lines_and_bytes_that_are_not_utf8_are_refused() {
    let f = fixture(0).await;
    let mut raw = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    // A line far over the limit, then a good request on the same session.
    let long = vec![b'x'; 10 * MAX_LINE];
    raw.write_all(&long).await.unwrap();
    raw.write_all(b"\n\xff\xfe\n help \r\n").await.unwrap();
    let mut got = Vec::new();
    let expected_prefix = format!(
        "ERR {}\nrequest too long: at most {MAX_LINE} bytes per line\nERR 21\nrequest is not UTF-8\nOK ",
        format!("request too long: at most {MAX_LINE} bytes per line").len() + 1
    );
    while got.len() < expected_prefix.len() + 200 {
        let mut buf = [0; 1024];
        let n = raw.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let got = String::from_utf8(got).unwrap();
    assert!(got.starts_with(&expected_prefix), "{got}");

    // A line of exactly the limit is served (as an unknown command).
    let mut c = f.client().await;
    let at_limit = "y".repeat(MAX_LINE);
    let answer = err(c.request(&at_limit).await.unwrap());
    assert!(answer.starts_with("unknown command `yyy"), "{answer}");
    let over = err(c.request(&"y".repeat(MAX_LINE + 1)).await.unwrap());
    assert!(over.starts_with("request too long"));
    // The client refuses a request of two lines.
    assert!(c.request("tree\nstop app").await.is_err());
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_arrives_whole() {
    let f = fixture(600).await;
    let mut c = f.client().await;
    let tree = ok(c.request("tree").await.unwrap());
    assert_eq!(
        tree.lines().count(),
        1 + 1 + 2 + 1 + 600,
        "{}",
        &tree[tree.len() - 300..]
    );
    assert!(tree.len() > 30_000);
    let json: serde_json::Value =
        serde_json::from_str(&ok(c.request("tree --json").await.unwrap())).unwrap();
    assert_eq!(json["children"].as_array().unwrap().len(), 602);
    // The session is still in step after it.
    assert!(ok(c.request("help").await.unwrap()).starts_with("commands"));
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_sessions_and_a_slow_one_that_blocks_nobody() {
    let f = fixture(5).await;
    // A slow session: half a request, never finished, and never reading.
    let mut slow = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    slow.write_all(b"tre").await.unwrap();
    // A session that sends requests and never reads the answers.
    let mut deaf = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    for _ in 0..200 {
        deaf.write_all(b"tree\n").await.unwrap();
    }
    let mut sessions = Vec::new();
    for i in 0..40 {
        let socket = f.socket.clone();
        sessions.push(tokio::spawn(async move {
            let mut c = ControlClient::connect_unix(&socket).await.unwrap();
            for j in 0..25 {
                let answer = match (i + j) % 3 {
                    0 => c.request("tree").await.unwrap(),
                    1 => c.request("stats app/workers --json").await.unwrap(),
                    _ => c.request("nonsense").await.unwrap(),
                };
                assert_eq!(answer.ok, (i + j) % 3 != 2);
            }
        }));
    }
    for session in sessions {
        session.await.unwrap();
    }
    drop((slow, deaf));
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_the_limit_are_told_to_come_back() {
    let f = fixture(0).await;
    let mut held = Vec::new();
    for _ in 0..MAX_SESSIONS {
        let mut c = f.client().await;
        ok(c.request("help").await.unwrap());
        held.push(c);
    }
    // The one over the limit is answered before it asks anything (once no place has freed
    // up for a while), and closed.
    let mut extra = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).await.unwrap();
    let message = format!("too many sessions (at most {MAX_SESSIONS}): try again later\n");
    assert_eq!(answer, format!("ERR {}\n{message}", message.len()));
    // Those held are still served.
    ok(held[0].request("tree").await.unwrap());
    drop(held);
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_removed_and_the_sessions_end_with_the_server() {
    let f = fixture(0).await;
    let mode = std::fs::metadata(&f.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut c = f.client().await;
    ok(c.request("tree").await.unwrap());
    // Stopping the server through its own endpoint.
    let control_path = f.control.child_ref().path().to_owned();
    assert_eq!(control_path, "control");
    // (It is not in the app's tree: stop it from its handle.)
    f.control.stop();
    let control = f.control.child_ref();
    while control.state() != ThreadState::Exited {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        c.request("tree").await.is_err(),
        "the session ended with the server"
    );
    assert!(!f.socket.exists());
    assert!(ControlClient::connect_unix(&f.socket).await.is_err());
    f.app.stop();
    f.app.join().await.into_result().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_live_and_foreign_files_at_the_socket_path() {
    let dir = tempfile::tempdir().unwrap();
    let app = taskthread::spawn(App { extra: 0 });

    // A stale socket (nobody listens) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let server = ControlEndpoint::unix(&stale).bind(&app).await.unwrap();

    // A live one is refused, and left alone.
    let err = ControlEndpoint::unix(&stale).bind(&app).await.unwrap_err();
    assert!(matches!(err, ControlError::InUse(_)));
    assert_eq!(
        err.to_string(),
        format!("something is already listening on {}", stale.display())
    );
    assert!(stale.exists());

    // A file that is not a socket is refused and kept.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let err = ControlEndpoint::unix(&file).bind(&app).await.unwrap_err();
    assert!(matches!(err, ControlError::NotASocket(_)));
    assert_eq!(
        err.to_string(),
        format!(
            "{} exists and is not a socket: refusing to replace it",
            file.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A directory that does not exist: an I/O error with its cause.
    let err = ControlEndpoint::unix(dir.path().join("no/such/dir.sock"))
        .bind(&app)
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Io(_)));
    assert!(
        err.to_string()
            .starts_with("cannot bind the control endpoint: ")
    );

    // A server never spawned still removes its socket when dropped.
    drop(server);
    assert!(!stale.exists());
    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_is_loopback_only_unless_allowed() {
    let app = taskthread::spawn(App { extra: 0 });
    for addr in ["0.0.0.0:0", "192.0.2.1:7000", "[::]:0"] {
        let addr = addr.parse().unwrap();
        let err = ControlEndpoint::tcp(addr).bind(&app).await.unwrap_err();
        assert!(matches!(err, ControlError::NotLoopback(a) if a == addr));
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to serve the control endpoint on {addr}, which is not a loopback address (use `allow_remote(true)` to allow it)"
            )
        );
    }
    let remote = ControlEndpoint::tcp("0.0.0.0:0".parse().unwrap())
        .allow_remote(true)
        .bind(&app)
        .await
        .unwrap();
    drop(remote);

    let server = ControlEndpoint::tcp("127.0.0.1:0".parse().unwrap())
        .bind(&app)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(server.socket_path(), None);
    let control = taskthread::spawn(server);
    let mut c = ControlClient::connect_tcp(addr).await.unwrap();
    assert!(ok(c.request("tree").await.unwrap()).starts_with("App [app]"));
    assert_eq!(
        err(c.request("bogus").await.unwrap()),
        "unknown command `bogus`: try `help`"
    );
    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}

/// A tree that serves its own control endpoint, from a child.
struct SelfServing {
    socket: std::path::PathBuf,
}

#[taskthread]
impl SelfServing {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Idle);
        let server = ControlEndpoint::unix(&self.socket).bind(ctx).await?;
        ctx.spawn(server);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_serves_itself_and_the_endpoint_ends_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("self.sock");
    let app = taskthread::spawn(SelfServing {
        socket: socket.clone(),
    });
    let mut c = loop {
        if let Ok(c) = ControlClient::connect_unix(&socket).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let tree = ok(c.request("tree").await.unwrap());
    assert!(
        tree.contains("ControlServer [self_serving/control]"),
        "{tree}"
    );
    // Stopping the root through the endpoint stops the whole tree, the endpoint included.
    assert_eq!(
        ok(c.request("stop self_serving").await.unwrap()),
        "stopping `self_serving`"
    );
    assert!(matches!(app.join().await, Exit::Stopped));
    assert!(!socket.exists());
}

/// Serves one session that answers the first request with `reply`, then closes.
async fn fake_endpoint(
    dir: &std::path::Path,
    name: &str,
    reply: &'static [u8],
) -> std::path::PathBuf {
    let path = dir.join(name);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut session, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 64];
        let _ = session.read(&mut request).await;
        session.write_all(reply).await.unwrap();
    });
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_answers_that_are_not_framed() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[u8], &str)] = &[
        (b"HELLO 5\nworld", "malformed answer header `HELLO 5`"),
        (b"OK five\nworld", "malformed answer length in `OK five`"),
        (
            b"OK 99999999999\n",
            "answer of 99999999999 bytes is too large",
        ),
        (b"OK 3\n\xff\xfe\n", "answer is not UTF-8"),
        (b"", "the control endpoint closed the session"),
    ];
    for (i, (reply, expected)) in cases.iter().enumerate() {
        let path = fake_endpoint(dir.path(), &format!("fake-{i}.sock"), reply).await;
        let mut client = ControlClient::connect_unix(&path).await.unwrap();
        let err = client.request("tree").await.unwrap_err();
        assert_eq!(err.to_string(), *expected);
    }
    // A payload cut short is an error too, not a partial answer.
    let path = fake_endpoint(dir.path(), "short.sock", b"OK 10\nabc").await;
    let mut client = ControlClient::connect_unix(&path).await.unwrap();
    let err = client.request("tree").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_leaves_alone_a_socket_that_replaced_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replaced.sock");
    let app = taskthread::spawn(App { extra: 0 });
    let server = ControlEndpoint::unix(&path).bind(&app).await.unwrap();
    // Someone removes our socket file and binds their own at the same path.
    std::fs::remove_file(&path).unwrap();
    let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists(), "their socket is kept");
    drop(theirs);
    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_frees_its_place_at_once() {
    let f = fixture(0).await;
    for _ in 0..3 {
        let mut held = Vec::new();
        for _ in 0..MAX_SESSIONS {
            let mut c = f.client().await;
            ok(c.request("help").await.unwrap());
            held.push(c);
        }
        drop(held);
        // Right after all of them closed, a new session is served.
        let mut fresh = f.client().await;
        ok(fresh.request("tree").await.unwrap());
    }
    f.end().await;
}

/// Fills every place with a session that asked once and then stays idle.
async fn fill_with_idle_sessions(f: &Fixture) -> Vec<ControlClient> {
    let mut held = Vec::new();
    for _ in 0..MAX_SESSIONS {
        let mut c = f.client().await;
        ok(c.request("help").await.unwrap());
        held.push(c);
    }
    held
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_are_closed_after_the_default_idle_timeout() {
    let f = fixture(0).await;
    let mut held = fill_with_idle_sessions(&f).await;
    tokio::time::sleep(DEFAULT_IDLE_TIMEOUT + Duration::from_secs(1)).await;
    // The idle sessions were closed: their places are free.
    let mut fresh = f.client().await;
    ok(fresh.request("tree").await.unwrap());
    for c in &mut held {
        assert!(
            c.request("help").await.is_err(),
            "an idle session is closed"
        );
    }
    drop(held);
    f.end().await;
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_is_set_on_the_endpoint_and_counts_from_the_last_request() {
    let f = fixture_on(0, |e| e.idle_timeout(Duration::from_secs(5))).await;
    let mut busy = f.client().await;
    let mut idle = f.client().await;
    ok(idle.request("help").await.unwrap());
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        ok(busy.request("help").await.unwrap());
    }
    // `busy` asked every 4 s for 20 s and is still served; `idle` is gone.
    assert!(idle.request("help").await.is_err());
    drop(busy);
    // Long before the default timeout, every place is free again.
    let mut held = fill_with_idle_sessions(&f).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    ok(f.client().await.request("tree").await.unwrap());
    for c in &mut held {
        assert!(c.request("help").await.is_err());
    }
    f.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_a_refusal_sent_before_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refusing.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let message = format!("too many sessions (at most {MAX_SESSIONS}): try again later\n");
    let refusal = format!("ERR {}\n{message}", message.len());
    let endpoint = tokio::spawn(async move {
        let (mut session, _) = listener.accept().await.unwrap();
        session.write_all(refusal.as_bytes()).await.unwrap();
        // Closed before the client sends its request.
    });
    let mut client = ControlClient::connect_unix(&path).await.unwrap();
    endpoint.await.unwrap();
    let answer = client.request("tree").await.unwrap();
    assert_eq!(err(answer), message.trim_end());
}

/// Fails as it starts.
struct Broken;

#[taskthread]
impl Broken {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Err(Error::msg("no disk"))
    }
}

/// Supervises a `Broken` that waits an hour between lives.
struct Keeper;

#[taskthread]
impl Keeper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let hour = Duration::from_secs(3600);
        let policy = taskthread::supervise::RestartPolicy::on_failure().backoff(hour, hour);
        ctx.supervise_with(|| Broken, policy, ChildOptions::new().name("broken"));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_child_between_lives_shows_as_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let keeper = taskthread::spawn(Keeper);
    let server = ControlEndpoint::unix(&socket).bind(&keeper).await.unwrap();
    let control = taskthread::spawn(server);
    let state = || keeper.snapshot().find("keeper/broken").map(|s| s.state);
    while state() != Some(ThreadState::Restarting) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut c = ControlClient::connect_unix(&socket).await.unwrap();
    let stats = ok(c.request("stats keeper/broken").await.unwrap());
    assert!(stats.contains("state: restarting\n"), "{stats}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(c.request("--json stats keeper/broken").await.unwrap())).unwrap();
    assert_eq!(json["state"], "restarting");
    let tree = ok(c.request("tree").await.unwrap());
    assert!(tree.contains("[keeper/broken] restarting"), "{tree}");

    control.stop();
    control.join().await.into_result().unwrap();
    keeper.stop();
    keeper.join().await.into_result().unwrap();
}

/// A control endpoint on loopback TCP for the subtree of `tree`, closing sessions idle
/// for `idle`.
async fn tcp_endpoint(
    tree: &impl taskthread::control::Subtree,
    idle: Duration,
) -> (
    std::net::SocketAddr,
    Handle<taskthread::control::ControlServer>,
) {
    let server = ControlEndpoint::tcp("127.0.0.1:0".parse().unwrap())
        .idle_timeout(idle)
        .bind(tree)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    (addr, taskthread::spawn(server))
}

/// Reads one framed answer off a raw session: its header line and payload.
async fn read_frame(session: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let mut header = String::new();
    if session.read_line(&mut header).await.ok()? == 0 {
        return None;
    }
    let len: usize = header.trim_end().strip_prefix("OK ")?.parse().ok()?;
    let mut payload = vec![0; len];
    session.read_exact(&mut payload).await.ok()?;
    Some(String::from_utf8(payload).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_watch_whose_messages_are_not_acknowledged_is_closed_after_the_idle_timeout() {
    let app = taskthread::spawn(App { extra: 0 });
    let idle = Duration::from_secs(5);
    let (addr, control) = tcp_endpoint(&app, idle).await;

    // A client that reads the messages and never sends anything: it looks the same as one
    // that stopped reading long ago, with the socket's buffers not yet full.
    let session = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut session = tokio::io::BufReader::new(session);
    session.get_mut().write_all(b"watch\n").await.unwrap();
    let ended = tokio::time::timeout(idle * 20, async {
        let mut messages = 0;
        while read_frame(&mut session).await.is_some() {
            messages += 1;
        }
        // The frame that ended the loop was not `OK`: the rest of the session is why.
        let mut rest = String::new();
        session.read_to_string(&mut rest).await.unwrap();
        (messages, rest)
    })
    .await;
    let (messages, why) = ended.expect("an unacknowledged watch is closed");
    assert!(messages > 1, "the watch streamed before it was closed");
    assert!(
        why.contains("watch messages not acknowledged for 5s: closed"),
        "told why: {why:?}"
    );

    // A client that acknowledges each message keeps its watch far past the idle timeout.
    let mut watch = ControlClient::connect_tcp(addr)
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    while started.elapsed() < idle * 4 {
        watch.next().await.unwrap();
    }
    drop(watch);

    // A client that closes its end ends the watch at once.
    let session = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut session = tokio::io::BufReader::new(session);
    session.get_mut().write_all(b"watch\n").await.unwrap();
    assert!(read_frame(&mut session).await.is_some());
    session.get_mut().shutdown().await.unwrap();
    let closed = tokio::time::timeout(idle / 2, async {
        while read_frame(&mut session).await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "a half-closed watch ends before the idle timeout"
    );

    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pool_command_the_pool_does_not_apply_is_refused_after_the_idle_timeout() {
    // A pool whose only worker is in an hour-long job, asked to stop: it waits for the job
    // and applies no command meanwhile.
    let pool = taskthread::spawn_with(
        WorkerPool::new(|| Sleeper).size(1),
        ChildOptions::new()
            .name("stuck")
            .stop_deadline(Duration::from_secs(24 * 3600)),
    );
    pool.send(3_600_000u64).await.unwrap();
    let idle = Duration::from_secs(5);
    let (addr, control) = tcp_endpoint(&pool, idle).await;
    let mut client = ControlClient::connect_tcp(addr).await.unwrap();
    while !ok(client.request("pool stuck running").await.unwrap()).contains("1 running") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.stop();

    assert_eq!(
        err(client.request("pool stuck size 2").await.unwrap()),
        "the pool `stuck` did not apply the command within 5s; it may still apply it later"
    );
    // The session goes on.
    assert!(ok(client.request("tree").await.unwrap()).starts_with("WorkerPool"));

    control.stop();
    control.join().await.into_result().unwrap();
    pool.join().await.into_result().unwrap();
}

/// A fake endpoint on loopback TCP that reads each session's request and then sends
/// `reply` and nothing more, holding the session open.
async fn stalling_endpoint(reply: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut session, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 64];
            let _ = session.read(&mut request).await;
            session.write_all(reply).await.unwrap();
            held.push(session);
        }
    });
    addr
}

#[tokio::test(start_paused = true)]
async fn the_client_gives_up_on_an_endpoint_that_stops_answering() {
    // Without a timeout of its own, the client would wait for ever: this bounds the test.
    async fn bounded<T>(what: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(3600), what)
            .await
            .expect("the client gives up by itself")
    }
    let timed_out = |e: std::io::Error, after: &str| {
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(
            e.to_string(),
            format!("no answer from the control endpoint within {after}")
        );
    };

    // Silent.
    let silent = stalling_endpoint(b"").await;
    let mut client = ControlClient::connect_tcp(silent).await.unwrap();
    timed_out(bounded(client.request("tree")).await.unwrap_err(), "30s");
    // The session is out of step: later requests fail at once.
    let again = client.request("tree").await.unwrap_err();
    assert!(again.to_string().contains("connect again"), "{again}");

    // A header that announces a large answer, a few bytes of it, and silence.
    let stalled = stalling_endpoint(b"OK 60000000\nabc").await;
    let mut client = ControlClient::connect_tcp(stalled)
        .await
        .unwrap()
        .timeout(Duration::from_secs(5));
    timed_out(bounded(client.request("tree")).await.unwrap_err(), "5s");

    // A watch whose messages stop coming.
    let watch = ControlClient::connect_tcp(silent)
        .await
        .unwrap()
        .timeout(Duration::from_secs(5));
    let mut watch = watch.watch().await.unwrap();
    timed_out(bounded(watch.next()).await.unwrap_err(), "5s");
}
