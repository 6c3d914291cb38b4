//! Log records to the console (stderr) and to each pair's log file.
//!
//! The console logger is simplelog's; it must be set up before any thread
//! starts so that it can learn the local time offset. simplelog's combined
//! logger is fixed once installed, so the per-pair files, which come and go
//! as pairs are added from the menu, are served by a small logger of our own
//! that routes each record by its target (`pair<N>`).
//!
//! Log files are appended to, never truncated. A log file deleted or
//! renamed (rotated) while running is recreated at its path on the next
//! line; one that cannot be written is reported on the console and syncing
//! goes on.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use log::{LevelFilter, Log, Metadata, Record};
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, LevelPadding, SharedLogger, TermLogger,
    TerminalMode,
};
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

/// Installs the loggers. Call before any thread is started.
pub fn init(console: LevelFilter) -> Result<Logs, String> {
    let mut builder = ConfigBuilder::new();
    builder
        .set_time_format_custom(TIME_FORMAT)
        .set_level_padding(LevelPadding::Right)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off);
    // Fails only when threads already exist; UTC is the fallback. Read
    // once (it parses /etc/localtime) for the console and the files.
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    builder.set_time_offset(offset);
    let colors = if io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let files = Arc::new(PairFiles {
        offset,
        by_pair: RwLock::new(HashMap::new()),
    });
    CombinedLogger::init(vec![
        TermLogger::new(console, builder.build(), TerminalMode::Stderr, colors),
        Box::new(FileLogger(Arc::clone(&files))),
    ])
    .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(Logs { files })
}

/// Handle to the per-pair log files.
#[derive(Clone)]
pub struct Logs {
    files: Arc<PairFiles>,
}

impl Logs {
    /// Sends pair `id`'s records to `path` from now on (several pairs may
    /// share one file). Opens it now, so a bad path is reported at once.
    pub fn attach(&self, id: usize, path: &Path) -> io::Result<()> {
        let mut by_pair = self.files.by_pair.write().expect("log registry poisoned");
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
                    .expect("log file poisoned")
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
        let mut open = self.open.lock().expect("log file poisoned");
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
            .expect("log registry poisoned")
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
}
