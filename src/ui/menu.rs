//! The numbered menu on the main thread: what each option does.
//!
//! The menu and its answers go to stdout (flushed after every prompt); log
//! records go to stderr, or above the prompt when a line editor reads the
//! answers (see [`super::input`]), so they never land inside an answer.

use std::io;
use std::os::fd::BorrowedFd;

use super::backend::Backend;
use super::complete::expand_home;
use super::input::{Input, Kind, Line, say};
use crate::config::{RawPair, parse_interval};
use crate::daemon::actions::Action;
use crate::logging::Logs;

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

/// The attached menu's: option 3 leaves the service running, 8 stops it.
const ATTACHED_MENU: &str = "\
1. List sync pairs
2. Add a sync pair
3. Detach (the service keeps running)
4. Stop a sync pair
5. Sync a pair now
6. Approve held deletions
7. Accept a pair's new device
8. Stop the service and every pair
";

/// Runs the menu until quit, end of input or a signal.
pub fn run(backend: &mut dyn Backend, wake: BorrowedFd<'_>, logs: &Logs) -> MenuEnd {
    let mut input = Input::new(wake, logs);
    let mut out = io::stdout();
    let attached = backend.attached();
    let prompt = if attached {
        format!("\n{ATTACHED_MENU}Choose an option (1-8): ")
    } else {
        format!("\n{MENU}Choose an option (1-7): ")
    };
    // After an empty line, the prompt alone again, not the whole menu.
    let mut again = false;
    loop {
        let shown = match prompt.rfind('\n') {
            Some(i) if again => &prompt[i + 1..],
            _ => prompt.as_str(),
        };
        let choice = match input.ask(shown, Kind::Other) {
            Line::Text(text) => text,
            Line::EndOfInput => return MenuEnd::EndOfInput,
            Line::Signal => return MenuEnd::Signal,
        };
        again = choice.trim().is_empty();
        if again {
            continue;
        }
        let answer = match choice.trim() {
            "1" => backend.list(),
            "2" => match add(backend, &mut input) {
                Ok(text) => text,
                Err(end) => return end,
            },
            "3" => return MenuEnd::Quit,
            "4" | "5" | "6" | "7" => match act(backend, &mut input, choice.trim()) {
                Ok(text) => text,
                Err(end) => return end,
            },
            "8" if attached => match stop_service(backend, &mut input) {
                Ok(Some(text)) => {
                    say(&mut out, &text);
                    return MenuEnd::Quit;
                }
                Ok(None) => "Not stopped.\n".into(),
                Err(end) => return end,
            },
            _ => format!("\"{}\" is not a valid choice.\n", choice.trim()),
        };
        say(&mut out, &answer);
    }
}

/// Options 4 to 7: asks for the pair's number and does it.
fn act(backend: &mut dyn Backend, input: &mut Input<'_>, choice: &str) -> Result<String, MenuEnd> {
    let (verb, action) = match choice {
        "4" => ("stop", Action::Stop),
        "5" => ("sync now", Action::SyncNow),
        "6" => ("approve deletions for", Action::ApproveDeletions),
        _ => ("accept the new device of", Action::AcceptNewDevice),
    };
    let text = ask(input, &format!("Pair number to {verb}: "), Kind::Other)?;
    Ok(match text.trim().parse::<usize>() {
        Err(_) => format!("\"{}\" is not a pair number.\n", text.trim()),
        Ok(id) => format!("{}\n", backend.act(action, id).unwrap_or_else(|e| e)),
    })
}

/// Option 8 of the attached menu, once confirmed: the text said, or `None`
/// when not confirmed.
fn stop_service(
    backend: &mut dyn Backend,
    input: &mut Input<'_>,
) -> Result<Option<String>, MenuEnd> {
    let answer = ask(
        input,
        "Stop foldersync and every pair it runs? (y/N): ",
        Kind::Other,
    )?;
    if yes_no(&answer) != Some(true) {
        return Ok(None);
    }
    Ok(backend
        .stop_service()
        .map(|said| format!("{}\n", said.unwrap_or_else(|e| e))))
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
fn add(backend: &mut dyn Backend, input: &mut Input<'_>) -> Result<String, MenuEnd> {
    let mut fields = Vec::new();
    for (prompt, kind) in [
        ("Source folder: ", Kind::Path),
        ("Replica folder: ", Kind::Path),
        ("Interval in seconds (e.g. 10, 0.5, 5m): ", Kind::Other),
        ("Log file: ", Kind::Path),
    ] {
        // What one answer alone can show wrong is said at once, and the
        // question asked again; the rest is checked after the direction.
        let check = |answer: &str, backend: &mut dyn Backend| match prompt {
            "Source folder: " => backend.check_source(&expand_home(answer)),
            "Replica folder: " => Ok(()),
            "Log file: " => Ok(()),
            _ => parse_interval(answer).map(drop),
        };
        let Some(answer) = ask_until(input, prompt, kind, |a| check(a, backend))? else {
            return Ok("Cancelled: nothing was added.\n".into());
        };
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
    let mut raw = RawPair {
        source: expand_home(&source),
        replica: expand_home(&replica),
        interval,
        log_file: expand_home(&log_file),
        watch: false,
        two_way,
        name: None,
        options: Default::default(),
        excludes: Default::default(),
    };
    if let Err(e) = backend.check(&raw) {
        return Ok(format!("Not added: {e}.\n"));
    }
    let answer = ask(input, "Watch for changes? (y/N): ", Kind::Other)?;
    raw.watch = match yes_no(&answer) {
        Some(watch) => watch,
        None => {
            return Ok(format!(
                "Not added: \"{}\" is not an answer to \"Watch for changes?\" (y or n; empty: n).\n",
                answer.trim()
            ));
        }
    };
    Ok(format!("{}\n", backend.add(raw).unwrap_or_else(|e| e)))
}

/// Asks until the answer passes `check`, saying each refusal; `None` for
/// an empty answer, which cancels.
fn ask_until(
    input: &mut Input<'_>,
    prompt: &str,
    kind: Kind,
    mut check: impl FnMut(&str) -> Result<(), String>,
) -> Result<Option<String>, MenuEnd> {
    loop {
        let answer = unquote(ask(input, prompt, kind)?.trim());
        if answer.is_empty() {
            return Ok(None);
        }
        match check(&answer) {
            Ok(()) => return Ok(Some(answer)),
            Err(e) => say(
                &mut io::stdout(),
                &format!("{e}; answer again (empty cancels).\n"),
            ),
        }
    }
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
