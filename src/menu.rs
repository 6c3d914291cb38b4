//! The numbered console menu on the main thread.
//!
//! It reads whole lines from stdin and behaves the same whether stdin is a
//! terminal or a pipe. The menu and its answers go to stdout (flushed after
//! every prompt); log records go to stderr, so they never land inside an
//! answer. Reading waits in `poll` on both stdin and the signal pipe, so a
//! signal ends the menu at once without a thread stuck in `read`.

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, poll};

use crate::config::{RawPair, validate_pair};
use crate::daemon::shutdown::Shutdown;
use crate::daemon::supervisor::{PairView, Supervisor};
use crate::daemon::worker::format_interval;
use crate::status::{Counts, Outcome, PairStatus, State};

/// How the menu ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MenuEnd {
    /// The user chose "Quit safely".
    Quit,
    /// Stdin ended; the pairs keep running until a signal.
    EndOfInput,
    /// SIGINT or SIGTERM arrived.
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

/// The longest line kept; the rest of a longer one is dropped.
const MAX_LINE: usize = 64 * 1024;

/// Runs the menu until quit, end of input or a signal.
pub fn run(supervisor: &mut Supervisor, shutdown: &Shutdown) -> MenuEnd {
    let mut input = LineInput::new(shutdown.wake_fd());
    let mut out = io::stdout();
    loop {
        say(&mut out, &format!("\n{MENU}Choose an option (1-7): "));
        let choice = match input.next_line() {
            Line::Text(text) => text,
            Line::EndOfInput => return MenuEnd::EndOfInput,
            Line::Signal => return MenuEnd::Signal,
        };
        let answer = match choice.trim() {
            "1" => list(&supervisor.views()),
            "2" => match add(supervisor, &mut input, &mut out) {
                Ok(text) => text,
                Err(end) => return end,
            },
            "3" => return MenuEnd::Quit,
            "4" | "5" | "6" | "7" => {
                let verb = match choice.trim() {
                    "4" => "stop",
                    "5" => "sync now",
                    "6" => "approve deletions for",
                    _ => "accept the new device of",
                };
                let text = match ask(&mut input, &mut out, &format!("Pair number to {verb}: ")) {
                    Ok(text) => text,
                    Err(end) => return end,
                };
                match text.trim().parse::<usize>() {
                    Err(_) => format!("\"{}\" is not a pair number.\n", text.trim()),
                    Ok(id) if verb == "stop" => match supervisor.stop(id) {
                        Ok(()) => format!("Pair {id} stopped.\n"),
                        Err(e) => format!("Cannot stop: {e}.\n"),
                    },
                    Ok(id) if choice.trim() == "7" => match supervisor.accept_new_devices(id) {
                        Ok(what) => format!(
                            "Pair {id}: accepting the new device ({what}); a pass starts now.\n"
                        ),
                        Err(e) => format!("Cannot accept: {e}.\n"),
                    },
                    Ok(id) if verb != "sync now" => match supervisor.approve_deletions(id) {
                        Ok(n) => {
                            format!("Pair {id}: pass started, removing the {n} held entries.\n")
                        }
                        Err(e) => format!("Cannot approve: {e}.\n"),
                    },
                    Ok(id) => match supervisor.sync_now(id) {
                        Ok(()) => format!("Pair {id}: pass started.\n"),
                        Err(e) => format!("Cannot sync now: {e}.\n"),
                    },
                }
            }
            _ => format!("\"{}\" is not a valid choice.\n", choice.trim()),
        };
        say(&mut out, &answer);
    }
}

/// Writes and flushes; a closed stdout is not worth dying for.
fn say(out: &mut impl Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prompts and reads one answer.
fn ask(input: &mut LineInput<'_>, out: &mut impl Write, prompt: &str) -> Result<String, MenuEnd> {
    say(out, prompt);
    match input.next_line() {
        Line::Text(text) => Ok(text),
        Line::EndOfInput => Err(MenuEnd::EndOfInput),
        Line::Signal => Err(MenuEnd::Signal),
    }
}

/// Asks for the four fields of a pair, one prompt each, and starts it.
fn add(
    supervisor: &mut Supervisor,
    input: &mut LineInput<'_>,
    out: &mut impl Write,
) -> Result<String, MenuEnd> {
    let mut fields = Vec::new();
    for prompt in [
        "Source folder: ",
        "Replica folder: ",
        "Interval in seconds (e.g. 10, 0.5, 5m): ",
        "Log file: ",
    ] {
        let answer = ask(input, out, prompt)?;
        let answer = unquote(answer.trim());
        if answer.is_empty() {
            return Ok("Cancelled: nothing was added.\n".into());
        }
        fields.push(answer);
    }
    let [source, replica, interval, log_file] =
        <[String; 4]>::try_from(fields).expect("four prompts give four answers");
    let raw = RawPair {
        source: expand_home(&source),
        replica: expand_home(&replica),
        interval,
        log_file: expand_home(&log_file),
    };
    let upstream: Vec<_> = supervisor
        .views()
        .into_iter()
        .filter(|v| !matches!(v.status.state, State::Stopped))
        .map(|v| v.spec.replica)
        .collect();
    let started = validate_pair(&raw, &upstream).and_then(|spec| {
        let shown = format!(
            "{} -> {} every {}",
            spec.source.display(),
            spec.replica.display(),
            format_interval(spec.interval)
        );
        supervisor.add(spec).map(|id| (id, shown))
    });
    Ok(match started {
        Ok((id, shown)) => format!("Started pair {id}: {shown}.\n"),
        Err(e) => format!("Not added: {e}.\n"),
    })
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

/// `~/x` means the home folder, as it would in a shell.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The listing of every pair.
fn list(views: &[PairView]) -> String {
    if views.is_empty() {
        return "No sync pairs. Choose 2 to add one.\n".into();
    }
    let now = Instant::now();
    let mut text = String::new();
    for v in views {
        let s = &v.status;
        text += &format!(
            "Pair {}: {} -> {}\n  every {}, log {}\n  state: {}\n",
            v.id,
            v.spec.source.display(),
            v.spec.replica.display(),
            format_interval(v.spec.interval),
            v.spec.log_file.display(),
            state_line(s, now)
        );
        if let Some(last) = &s.last {
            let result = match last.outcome {
                Outcome::Finished if last.counts.errors == 0 => "ok".to_string(),
                Outcome::Finished => format!("finished with {} errors", last.counts.errors),
                Outcome::Stopped => "stopped before the end".to_string(),
                Outcome::Failed => "failed".to_string(),
            };
            text += &format!(
                "  last pass: {result} in {:.2} s, {} checked, {}\n",
                last.duration.as_secs_f64(),
                last.counts.checked,
                changes(&last.counts)
            );
            if let Some(refused) = &s.device_refused {
                text += &format!("  refused: {refused}; option 7 accepts the new device\n");
            }
            if last.held_deletions > 0 {
                text += &format!(
                    "  held: {} deletions over --max-delete, none made; option 6 approves them\n",
                    last.held_deletions
                );
            }
        }
        let t = &s.totals;
        text += &format!(
            "  since start: {} {}, {} copied, {} updated, {} removed, {} written\n  cache: {} {}, {}{}\n",
            s.passes,
            if s.passes == 1 { "pass" } else { "passes" },
            t.copied,
            t.updated,
            t.removed_files + t.removed_dirs,
            human_bytes(t.bytes),
            s.cache_entries,
            if s.cache_entries == 1 {
                "file"
            } else {
                "files"
            },
            human_bytes(s.cache_bytes as u64),
            if s.cache_evicted > 0 {
                format!(", {} evicted to stay under --cache-limit", s.cache_evicted)
            } else {
                String::new()
            }
        );
    }
    text
}

fn state_line(s: &PairStatus, now: Instant) -> String {
    let failed = s.last.as_ref().is_some_and(|l| !l.is_clean());
    match s.state {
        State::Starting => "starting".into(),
        State::Syncing {
            since,
            files,
            bytes,
        } => format!(
            "syncing for {:.1} s: {files} entries checked, {} written so far",
            now.saturating_duration_since(since).as_secs_f64(),
            human_bytes(bytes)
        ),
        State::Idle { next } if failed => format!(
            "last pass failed; next pass in {:.0} s",
            next.saturating_duration_since(now).as_secs_f64().ceil()
        ),
        State::Idle { next } => format!(
            "idle, next pass in {:.0} s",
            next.saturating_duration_since(now).as_secs_f64().ceil()
        ),
        State::Waiting { on } => {
            format!(
                "waiting for pair {on}, whose pass writes what this pair reads or reads what it writes"
            )
        }
        State::Stopped => "stopped".into(),
    }
}

/// What a pass changed, naming only what happened.
fn changes(c: &Counts) -> String {
    let items = [
        (c.copied, "copied"),
        (c.updated, "updated"),
        (c.touched, "touched"),
        (c.linked, "linked"),
        (c.created_dirs, "folders created"),
        (c.removed_files + c.removed_dirs, "removed"),
        (c.errors, "errors"),
    ];
    let mut parts: Vec<String> = items
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if c.bytes > 0 {
        parts.push(format!("{} written", human_bytes(c.bytes)));
    }
    if parts.is_empty() {
        "nothing to change".into()
    } else {
        parts.join(", ")
    }
}

/// Bytes in binary units: `512 B`, `4.1 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One read from the menu's input.
enum Line {
    Text(String),
    EndOfInput,
    Signal,
}

/// Whole lines from stdin, waiting in `poll` on stdin and the signal pipe
/// together.
struct LineInput<'a> {
    wake: BorrowedFd<'a>,
    buf: Vec<u8>,
    ended: bool,
    /// Dropping the rest of a line longer than `MAX_LINE`.
    skipping: bool,
}

impl<'a> LineInput<'a> {
    fn new(wake: BorrowedFd<'a>) -> Self {
        LineInput {
            wake,
            buf: Vec::new(),
            ended: false,
            skipping: false,
        }
    }

    fn next_line(&mut self) -> Line {
        let stdin = rustix::stdio::stdin();
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Line::Text(decode(&line[..pos]));
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Line::EndOfInput;
                }
                let line = std::mem::take(&mut self.buf);
                return Line::Text(decode(&line));
            }
            let mut fds = [
                PollFd::new(&stdin, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.ended = true;
                    continue;
                }
            }
            if !fds[1].revents().is_empty() {
                return Line::Signal;
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match rustix::io::read(stdin, &mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => {
                    let mut data = &chunk[..n];
                    if self.skipping {
                        match data.iter().position(|&b| b == b'\n') {
                            Some(pos) => {
                                self.skipping = false;
                                data = &data[pos + 1..];
                            }
                            None => data = &[],
                        }
                    }
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > MAX_LINE && !self.buf.contains(&b'\n') {
                        self.buf.truncate(MAX_LINE);
                        self.buf.push(b'\n');
                        self.skipping = true;
                    }
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => self.ended = true,
            }
        }
    }
}

/// A line as text: invalid UTF-8 replaced, the trailing `\r` of a Windows
/// line ending dropped.
fn decode(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn answers_lose_one_pair_of_quotes() {
        assert_eq!(unquote("\"my folder\""), "my folder");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(unquote("\"half"), "\"half");
        assert_eq!(unquote("plain"), "plain");
    }
}
