//! `taskthread-ctl top`: a live view of a tree in the terminal, on the control endpoint's
//! watch stream.
//!
//! [`Top`] is the view's state — the tree as the stream shows it, each thread's recent
//! message rates, the selection and the prompt — and what keys do to it; [`draw`] renders it
//! with ratatui (so it can be drawn on any backend, ratatui's test backend included);
//! [`run`] drives it in a real terminal.

mod draw;
mod run;

pub use self::draw::{draw, spark};
pub use self::run::run;

use std::collections::{HashMap, VecDeque};
use std::io;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use taskthread::control::Answer;
use taskthread::watch::{ThreadView, WatchMessage, WatchedTree};

/// How many samplings of each thread's message rate the sparklines show.
pub const SPARK_LEN: usize = 60;

/// The state of the view.
#[derive(Debug, Default)]
pub struct Top {
    tree: WatchedTree,
    /// Messages handled per sampling, per thread (newest last).
    rates: HashMap<u64, VecDeque<u64>>,
    handled: HashMap<u64, u64>,
    /// The selected thread's path.
    selected: Option<String>,
    mode: Mode,
    /// The answer to the last command, or what went wrong.
    status: String,
    /// Why the stream ended, once it has.
    ended: Option<String>,
}

/// What the keys do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// Moving the selection.
    #[default]
    Browse,
    /// Asking whether to stop the subtree at this path.
    ConfirmStop(String),
    /// Typing the new size of the pool at this path.
    EnterSize {
        /// The pool's path.
        path: String,
        /// What has been typed.
        input: String,
    },
    /// Asking whether to resize the pool at this path.
    ConfirmSize {
        /// The pool's path.
        path: String,
        /// Its new number of workers.
        size: usize,
    },
}

/// What a key asks of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond the view.
    None,
    /// Leave.
    Quit,
    /// Send this request to the control endpoint, and show its answer
    /// ([`Top::answered`]).
    Request(String),
}

impl Top {
    /// An empty view, waiting for the stream's first message.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree as the stream has shown it so far.
    pub fn tree(&self) -> &WatchedTree {
        &self.tree
    }

    /// What the keys do now.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The selected thread, if any.
    pub fn selected(&self) -> Option<&ThreadView> {
        self.tree.find(self.selected.as_deref()?)
    }

    /// The status line: the answer to the last command.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// Applies the next message of the stream. A stream that lost messages shows it in the
    /// status line; the view goes on with what it has.
    pub fn apply(&mut self, message: WatchMessage) {
        if let Err(gap) = self.tree.apply(message) {
            self.status = gap.to_string();
            return;
        }
        // One rate per sampling for every thread: what it handled since the last.
        let mut seen = HashMap::with_capacity(self.tree.len());
        for (_, thread) in self.tree.in_tree_order() {
            let before = self.handled.get(&thread.id).copied();
            let rate = before.map_or(0, |b| thread.handled.saturating_sub(b));
            let rates = self.rates.entry(thread.id).or_default();
            if rates.len() == SPARK_LEN {
                rates.pop_front();
            }
            rates.push_back(rate);
            seen.insert(thread.id, thread.handled);
        }
        self.handled = seen;
        self.rates.retain(|id, _| self.handled.contains_key(id));
        if self.selected().is_none() {
            self.selected = self
                .tree
                .in_tree_order()
                .first()
                .map(|(_, t)| t.path.clone());
        }
    }

    /// The stream ended, for this reason.
    pub fn ended(&mut self, why: String) {
        self.ended = Some(why);
    }

    /// The messages each thread handled per sampling, oldest first.
    pub fn rates(&self, id: u64) -> impl Iterator<Item = u64> + '_ {
        self.rates.get(&id).into_iter().flatten().copied()
    }

    /// Handles a key.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match std::mem::take(&mut self.mode) {
            Mode::Browse => self.browse(key.code),
            Mode::ConfirmStop(path) => match key.code {
                KeyCode::Char('y' | 'Y') => {
                    self.status = format!("stopping {path}...");
                    Action::Request(format!("stop {path}"))
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                    self.status = "not stopped".to_owned();
                    Action::None
                }
                _ => {
                    self.mode = Mode::ConfirmStop(path);
                    Action::None
                }
            },
            Mode::EnterSize { path, mut input } => {
                match key.code {
                    KeyCode::Char(c) if c.is_ascii_digit() && input.len() < 6 => input.push(c),
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Esc => {
                        self.status = "not resized".to_owned();
                        return Action::None;
                    }
                    KeyCode::Enter => {
                        if let Ok(size) = input.parse() {
                            self.mode = Mode::ConfirmSize { path, size };
                            return Action::None;
                        }
                    }
                    _ => {}
                }
                self.mode = Mode::EnterSize { path, input };
                Action::None
            }
            Mode::ConfirmSize { path, size } => match key.code {
                KeyCode::Char('y' | 'Y') => {
                    self.status = format!("resizing {path} to {size}...");
                    Action::Request(format!("pool {path} size {size}"))
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                    self.status = "not resized".to_owned();
                    Action::None
                }
                _ => {
                    self.mode = Mode::ConfirmSize { path, size };
                    Action::None
                }
            },
        }
    }

    fn browse(&mut self, code: KeyCode) -> Action {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Char('s') => {
                if let Some(path) = self.selected.clone() {
                    self.mode = Mode::ConfirmStop(path);
                }
            }
            KeyCode::Char('r') => match self.selected() {
                Some(t) if t.pool.is_some() => {
                    let input = t.pool.map(|p| p.running.to_string()).unwrap_or_default();
                    self.mode = Mode::EnterSize {
                        path: t.path.clone(),
                        input,
                    };
                }
                Some(t) => self.status = format!("{} is not a worker pool", t.path),
                None => {}
            },
            _ => {}
        }
        Action::None
    }

    /// The position of the selection in tree order.
    pub fn selected_index(&self) -> Option<usize> {
        let selected = self.selected.as_deref()?;
        self.tree
            .in_tree_order()
            .iter()
            .position(|(_, t)| t.path == selected)
    }

    fn move_selection(&mut self, by: isize) {
        let order = self.tree.in_tree_order();
        if order.is_empty() {
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at.saturating_add(by)).clamp(0, order.len() as isize - 1) as usize;
        self.selected = Some(order[to].1.path.clone());
    }

    /// Shows the answer to a request sent for an [`Action::Request`].
    pub fn answered(&mut self, answer: io::Result<Answer>) {
        self.status = match answer {
            Ok(a) if a.ok => a.payload,
            Ok(a) => format!("refused: {}", a.payload),
            Err(e) => format!("error: {e}"),
        };
    }
}
