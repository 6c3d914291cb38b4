//! Log lines for `foldersync attach`: each attached menu's connection gets
//! the lines a person at the in-process menu would see (pairs starting and
//! stopping, pass summaries, warnings and errors), written without
//! blocking: a follower that cannot keep up or went away is dropped, so a
//! stuck client never holds a worker back.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

use log::{Level, LevelFilter, Log, Metadata, Record};
use simplelog::SharedLogger;
use time::{OffsetDateTime, UtcOffset};

use super::{TIME_FORMAT, is_lifecycle};

/// The attached connections.
pub type Followers = Arc<Mutex<Vec<UnixStream>>>;

/// Writes each record worth a person's attention to every follower.
pub struct FollowLogger {
    pub followers: Followers,
    pub offset: UtcOffset,
}

impl Log for FollowLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
            && !metadata.target().starts_with("rustyline")
            && !metadata.target().starts_with("globset")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if followers.is_empty() {
            return;
        }
        let message = record.args().to_string();
        let pair_info = record.level() == Level::Info && record.target().starts_with("pair");
        if pair_info && !is_lifecycle(&message) {
            return;
        }
        let now = OffsetDateTime::now_utc().to_offset(self.offset);
        let time = now.format(TIME_FORMAT).unwrap_or_default();
        let line = format!("{time} [{:<5}] {message}\n", record.level());
        followers.retain_mut(|f| f.write_all(line.as_bytes()).is_ok());
    }

    fn flush(&self) {}
}

impl SharedLogger for FollowLogger {
    fn level(&self) -> LevelFilter {
        LevelFilter::Info
    }

    fn config(&self) -> Option<&simplelog::Config> {
        None
    }

    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        self
    }
}
