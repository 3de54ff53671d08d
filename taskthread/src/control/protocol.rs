//! The line protocol: requests and their parsing, answers in text and in JSON, the reasons
//! for refusing, and the framing both ends share.

use std::fmt::{self, Write as _};
use std::io;
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::exit::ThreadState;
use crate::node::TreeSnapshot;
use crate::pool::{PoolCommand, PoolError, PoolStatus};

/// The longest request line a session accepts, in bytes (the `\n` not counted).
pub const MAX_LINE: usize = 4096;

/// The word that asks for an answer as JSON. Any request may carry it, as any of its words.
pub const JSON_FLAG: &str = "--json";

const HELP: &str = "\
commands (add --json to any for JSON):
  help                       this text
  tree                       the tree, one thread per line
  watch                      a snapshot, then the changes of each sampling, until closed;
                             send a line (an empty one) to acknowledge what came, or the
                             watch ends after the idle timeout
  stats PATH                 the counters of the thread at PATH
  stop PATH                  stop the thread at PATH gracefully
  pool PATH start N          start N more workers in the pool at PATH
  pool PATH stop N           stop its N newest workers, gracefully
  pool PATH size N           start or stop workers until N run
  pool PATH running          how many workers run, and the most that may";

const STATS_USAGE: &str = "stats PATH";
const STOP_USAGE: &str = "stop PATH";
const POOL_USAGE: &str = "pool PATH start N | stop N | size N | running";

/// A request line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) format: Format,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help,
    Tree,
    Watch,
    Stats {
        path: String,
    },
    Stop {
        path: String,
    },
    /// A resize, or `None` to ask for the counts (`running`).
    Pool {
        path: String,
        action: Option<PoolCommand>,
    },
}

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

impl Request {
    /// Parses one request line (without its `\n`). Words are separated by whitespace, so
    /// a `\r` before the `\n` is ignored; a path is the rest of the words joined by one
    /// space.
    pub(crate) fn parse(line: &str) -> Result<Self, Refusal> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let format = if words.contains(&JSON_FLAG) {
            Format::Json
        } else {
            Format::Text
        };
        words.retain(|w| *w != JSON_FLAG);
        let Some((command, args)) = words.split_first() else {
            return Err(Refusal::Empty);
        };
        let command = command.to_ascii_lowercase();
        let command = match command.as_str() {
            "help" | "tree" | "watch" if !args.is_empty() => {
                return Err(Refusal::TakesNoArguments(command));
            }
            "help" => Command::Help,
            "tree" => Command::Tree,
            "watch" => Command::Watch,
            "stats" => Command::Stats {
                path: join_path(args, STATS_USAGE)?,
            },
            "stop" => Command::Stop {
                path: join_path(args, STOP_USAGE)?,
            },
            "pool" => parse_pool(args)?,
            _ => return Err(Refusal::UnknownCommand(command)),
        };
        Ok(Self { command, format })
    }
}

fn join_path(words: &[&str], usage: &'static str) -> Result<String, Refusal> {
    if words.is_empty() {
        return Err(Refusal::MissingPath { usage });
    }
    Ok(words.join(" "))
}

/// `PATH start N`, `PATH stop N`, `PATH size N` or `PATH running`.
fn parse_pool(args: &[&str]) -> Result<Command, Refusal> {
    let (action, path) = match args {
        [path @ .., last] if last.eq_ignore_ascii_case("running") => (None, path),
        [path @ .., action, n] => {
            let n: usize = n
                .parse()
                .map_err(|_| Refusal::NotANumber((*n).to_owned()))?;
            let action = match action.to_ascii_lowercase().as_str() {
                "start" => PoolCommand::Start(n),
                "stop" => PoolCommand::Stop(n),
                "size" => PoolCommand::Resize(n),
                other => return Err(Refusal::UnknownPoolAction(other.to_owned())),
            };
            (Some(action), path)
        }
        _ => return Err(Refusal::PoolUsage),
    };
    Ok(Command::Pool {
        path: join_path(path, POOL_USAGE)?,
        action,
    })
}

/// Why the endpoint refused a request (or a session): the payload of an `ERR` answer.
#[derive(Debug)]
pub(crate) enum Refusal {
    Empty,
    UnknownCommand(String),
    TakesNoArguments(String),
    MissingPath { usage: &'static str },
    PoolUsage,
    NotANumber(String),
    UnknownPoolAction(String),
    NoThread(String),
    NotAPool(String),
    Pool(PoolError),
    TooLong,
    NotUtf8,
    TooManySessions { max: usize },
    PoolTimedOut { pool: String, after: Duration },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty request: try `help`"),
            Self::UnknownCommand(command) => write!(f, "unknown command `{command}`: try `help`"),
            Self::TakesNoArguments(command) => write!(f, "`{command}` takes no arguments"),
            Self::MissingPath { usage } => write!(f, "missing path: usage `{usage}`"),
            Self::PoolUsage => write!(f, "usage: `{POOL_USAGE}`"),
            Self::NotANumber(n) => {
                write!(f, "`{n}` is not a number of workers; usage: `{POOL_USAGE}`")
            }
            Self::UnknownPoolAction(action) => {
                write!(f, "unknown pool action `{action}`; usage: `{POOL_USAGE}`")
            }
            Self::NoThread(path) => write!(f, "no thread at `{path}`"),
            Self::NotAPool(path) => write!(f, "`{path}` is not a worker pool"),
            Self::Pool(e) => e.fmt(f),
            Self::TooLong => write!(f, "request too long: at most {MAX_LINE} bytes per line"),
            Self::NotUtf8 => f.write_str("request is not UTF-8"),
            Self::TooManySessions { max } => {
                write!(f, "too many sessions (at most {max}): try again later")
            }
            Self::PoolTimedOut { pool, after } => write!(
                f,
                "the pool `{pool}` did not apply the command within {after:?}; it may still apply it later"
            ),
        }
    }
}

impl Format {
    /// The answer to `help`.
    pub(crate) fn help(self) -> String {
        match self {
            Self::Text => HELP.to_owned(),
            Self::Json => to_json(&HELP),
        }
    }

    /// The answer to `tree`: the whole subtree.
    pub(crate) fn tree(self, tree: &TreeSnapshot) -> String {
        match self {
            Self::Text => tree.to_string(),
            Self::Json => to_json(&ThreadJson::tree(tree)),
        }
    }

    /// The answer to `stats`: one thread, and its pool's counts if it is a worker pool.
    pub(crate) fn stats(self, thread: &TreeSnapshot, pool: Option<PoolStatus>) -> String {
        match self {
            Self::Text => {
                let mut out = format!(
                    "path: {}\nid: {}\ntype: {}\nstate: {}\nqueue: {}/{}\nhandled: {}\nrestarts: {}\nchildren: {}",
                    thread.path,
                    thread.id,
                    thread.type_name,
                    thread.state,
                    thread.queue_depth,
                    thread.queue_capacity,
                    thread.handled,
                    thread.restarts,
                    thread.children.len()
                );
                if let Some(p) = pool {
                    let _ = write!(out, "\nworkers: {} running, at most {}", p.running, p.max);
                }
                if let Some(remote) = &thread.remote {
                    let _ = write!(out, "\nremote: {remote} (life {})", remote.epoch);
                }
                out
            }
            Self::Json => to_json(&ThreadJson {
                pool: pool.map(|p| PoolCountsJson {
                    running: p.running,
                    max: p.max,
                }),
                ..ThreadJson::one(thread)
            }),
        }
    }

    /// The answer to `stop`: the thread at `path` is stopping.
    pub(crate) fn stopping(self, path: &str) -> String {
        match self {
            Self::Text => format!("stopping `{path}`"),
            Self::Json => to_json(&StoppingJson { stopping: path }),
        }
    }

    /// The answer to `pool`: the counts of the pool at `path`.
    pub(crate) fn pool(self, path: &str, status: PoolStatus) -> String {
        match self {
            Self::Text => format!(
                "pool `{path}`: {} running, at most {}",
                status.running, status.max
            ),
            Self::Json => to_json(&PoolJson {
                pool: path,
                running: status.running,
                max: status.max,
            }),
        }
    }
}

/// A thread as JSON: the fields of its [`TreeSnapshot`], with its children for `tree` and
/// its pool's counts for `stats`.
#[derive(Serialize)]
struct ThreadJson<'a> {
    id: u64,
    name: &'a str,
    path: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    down: &'a [&'a str],
    up: Option<&'a str>,
    #[serde(serialize_with = "as_display")]
    state: ThreadState,
    queue_depth: usize,
    queue_capacity: usize,
    handled: u64,
    restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<RemoteJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<ThreadJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<PoolCountsJson>,
}

impl<'a> ThreadJson<'a> {
    fn one(s: &'a TreeSnapshot) -> Self {
        Self {
            id: s.id.get(),
            name: &s.name,
            path: &s.path,
            type_name: s.type_name,
            down: s.down_types,
            up: s.up_type,
            state: s.state,
            queue_depth: s.queue_depth,
            queue_capacity: s.queue_capacity,
            handled: s.handled,
            restarts: s.restarts,
            remote: s.remote.as_ref().map(|r| RemoteJson {
                host: &r.host,
                rtt_us: r
                    .rtt
                    .map(|rtt| u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX)),
                epoch: r.epoch,
            }),
            children: None,
            pool: None,
        }
    }

    fn tree(s: &'a TreeSnapshot) -> Self {
        Self {
            children: Some(s.children.iter().map(Self::tree).collect()),
            ..Self::one(s)
        }
    }
}

/// A remote child's link: its host, the round-trip time in microseconds, its life.
#[derive(Serialize)]
struct RemoteJson<'a> {
    host: &'a str,
    rtt_us: Option<u64>,
    epoch: u32,
}

#[derive(Serialize)]
struct PoolCountsJson {
    running: usize,
    max: usize,
}

#[derive(Serialize)]
struct PoolJson<'a> {
    pool: &'a str,
    running: usize,
    max: usize,
}

#[derive(Serialize)]
struct StoppingJson<'a> {
    stopping: &'a str,
}

fn as_display<S: Serializer>(value: &impl fmt::Display, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("the answers hold only strings, numbers and lists: serialising cannot fail")
}

/// Writes one framed answer: the header `OK <len>` or `ERR <len>`, then `<len>` bytes of
/// payload, the last of them `\n`.
pub(crate) async fn write_answer(
    out: &mut (impl AsyncWrite + Unpin),
    answer: &Result<String, Refusal>,
) -> io::Result<()> {
    match answer {
        Ok(payload) => write_frame(out, "OK", payload).await,
        Err(refusal) => write_frame(out, "ERR", &refusal.to_string()).await,
    }
}

/// Writes one framed answer with this status (`OK` or `ERR`) and payload.
pub(crate) async fn write_frame(
    out: &mut (impl AsyncWrite + Unpin),
    status: &str,
    payload: &str,
) -> io::Result<()> {
    out.write_all(frame(status, payload).as_bytes()).await?;
    out.flush().await
}

fn frame(status: &str, payload: &str) -> String {
    let mut framed = format!("{status} {}\n", payload.len() + 1);
    framed.push_str(payload);
    framed.push('\n');
    framed
}

/// The header line of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// `OK` or `ERR`.
    pub(crate) ok: bool,
    /// The length of the payload that follows, in bytes.
    pub(crate) len: usize,
}

impl Header {
    /// Parses `OK <len>` or `ERR <len>`; the error says what is wrong with it.
    pub(crate) fn parse(header: &str) -> Result<Self, String> {
        let (ok, len) = match header.split_once(' ') {
            Some(("OK", len)) => (true, len),
            Some(("ERR", len)) => (false, len),
            _ => return Err(format!("malformed answer header `{header}`")),
        };
        let len = len
            .parse()
            .map_err(|_| format!("malformed answer length in `{header}`"))?;
        Ok(Self { ok, len })
    }
}

/// One line from the peer: a request, one too long (skipped up to its end), or the end.
pub(crate) enum Line {
    Request(Vec<u8>),
    TooLong,
    End,
}

/// Reads one line of at most [`MAX_LINE`] bytes without ever buffering more.
pub(crate) async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            // The end: a last line without `\n` is still a request.
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Request(line),
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Request(line)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Request, String> {
        Request::parse(line).map_err(|e| e.to_string())
    }

    #[test]
    fn requests_parse_with_their_format_anywhere() {
        let stats = |path: &str| Command::Stats {
            path: path.to_owned(),
        };
        assert_eq!(
            parse("STATS app/Big Cheese --json"),
            Ok(Request {
                command: stats("app/Big Cheese"),
                format: Format::Json,
            })
        );
        assert_eq!(parse("--json stats  a\r").unwrap().command, stats("a"));
        assert_eq!(
            parse("pool a/b Running").unwrap().command,
            Command::Pool {
                path: "a/b".to_owned(),
                action: None,
            }
        );
        assert_eq!(
            parse("pool a b size 3").unwrap(),
            Request {
                command: Command::Pool {
                    path: "a b".to_owned(),
                    action: Some(PoolCommand::Resize(3)),
                },
                format: Format::Text,
            }
        );
        assert_eq!(parse("--json"), Err("empty request: try `help`".to_owned()));
        assert_eq!(parse("Tree x"), Err("`tree` takes no arguments".to_owned()));
        assert_eq!(
            parse("pool start 2"),
            Err("missing path: usage `pool PATH start N | stop N | size N | running`".to_owned())
        );
    }

    fn snapshot(id: u64, name: &str, children: Vec<TreeSnapshot>) -> TreeSnapshot {
        TreeSnapshot {
            id: crate::exit::ChildId::from_u64(id),
            name: name.to_owned(),
            path: format!("app/{name}"),
            type_name: "Worker",
            down_types: &["u64", "Job"],
            up_type: None,
            state: ThreadState::Running,
            queue_depth: 1,
            queue_capacity: 64,
            handled: 7,
            restarts: 0,
            waiting: Vec::new(),
            remote: None,
            children,
        }
    }

    #[test]
    fn a_remote_child_shows_its_host_and_link() {
        let mut child = snapshot(2, "w", vec![snapshot(9, "below", vec![])]);
        child.remote = Some(crate::node::RemoteLink::new(
            "gpu-1",
            Some(std::time::Duration::from_micros(420)),
            2,
        ));
        let json = Format::Json.tree(&snapshot(1, "p", vec![child.clone()]));
        assert!(
            json.contains(r#""restarts":0,"remote":{"host":"gpu-1","rtt_us":420,"epoch":2},"children":[{"id":9,"#),
            "{json}"
        );
        let text = Format::Text.tree(&child);
        assert!(
            text.starts_with("Worker: IN: u64, Job [app/w] running, queue 1/64, handled 7, on gpu-1, rtt 0.42 ms\n    Worker"),
            "{text}"
        );
        assert!(
            Format::Text
                .stats(&child, None)
                .ends_with("\nremote: on gpu-1, rtt 0.42 ms (life 2)")
        );
    }

    #[test]
    fn json_answers_keep_their_field_order_and_escapes() {
        let tree = snapshot(1, "p\"q\n", vec![snapshot(2, "w", vec![])]);
        let fields = |id, name: &str| {
            format!(
                r#""id":{id},"name":{name},"path":"app/{}","type":"Worker","down":["u64","Job"],"up":null,"state":"running","queue_depth":1,"queue_capacity":64,"handled":7,"restarts":0"#,
                name.trim_matches('"')
            )
        };
        assert_eq!(
            Format::Json.tree(&tree),
            format!(
                r#"{{{},"children":[{{{},"children":[]}}]}}"#,
                fields(1, r#""p\"q\n""#),
                fields(2, r#""w""#)
            )
        );
        let counts = PoolStatus { running: 1, max: 2 };
        assert_eq!(
            Format::Json.stats(&tree.children[0], Some(counts)),
            format!(
                r#"{{{},"pool":{{"running":1,"max":2}}}}"#,
                fields(2, r#""w""#)
            )
        );
        assert_eq!(
            Format::Json.pool("a/\"p\"", counts),
            r#"{"pool":"a/\"p\"","running":1,"max":2}"#
        );
        assert_eq!(Format::Json.stopping("a\tb"), r#"{"stopping":"a\tb"}"#);
        assert_eq!(
            Format::Json.help(),
            format!("\"{}\"", HELP.replace('\n', "\\n"))
        );
    }

    #[test]
    fn headers_parse_or_say_what_is_wrong() {
        assert_eq!(Header::parse("OK 12"), Ok(Header { ok: true, len: 12 }));
        assert_eq!(Header::parse("ERR 3"), Ok(Header { ok: false, len: 3 }));
        assert_eq!(
            Header::parse("OK x"),
            Err("malformed answer length in `OK x`".to_owned())
        );
        assert_eq!(
            Header::parse("YES 1"),
            Err("malformed answer header `YES 1`".to_owned())
        );
    }
}
