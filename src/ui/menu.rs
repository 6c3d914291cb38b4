//! The numbered menu on the main thread: what each option does.
//!
//! The menu and its answers go to stdout (flushed after every prompt); log
//! records go to stderr, or above the prompt when a line editor reads the
//! answers (see [`super::input`]), so they never land inside an answer.

use std::io;
use std::sync::Mutex;

use super::complete::expand_home;
use super::input::{Input, Kind, Line, say};
use super::render::list;
use crate::config::{RawPair, validate_pair};
use crate::daemon::actions::Action;
use crate::daemon::shutdown::Shutdown;
use crate::daemon::supervisor::{Supervisor, lock};
use crate::daemon::worker::format_interval;
use crate::logging::Logs;
use crate::status::State;

/// How the menu ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MenuEnd {
    /// The user chose "Quit safely".
    Quit,
    /// Stdin ended (Ctrl-D at a terminal); the pairs keep running until a
    /// signal.
    EndOfInput,
    /// SIGINT or SIGTERM arrived, or Ctrl-C was pressed at the prompt.
    Signal,
}

const MENU: &str = "\
1. List sync pairs
2. Add a sync pair
3. Quit safely
4. Stop a sync pair
5. Sync a pair now
6. Approve held deletions
7. Accept a pair's new device
";

/// Runs the menu until quit, end of input or a signal.
pub fn run(supervisor: &Mutex<Supervisor>, shutdown: &Shutdown, logs: &Logs) -> MenuEnd {
    let mut input = Input::new(shutdown.wake_fd(), logs);
    let mut out = io::stdout();
    loop {
        let choice = match input.ask(&format!("\n{MENU}Choose an option (1-7): "), Kind::Other) {
            Line::Text(text) => text,
            Line::EndOfInput => return MenuEnd::EndOfInput,
            Line::Signal => return MenuEnd::Signal,
        };
        let answer = match choice.trim() {
            "1" => list(&lock(supervisor).views()),
            "2" => match add(supervisor, &mut input) {
                Ok(text) => text,
                Err(end) => return end,
            },
            "3" => return MenuEnd::Quit,
            "4" | "5" | "6" | "7" => {
                let (verb, action) = match choice.trim() {
                    "4" => ("stop", Action::Stop),
                    "5" => ("sync now", Action::SyncNow),
                    "6" => ("approve deletions for", Action::ApproveDeletions),
                    _ => ("accept the new device of", Action::AcceptNewDevice),
                };
                let text = match ask(&mut input, &format!("Pair number to {verb}: "), Kind::Other) {
                    Ok(text) => text,
                    Err(end) => return end,
                };
                match text.trim().parse::<usize>() {
                    Err(_) => format!("\"{}\" is not a pair number.\n", text.trim()),
                    Ok(id) => {
                        let done = action.perform(&mut lock(supervisor), id);
                        format!("{}\n", done.unwrap_or_else(|e| e))
                    }
                }
            }
            _ => format!("\"{}\" is not a valid choice.\n", choice.trim()),
        };
        say(&mut out, &answer);
    }
}

/// Prompts and reads one answer.
fn ask(input: &mut Input<'_>, prompt: &str, kind: Kind) -> Result<String, MenuEnd> {
    match input.ask(prompt, kind) {
        Line::Text(text) => Ok(text),
        Line::EndOfInput => Err(MenuEnd::EndOfInput),
        Line::Signal => Err(MenuEnd::Signal),
    }
}

/// Asks for the four fields of a pair, one prompt each, and its direction;
/// then, if they make a valid pair, whether to watch it, and starts it.
/// The direction comes before the checks, which depend on it (a two-way
/// pair writes its source too); the watch question comes last so a pair
/// refused anyway is not asked it.
fn add(supervisor: &Mutex<Supervisor>, input: &mut Input<'_>) -> Result<String, MenuEnd> {
    let mut fields = Vec::new();
    for (prompt, kind) in [
        ("Source folder: ", Kind::Path),
        ("Replica folder: ", Kind::Path),
        ("Interval in seconds (e.g. 10, 0.5, 5m): ", Kind::Other),
        ("Log file: ", Kind::Path),
    ] {
        let answer = ask(input, prompt, kind)?;
        let answer = unquote(answer.trim());
        if answer.is_empty() {
            return Ok("Cancelled: nothing was added.\n".into());
        }
        fields.push(answer);
    }
    let [source, replica, interval, log_file] =
        <[String; 4]>::try_from(fields).expect("four prompts give four answers");
    let answer = ask(
        input,
        "Direction: one-way (the replica mirrors the source) or two-way (both are edited)? (1/2, empty: 1): ",
        Kind::Other,
    )?;
    let Some(two_way) = direction(&answer) else {
        return Ok(format!(
            "Not added: \"{}\" is not a direction (1 or one-way, 2 or two-way; empty: one-way).\n",
            answer.trim()
        ));
    };
    let defaults = lock(supervisor).defaults();
    let raw = RawPair {
        source: expand_home(&source),
        replica: expand_home(&replica),
        interval,
        log_file: expand_home(&log_file),
        watch: false,
        two_way,
        name: None,
        options: defaults.0,
        excludes: defaults.1,
    };
    let upstream: Vec<_> = lock(supervisor)
        .views()
        .into_iter()
        .filter(|v| !matches!(v.status.state, State::Stopped))
        .map(|v| v.spec.replica)
        .collect();
    let mut spec = match validate_pair(&raw, &upstream).and_then(|spec| {
        lock(supervisor).check(&spec)?;
        Ok(spec)
    }) {
        Ok(spec) => spec,
        Err(e) => return Ok(format!("Not added: {e}.\n")),
    };
    let answer = ask(input, "Watch for changes? (y/N): ", Kind::Other)?;
    spec.watch = match yes_no(&answer) {
        Some(watch) => watch,
        None => {
            return Ok(format!(
                "Not added: \"{}\" is not an answer to \"Watch for changes?\" (y or n; empty: n).\n",
                answer.trim()
            ));
        }
    };
    let shown = format!(
        "{} {} {} every {}{}",
        spec.source.display(),
        spec.arrow(),
        spec.replica.display(),
        format_interval(spec.interval),
        if spec.watch { ", watched" } else { "" }
    );
    Ok(match lock(supervisor).add(spec) {
        Ok(id) => format!("Started pair {id}: {shown}.\n"),
        Err(e) => format!("Not added: {e}.\n"),
    })
}

/// A direction: `Some(true)` for two-way; empty is one-way; `None` for
/// anything else.
fn direction(answer: &str) -> Option<bool> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "one-way" | "one" => Some(false),
        "2" | "two-way" | "two" => Some(true),
        _ => None,
    }
}

/// A yes or no answer: empty is no; `None` for anything else.
fn yes_no(answer: &str) -> Option<bool> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "n" | "no" => Some(false),
        "y" | "yes" => Some(true),
        _ => None,
    }
}

/// Drops one pair of matching quotes around an answer, as a terminal adds
/// when a folder is dragged into it.
fn unquote(text: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_lose_one_pair_of_quotes() {
        assert_eq!(unquote("\"my folder\""), "my folder");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(unquote("\"half"), "\"half");
        assert_eq!(unquote("plain"), "plain");
    }

    #[test]
    fn direction_answers_are_one_two_or_neither() {
        for (answer, want) in [
            ("", Some(false)),
            ("1", Some(false)),
            (" two-way ", Some(true)),
            ("2", Some(true)),
            ("3", None),
            ("both", None),
        ] {
            assert_eq!(direction(answer), want, "{answer:?}");
        }
    }

    #[test]
    fn watch_answers_are_yes_no_or_neither() {
        for (answer, want) in [
            ("", Some(false)),
            (" n ", Some(false)),
            ("No", Some(false)),
            ("y", Some(true)),
            ("YES", Some(true)),
            ("maybe", None),
            ("1", None),
        ] {
            assert_eq!(yes_no(answer), want, "{answer:?}");
        }
    }
}
