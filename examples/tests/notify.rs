//! The `notify` example's parts: its command parser, and whole sessions of its synchronous
//! front driving the background `Mailer` tree, with mails written to a directory and sent
//! over real TCP to a minimal SMTP server on loopback (std only, below).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use lettre::message::Mailbox;
use taskthread_examples::notify::command::{BadInput, Command, parse};
use taskthread_examples::notify::mailer::Outbox;
use taskthread_examples::notify::session::{self, Config, Out, Summary};

fn config(outbox: Outbox) -> Config {
    Config {
        concurrency: 2,
        ..Config::new(outbox, "notify <notify@localhost>".parse().unwrap())
    }
}

/// Runs a session over `script`; returns its summary and everything it printed.
fn run(config: &Config, script: &str) -> (Summary, String) {
    run_bytes(config, script.as_bytes())
}

/// Runs a session over raw input bytes.
fn run_bytes(config: &Config, input: &[u8]) -> (Summary, String) {
    let printed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let out: Out = printed.clone();
    let summary = session::run(config, input, out).unwrap();
    let printed = String::from_utf8(printed.lock().unwrap().clone()).unwrap();
    (summary, printed)
}

const SCRIPT: &str = "\
# two good mails, one the server refuses, two bad lines
send bob@example.com First | Hello Bob\\nSecond line
send \"Alice Doe <alice@example.com>\" Second
send reject@example.com Third
sned oops
send carol@ Fourth
status
";

#[test]
fn commands_parse_and_bad_lines_say_what_is_wrong() {
    let Ok(Command::Send { to, subject, body }) = parse("send bob@example.com Hi there | a\\nb")
    else {
        panic!("a send");
    };
    assert_eq!(to, "bob@example.com".parse::<Mailbox>().unwrap());
    assert_eq!((subject.as_str(), body.as_str()), ("Hi there", "a\nb"));
    let Ok(Command::Send { to, .. }) = parse("send \"Bob B <bob@example.com>\" Hi") else {
        panic!("a send with a display name");
    };
    assert_eq!(to.name.as_deref(), Some("Bob B"));
    assert_eq!(parse("  # a comment"), Ok(Command::Nothing));
    assert_eq!(parse(""), Ok(Command::Nothing));
    assert_eq!(parse("status"), Ok(Command::Status));
    assert_eq!(parse("quit"), Ok(Command::Quit));

    let unknown = parse("sned x").unwrap_err();
    assert_eq!(unknown.to_string(), "unknown command `sned` (try `help`)");
    assert_eq!(
        parse("send bob@example.com"),
        Err(BadInput::MissingArgument)
    );
    assert_eq!(parse("send"), Err(BadInput::MissingArgument));
    assert_eq!(
        parse("send \"Bob <bob@x.org> Hi"),
        Err(BadInput::UnclosedQuote)
    );
    let bad = parse("send carol@ Hi").unwrap_err();
    assert!(matches!(bad, BadInput::BadAddress { .. }));
    assert!(
        bad.to_string()
            .starts_with("`carol@` is not an e-mail address")
    );
}

#[test]
fn a_session_writes_every_mail_to_the_directory_and_goes_on_after_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, printed) = run(&config(Outbox::Directory(dir.path().into())), SCRIPT);
    // Without a server, "reject@" is just another recipient.
    assert_eq!(
        summary,
        Summary {
            sent: 3,
            failed: 0,
            unsent: 0,
            rejected: 2
        },
        "{printed}"
    );
    assert!(printed.contains("error: unknown command `sned` (try `help`)"));
    assert!(printed.contains("error: `carol@` is not an e-mail address"));
    assert!(printed.contains("status: "));
    let mails: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 3);
    assert!(mails.iter().any(|m| m.contains("Subject: First")
        && m.contains("To: bob@example.com")
        && m.contains("Second line")));
}

#[test]
fn quit_ends_the_session_and_the_queued_mails_still_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::new();
    for n in 0..20 {
        script.push_str(&format!("send user{n}@example.com Mail {n}\n"));
    }
    script.push_str("quit\nsend late@example.com Never read\n");
    let (summary, printed) = run(&config(Outbox::Directory(dir.path().into())), &script);
    assert_eq!(summary.sent, 20, "{printed}");
    assert!(!printed.contains("late@"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 20);
}

/// A mail as the SMTP server received it.
#[derive(Debug, Default, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server on loopback, std only: it accepts every recipient except those
/// whose address starts with `reject`, and keeps each mail it accepts.
fn smtp_server() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&mails);
    // Detached: it waits in `accept` until the test process ends.
    thread::spawn(move || {
        for conn in listener.incoming() {
            let kept = Arc::clone(&kept);
            thread::spawn(move || converse(conn?, &kept));
        }
        std::io::Result::Ok(())
    });
    (port, mails)
}

/// One SMTP session: greeting, EHLO, MAIL, RCPT, DATA, QUIT.
fn converse(stream: TcpStream, mails: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    out.write_all(b"220 test.local ESMTP ready\r\n")?;
    let mut mail = Received::default();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let argument = || {
            line.split_once(':')
                .map(|(_, a)| a.trim().trim_matches(['<', '>']).to_owned())
                .unwrap_or_default()
        };
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 test.local\r\n",
            "RCPT" if argument().starts_with("reject") => b"550 5.1.1 no such user here\r\n",
            "RCPT" => {
                mail.to.push(argument());
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line == ".\r\n" {
                        break;
                    }
                    mail.data.push_str(&line);
                }
                mails.lock().unwrap().push(std::mem::take(&mut mail));
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            "RSET" => {
                mail = Received::default();
                b"250 OK\r\n"
            }
            _ => b"250 OK\r\n", // MAIL, NOOP
        };
        out.write_all(reply)?;
    }
}

#[test]
fn a_session_sends_over_smtp_and_reports_what_the_server_refused() {
    let (port, mails) = smtp_server();
    let (summary, printed) = run(
        &config(Outbox::Smtp {
            host: "127.0.0.1".into(),
            port,
        }),
        SCRIPT,
    );
    assert_eq!(
        summary,
        Summary {
            sent: 2,
            failed: 1,
            unsent: 0,
            rejected: 2
        },
        "{printed}"
    );
    assert!(
        printed.contains("mail #3 to reject@example.com: failed: ")
            && printed.contains("no such user here"),
        "{printed}"
    );
    let mails = mails.lock().unwrap();
    let mut to: Vec<&str> = mails
        .iter()
        .flat_map(|m| &m.to)
        .map(String::as_str)
        .collect();
    to.sort_unstable();
    assert_eq!(to, ["alice@example.com", "bob@example.com"]);
    let first = mails.iter().find(|m| m.to == ["bob@example.com"]).unwrap();
    assert!(first.data.contains("Subject: First") && first.data.contains("Hello Bob"));
}

#[test]
fn a_session_against_a_closed_port_reports_every_mail_as_failed() {
    // Bound then closed: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (summary, printed) = run(
        &config(Outbox::Smtp {
            host: "127.0.0.1".into(),
            port,
        }),
        "send bob@example.com One\nsend alice@example.com Two\n",
    );
    assert_eq!(
        summary,
        Summary {
            sent: 0,
            failed: 2,
            unsent: 0,
            rejected: 0
        },
        "{printed}"
    );
}

/// A line client of the notify server.
struct Client {
    lines: std::io::Lines<BufReader<TcpStream>>,
    out: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Self {
        let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut client = Self {
            out: conn.try_clone().unwrap(),
            lines: BufReader::new(conn).lines(),
        };
        assert!(client.next().starts_with("notify: ready"));
        client
    }

    fn next(&mut self) -> String {
        self.lines.next().unwrap().unwrap()
    }

    /// Sends a command and returns the first line of the reply.
    fn say(&mut self, line: &str) -> String {
        writeln!(self.out, "{line}").unwrap();
        self.next()
    }
}

#[test]
fn the_tcp_front_serves_clients_on_their_own_threads_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let printed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let server = {
        let (config, out) = (
            config(Outbox::Directory(dir.path().into())),
            printed.clone(),
        );
        thread::spawn(move || session::serve(&config, listener, out))
    };
    let clients: Vec<_> = (0..3)
        .map(|c| {
            thread::spawn(move || {
                let mut client = Client::connect(port);
                for n in 0..5 {
                    let reply = client.say(&format!("send user{c}-{n}@example.com Hi {n}"));
                    assert!(reply.starts_with("queued mail #"), "{reply}");
                }
                let reply = client.say("send nobody@ Hi");
                assert!(reply.starts_with("error: `nobody@` is not an e-mail address"));
                writeln!(client.out, "quit").unwrap();
                assert!(
                    client.lines.next().is_none(),
                    "the server closes after `quit`"
                );
            })
        })
        .collect();
    // An idle client is disconnected at shutdown.
    let _idle = Client::connect(port);
    for client in clients {
        client.join().unwrap();
    }
    let mut admin = Client::connect(port);
    writeln!(admin.out, "shutdown").unwrap();
    let summary = server.join().unwrap().unwrap();
    let printed = String::from_utf8(printed.lock().unwrap().clone()).unwrap();
    assert_eq!(
        summary,
        Summary {
            sent: 15,
            failed: 0,
            unsent: 0,
            rejected: 3
        },
        "{printed}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 15);
}

#[test]
fn a_line_that_is_not_utf8_gets_an_error_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = b"send bob@example.com Caf\xe9 | bad byte\nsend bob@example.com Fine\n";
    let (summary, printed) = run_bytes(&config(Outbox::Directory(dir.path().into())), input);
    assert_eq!(
        summary,
        Summary {
            sent: 1,
            failed: 0,
            unsent: 0,
            rejected: 1
        },
        "{printed}"
    );
    assert!(printed.contains("error: the line is not valid UTF-8: skipped"));
    assert!(printed.contains("mail #1 to bob@example.com: sent"));
}

#[test]
fn a_line_over_the_limit_is_skipped_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        max_line: 100,
        ..config(Outbox::Directory(dir.path().into()))
    };
    // Ten megabytes on one line, between two good ones: skipped as it is read.
    let mut input = b"send a@example.com One\nsend b@example.com ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.extend_from_slice(b"\nsend c@example.com Three\n");
    let (summary, printed) = run_bytes(&config, &input);
    assert_eq!((summary.sent, summary.rejected), (2, 1), "{printed}");
    let too_long = format!(
        "error: a line of {} bytes is too long: skipped",
        19 + (10 << 20)
    );
    assert!(printed.contains(&too_long), "{printed}");
    assert!(printed.len() < 10_000, "the long line is not echoed");
}

/// An SMTP server that accepts connections and never says a word: a send waits for its
/// greeting until lettre's timeout (10 s).
fn silent_smtp_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Detached: it holds every connection until the test process ends.
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.extend(conn.ok());
        }
    });
    port
}

#[test]
fn mails_the_stop_deadline_cuts_off_are_reported_as_not_sent() {
    let config = Config {
        concurrency: 1,
        stop_deadline: std::time::Duration::from_secs(1),
        ..config(Outbox::Smtp {
            host: "127.0.0.1".into(),
            port: silent_smtp_server(),
        })
    };
    let mut script = String::new();
    for n in 1..=5 {
        script.push_str(&format!("send user{n}@example.com Mail {n}\n"));
    }
    let (summary, printed) = run(&config, &script);
    // The first mail waits on the silent server when the deadline passes; the others never
    // start. Every one of them is reported, and the run is not a success.
    assert_eq!(
        summary,
        Summary {
            sent: 0,
            failed: 0,
            unsent: 5,
            rejected: 0
        },
        "{printed}"
    );
    for n in 1..=5 {
        let line = format!("mail #{n} to user{n}@example.com: not sent: the stop deadline passed");
        assert!(printed.contains(&line), "{printed}");
    }
    assert!(!summary.is_success());
    assert_eq!(
        summary.to_string(),
        "notify: sent=0 failed=0 unsent=5 rejected=0"
    );
}

/// Starts the TCP front with `config` on an ephemeral port.
fn tcp_front(config: Config) -> (u16, thread::JoinHandle<std::io::Result<Summary>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out: Out = Arc::new(Mutex::new(std::io::sink()));
    (
        port,
        thread::spawn(move || session::serve(&config, listener, out)),
    )
}

#[test]
fn the_tcp_front_turns_away_clients_beyond_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = tcp_front(Config {
        max_clients: 2,
        ..config(Outbox::Directory(dir.path().into()))
    });
    let mut first = Client::connect(port);
    let _second = Client::connect(port);
    let mut third = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let mut line = String::new();
    third.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "error: 2 clients are connected (the most); try again later\n"
    );
    line.clear();
    assert_eq!(third.read_line(&mut line).unwrap(), 0, "then closed");

    writeln!(first.out, "shutdown").unwrap();
    let summary = server.join().unwrap().unwrap();
    assert_eq!(summary, Summary::default());
}

#[test]
fn the_tcp_front_closes_idle_clients_and_survives_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = tcp_front(Config {
        max_line: 100,
        idle_timeout: Some(std::time::Duration::from_millis(300)),
        ..config(Outbox::Directory(dir.path().into()))
    });

    // Bad lines get an error each, and the session goes on.
    let mut client = Client::connect(port);
    client.out.write_all(&[b'x'; 1000]).unwrap();
    let reply = client.say("");
    assert_eq!(reply, "error: a line of 1000 bytes is too long: skipped");
    client.out.write_all(b"send \xff@example.com Hi\n").unwrap();
    assert_eq!(client.next(), "error: the line is not valid UTF-8: skipped");
    let reply = client.say("send bob@example.com Still here");
    assert!(reply.starts_with("queued mail #1"), "{reply}");

    // Then nothing: the client is told, and disconnected.
    assert!(
        client
            .next()
            .starts_with("notify: closing: nothing received for")
    );
    assert!(client.lines.next().is_none());

    let mut admin = Client::connect(port);
    writeln!(admin.out, "shutdown").unwrap();
    let summary = server.join().unwrap().unwrap();
    assert_eq!((summary.sent, summary.rejected), (1, 2));
}
