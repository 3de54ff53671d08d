//! Reading input line by line, with a limit on a line's length and no trust in its
//! encoding: a line too long is skipped without being held in memory, and a line that is
//! not UTF-8 is reported, so that neither ends the session.

use std::io::{self, BufRead};

/// One line of input, or why it cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line (without its `\n` or `\r\n`).
    Text(String),
    /// A line longer than the limit, skipped; how many bytes it had.
    TooLong(usize),
    /// A line that is not valid UTF-8, skipped.
    NotUtf8,
}

/// Reads lines of at most `max` bytes from `input`.
///
/// ```
/// use taskthread_examples::notify::lines::{Line, Lines};
///
/// let input: &[u8] = b"status\r\nsend \xff\nthis line is far too long\nhelp";
/// let mut lines = Lines::new(input, 10);
/// assert_eq!(lines.next_line().unwrap(), Some(Line::Text("status".into())));
/// assert_eq!(lines.next_line().unwrap(), Some(Line::NotUtf8));
/// assert_eq!(lines.next_line().unwrap(), Some(Line::TooLong(25)));
/// assert_eq!(lines.next_line().unwrap(), Some(Line::Text("help".into())));
/// assert_eq!(lines.next_line().unwrap(), None);
/// ```
#[derive(Debug)]
pub struct Lines<R> {
    input: R,
    max: usize,
    line: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `input`, each of at most `max` bytes.
    pub fn new(input: R, max: usize) -> Self {
        Self {
            input,
            max,
            line: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the input.
    ///
    /// # Errors
    /// If reading fails (for a socket with a read timeout, `WouldBlock` or `TimedOut` once
    /// it passes).
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.line.clear();
        let mut len = 0;
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                // The end of the input: a last line without its newline still counts.
                return Ok((len > 0).then(|| self.finish(len)));
            }
            let (chunk, ended) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], true),
                None => (available, false),
            };
            len += chunk.len();
            // Past the limit (and a `\r`), the rest of the line is read and dropped, never
            // held.
            let room = (self.max + 1).saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let used = chunk.len() + usize::from(ended);
            self.input.consume(used);
            if ended {
                return Ok(Some(self.finish(len)));
            }
        }
    }

    fn finish(&mut self, len: usize) -> Line {
        let whole = self.line.len() == len;
        if whole && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if !whole || self.line.len() > self.max {
            return Line::TooLong(len);
        }
        match String::from_utf8(std::mem::take(&mut self.line)) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::NotUtf8,
        }
    }
}
