//! Log records to the console (stderr) and to each pair's log file.
//!
//! Both loggers are our own, combined by simplelog: the per-pair files come
//! and go as pairs are added from the menu, so they are routed by target
//! (`pair<N>`); the console can be handed to the line editor (a record then
//! prints above the prompt) and, at a terminal, left quiet: per-file
//! actions go to the log files only. The local time offset is read once,
//! before any thread starts (it fails once threads exist).
//!
//! Log files are appended to, never truncated. A log file deleted or
//! renamed (rotated) while running is recreated at its path on the next
//! line; one that cannot be written is reported on the console and syncing
//! goes on.

mod follow;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use simplelog::{CombinedLogger, SharedLogger};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Timestamp of every log line, console and file alike.
const TIME_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

/// The log target that routes a record to pair `id`'s file.
pub fn pair_target(id: usize) -> String {
    format!("pair{id}")
}

/// What the console shows besides the level: the pairs' info records are
/// many (one per file) and not all are worth a person's attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleFilter {
    /// Every record at the level: piped, redirected, `-v`, `--no-menu`.
    All,
    /// A pair's info records only when they say the pair started or
    /// stopped, a pass summary or the pass's timing: the menu at a terminal.
    Lifecycle,
    /// No info record of a pair: `--once` at a terminal, whose progress
    /// line and closing summary say it all.
    NoPairInfo,
}

/// How the console logger writes.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSpec {
    pub level: LevelFilter,
    pub filter: ConsoleFilter,
    /// Warnings in yellow, errors in red.
    pub color: bool,
    /// stderr is the journal: each line starts with its syslog priority
    /// (`<3>` errors, `<4>` warnings, `<6>` info, `<7>` debug) and has no
    /// time (the journal has its own), so `journalctl -p warning` works.
    pub journal: bool,
}

/// Where console lines go instead of stderr while a line editor or a
/// progress bar owns the terminal; it gets whole lines, newline included.
pub type Sink = Box<dyn FnMut(String) + Send>;

/// The local time offset read by [`init`], for times shown to the user
/// outside the log (conflict copies' names); UTC before it.
pub fn local_offset() -> UtcOffset {
    LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC)
}

static LOCAL_OFFSET: std::sync::OnceLock<UtcOffset> = std::sync::OnceLock::new();

/// Installs the loggers. Call before any thread is started.
pub fn init(console: ConsoleSpec) -> Result<Logs, String> {
    // Fails only when threads already exist; UTC is the fallback. Read
    // once (it parses /etc/localtime) for the console and the files.
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
    let files = Arc::new(PairFiles {
        offset,
        by_pair: RwLock::new(HashMap::new()),
    });
    let sink = Arc::new(Mutex::new(None));
    let followers = follow::Followers::default();
    CombinedLogger::init(vec![
        Box::new(follow::FollowLogger {
            followers: Arc::clone(&followers),
            offset,
        }),
        Box::new(ConsoleLogger {
            spec: console,
            offset,
            sink: Arc::clone(&sink),
        }),
        Box::new(FileLogger(Arc::clone(&files))),
    ])
    .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(Logs {
        files,
        sink,
        followers,
    })
}

/// Handle to the per-pair log files.
#[derive(Clone)]
pub struct Logs {
    files: Arc<PairFiles>,
    sink: Arc<Mutex<Option<Sink>>>,
    followers: follow::Followers,
}

impl Logs {
    /// Sends console lines to `sink` from now on; `None`: back to stderr.
    pub fn set_console_sink(&self, sink: Option<Sink>) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// Sends the lines a person at the menu would see to an attached
    /// menu's connection too, until it fails.
    pub fn follow(&self, stream: std::os::unix::net::UnixStream) {
        if stream.set_nonblocking(true).is_ok() {
            let mut followers = self
                .followers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            followers.push(stream);
        }
    }

    /// Prints a line (newline included) where console records go: above
    /// the prompt while a line editor reads, else on stderr.
    pub fn print(&self, line: String) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_mut() {
            Some(sink) => sink(line),
            None => {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    /// Sends pair `id`'s records to `path` from now on (several pairs may
    /// share one file). Opens it now, so a bad path is reported at once.
    pub fn attach(&self, id: usize, path: &Path) -> io::Result<()> {
        let mut by_pair = self
            .files
            .by_pair
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let shared = by_pair.values().find(|f| f.path == path).cloned();
        let file = match shared {
            Some(file) => file,
            None => {
                let file = LogFile {
                    path: path.to_owned(),
                    open: Mutex::new(None),
                };
                file.open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(OpenLog::open(path)?);
                Arc::new(file)
            }
        };
        by_pair.insert(id, file);
        Ok(())
    }
}

struct PairFiles {
    offset: UtcOffset,
    by_pair: RwLock<HashMap<usize, Arc<LogFile>>>,
}

struct LogFile {
    path: PathBuf,
    /// The open file, or `None` after a failed write (reopened next time).
    open: Mutex<Option<OpenLog>>,
}

struct OpenLog {
    file: File,
    dev: u64,
    ino: u64,
}

impl OpenLog {
    fn open(path: &Path) -> io::Result<OpenLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        Ok(OpenLog {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether the path still names the file we hold (it was not deleted or
    /// rotated away).
    fn still_at(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

impl LogFile {
    fn write_line(&self, line: &[u8]) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.as_ref().is_some_and(|o| !o.still_at(&self.path)) {
            *open = None;
        }
        let result = match open.as_mut() {
            Some(o) => o.file.write_all(line),
            None => OpenLog::open(&self.path).and_then(|mut o| {
                let written = o.file.write_all(line);
                *open = Some(o);
                written
            }),
        };
        if let Err(e) = result {
            *open = None;
            // The console is the only place left to say it.
            eprintln!(
                "foldersync: cannot write log file {}: {e}; syncing goes on",
                self.path.display()
            );
        }
    }
}

/// The console: one line per record, `time [LEVEL] message`, written whole
/// (to stderr, or to the sink), so lines of different threads never mix.
struct ConsoleLogger {
    spec: ConsoleSpec,
    offset: UtcOffset,
    sink: Arc<Mutex<Option<Sink>>>,
}

impl ConsoleLogger {
    /// Whether the filter lets a record through; cheap for the many it
    /// drops: at most the first bytes of the message are formatted.
    fn passes(&self, record: &Record<'_>) -> bool {
        if record.level() != Level::Info || !record.target().starts_with("pair") {
            return true;
        }
        match self.spec.filter {
            ConsoleFilter::All => true,
            ConsoleFilter::NoPairInfo => false,
            ConsoleFilter::Lifecycle => {
                let mut head = Head(String::new());
                let _ = write!(head, "{}", record.args());
                is_lifecycle(&head.0)
            }
        }
    }
}

/// The first bytes of a message: formatting stops there.
struct Head(String);

impl std::fmt::Write for Head {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = 64usize.saturating_sub(self.0.len());
        let mut end = room.min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&s[..end]);
        if end < s.len() {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// A pass summary (`pair N: pass finished in 0.1 s: 5 checked, 0 copied,
/// 1 updated, 0 files and 0 folders removed, ...`) without the counts that
/// are zero, as the menu's list shows them; `None` for any other message.
/// What it checked stays, as the pass's measure.
fn without_zero_counts(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(": ")?;
    let rest = rest.strip_prefix("[dry run] ").unwrap_or(rest);
    if !rest.starts_with("pass ") || !rest.contains(" finished in ") {
        return None;
    }
    let at = message.find(" finished in ")?;
    let (head, counts) = message[at..].split_once(": ")?;
    let (first, others) = counts.split_once(", ")?;
    let zero = |part: &str| {
        let mut numbers = part
            .split(' ')
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .peekable();
        numbers.peek().is_some() && numbers.all(|n| n == "0")
    };
    let kept: Vec<&str> = std::iter::once(first)
        .chain(others.split(", ").filter(|p| !zero(p)))
        .collect();
    Some(format!("{}{head}: {}", &message[..at], kept.join(", ")))
}

/// Whether a pair's info message is one a person at the menu wants to see:
/// `pair N: [dry run] ` then a word no per-file action starts with (each
/// action begins with its verb: copied, updated, removed, linked...).
fn is_lifecycle(message: &str) -> bool {
    let Some((_, rest)) = message.split_once(": ") else {
        return true;
    };
    let rest = rest.strip_prefix("[dry run] ").unwrap_or(rest);
    ["started: ", "pass ", "waiting for pair", "the pass took"]
        .iter()
        .any(|p| rest.starts_with(p))
        || rest == "stopped"
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.spec.level
    }

    fn log(&self, record: &Record<'_>) {
        // The line editor's own records are of no use to a user, and one
        // logged from its thread while it holds the terminal would wait
        // on the printer that this very thread must drain.
        if !self.enabled(record.metadata())
            || record.target().starts_with("rustyline")
            // Nor are the pattern matcher's (`ignore` builds on `globset`).
            || record.target().starts_with("globset")
            || !self.passes(record)
        {
            return;
        }
        // A person at the menu reads what a pass did; the log file keeps
        // every count, zeros too, for scripts.
        let message = record.args().to_string();
        let message = match self.spec.filter {
            ConsoleFilter::Lifecycle => without_zero_counts(&message).unwrap_or(message),
            _ => message,
        };
        let now = OffsetDateTime::now_utc().to_offset(self.offset);
        let time = now.format(TIME_FORMAT).unwrap_or_default();
        let color = match record.level() {
            _ if !self.spec.color => None,
            Level::Error => Some("\x1b[31m"),
            Level::Warn => Some("\x1b[33m"),
            _ => None,
        };
        let line = match color {
            _ if self.spec.journal => format!(
                "<{}>{}\n",
                match record.level() {
                    Level::Error => 3,
                    Level::Warn => 4,
                    Level::Info => 6,
                    _ => 7,
                },
                message
            ),
            Some(c) => format!("{time} {c}[{:<5}] {}\x1b[0m\n", record.level(), message),
            None => format!("{time} [{:<5}] {}\n", record.level(), message),
        };
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_mut() {
            Some(sink) => sink(line),
            None => {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

impl SharedLogger for ConsoleLogger {
    fn level(&self) -> LevelFilter {
        self.spec.level
    }

    fn config(&self) -> Option<&simplelog::Config> {
        None
    }

    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        self
    }
}

struct FileLogger(Arc<PairFiles>);

impl Log for FileLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= LevelFilter::Debug && metadata.target().starts_with("pair")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Some(id) = record
            .target()
            .strip_prefix("pair")
            .and_then(|n| n.parse().ok())
        else {
            return;
        };
        let file = self
            .0
            .by_pair
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        let Some(file) = file else { return };
        let now = OffsetDateTime::now_utc().to_offset(self.0.offset);
        let time = now.format(TIME_FORMAT).unwrap_or_default();
        let line = format!("{time} [{:<5}] {}\n", record.level(), record.args());
        file.write_line(line.as_bytes());
    }

    fn flush(&self) {}
}

impl SharedLogger for FileLogger {
    fn level(&self) -> LevelFilter {
        LevelFilter::Debug
    }

    fn config(&self) -> Option<&simplelog::Config> {
        None
    }

    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        self
    }
}

/// A relative path as it appears in a log line: `.` for the root; control
/// characters, backslashes and bytes that are not UTF-8 escaped, so a file
/// name can never break or forge a line.
pub fn display_path(rel: &[u8]) -> String {
    if rel.is_empty() {
        return ".".into();
    }
    let mut out = String::with_capacity(rel.len());
    for chunk in rel.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A pair's root folder as it appears in a log line, escaped like
/// [`display_path`]: a folder name can hold a newline too.
pub fn display_root(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    display_path(path.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_at_the_menu_leaves_out_its_zero_counts() {
        let full = "pair 1: pass finished in 0.416 s (two-way): 5 checked, 4 copied, 0 updated, 0 touched, \
                    0 linked, 1 folders created, 0 files and 2 folders removed, 0 conflicts, 0 skipped, \
                    0 errors, 22 bytes written";
        assert_eq!(
            without_zero_counts(full).as_deref(),
            Some(
                "pair 1: pass finished in 0.416 s (two-way): 5 checked, 4 copied, 1 folders created, \
                 0 files and 2 folders removed, 22 bytes written"
            )
        );
        let quiet = "pair 2: [dry run] pass over . and d1 finished in 0.001 s: 0 checked, 0 copied, 0 errors, 0 bytes written";
        assert_eq!(
            without_zero_counts(quiet).as_deref(),
            Some("pair 2: [dry run] pass over . and d1 finished in 0.001 s: 0 checked")
        );
        assert_eq!(without_zero_counts("pair 1: copied a.txt (0 bytes)"), None);
        assert_eq!(without_zero_counts("pair 1: stopped"), None);
    }

    #[test]
    fn paths_are_escaped_for_log_lines() {
        assert_eq!(display_path(b""), ".");
        assert_eq!(display_path(b"a/b c.txt"), "a/b c.txt");
        assert_eq!(
            display_path(b"evil\n2026-01-01 [INFO] forged"),
            "evil\\n2026-01-01 [INFO] forged"
        );
        assert_eq!(display_path(b"x\x1b[31m"), "x\\u{1b}[31m");
        assert_eq!(display_path(b"bad\xff\xfe.txt"), "bad\\xff\\xfe.txt");
        assert_eq!(display_path("caf\u{e9}\\".as_bytes()), "caf\u{e9}\\\\");
    }

    #[test]
    fn the_quiet_console_keeps_lifecycle_lines_and_drops_file_actions() {
        for shown in [
            "pair 1: started: a -> b every 10 s",
            "pair 1: stopped",
            "pair 12: pass finished in 0.2 s: 3 checked",
            "pair 1: [dry run] pass stopped in 0.2 s: 3 checked",
            "pair 1: waiting for pair 2: its pass writes what this pair reads",
            "pair 1: the pass took 3.0 s, within the 10 s interval again",
        ] {
            assert!(is_lifecycle(shown), "{shown}");
        }
        for hidden in [
            "pair 1: copied pass finished (3 bytes)",
            "pair 1: [dry run] removed file stopped",
            "pair 1: created folder started: x",
            "pair 1: touched a (mtime)",
            "pair 1: cache holds 3 files in 330 bytes; 0 evicted",
        ] {
            assert!(!is_lifecycle(hidden), "{hidden}");
        }
    }

    #[test]
    fn a_message_head_stops_at_64_bytes_on_a_char_boundary() {
        let mut head = Head(String::new());
        let long = "\u{e9}".repeat(100);
        assert!(write!(head, "{long}").is_err());
        assert_eq!(head.0.len(), 64);
    }
}
