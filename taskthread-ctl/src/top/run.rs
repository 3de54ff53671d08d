//! Running the view in a real terminal: the watch stream on one session, commands on
//! another, keys read between frames.

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use taskthread::control::ControlClient;
use taskthread::watch::WatchMessage;

use super::{Action, Top, draw::draw};
use crate::Args;

/// How long to wait for a key before drawing again.
const FRAME: Duration = Duration::from_millis(100);

/// What the watch session delivers.
enum Incoming {
    Message(WatchMessage),
    Ended(String),
}

/// Runs `taskthread-ctl top` until `q`; returns the process exit code (2 if the endpoint
/// cannot be reached or the terminal cannot be used).
pub fn run(args: &Args) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 2;
        }
    };
    let connected = runtime
        .block_on(async { Ok::<_, io::Error>((args.connect().await?, args.connect().await?)) });
    let (watch_client, commands) = match connected {
        Ok(clients) => clients,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (tx, rx) = mpsc::channel();
    runtime.spawn(async move {
        let ended = match watch_client.watch().await {
            Ok(mut watch) => loop {
                match watch.next().await {
                    Ok(message) => {
                        if tx.send(Incoming::Message(message)).is_err() {
                            return;
                        }
                    }
                    Err(e) => break e.to_string(),
                }
            },
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Incoming::Ended(ended));
    });
    let mut commands = Commands {
        args,
        client: Some(commands),
    };
    let mut terminal = ratatui::init();
    let mut top = Top::new();
    let outcome = (|| -> io::Result<()> {
        loop {
            while let Ok(incoming) = rx.try_recv() {
                match incoming {
                    Incoming::Message(message) => top.apply(message),
                    Incoming::Ended(why) => top.ended(why),
                }
            }
            terminal.draw(|frame| draw(&top, frame))?;
            if !event::poll(FRAME)? {
                continue;
            }
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match top.key(key) {
                Action::None => {}
                Action::Quit => return Ok(()),
                Action::Request(line) => top.answered(runtime.block_on(commands.request(&line))),
            }
        }
    })();
    ratatui::restore();
    runtime.shutdown_background();
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// The session commands go through, connected again if the endpoint closed it (it closes
/// idle sessions).
struct Commands<'a> {
    args: &'a Args,
    client: Option<ControlClient>,
}

impl Commands<'_> {
    async fn request(&mut self, line: &str) -> io::Result<taskthread::control::Answer> {
        if let Some(client) = &mut self.client {
            match client.request(line).await {
                Ok(answer) => return Ok(answer),
                // Sent, and perhaps applied: never sent twice. The next command connects
                // again (the session is out of step).
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.client = None;
                    return Err(e);
                }
                // The endpoint closed the session: the command is sent on a new one.
                Err(_) => {}
            }
        }
        self.client = None;
        let mut client = self.args.connect().await?;
        let answer = client.request(line).await;
        self.client = Some(client);
        answer
    }
}
