//! A pair's worker thread: runs a pass every interval, never two at once,
//! and obeys commands from the menu between passes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, error, info, warn};

use crate::cache::Cache;
use crate::cache_store::{self, CacheStore};
use crate::config::{PairSpec, SyncOptions};
use crate::daemon::gate::Gate;
use crate::daemon::waiting::Watching;
use crate::digests;
use crate::excludes::PairExcludes;
use crate::logging::pair_target;
use crate::mounts::Mounts;
use crate::pair::{Cancel, PairContext};
use crate::pass;
use crate::replica_lock::ReplicaLock;
use crate::state::{PairState, RootRecord, State as StateDir};
use crate::status::{Outcome, PairStatus, State};
use crate::twoway::TwoWay;

/// What starts a worker's next pass, or ends it: the one thing a worker
/// waits for between passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A watched pair's source changed in these folders (none covering
    /// another): one pass from them.
    Changed(Vec<pass::Start>),
    /// The interval since the last pass started is over.
    Interval,
    /// The menu asked for a pass now.
    SyncNow,
    /// A pass now, with the removals `--max-delete` held back let through
    /// (for that pass only).
    ApproveDeletions,
    /// A pass now that takes the devices it finds under the pair's roots
    /// (the user confirmed the disk was swapped), and remembers them.
    AcceptNewDevices,
    /// Stop after the current file; ends the thread.
    Stop,
}

/// One pair's worker, owning its cache and its end of the command channel.
pub struct Worker {
    pub id: usize,
    pub spec: PairSpec,
    pub options: SyncOptions,
    pub cancel: Cancel,
    pub triggers: Receiver<Trigger>,
    pub status: Arc<Mutex<PairStatus>>,
    /// Run a single pass, then end (`--once`).
    pub once: bool,
    /// Keeps this pair's passes apart from those of pairs it chains with.
    pub gate: Arc<Gate>,
    /// Where the pair's state is kept across runs; `None`: in memory
    /// only.
    pub state: Option<StateDir>,
    /// `--new-device`: the first good pass takes whatever devices it finds.
    pub new_device: bool,
    /// The pair's exclude patterns, refreshed at each pass.
    pub excludes: Mutex<PairExcludes>,
    /// Told the pair's number after each pass (systemd's status line).
    pub passed: Option<crossbeam_channel::Sender<usize>>,
}

/// Takes a pair out of the gate when its worker ends, however it ends, so
/// no other pair waits for it forever.
struct Member<'g> {
    gate: &'g Gate,
    id: usize,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.gate.leave(self.id);
    }
}

impl Worker {
    /// Runs passes until stopped. Returns whether the last pass finished
    /// without an error.
    pub fn run(self) -> bool {
        let _member = Member {
            gate: &self.gate,
            id: self.id,
        };
        let target = pair_target(self.id);
        let mut cache = if self.once {
            Cache::for_one_pass()
        } else {
            Cache::new(self.options.cache_limit)
        };
        // Held from pass to pass; released when the pair stops.
        let replica_lock = ReplicaLock::default();
        let mut memory = Memory {
            state: self
                .state
                .as_ref()
                .map(|s| s.pair(&self.spec.source, &self.spec.replica)),
            saved: Vec::new(),
            failed: false,
        };
        // A two-way pair's archive, in the same state file.
        let mut two_way = self.spec.two_way.then(|| {
            TwoWay::new(
                self.state
                    .as_ref()
                    .map(|s| s.pair(&self.spec.source, &self.spec.replica)),
            )
        });
        // A one-way pair's cache entries kept across restarts, in the same
        // file.
        let store = self.state.as_ref().filter(|_| two_way.is_none()).map(|s| {
            Mutex::new(CacheStore::new(
                s.pair(&self.spec.source, &self.spec.replica),
                &target,
                self.id,
                !self.options.dry_run,
            ))
        });
        let mut restored = memory.load(&target, self.id);
        restored.accept_new = self.new_device;
        let mounts = Mutex::new(restored);
        let ctx = PairContext {
            id: self.id,
            target: &target,
            spec: &self.spec,
            options: self.options,
            cancel: &self.cancel,
            // With the store, what a `--once` learns outlives it too; a
            // dry run writes no state.
            lasting_cache: !self.once || (store.is_some() && !self.options.dry_run),
            store: store.as_ref(),
            replica_lock: &replica_lock,
            mounts: &mounts,
            excludes: &self.excludes,
        };
        let mut clean = true;
        // Whether the passes run longer than the interval, as last said in
        // the log: said once when it starts and once when it stops, not
        // every pass.
        let mut said_late = false;
        let mut approved = false;
        let mut first_pass = true;
        // Started before the first pass, so no change during it is missed.
        let mut watching = Watching {
            watch: None,
            fell_back: None,
            said_lost: false,
            coalesce: Default::default(),
            target: target.clone(),
        };
        watching.watch = self.start_watch(&target, &mut watching.fell_back);
        crate::status::lock(&self.status).watch = watching.status();
        // `None`: a full pass; otherwise where a watch saw changes.
        let mut changed: Option<Vec<pass::Start>> = None;
        // When the next full pass is due.
        let mut next = Instant::now();
        loop {
            // A chain's first passes run in its order, so a pair does not
            // start on a folder the pair before it has yet to create.
            let in_order = self.once || first_pass;
            first_pass = false;
            let entered = self.gate.enter(self.id, in_order, &self.cancel, |on| {
                info!(
                    target: &target,
                    "pair {}: waiting for pair {}: its pass writes what this pair reads, or reads what it writes",
                    self.id,
                    on.iter().map(usize::to_string).collect::<Vec<_>>().join(", pair ")
                );
                self.set_state(State::Waiting { on: on[0] });
            });
            let Some(in_pass) = entered else {
                break;
            };
            let started = Instant::now();
            self.set_state(State::Syncing {
                since: started,
                files: 0,
                copied: 0,
                bytes: 0,
            });
            crate::mounts::lock(&mounts).refused = None;
            let mut progress = |counts: &crate::status::Counts| {
                self.set_state(State::Syncing {
                    since: started,
                    files: counts.checked,
                    copied: counts.copied + counts.updated,
                    bytes: counts.bytes,
                });
            };
            let full = changed.is_none();
            let (report, unhashed) = match (two_way.as_mut(), changed.take()) {
                // Two-way passes are whole: a change on one side is
                // judged against the other side and the archive.
                (Some(two_way), _) => (two_way.pass(&ctx, approved, &mut progress), Vec::new()),
                (None, None) => pass::run(&ctx, &mut cache, approved, &mut progress),
                (None, Some(starts)) => {
                    pass::run_at(&ctx, &mut cache, &starts, approved, &mut progress)
                }
            };
            drop(in_pass);
            replica_lock.end_pass();
            approved = false;
            let refused = crate::mounts::lock(&mounts).refused.clone();
            let now = Instant::now();
            // Only a full pass starts the interval again.
            let late = full && started + self.spec.interval <= now;
            if full {
                next = if late {
                    now
                } else {
                    started + self.spec.interval
                };
            }
            {
                // One update, so the menu never sees a finished pass still
                // marked as syncing.
                let mut status = crate::status::lock(&self.status);
                status.last = Some(report);
                status.totals.add(&report.counts);
                status.passes += 1;
                status.failed_passes += u64::from(!report.is_clean());
                status.last_end = Some(std::time::SystemTime::now());
                status.cache_entries = cache.len();
                status.cache_bytes = cache.bytes();
                status.cache_evicted = cache.evicted();
                status.exclude_patterns = self
                    .excludes
                    .lock()
                    .expect("excludes poisoned")
                    .matcher()
                    .len();
                status.state = State::Idle { next };
                if let Some(passed) = &self.passed {
                    let _ = passed.send(self.id);
                }
                status.device_refused = refused;
                status.watch = watching.status();
            }
            panic_test_hook();
            if let Some(store) = &store {
                let mut store = cache_store::lock(store);
                // Before the roots' write, which waits for this one.
                store.commit();
                if full && report.outcome == Outcome::Finished {
                    // The in-memory cache now holds all the store knows
                    // of the tree, unless it evicted some.
                    store.set_lookups(self.once || cache.evicted() > 0);
                }
            }
            // After the status: the menu shows the pass ended at once.
            if report.outcome == Outcome::Finished && !self.options.dry_run {
                let records = crate::mounts::lock(&mounts).records();
                memory.save(records, &target, self.id);
            }
            // A run that could not keep its devices is not clean: cron
            // hears that the guard is off.
            clean = report.is_clean() && !memory.failed;
            if self.once || report.outcome == Outcome::Stopped || self.cancel.is_set() {
                break;
            }
            digests::fill(&ctx, &mut cache, unhashed);
            if let Some(store) = &store {
                cache_store::lock(store).commit();
            }
            if !full {
                // A subtree's pass says nothing of the interval.
            } else if late && !said_late {
                warn!(
                    target: &target,
                    "pair {}: the pass took {:.1} s, longer than the {} interval; passes run back to back until they fit in it again",
                    self.id,
                    report.duration.as_secs_f64(),
                    format_interval(self.spec.interval)
                );
            } else if !late && said_late {
                info!(
                    target: &target,
                    "pair {}: the pass took {:.1} s, within the {} interval again",
                    self.id,
                    report.duration.as_secs_f64(),
                    format_interval(self.spec.interval)
                );
            }
            if full {
                said_late = late;
            }
            if self.spec.watch && watching.watch.is_none() && watching.fell_back.is_none() {
                // A two-way replica made by this pass: both sides now.
                watching.watch = self.start_watch(&target, &mut watching.fell_back);
                crate::status::lock(&self.status).watch = watching.status();
            }
            let trigger = self.next_trigger(next, full, &mut watching);
            match trigger {
                Trigger::Interval | Trigger::SyncNow => {}
                Trigger::Changed(folders) => changed = Some(folders),
                Trigger::ApproveDeletions => approved = true,
                Trigger::AcceptNewDevices => {
                    info!(
                        target: &target,
                        "pair {}: new devices confirmed: this pass takes the devices it finds and remembers them",
                        self.id
                    );
                    crate::mounts::lock(&mounts).accept_new = true;
                }
                Trigger::Stop => break,
            }
            if self.cancel.is_set() {
                break;
            }
        }
        if two_way.is_none() {
            info!(
                target: &target,
                "pair {}: cache holds {} files in {} bytes; {} evicted",
                self.id,
                cache.len(),
                cache.bytes(),
                cache.evicted()
            );
        }
        if let Some(store) = &store {
            let mut store = cache_store::lock(store);
            store.commit();
            let (read, written) = store.counts();
            info!(
                target: &target,
                "pair {}: digest cache: {read} entries read, {written} rows written",
                self.id
            );
        }
        drop(watching);
        info!(target: &target, "pair {}: stopped", self.id);
        self.set_state(State::Stopped);
        clean
    }

    fn set_state(&self, state: State) {
        crate::status::lock(&self.status).state = state;
    }
}

/// A pair's roots as kept in its state, and whether keeping them failed.
struct Memory {
    state: Option<PairState>,
    /// What the state holds now, so an unchanged pass writes nothing.
    saved: Vec<RootRecord>,
    /// Reading or writing the state failed (said once, at error level).
    failed: bool,
}

impl Memory {
    /// The roots remembered by earlier runs. A state that cannot be read
    /// leaves the pair to run without them: see [`Memory::fail`].
    fn load(&mut self, target: &str, id: usize) -> Mounts {
        let Some(state) = &mut self.state else {
            return Mounts::default();
        };
        match state.roots() {
            Ok(records) => {
                let mounts = Mounts::restore(&records);
                self.saved = records;
                mounts
            }
            Err(e) => {
                self.fail(&e, target, id);
                Mounts::default()
            }
        }
    }

    /// Writes the roots if they changed since the last write.
    fn save(&mut self, records: Vec<RootRecord>, target: &str, id: usize) {
        let Some(state) = &mut self.state else {
            return;
        };
        if records == self.saved {
            return;
        }
        match state.save_roots(&records) {
            Ok(()) => self.saved = records,
            Err(e) => self.fail(&e, target, id),
        }
    }

    /// Says once that the pair runs without its devices remembered across
    /// restarts; the passes go on (the in-memory check still holds for
    /// this run's later passes).
    fn fail(&mut self, why: &str, target: &str, id: usize) {
        let line = format!(
            "{why}; the devices of this pair's folders are not remembered across restarts, \
             so a disk swapped while foldersync is not running is not noticed. Fix or delete \
             that file"
        );
        if self.failed {
            debug!(target: target, "pair {id}: {line}");
        } else {
            error!(target: target, "pair {id}: error {line}");
        }
        self.failed = true;
    }
}

/// Debug builds only: with `FOLDERSYNC_TEST_PANIC_AFTER_PASS` naming a
/// file that exists, the worker removes it and panics after its pass,
/// outside it, so a test can prove the crash is caught and said.
fn panic_test_hook() {
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("FOLDERSYNC_TEST_PANIC_AFTER_PASS")
        && std::fs::remove_file(&flag).is_ok()
    {
        panic!("a test panic after a pass");
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
