//! The commands the front reads, one per line, and their parser.

use std::fmt;

use lettre::message::Mailbox;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `send TO SUBJECT [| BODY]`: queue a mail.
    Send {
        /// The recipient, `bob@example.com` or `Bob <bob@example.com>` (quoted if it has
        /// spaces: `"Bob <bob@example.com>"`).
        to: Mailbox,
        /// The subject: the rest of the line up to `|`.
        subject: String,
        /// The body: what follows `|`, with `\n` for new lines; may be empty.
        body: String,
    },
    /// `status`: what the mailer has done so far, and the tree.
    Status,
    /// `help`: the commands.
    Help,
    /// `quit`: stop reading, let queued mails go, and end (like the end of input); a TCP
    /// client's session ends.
    Quit,
    /// `shutdown`: like `quit`; from a TCP client, ends the whole server.
    Shutdown,
    /// A blank line or a `#` comment.
    Nothing,
}

/// The commands, for `help` and for error messages.
pub const HELP: &str = "\
commands:
  send TO SUBJECT [| BODY]   queue a mail (TO: bob@example.com, or \"Bob <bob@example.com>\";
                             BODY may use \\n for new lines)
  status                     what the mailer has done so far, and the tree
  help                       this list
  quit                       stop reading; queued mails still go (so does the end of input)
  shutdown                   (TCP) end the server; queued mails still go
  # ...                      a comment";

/// A line that is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadInput {
    /// The first word is not a command.
    UnknownCommand(String),
    /// `send` without an address or a subject.
    MissingArgument,
    /// The address does not parse; the parser's reason.
    BadAddress {
        /// The address as typed.
        address: String,
        /// Why it is not one.
        reason: String,
    },
    /// A quoted address with no closing quote.
    UnclosedQuote,
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCommand(word) => write!(f, "unknown command `{word}` (try `help`)"),
            Self::MissingArgument => {
                f.write_str("`send` needs an address and a subject: send TO SUBJECT [| BODY]")
            }
            Self::BadAddress { address, reason } => {
                write!(f, "`{address}` is not an e-mail address: {reason}")
            }
            Self::UnclosedQuote => f.write_str("the quoted address has no closing `\"`"),
        }
    }
}

impl std::error::Error for BadInput {}

/// Parses one line.
///
/// ```
/// use taskthread_examples::notify::command::{parse, BadInput, Command};
///
/// let Ok(Command::Send { to, subject, body }) = parse("send bob@example.com Hi | Line 1\\nLine 2")
/// else { panic!() };
/// assert_eq!(to.email.to_string(), "bob@example.com");
/// assert_eq!((subject.as_str(), body.as_str()), ("Hi", "Line 1\nLine 2"));
/// assert!(matches!(parse("sned x"), Err(BadInput::UnknownCommand(_))));
/// assert!(matches!(parse("send bob@ Hi"), Err(BadInput::BadAddress { .. })));
/// ```
pub fn parse(line: &str) -> Result<Command, BadInput> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Command::Nothing);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word {
        "send" => parse_send(rest.trim_start()),
        "status" => Ok(Command::Status),
        "help" => Ok(Command::Help),
        "quit" | "exit" => Ok(Command::Quit),
        "shutdown" => Ok(Command::Shutdown),
        other => Err(BadInput::UnknownCommand(other.to_owned())),
    }
}

fn parse_send(rest: &str) -> Result<Command, BadInput> {
    let (address, rest) = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split_once('"').ok_or(BadInput::UnclosedQuote)?
    } else {
        rest.split_once(char::is_whitespace).unwrap_or((rest, ""))
    };
    let (subject, body) = rest.split_once('|').unwrap_or((rest, ""));
    let subject = subject.trim();
    if address.is_empty() || subject.is_empty() {
        return Err(BadInput::MissingArgument);
    }
    let to = address
        .parse::<Mailbox>()
        .map_err(|e| BadInput::BadAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Command::Send {
        to,
        subject: subject.to_owned(),
        body: body.trim().replace("\\n", "\n"),
    })
}
