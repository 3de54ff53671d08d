//! `taskthread-ctl`: look into a running taskthread tree and act on it through its control
//! endpoint, once (`taskthread-ctl --unix /run/app.sock tree`), at a prompt, as a stream
//! (`watch`) or in a live view (`top`).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use taskthread_ctl::{Args, Mode, print_answer, run_once, top, watch};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.mode() == Mode::Top {
        return ExitCode::from(u8::try_from(top::run(&args)).unwrap_or(2));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match args.mode() {
        Mode::Prompt => prompt(&args, &runtime),
        Mode::Watch => runtime.block_on(watch(&args)),
        Mode::Once | Mode::Top => runtime.block_on(run_once(&args)),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// The interactive prompt: one request per line, with history; `quit`, `exit` or Ctrl-D
/// to leave.
fn prompt(args: &Args, runtime: &tokio::runtime::Runtime) -> i32 {
    let mut client = match runtime.block_on(args.connect()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("error: cannot open the prompt: {e}");
            return 2;
        }
    };
    let history = args.history.clone().or_else(default_history);
    if let Some(path) = &history {
        // No history yet is fine.
        let _ = editor.load_history(path);
    }
    println!("connected; `help` lists the commands, `quit` or Ctrl-D leaves");
    let code = loop {
        let line = match editor.readline("taskthread> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break 0,
            Err(e) => {
                eprintln!("error: {e}");
                break 2;
            }
        };
        let words = line.trim();
        if words.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(words);
        if matches!(words, "quit" | "exit") {
            break 0;
        }
        match runtime.block_on(client.request(&args.request_line(words))) {
            Ok(answer) => {
                let _ = print_answer(&answer, &mut io::stdout().lock(), &mut io::stderr().lock());
            }
            Err(e) => {
                eprintln!("error: {e}");
                break 2;
            }
        }
    };
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!(
            "warning: cannot save the history to {}: {e}",
            path.display()
        );
    }
    code
}

fn default_history() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".taskthread_ctl_history"))
}
