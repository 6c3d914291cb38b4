//! Starts, stops and watches the pairs' worker threads. It owns every
//! worker's `JoinHandle` and joins each one when it stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_channel::Sender;
use log::{error, info};

use crate::config::{PairSpec, SyncOptions, check_overlaps};
use crate::daemon::gate::Gate;
use crate::daemon::worker::{Trigger, Worker, format_interval};
use crate::excludes::{PairExcludes, Patterns};
use crate::logging::{Logs, display_root, pair_target};
use crate::pair::Cancel;
use crate::state::State as StateDir;
use crate::status::{self, PairStatus, State};

/// A pair as the supervisor keeps it.
struct Pair {
    id: usize,
    spec: PairSpec,
    status: Arc<Mutex<PairStatus>>,
    triggers: Sender<Trigger>,
    stop: Arc<AtomicBool>,
    /// `None` once joined.
    thread: Option<JoinHandle<bool>>,
}

/// A snapshot of one pair for the menu.
pub struct PairView {
    pub id: usize,
    pub spec: PairSpec,
    pub status: PairStatus,
}

/// All pairs of this run.
pub struct Supervisor {
    options: SyncOptions,
    /// `--exclude` and `--exclude-from`, for every pair.
    patterns: Arc<Patterns>,
    logs: Logs,
    /// Set on quit; every worker checks it at each file boundary.
    quit: Arc<AtomicBool>,
    once: bool,
    pairs: Vec<Pair>,
    /// Whether every joined worker's last pass was clean.
    all_clean: bool,
    /// Keeps chained pairs' passes apart.
    gate: Arc<Gate>,
    /// Where pairs keep what they learn across restarts; `None`: nowhere.
    state: Option<StateDir>,
    /// `--new-device`: every pair's first good pass takes the devices it
    /// finds.
    new_device: bool,
}

impl Supervisor {
    /// A supervisor with no pairs yet. `once`: each pair runs one pass.
    pub fn new(
        options: SyncOptions,
        patterns: Arc<Patterns>,
        logs: Logs,
        quit: Arc<AtomicBool>,
        once: bool,
    ) -> Self {
        Supervisor {
            options,
            patterns,
            logs,
            quit,
            once,
            pairs: Vec::new(),
            all_clean: true,
            gate: Arc::default(),
            state: None,
            new_device: false,
        }
    }

    /// Keeps each pair's state (the devices of its folders) in `state`;
    /// `new_device`: the pairs started from now on take the devices they
    /// find at their first good pass, instead of refusing a change.
    pub fn keep_state(&mut self, state: StateDir, new_device: bool) {
        self.state = Some(state);
        self.new_device = new_device;
    }

    /// Starts a validated pair, after checking that it does not write into
    /// a tree a running pair writes into. Returns its number.
    pub fn add(&mut self, spec: PairSpec) -> Result<usize, String> {
        let (id, worker) = self.enlist(spec)?;
        self.spawn(id, worker)
    }

    /// Whether a pair may join the running ones: its folders overlap none
    /// of theirs and the state folder is neither in nor around them. Checks only:
    /// the menu asks it before its last question.
    pub fn check(&self, spec: &PairSpec) -> Result<(), String> {
        let running: Vec<&PairSpec> = self
            .pairs
            .iter()
            .filter(|p| p.thread.is_some())
            .map(|p| &p.spec)
            .collect();
        check_overlaps(&running, std::slice::from_ref(spec))?;
        if let Some(state) = &self.state {
            crate::state::check_place(state.dir(), spec)?;
        }
        Ok(())
    }

    /// Starts several pairs given together: all are known to each other
    /// before the first pass starts, so a chain runs in its order.
    pub fn add_all(&mut self, specs: Vec<PairSpec>) -> Result<(), String> {
        let mut workers = Vec::new();
        for spec in specs {
            workers.push(self.enlist(spec)?);
        }
        for (id, worker) in workers {
            self.spawn(id, worker)?;
        }
        Ok(())
    }

    /// Starts an enlisted pair's thread; on failure, forgets the pair.
    fn spawn(&mut self, id: usize, worker: Worker) -> Result<usize, String> {
        match thread::Builder::new()
            .name(format!("pair-{id}"))
            .spawn(move || run_guarded(worker))
        {
            Ok(thread) => {
                let pair = self.pairs.iter_mut().find(|p| p.id == id);
                pair.expect("enlisted").thread = Some(thread);
                Ok(id)
            }
            Err(e) => {
                // The worker was dropped unstarted: it never ran a pass.
                self.gate.leave(id);
                if let Some(pair) = self.pairs.iter().find(|p| p.id == id) {
                    status::lock(&pair.status).state = State::Stopped;
                }
                Err(format!("cannot start a thread for pair {id}: {e}"))
            }
        }
    }

    /// Runs a pair's one pass (`--once`) on the calling thread and returns
    /// whether every pass so far was clean. A cron job with a single pair
    /// so starts no pair thread: that thread was a third of the run time of
    /// a no-change pass over a small tree (2.7 ms against 1.7 ms).
    pub fn run_here(&mut self, spec: PairSpec) -> Result<bool, String> {
        let (_, worker) = self.enlist(spec)?;
        self.all_clean &= run_guarded(worker);
        Ok(self.all_clean)
    }

    /// Checks a pair against the running ones, opens its log, records it
    /// (not running yet) and makes its worker.
    fn enlist(&mut self, spec: PairSpec) -> Result<(usize, Worker), String> {
        self.check(&spec)?;
        // Before the log file is created: a bad pattern creates nothing.
        let excludes = PairExcludes::load(Arc::clone(&self.patterns), &spec.source)?;
        let patterns = excludes.matcher().len();
        let id = self.pairs.len() + 1;
        self.logs
            .attach(id, &spec.log_file)
            .map_err(|e| format!("log file {}: {e}", spec.log_file.display()))?;
        let status = Arc::new(Mutex::new(PairStatus {
            exclude_patterns: patterns,
            ..PairStatus::default()
        }));
        let (worker, pair) = self.worker(id, spec, excludes, status);
        self.pairs.push(pair);
        Ok((id, worker))
    }

    /// A pair's worker, and the supervisor's side of it (not running yet).
    fn worker(
        &self,
        id: usize,
        spec: PairSpec,
        excludes: PairExcludes,
        status: Arc<Mutex<PairStatus>>,
    ) -> (Worker, Pair) {
        let patterns = excludes.matcher().len();
        let (triggers, receiver) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            id,
            spec: spec.clone(),
            options: self.options,
            cancel: Cancel {
                all: Arc::clone(&self.quit),
                pair: Arc::clone(&stop),
            },
            triggers: receiver,
            status: Arc::clone(&status),
            once: self.once,
            gate: Arc::clone(&self.gate),
            state: self.state.clone(),
            new_device: self.new_device,
            excludes: Mutex::new(excludes),
        };
        self.gate.join(id, &spec);
        info!(
            target: &pair_target(id),
            "pair {id}: started: {} {} {} every {}{}{}{}",
            display_root(&spec.source),
            spec.arrow(),
            display_root(&spec.replica),
            format_interval(spec.interval),
            if self.options.checksum { ", checksum" } else { "" },
            if self.options.dry_run { ", dry run" } else { "" },
            match patterns {
                0 => String::new(),
                1 => ", 1 exclude pattern".into(),
                n => format!(", {n} exclude patterns"),
            },
        );
        let pair = Pair {
            id,
            spec,
            status,
            triggers,
            stop,
            thread: None,
        };
        (worker, pair)
    }

    /// Starts again a pair whose worker crashed: a new worker on the same
    /// pair, status and log, whose first pass starts now.
    fn restart(&mut self, id: usize) -> Result<(), String> {
        let at = self
            .pairs
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| format!("there is no pair {id}"))?;
        if let Some(thread) = self.pairs[at].thread.take() {
            // It ended with its panic, which its log has said.
            let _ = thread.join();
        }
        let spec = self.pairs[at].spec.clone();
        let excludes = PairExcludes::load(Arc::clone(&self.patterns), &spec.source)?;
        let status = Arc::clone(&self.pairs[at].status);
        {
            let mut status = status::lock(&status);
            status.crashed = None;
            status.state = State::Starting;
        }
        let (worker, pair) = self.worker(id, spec, excludes, status);
        self.pairs[at] = pair;
        self.spawn(id, worker).map(drop)
    }

    fn running(&mut self, id: usize) -> Result<&mut Pair, String> {
        self.pairs
            .iter_mut()
            .find(|p| p.id == id && p.thread.is_some())
            .ok_or_else(|| format!("there is no running pair {id}"))
    }

    /// Stops one pair (it finishes or abandons the file in hand) and waits
    /// for its thread to end.
    pub fn stop(&mut self, id: usize) -> Result<(), String> {
        let pair = self.running(id)?;
        pair.stop.store(true, Ordering::Relaxed);
        let _ = pair.triggers.send(Trigger::Stop);
        self.gate.wake();
        let pair = self.running(id)?;
        let thread = pair.thread.take().expect("a running pair has a thread");
        let clean = join(thread);
        {
            let mut status = status::lock(&pair.status);
            if matches!(status.state, State::Crashed) {
                status.state = State::Stopped;
            }
        }
        self.all_clean &= clean;
        Ok(())
    }

    /// Starts a pair's next pass now, or the pair again when its worker
    /// crashed. Says so if it is syncing already.
    pub fn sync_now(&mut self, id: usize) -> Result<(), String> {
        let pair = self.running(id)?;
        let state = status::lock(&pair.status).state;
        if matches!(state, State::Crashed) {
            return self.restart(id);
        }
        if matches!(state, State::Syncing { .. } | State::Starting) {
            return Err(format!("pair {id} is syncing already"));
        }
        pair.triggers
            .send(Trigger::SyncNow)
            .map_err(|_| format!("pair {id} has stopped"))
    }

    /// Lets the removals that `--max-delete` held back in a pair's last
    /// pass through, in a pass that starts now. Returns how many.
    pub fn approve_deletions(&mut self, id: usize) -> Result<u64, String> {
        let pair = self.running(id)?;
        let status = status::lock(&pair.status).clone();
        let held = status.last.map_or(0, |l| l.held_deletions);
        if held == 0 {
            return Err(format!("pair {id} holds no deletions"));
        }
        if matches!(status.state, State::Syncing { .. } | State::Waiting { .. }) {
            return Err(format!(
                "pair {id} is syncing already; approve once its pass ends"
            ));
        }
        pair.triggers
            .send(Trigger::ApproveDeletions)
            .map_err(|_| format!("pair {id} has stopped"))?;
        Ok(held)
    }

    /// Starts a pass of a pair whose last pass refused a folder now on
    /// another device (or missing) that takes the devices it finds and
    /// remembers them: the user confirmed the change. Returns what was
    /// refused.
    pub fn accept_new_devices(&mut self, id: usize) -> Result<String, String> {
        let pair = self.running(id)?;
        let status = status::lock(&pair.status).clone();
        let Some(refused) = status.device_refused else {
            return Err(format!("pair {id} has no new device to accept"));
        };
        if matches!(status.state, State::Syncing { .. } | State::Waiting { .. }) {
            return Err(format!(
                "pair {id} is syncing already; accept once its pass ends"
            ));
        }
        pair.triggers
            .send(Trigger::AcceptNewDevices)
            .map_err(|_| format!("pair {id} has stopped"))?;
        Ok(refused)
    }

    /// A snapshot of every pair, running or stopped.
    pub fn views(&self) -> Vec<PairView> {
        self.pairs
            .iter()
            .map(|p| PairView {
                id: p.id,
                spec: p.spec.clone(),
                status: status::lock(&p.status).clone(),
            })
            .collect()
    }

    /// Waits for every worker to end on its own (`--once`). Returns whether
    /// every pass was clean.
    pub fn wait_all(&mut self) -> bool {
        for pair in &mut self.pairs {
            if let Some(thread) = pair.thread.take() {
                self.all_clean &= join(thread);
            }
        }
        self.all_clean
    }

    /// Quits: every worker stops at its next file boundary; waits for all.
    pub fn shutdown(&mut self) -> bool {
        self.quit.store(true, Ordering::Relaxed);
        for pair in &self.pairs {
            let _ = pair.triggers.send(Trigger::Stop);
        }
        self.gate.wake();
        self.wait_all()
    }
}

/// Runs a worker, catching a panic anywhere in it (a pass catches its
/// own): the pair says `crashed: MESSAGE` in its log and in the list, and
/// the process and the other pairs run on. Returns whether its last pass
/// was clean; a crash is not.
fn run_guarded(worker: Worker) -> bool {
    let (id, status) = (worker.id, Arc::clone(&worker.status));
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
    ran.unwrap_or_else(|panic| {
        let why = crate::pass::panic_message(panic.as_ref());
        // The list first: whoever reads the log line finds it said there.
        {
            let mut status = status::lock(&status);
            status.crashed = Some(why.clone());
            status.state = State::Crashed;
        }
        error!(
            target: &pair_target(id),
            "pair {id}: crashed: {why}; the other pairs run on. Menu option 5 starts it again. Please report this"
        );
        false
    })
}

/// Joins a worker; a panicked worker counts as unclean.
fn join(thread: JoinHandle<bool>) -> bool {
    thread.join().unwrap_or(false)
}
