//! `taskthread-ctl top` end to end in a real terminal: tmux (Debian's `tmux` package; `.ci/run`
//! installs it when missing) runs the binary against a live tree's control endpoint; the
//! test reads the screen tmux draws and types keys into it.

#![cfg(unix)]

use std::process::{Command, Output};
use std::time::Duration;

use taskthread::control::ControlEndpoint;
use taskthread::prelude::*;

mod common;

#[derive(Default)]
struct Idle;

#[taskthread]
impl Idle {}

struct App;

#[taskthread]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(common::pool(2, 4), ChildOptions::new().name("workers"));
        ctx.spawn_with(Idle, ChildOptions::new().name("idle"));
        Ok(())
    }
}

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached session of `width` × `height` cells.
    fn start(socket: String, command: &str, width: u16, height: u16) -> Self {
        let tmux = Self { socket };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        match Command::new("tmux")
            .args(["-S", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
        {
            Ok(out) => out,
            Err(e) => panic!("cannot run `tmux` ({e}): install Debian's `tmux` package"),
        }
    }

    /// The screen as text, one line per row.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys, in tmux's names (`y`, `Down`, `Escape`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Whether the session (the command in it) still runs.
    fn running(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).status.success()
    }

    /// Waits (at most 30 s) until the screen shows what `done` looks for.
    async fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        for _ in 0..300 {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the screen never showed {what}:\n{}", self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_in_a_real_terminal_shows_the_tree_and_stops_a_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let app = taskthread::spawn_with(App, ChildOptions::new().name("term"));
    let endpoint = ControlEndpoint::unix(&socket).watch_interval(Duration::from_millis(50));
    let control = taskthread::spawn(endpoint.bind(&app).await.unwrap());
    let command = format!(
        "{} --unix {} top",
        env!("CARGO_BIN_EXE_taskthread-ctl"),
        socket.display()
    );
    let tmux = Tmux::start(
        dir.path().join("tmux.sock").display().to_string(),
        &command,
        140,
        40,
    );

    let screen = tmux
        .until("the tree", |s| s.contains("taskthread top · 5 threads"))
        .await;
    assert!(screen.contains("term (App)"), "{screen}");
    assert!(screen.contains("  workers (WorkerPool)"), "{screen}");
    assert!(screen.contains("    worker (Worker)"), "{screen}");
    assert!(screen.contains("  idle (Idle)"), "{screen}");
    assert!(screen.contains("running"), "{screen}");

    // Select the last thread (the idle one), stop it after the confirmation.
    tmux.keys(&["G", "s"]);
    tmux.until("the confirmation", |s| {
        s.contains("stop term/idle and its subtree? (y/n)")
    })
    .await;
    tmux.keys(&["y"]);
    tmux.until("the idle thread gone", |s| !s.contains("idle (Idle)"))
        .await;
    let snapshot = app.snapshot();
    assert!(snapshot.find("term/idle").is_none(), "{snapshot}");
    assert!(snapshot.find("term/workers").is_some(), "{snapshot}");

    // q leaves the view: the process ends, and with it the session.
    tmux.keys(&["q"]);
    for _ in 0..300 {
        if !tmux.running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!tmux.running(), "top did not end on q");

    control.stop();
    control.join().await.into_result().unwrap();
    app.stop();
    app.join().await.into_result().unwrap();
}
