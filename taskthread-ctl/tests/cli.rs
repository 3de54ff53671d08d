//! `taskthread-ctl` run as a process against a live control endpoint: one-shot commands
//! (output, exit status, `--json`, unreachable endpoints, refused sessions, bad arguments,
//! an endpoint that does not answer), the prompt, and `watch`.

#![cfg(unix)]

use std::process::{Command, Output};
use std::time::Duration;

use taskthread::control::{ControlClient, ControlEndpoint, MAX_SESSIONS};
use taskthread::prelude::*;

mod common;

struct App;

#[taskthread]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(common::pool(1, 3), ChildOptions::new().name("pool"));
        Ok(())
    }
}

/// Runs the binary without blocking the runtime that serves the endpoint.
async fn ctl(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_taskthread-ctl"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_against_a_live_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let app = taskthread::spawn(App);
    let control = taskthread::spawn(ControlEndpoint::unix(&socket).bind(&app).await.unwrap());
    while app
        .snapshot()
        .find("app/pool")
        .is_none_or(|p| p.children.is_empty())
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let unix = socket.to_str().unwrap();

    let out = ctl(&["--unix", unix, "tree"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    assert!(tree.starts_with("App [app] running"), "{tree}");
    assert!(
        tree.contains("    WorkerPool: IN: u64 [app/pool] running"),
        "{tree}"
    );

    let out = ctl(&["--unix", unix, "pool", "app/pool", "size", "3"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pool `app/pool`: 3 running, at most 3\n");

    let out = ctl(&["--unix", unix, "--json", "pool", "app/pool", "running"]).await;
    assert_eq!(
        text(&out.stdout),
        "{\"pool\":\"app/pool\",\"running\":3,\"max\":3}\n"
    );

    // Refused: exit status 1, the message on stderr.
    let out = ctl(&["--unix", unix, "pool", "app/pool", "start", "1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: pool `app/pool` may run at most 3 workers: cannot run 4 (3 running)\n"
    );
    let out = ctl(&["--unix", unix, "frobnicate"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: unknown command `frobnicate`: try `help`\n"
    );

    // Stopping a thread by path.
    let out = ctl(&["--unix", unix, "stop", "app/pool"]).await;
    assert_eq!(text(&out.stdout), "stopping `app/pool`\n");

    control.stop();
    control.join().await.into_result().unwrap();
    // Nobody listening: exit status 2 and a clear message.
    let out = ctl(&["--unix", unix, "tree"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot connect to {unix}: ")),
        "{err}"
    );

    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_prints_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let app = taskthread::spawn(App);
    let control = taskthread::spawn(ControlEndpoint::unix(&socket).bind(&app).await.unwrap());
    let mut held = Vec::new();
    for _ in 0..MAX_SESSIONS {
        let mut client = ControlClient::connect_unix(&socket).await.unwrap();
        assert!(client.request("help").await.unwrap().ok);
        held.push(client);
    }
    let unix = socket.to_str().unwrap();
    // The endpoint answers before it reads the request: the CLI prints that answer,
    // whether or not its request went out.
    for _ in 0..5 {
        let out = ctl(&["--unix", unix, "tree"]).await;
        assert_eq!(
            text(&out.stderr),
            format!("error: too many sessions (at most {MAX_SESSIONS}): try again later\n")
        );
        assert_eq!(out.status.code(), Some(1));
    }
    drop(held);
    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test]
async fn the_endpoint_is_required_and_only_one() {
    let out = ctl(&["tree"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--unix <PATH>"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&["--unix", "/x", "--tcp", "127.0.0.1:1", "tree"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&["--tcp", "not-an-address", "tree"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_does_not_answer_is_given_up_after_the_timeout() {
    // Accepts sessions, reads their requests and answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (session, _) = listener.accept().await.unwrap();
            held.push(session);
        }
    });
    let out = ctl(&["--tcp", &addr, "--timeout", "0.5", "tree"]).await;
    assert_eq!(
        text(&out.stderr),
        "error: no answer from the control endpoint within 500ms\n"
    );
    assert_eq!(out.status.code(), Some(2));
    let out = ctl(&["--tcp", &addr, "--timeout", "0.5", "watch"]).await;
    assert_eq!(
        text(&out.stderr),
        "error: no answer from the control endpoint within 500ms\n"
    );
    assert_eq!(out.status.code(), Some(2));
    for bad in ["0", "-1", "soon"] {
        let out = ctl(&["--tcp", &addr, "--timeout", bad, "tree"]).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("invalid value"),
            "{}",
            text(&out.stderr)
        );
    }
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_over_tcp() {
    let app = taskthread::spawn(App);
    let server = ControlEndpoint::tcp("127.0.0.1:0".parse().unwrap())
        .bind(&app)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let control = taskthread::spawn(server);
    let out = ctl(&["--tcp", &addr, "stats", "app", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("{\"id\":"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("\"path\":\"app\""));
    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_reads_requests_line_by_line_and_keeps_a_history() {
    use std::io::Write;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("prompt.sock");
    let history = dir.path().join("history");
    let app = taskthread::spawn(App);
    let control = taskthread::spawn(ControlEndpoint::unix(&socket).bind(&app).await.unwrap());
    let (socket_arg, history_arg) = (
        socket.to_str().unwrap().to_owned(),
        history.to_str().unwrap().to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskthread-ctl"))
            .args(["--unix", &socket_arg, "--history", &history_arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Not a terminal: the prompt reads plain lines.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"stats app\n\nbogus\nquit\ntree\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("path: app\n"), "{stdout}");
    assert!(
        !stdout.contains("App [app]"),
        "nothing runs after `quit`: {stdout}"
    );
    assert!(
        text(&out.stderr).contains("error: unknown command `bogus`: try `help`"),
        "{}",
        text(&out.stderr)
    );
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(
        saved.contains("stats app") && saved.contains("bogus"),
        "{saved}"
    );
    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}

/// Reads the first `n` lines of `taskthread-ctl ARGS`, then ends it.
async fn first_lines(args: &[&str], n: usize) -> Vec<String> {
    use std::io::BufRead;
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskthread-ctl"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .take(n)
            .map(Result::unwrap)
            .collect();
        child.kill().unwrap();
        child.wait().unwrap();
        lines
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_the_stream_as_text_or_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let app = taskthread::spawn(App);
    let endpoint = ControlEndpoint::unix(&socket).watch_interval(Duration::from_millis(20));
    let control = taskthread::spawn(endpoint.bind(&app).await.unwrap());
    let unix = socket.to_str().unwrap();

    let json = first_lines(&["--unix", unix, "watch", "--json"], 3).await;
    assert!(
        json[0].starts_with(r#"{"kind":"snapshot","seq":"#),
        "{json:?}"
    );
    assert!(json[0].contains(r#""path":"app/pool""#), "{json:?}");
    assert!(
        json[1].starts_with(r#"{"kind":"changes","seq":"#),
        "{json:?}"
    );
    assert!(
        json[2].starts_with(r#"{"kind":"changes","seq":"#),
        "{json:?}"
    );

    let before = first_lines(&["--unix", unix, "--json", "watch"], 1).await;
    assert!(
        before[0].starts_with(r#"{"kind":"snapshot""#),
        "--json before the command too"
    );

    let lines = first_lines(&["--unix", unix, "watch"], 2).await;
    assert!(lines[0].starts_with("snapshot #"), "{lines:?}");
    assert!(lines[1].starts_with("app (App) "), "{lines:?}");

    let out = ctl(&["--unix", &format!("{unix}.missing"), "watch"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot connect to"));

    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}
