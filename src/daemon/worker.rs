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
use crate::pair::Unhashed;
use crate::pair::{Cancel, PairContext};
use crate::pass;
use crate::replica_lock::ReplicaLock;
use crate::state::{PairState, RootRecord, State as StateDir};
use crate::status::{Outcome, PairStatus, PassReport, State};
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

/// A worker's schedule between passes.
struct Schedule {
    /// When the next full pass is due.
    next: Instant,
    /// `None`: a full pass next; otherwise where a watch saw changes.
    changed: Option<Vec<pass::Start>>,
    /// The next pass may make the removals `--max-delete` held back.
    approved: bool,
    /// The first pass runs in its chain's order.
    first_pass: bool,
    /// Whether the passes run longer than the interval, as last said in
    /// the log: said once when it starts and once when it stops, not
    /// every pass.
    said_late: bool,
}

/// What one pass did, for what follows it.
struct Ran {
    report: PassReport,
    unhashed: Vec<Unhashed>,
    /// Over the whole tree (not a watch's folders).
    full: bool,
    /// A full pass that took longer than the interval.
    late: bool,
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
        let mut memory = Memory::new(self.pair_state());
        // A two-way pair's archive, in the same state file.
        let mut two_way = self.spec.two_way.then(|| TwoWay::new(self.pair_state()));
        // A one-way pair's cache entries kept across restarts, in the same
        // file.
        let store = self
            .pair_state()
            .filter(|_| two_way.is_none())
            .map(|s| Mutex::new(CacheStore::new(s, &target, self.id, !self.options.dry_run)));
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
        let mut schedule = Schedule {
            next: Instant::now(),
            changed: None,
            approved: false,
            first_pass: true,
            said_late: false,
        };
        while let Some(mut ran) = self.pass_once(&ctx, &mut cache, two_way.as_mut(), &mut schedule)
        {
            self.record_pass(&ran, &cache, &mounts, schedule.next, &watching);
            panic_test_hook();
            commit_store(store.as_ref(), &ran, self.once, &cache);
            // After the status: the menu shows the pass ended at once.
            if ran.report.outcome == Outcome::Finished && !self.options.dry_run {
                let records = crate::mounts::lock(&mounts).records();
                memory.save(records, &target, self.id);
            }
            // A run that could not keep its devices is not clean: cron
            // hears that the guard is off.
            clean = ran.report.is_clean() && !memory.failed;
            if self.once || ran.report.outcome == Outcome::Stopped || self.cancel.is_set() {
                break;
            }
            digests::fill(&ctx, &mut cache, std::mem::take(&mut ran.unhashed));
            if let Some(store) = &store {
                cache_store::lock(store).commit();
            }
            self.say_late(&ran, &mut schedule.said_late);
            if self.spec.watch && watching.watch.is_none() && watching.fell_back.is_none() {
                // A two-way replica made by this pass: both sides now.
                watching.watch = self.start_watch(&target, &mut watching.fell_back);
                crate::status::lock(&self.status).watch = watching.status();
            }
            let trigger = self.next_trigger(schedule.next, ran.full, &mut watching);
            if !self.obey(trigger, &mut schedule, &mounts) || self.cancel.is_set() {
                break;
            }
        }
        self.say_cache(&cache, two_way.is_none(), store.as_ref());
        drop(watching);
        info!(target: &target, "pair {}: stopped", self.id);
        self.set_state(State::Stopped);
        clean
    }

    /// The pair's state file, when the run keeps state.
    fn pair_state(&self) -> Option<PairState> {
        self.state
            .as_ref()
            .map(|s| s.pair(&self.spec.source, &self.spec.replica))
    }

    /// Waits for the gate, then runs one pass (over what a watch saw
    /// change, or the whole tree) and sets when the next full pass is due;
    /// `None` when stopped while waiting.
    fn pass_once(
        &self,
        ctx: &PairContext<'_>,
        cache: &mut Cache,
        two_way: Option<&mut TwoWay>,
        schedule: &mut Schedule,
    ) -> Option<Ran> {
        // A chain's first passes run in its order, so a pair does not
        // start on a folder the pair before it has yet to create.
        let in_order = self.once || schedule.first_pass;
        schedule.first_pass = false;
        let in_pass = self.gate.enter(self.id, in_order, &self.cancel, |on| {
            info!(
                target: ctx.target,
                "pair {}: waiting for pair {}: its pass writes what this pair reads, or reads what it writes",
                self.id,
                on.iter().map(usize::to_string).collect::<Vec<_>>().join(", pair ")
            );
            self.set_state(State::Waiting { on: on[0] });
        })?;
        let started = Instant::now();
        self.set_state(State::Syncing {
            since: started,
            files: 0,
            copied: 0,
            bytes: 0,
        });
        crate::mounts::lock(ctx.mounts).refused = None;
        let mut progress = |counts: &crate::status::Counts| {
            self.set_state(State::Syncing {
                since: started,
                files: counts.checked,
                copied: counts.copied + counts.updated,
                bytes: counts.bytes,
            });
        };
        let approved = std::mem::take(&mut schedule.approved);
        let full = schedule.changed.is_none();
        let (report, unhashed) = match (two_way, schedule.changed.take()) {
            // Two-way passes are whole: a change on one side is judged
            // against the other side and the archive.
            (Some(two_way), _) => (two_way.pass(ctx, approved, &mut progress), Vec::new()),
            (None, None) => pass::run(ctx, cache, approved, &mut progress),
            (None, Some(starts)) => pass::run_at(ctx, cache, &starts, approved, &mut progress),
        };
        drop(in_pass);
        ctx.replica_lock.end_pass();
        let now = Instant::now();
        // Only a full pass starts the interval again.
        let late = full && started + self.spec.interval <= now;
        if full {
            schedule.next = if late {
                now
            } else {
                started + self.spec.interval
            };
        }
        Some(Ran {
            report,
            unhashed,
            full,
            late,
        })
    }

    /// The pass's result in the status, in one update, so the menu never
    /// sees a finished pass still marked as syncing.
    fn record_pass(
        &self,
        ran: &Ran,
        cache: &Cache,
        mounts: &Mutex<Mounts>,
        next: Instant,
        watching: &Watching,
    ) {
        let refused = crate::mounts::lock(mounts).refused.clone();
        let patterns = self
            .excludes
            .lock()
            .expect("excludes poisoned")
            .matcher()
            .len();
        let report = ran.report;
        let mut status = crate::status::lock(&self.status);
        status.last = Some(report);
        status.totals.add(&report.counts);
        status.passes += 1;
        status.failed_passes += u64::from(!report.is_clean());
        status.last_end = Some(std::time::SystemTime::now());
        status.cache_entries = cache.len();
        status.cache_bytes = cache.bytes();
        status.cache_evicted = cache.evicted();
        status.exclude_patterns = patterns;
        status.state = State::Idle { next };
        if let Some(passed) = &self.passed {
            let _ = passed.send(self.id);
        }
        status.device_refused = refused;
        status.watch = watching.status();
    }

    /// Says when full passes start or stop taking longer than the
    /// interval (a watch's pass says nothing of it).
    fn say_late(&self, ran: &Ran, said_late: &mut bool) {
        if !ran.full {
            return;
        }
        let target = pair_target(self.id);
        let took = ran.report.duration.as_secs_f64();
        let interval = format_interval(self.spec.interval);
        if ran.late && !*said_late {
            warn!(
                target: &target,
                "pair {}: the pass took {took:.1} s, longer than the {interval} interval; passes run back to back until they fit in it again",
                self.id,
            );
        } else if !ran.late && *said_late {
            info!(
                target: &target,
                "pair {}: the pass took {took:.1} s, within the {interval} interval again",
                self.id,
            );
        }
        *said_late = ran.late;
    }

    /// Takes a trigger into the schedule; `false` to stop.
    fn obey(&self, trigger: Trigger, schedule: &mut Schedule, mounts: &Mutex<Mounts>) -> bool {
        match trigger {
            Trigger::Interval | Trigger::SyncNow => {}
            Trigger::Changed(folders) => schedule.changed = Some(folders),
            Trigger::ApproveDeletions => schedule.approved = true,
            Trigger::AcceptNewDevices => {
                info!(
                    target: &pair_target(self.id),
                    "pair {}: new devices confirmed: this pass takes the devices it finds and remembers them",
                    self.id
                );
                crate::mounts::lock(mounts).accept_new = true;
            }
            Trigger::Stop => return false,
        }
        true
    }

    /// Says what the pair's cache and stored cache hold, as it stops.
    fn say_cache(&self, cache: &Cache, one_way: bool, store: Option<&Mutex<CacheStore>>) {
        let target = pair_target(self.id);
        if one_way {
            info!(
                target: &target,
                "pair {}: cache holds {} files in {} bytes; {} evicted",
                self.id,
                cache.len(),
                cache.bytes(),
                cache.evicted()
            );
        }
        if let Some(store) = store {
            let mut store = cache_store::lock(store);
            store.commit();
            let (read, written) = store.counts();
            info!(
                target: &target,
                "pair {}: digest cache: {read} entries read, {written} rows written",
                self.id
            );
        }
    }

    fn set_state(&self, state: State) {
        crate::status::lock(&self.status).state = state;
    }
}

/// Commits what the pass stored, before the roots' write (which waits
/// for it); after a whole finished pass the in-memory cache holds all the
/// store knows of the tree, unless it evicted some.
fn commit_store(store: Option<&Mutex<CacheStore>>, ran: &Ran, once: bool, cache: &Cache) {
    let Some(store) = store else { return };
    let mut store = cache_store::lock(store);
    store.commit();
    if ran.full && ran.report.outcome == Outcome::Finished {
        store.set_lookups(once || cache.evicted() > 0);
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
    fn new(state: Option<PairState>) -> Memory {
        Memory {
            state,
            saved: Vec::new(),
            failed: false,
        }
    }

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
