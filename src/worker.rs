//! A pair's worker thread: runs a pass every interval, never two at once,
//! and obeys commands from the menu between passes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{info, warn};

use crate::cache::Cache;
use crate::config::{PairSpec, SyncOptions};
use crate::digests;
use crate::logging::pair_target;
use crate::mounts::Mounts;
use crate::pass::{self, Cancel, PassContext};
use crate::status::{Outcome, PairStatus, State};

/// What the menu can ask of a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start the next pass now instead of waiting for the interval.
    SyncNow,
    /// Stop after the current file; ends the thread.
    Stop,
}

/// One pair's worker, owning its cache and its end of the command channel.
pub struct Worker {
    pub id: usize,
    pub spec: PairSpec,
    pub options: SyncOptions,
    pub cancel: Cancel,
    pub commands: Receiver<Command>,
    pub status: Arc<Mutex<PairStatus>>,
    /// Run a single pass, then end (`--once`).
    pub once: bool,
}

impl Worker {
    /// Runs passes until stopped. Returns whether the last pass finished
    /// without an error.
    pub fn run(self) -> bool {
        let target = pair_target(self.id);
        let mut cache = Cache::new(self.options.cache_limit);
        let mounts = Mutex::new(Mounts::default());
        let ctx = PassContext {
            id: self.id,
            target: &target,
            spec: &self.spec,
            options: self.options,
            cancel: &self.cancel,
            lasting_cache: !self.once,
            mounts: &mounts,
        };
        let mut clean;
        loop {
            let started = Instant::now();
            self.set_state(State::Syncing {
                since: started,
                files: 0,
                bytes: 0,
            });
            let (report, unhashed) = pass::run(&ctx, &mut cache, &mut |counts| {
                self.set_state(State::Syncing {
                    since: started,
                    files: counts.checked,
                    bytes: counts.bytes,
                });
            });
            clean = report.is_clean();
            let now = Instant::now();
            let late = started + self.spec.interval <= now;
            let next = if late {
                now
            } else {
                started + self.spec.interval
            };
            {
                // One update, so the menu never sees a finished pass still
                // marked as syncing.
                let mut status = self.status.lock().expect("status poisoned");
                status.last = Some(report);
                status.totals.add(&report.counts);
                status.passes += 1;
                status.cache_entries = cache.len();
                status.cache_bytes = cache.bytes();
                status.cache_evicted = cache.evicted();
                status.state = State::Idle { next };
            }
            if self.once || report.outcome == Outcome::Stopped || self.cancel.is_set() {
                break;
            }
            digests::fill(&ctx, &mut cache, unhashed);
            if late {
                warn!(
                    target: &target,
                    "pair {}: the pass took {:.1} s, longer than the {} interval; the next pass starts now",
                    self.id,
                    report.duration.as_secs_f64(),
                    format_interval(self.spec.interval)
                );
            }
            match self
                .commands
                .recv_timeout(next.saturating_duration_since(Instant::now()))
            {
                Ok(Command::SyncNow) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.cancel.is_set() {
                break;
            }
        }
        info!(
            target: &target,
            "pair {}: cache holds {} files in {} bytes; {} evicted",
            self.id,
            cache.len(),
            cache.bytes(),
            cache.evicted()
        );
        info!(target: &target, "pair {}: stopped", self.id);
        self.set_state(State::Stopped);
        clean
    }

    fn set_state(&self, state: State) {
        self.status.lock().expect("status poisoned").state = state;
    }
}

/// An interval as people write it: `10 s`, `0.5 s`, `5 min`.
pub fn format_interval(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 && secs % 60.0 == 0.0 {
        format!("{} min", secs / 60.0)
    } else {
        format!("{secs} s")
    }
}
