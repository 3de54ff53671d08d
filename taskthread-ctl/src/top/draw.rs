//! Drawing the view: the tree with a sparkline per thread, the selected thread's details,
//! the event timeline, and the status line with the prompt or the keys.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use taskthread::watch::{Fill, ThreadView, WatchEvent};

use super::{Mode, Top};

/// The columns of a thread's sparkline in the tree.
const SPARK_COLS: usize = 16;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Draws the whole view.
pub fn draw(top: &Top, frame: &mut Frame<'_>) {
    let [tree, bottom, status] = Layout::vertical([
        Constraint::Percentage(55),
        Constraint::Min(8),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [details, events] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    draw_tree(top, frame, tree);
    draw_details(top, frame, details);
    draw_events(top, frame, events);
    frame.render_widget(Paragraph::new(status_line(top)), status);
}

fn draw_tree(top: &Top, frame: &mut Frame<'_>, area: Rect) {
    let tree = top.tree();
    let mut title = format!(
        " taskthread top · {} threads · #{} ",
        tree.len(),
        tree.seq()
    );
    if let Some(why) = &top.ended {
        title = format!(" taskthread top · stream ended: {why} ");
    }
    let header = Row::new([
        "THREAD", "STATE", "QUEUE", "INBOUND", "RATE", "ACTIVITY", "WAITS",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = tree.in_tree_order().into_iter().map(|(depth, t)| {
        let rate = top.rates(t.id).last().unwrap_or(0);
        let name = format!("{}{} ({})", "  ".repeat(depth), t.name, t.type_name);
        Row::new([
            Cell::from(name),
            Cell::from(t.state.clone()).style(state_style(&t.state)),
            fill_cell(Some(t.queue)),
            fill_cell(t.inbound),
            Cell::from(rate.to_string()),
            Cell::from(spark(top.rates(t.id), SPARK_COLS)).style(Style::new().fg(Color::Cyan)),
            Cell::from(waits(t)),
        ])
    });
    let widths = [
        Constraint::Min(24),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(SPARK_COLS as u16),
        Constraint::Min(12),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(top.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_details(top: &Top, frame: &mut Frame<'_>, area: Rect) {
    let Some(t) = top.selected() else {
        let waiting = Paragraph::new("waiting for the first snapshot...")
            .block(Block::bordered().title(" thread "));
        frame.render_widget(waiting, area);
        return;
    };
    let block = Block::bordered().title(format!(" {} ", t.path));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, spark_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(3)]).areas(inner);
    let paragraph = Paragraph::new(detail_lines(top, t)).wrap(Wrap { trim: false });
    frame.render_widget(paragraph, text);
    let rates: Vec<u64> = top.rates(t.id).collect();
    let sparkline = Sparkline::default()
        .block(Block::new().title("messages per sampling"))
        .data(&rates)
        .style(Style::new().fg(Color::Cyan));
    frame.render_widget(sparkline, spark_area);
}

fn detail_lines(top: &Top, t: &ThreadView) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(
            t.type_name.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" #{}  ", t.id)),
        Span::styled(t.state.clone(), state_style(&t.state)),
        Span::raw(format!("  handled {}", t.handled)),
    ])];
    let mut types = format!("DOWN: {}", list_or_none(&t.down));
    if let Some(up) = &t.up {
        types.push_str(&format!("  UP: {up}"));
    }
    lines.push(Line::raw(types));
    let mut queues = format!("queue {}", fill_text(t.queue));
    if let Some(inbound) = t.inbound {
        queues.push_str(&format!("  inbound {}", fill_text(inbound)));
    }
    lines.push(Line::raw(queues));
    if let Some(b) = t.budget {
        lines.push(Line::raw(format!(
            "restarts {} of {} in {} s ({} in all)",
            b.used,
            b.max,
            b.window_ms / 1_000,
            t.restarts
        )));
    } else if t.restarts > 0 {
        lines.push(Line::raw(format!("restarts {}", t.restarts)));
    }
    if let Some(p) = t.pool {
        let percent = (p.busy * 100).checked_div(p.running).unwrap_or(0);
        lines.push(Line::raw(format!(
            "workers {} busy of {} ({percent} %), at most {}",
            p.busy, p.running, p.max
        )));
    }
    if let Some(stop) = &t.stop {
        let mut line = format!("stop: {}", stop.stage);
        if let Some(stage) = stop.children_stage {
            line.push_str(&format!(" (stage {stage})"));
        }
        if let Some(ms) = stop.for_ms {
            line.push_str(&format!(", for {} ms", ms));
        }
        if let Some(left) = stop.deadline_left_ms {
            line.push_str(&format!(", deadline in {} ms", left.max(0)));
        }
        if stop.queued > 0 {
            line.push_str(&format!(", {} queued", stop.queued));
        }
        lines.push(Line::styled(line, Style::new().fg(Color::Yellow)));
    }
    for wait in &t.waits {
        lines.push(Line::styled(
            format!("waits {wait}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    let chain = top.tree().wait_chain(&t.path);
    if chain.paths.len() > 2 || chain.cycle {
        let style = if chain.cycle {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Yellow)
        };
        lines.push(Line::styled(format!("wait chain: {chain}"), style));
    }
    for line in t.details("").lines() {
        lines.push(Line::raw(line.to_owned()));
    }
    lines
}

fn draw_events(top: &Top, frame: &mut Frame<'_>, area: Rect) {
    let rows = area.height.saturating_sub(2) as usize;
    let events: Vec<&WatchEvent> = top.tree().events().rev().take(rows).collect();
    let lines: Vec<Line<'static>> = events
        .into_iter()
        .rev()
        .map(|e| {
            Line::from(vec![
                Span::styled(clock(e.at_ms), Style::new().fg(Color::DarkGray)),
                Span::raw(" "),
                Span::styled(format!("{:<9}", e.kind.as_str()), event_style(e)),
                Span::raw(format!(" {}", e.path)),
                Span::styled(
                    if e.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.detail)
                    },
                    Style::new().fg(Color::DarkGray),
                ),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" events ")),
        area,
    );
}

fn status_line(top: &Top) -> Line<'static> {
    let prompt = Style::new().fg(Color::Black).bg(Color::Yellow);
    match top.mode() {
        Mode::Browse => Line::from(vec![
            Span::styled(
                " ↑↓ select  s stop subtree  r resize pool  q quit ",
                Style::new().add_modifier(Modifier::REVERSED),
            ),
            Span::raw(format!(" {}", top.status())),
        ]),
        Mode::ConfirmStop(path) => {
            Line::styled(format!(" stop {path} and its subtree? (y/n) "), prompt)
        }
        Mode::EnterSize { path, input } => Line::styled(
            format!(" workers for {path}: {input}_  (Enter to confirm, Esc to cancel) "),
            prompt,
        ),
        Mode::ConfirmSize { path, size } => {
            Line::styled(format!(" resize {path} to {size} workers? (y/n) "), prompt)
        }
    }
}

/// A sparkline of the last `width` values, scaled to their largest; zero is a blank.
pub fn spark(values: impl Iterator<Item = u64>, width: usize) -> String {
    let values: Vec<u64> = values.collect();
    let last = &values[values.len().saturating_sub(width)..];
    let max = last.iter().copied().max().unwrap_or(0);
    let mut out: String = " ".repeat(width - last.len());
    for &v in last {
        out.push(if v == 0 || max == 0 {
            ' '
        } else {
            BARS[((v * 7) / max) as usize]
        });
    }
    out
}

fn fill_text(fill: Fill) -> String {
    let mut text = format!("{}/{}", fill.depth, fill.capacity);
    if fill.waiting > 0 {
        text.push_str(&format!(" +{} waiting", fill.waiting));
    }
    text
}

fn fill_cell(fill: Option<Fill>) -> Cell<'static> {
    let Some(fill) = fill else {
        return Cell::from("-");
    };
    let style = if fill.waiting > 0 || fill.depth >= fill.capacity {
        Style::new().fg(Color::Red)
    } else if fill.depth * 4 >= fill.capacity * 3 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    let mut text = format!("{}/{}", fill.depth, fill.capacity);
    if fill.waiting > 0 {
        text.push('+');
    }
    Cell::from(text).style(style)
}

fn waits(t: &ThreadView) -> String {
    t.waits
        .first()
        .map(|w| {
            let more = t.waits.len() - 1;
            if more > 0 {
                format!("{w} (+{more})")
            } else {
                w.to_string()
            }
        })
        .unwrap_or_default()
}

fn state_style(state: &str) -> Style {
    match state {
        "running" => Style::new().fg(Color::Green),
        "stopping" | "restarting" => Style::new().fg(Color::Yellow),
        "exited" => Style::new().fg(Color::DarkGray),
        _ => Style::new(),
    }
}

fn event_style(e: &WatchEvent) -> Style {
    use taskthread::watch::EventKind;
    match e.kind {
        EventKind::Failed => Style::new().fg(Color::Red),
        EventKind::Restarted | EventKind::Stopping => Style::new().fg(Color::Yellow),
        EventKind::Spawned => Style::new().fg(Color::Green),
        _ => Style::new(),
    }
}

fn list_or_none(types: &[String]) -> String {
    if types.is_empty() {
        "-".to_owned()
    } else {
        types.join(", ")
    }
}

/// `hh:mm:ss` (UTC) of a time in milliseconds since the Unix epoch.
fn clock(at_ms: u64) -> String {
    let s = at_ms / 1_000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
}
