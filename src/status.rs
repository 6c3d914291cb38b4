//! What a pair is doing and has done, shared between its worker (which
//! writes it) and the menu (which shows it).

use std::time::{Duration, Instant};

/// Counts of what one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Source entries looked at.
    pub checked: u64,
    pub created_dirs: u64,
    /// New files copied.
    pub copied: u64,
    /// Existing replica files whose bytes were replaced.
    pub updated: u64,
    /// Replica files whose mode or mtime was set, bytes unchanged.
    pub touched: u64,
    pub linked: u64,
    pub removed_files: u64,
    pub removed_dirs: u64,
    pub skipped: u64,
    pub errors: u64,
    /// File bytes written to the replica (either side, two-way).
    pub bytes: u64,
    /// Two-way paths edited differently on both sides: both versions
    /// kept.
    pub conflicts: u64,
}

impl Counts {
    /// Adds another pass's counts to these.
    pub fn add(&mut self, o: &Counts) {
        self.checked += o.checked;
        self.created_dirs += o.created_dirs;
        self.copied += o.copied;
        self.updated += o.updated;
        self.touched += o.touched;
        self.linked += o.linked;
        self.removed_files += o.removed_files;
        self.removed_dirs += o.removed_dirs;
        self.skipped += o.skipped;
        self.errors += o.errors;
        self.bytes += o.bytes;
        self.conflicts += o.conflicts;
    }
}

/// How a pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every entry was handled (some may have had errors, see the counts).
    Finished,
    /// Stop or quit was requested; the pass ended at a file boundary.
    Stopped,
    /// The source or replica root could not be used; nothing was changed.
    Failed,
}

/// The result of one pass.
#[derive(Clone, Copy, Debug)]
pub struct PassReport {
    pub outcome: Outcome,
    pub counts: Counts,
    pub duration: Duration,
    /// Removals held back (none made) by `--max-delete`, or by a two-way
    /// side emptied of its files, waiting for the user's approval.
    pub held_deletions: u64,
}

impl PassReport {
    /// A pass that finished with no error at all.
    pub fn is_clean(&self) -> bool {
        self.outcome == Outcome::Finished && self.counts.errors == 0
    }
}

/// What the pair's worker is doing right now.
#[derive(Clone, Copy, Debug)]
pub enum State {
    Starting,
    /// In a pass, with its progress so far.
    Syncing {
        since: Instant,
        /// Entries checked so far.
        files: u64,
        /// Files copied or updated so far: the progress line shows them.
        copied: u64,
        bytes: u64,
    },
    /// Waiting for another pair's pass to end: it writes what this pair
    /// reads, or reads what this pair writes.
    Waiting {
        on: usize,
    },
    /// Waiting for the next pass.
    Idle {
        next: Instant,
    },
    Stopped,
    /// Its worker panicked outside a pass and ended (`PairStatus::crashed`
    /// says why); menu option 5 starts it again.
    Crashed,
}

/// One pair's status, recovered from a lock a panicking thread left
/// poisoned: the status is plain data, whole at every step, and one
/// panic must not spread to every thread that reads it.
pub fn lock(status: &std::sync::Mutex<PairStatus>) -> std::sync::MutexGuard<'_, PairStatus> {
    status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One pair's status as the menu shows it.
#[derive(Clone, Debug)]
pub struct PairStatus {
    pub state: State,
    pub last: Option<PassReport>,
    /// Sums over every pass since the pair started.
    pub totals: Counts,
    pub passes: u64,
    /// Passes that were not clean (an error, a failed root, a stop).
    pub failed_passes: u64,
    /// When the last pass ended, for `--metrics`.
    pub last_end: Option<std::time::SystemTime>,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    /// Entries evicted to keep under `--cache-limit`, since start.
    pub cache_evicted: u64,
    /// Why the last pass refused a root ("source folder on another
    /// device"), until the user confirms the new device.
    pub device_refused: Option<String>,
    /// Exclude patterns in force: the run's and the pair's
    /// `.foldersyncignore`.
    pub exclude_patterns: usize,
    /// A watched pair's watch, for the list; `None` for an unwatched pair.
    pub watch: Option<WatchStatus>,
    /// What the worker's panic said, when it crashed.
    pub crashed: Option<String>,
}

/// What a watched pair's watch is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchStatus {
    /// Watching this many folders.
    On(usize),
    /// Watching failed or cannot work here: full passes only, for this
    /// reason.
    FellBack(String),
    /// Not watching for now, for this reason (a root's folder is gone);
    /// watched again once it is back.
    Off(String),
}

impl Default for PairStatus {
    fn default() -> Self {
        PairStatus {
            state: State::Starting,
            last: None,
            totals: Counts::default(),
            passes: 0,
            failed_passes: 0,
            last_end: None,
            cache_entries: 0,
            cache_bytes: 0,
            cache_evicted: 0,
            device_refused: None,
            exclude_patterns: 0,
            watch: None,
            crashed: None,
        }
    }
}
