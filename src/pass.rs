//! One sync pass: walk the source and replica trees together and make the
//! replica an exact copy of the source.
//!
//! This module is what a pass does to files and folders; how the work is
//! shared out among the pass's workers (the job queue, and the counting
//! that says when a folder is finished) is [`schedule`]'s. In each folder
//! the two sorted listings are merged: replica entries the source lacks are
//! removed first (freeing space), then each source entry is brought over,
//! and its sub-folders (and big files) are queued as jobs. A folder's own
//! mode and mtime are set after everything inside it, since writing inside
//! changes its mtime: see [`DirNode`].

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use log::{debug, error, info, warn};

use crate::cache::{Cache, DirEntries, Entry};
use crate::config::{PairSpec, SyncOptions};
use crate::decide::{Plan, after_compare, plan_file};
use crate::digests::Unhashed;
use crate::fsops::{self, Compared, Copied, Digest, Kind, Meta, OpError, join_rel};
use crate::logging::{display_path, display_root};
use crate::mounts::{Caps, Mounts, Note};
use crate::replica_lock::ReplicaLock;
use crate::status::{Counts, Outcome, PassReport};

mod deletions;
mod links;
mod schedule;

use deletions::{Deletions, Held, Mode, Verdict};
use links::{Links, Role};
use schedule::{DirNode, FileTask, Finish, Job, Open, Queue, Task};

/// The stop signals a pass obeys at every file boundary: quit for all
/// pairs, stop for this one.
#[derive(Clone, Default)]
pub struct Cancel {
    pub all: Arc<AtomicBool>,
    pub pair: Arc<AtomicBool>,
}

impl Cancel {
    /// Whether the pass should stop now.
    pub fn is_set(&self) -> bool {
        self.all.load(Ordering::Relaxed) || self.pair.load(Ordering::Relaxed)
    }
}

/// Everything a pass needs from its pair.
pub struct PassContext<'a> {
    pub id: usize,
    pub target: &'a str,
    pub spec: &'a PairSpec,
    pub options: SyncOptions,
    pub cancel: &'a Cancel,
    /// The cache outlives this pass (a daemon, not `--once`), so digests
    /// are worth their CPU: small files are hashed as they are read, big
    /// ones afterwards (see [`crate::digests`]).
    pub lasting_cache: bool,
    /// Keeps other processes out of the replica (see [`ReplicaLock`]).
    pub replica_lock: &'a ReplicaLock,
    /// What the pair learnt about its roots' file systems at earlier
    /// passes; the pass adds to it.
    pub mounts: &'a Mutex<Mounts>,
}

impl PassContext<'_> {
    fn prefix(&self) -> &'static str {
        if self.options.dry_run {
            "[dry run] "
        } else {
            ""
        }
    }

    /// One action, one log line: verb, path relative to the pair's root,
    /// detail.
    fn action(&self, verb: &str, rel: &[u8], detail: std::fmt::Arguments<'_>) {
        info!(target: self.target, "pair {}: {}{verb} {}{detail}", self.id, self.prefix(), display_path(rel));
    }

    fn warn_line(&self, msg: std::fmt::Arguments<'_>) {
        warn!(target: self.target, "pair {}: {msg}", self.id);
    }

    fn log_info(&self, msg: std::fmt::Arguments<'_>) {
        info!(target: self.target, "pair {}: {msg}", self.id);
    }

    fn log_debug(&self, msg: std::fmt::Arguments<'_>) {
        debug!(target: self.target, "pair {}: {msg}", self.id);
    }
}

/// Files at least this big whose data must be read are synced as jobs of
/// their own; below it, the per-job overhead and the folder's inode lock
/// make it pointless.
const BIG_FILE: u64 = 4 << 20;

/// What the pass's workers share. Each folder is handled by one worker
/// from listing to queueing its sub-folders; everything else they touch is
/// here, behind a lock or atomic.
struct Shared<'a> {
    ctx: &'a PassContext<'a>,
    /// Taken once per folder (take_dir, put_dir), so contention is low.
    cache: Mutex<&'a mut Cache>,
    /// The jobs (folders and big files) waiting for a worker.
    queue: Queue<'a>,
    /// When the pass started, for the cache's racy check.
    now: SystemTime,
    /// What `--max-delete` allows in this walk, across all workers.
    deletions: Deletions,
    /// The pass refused to run (the empty-source guard); nothing changed.
    refused: AtomicBool,
    /// Counts of the whole pass; workers add theirs after each folder and
    /// tell `progress`.
    totals: Mutex<Totals<'a>>,
    /// Big files read or written without being hashed, for
    /// [`crate::digests::fill`] to hash once the replica is right.
    unhashed: Mutex<Vec<Unhashed>>,
    /// The hard-link groups of source files with several names.
    links: Links,
    /// The replica's root folder, to reach a hard link's leader from.
    replica_root: OnceLock<OwnedFd>,
    /// What the replica's file system keeps, known once its root is open.
    caps: OnceLock<Caps>,
    /// The replica root's device, remembered after a good pass.
    replica_dev: OnceLock<u64>,
}

/// A file the pass left right (or, in a dry run, would have).
struct Synced {
    /// The cache entry to keep for it, if any.
    entry: Option<Entry>,
    /// The replica file as it now stands; `None` in a dry run that would
    /// copy it.
    replica: Option<Meta>,
}

struct Totals<'a> {
    counts: Counts,
    progress: &'a mut (dyn FnMut(&Counts) + Send),
}

/// How many threads a pass works with: `--jobs`, or two per core, at most
/// 8. Much of a pass is waiting on the file system (a deletion waits for
/// its discard, a stat on a network mount for the server), and a second
/// thread per core fills those waits; beyond 8 they mostly contend. A
/// replica on a network file system gets 8 whatever the cores: there the
/// waits are the server's (on sshfs, 8 took 23% less time than 4 for a
/// first pass on 2 cores, 16 no less than 8; see bench/RESULTS.md).
pub fn jobs(options: &SyncOptions, network: bool) -> usize {
    /// For a replica reached over a network.
    const NETWORK_JOBS: usize = 8;
    // Asked once: std reads cgroup files to answer.
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    options.jobs.map_or_else(
        || {
            let local = *DEFAULT.get_or_init(|| {
                std::thread::available_parallelism().map_or(2, |n| (2 * n.get()).min(8))
            });
            if network {
                local.max(NETWORK_JOBS)
            } else {
                local
            }
        },
        usize::from,
    )
}

/// Runs one pass and reports what it did, with the big files it left to be
/// hashed later. `progress` hears the counts so far now and then (from
/// whichever worker just finished a folder).
///
/// Scheduling: folders are tasks in a shared LIFO queue served by a pool of
/// `--jobs` workers (the calling thread is one of them). A worker takes a
/// folder, opens and lists both sides, does its removals and file work, and
/// queues its sub-folders. Folder mode and mtime are set by [`DirNode`]
/// counting, after everything below.
pub fn run(
    ctx: &PassContext<'_>,
    cache: &mut Cache,
    deletions_approved: bool,
    progress: &mut (dyn FnMut(&Counts) + Send),
) -> (PassReport, Vec<Unhashed>) {
    let started = Instant::now();
    ctx.log_debug(format_args!("pass started"));
    let guarded = ctx.options.max_delete.filter(|_| !deletions_approved);
    let mode = if guarded.is_some() {
        Mode::Count
    } else {
        Mode::Free
    };
    let mut walked = walk_with(ctx, cache, mode, progress);
    let mut held = 0;
    if let (Some(limit), true) = (guarded, walked.outcome == Outcome::Finished) {
        let count = walked.held.entries;
        if count > limit {
            held = count;
            walked.counts.errors += 1;
            log_held(ctx, limit, &walked.held);
        } else if count > 0 {
            // Within the limit: a second walk removes them.
            let checked = walked.counts.checked;
            let second = walk_with(ctx, cache, Mode::Limit(limit), progress);
            walked.counts.add(&second.counts);
            walked.counts.checked = checked;
            walked.outcome = second.outcome;
            walked.unhashed.extend(second.unhashed);
        }
    }
    let report = PassReport {
        outcome: walked.outcome,
        counts: walked.counts,
        duration: started.elapsed(),
        held_deletions: held,
    };
    log_summary(ctx, &report);
    (report, walked.unhashed)
}

/// What one walk over the tree did.
struct Walked {
    outcome: Outcome,
    counts: Counts,
    /// Removals held back (`Mode::Count`).
    held: Held,
    unhashed: Vec<Unhashed>,
}

/// One walk of the whole tree, with removals treated as `mode` says.
fn walk_with(
    ctx: &PassContext<'_>,
    cache: &mut Cache,
    mode: Mode,
    progress: &mut (dyn FnMut(&Counts) + Send),
) -> Walked {
    let shared = Shared {
        ctx,
        cache: Mutex::new(cache),
        queue: Queue::new(ctx.cancel),
        now: SystemTime::now(),
        deletions: Deletions::new(mode),
        refused: AtomicBool::new(false),
        totals: Mutex::new(Totals {
            counts: Counts::default(),
            progress,
        }),
        unhashed: Mutex::new(Vec::new()),
        links: Links::default(),
        replica_root: OnceLock::new(),
        caps: OnceLock::new(),
        replica_dev: OnceLock::new(),
    };
    let outcome = walk(&shared);
    if let (Outcome::Finished, Some(&dev)) = (outcome, shared.replica_dev.get()) {
        lock_mounts(ctx).replica.remember(dev);
    }
    let cache = shared.cache.into_inner().unwrap_or_else(|e| e.into_inner());
    shared.links.restamp(shared.replica_root.get(), cache);
    Walked {
        outcome,
        counts: shared
            .totals
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .counts,
        held: shared.deletions.held(),
        unhashed: shared
            .unhashed
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
    }
}

/// Says which removals a pass held back, and how to let them through.
fn log_held(ctx: &PassContext<'_>, limit: u64, held: &Held) {
    let mut shown: Vec<String> = held
        .named
        .iter()
        .map(|(path, entries)| match entries {
            1 => display_path(path).to_string(),
            n => format!("{} (a folder of {n} entries)", display_path(path)),
        })
        .collect();
    let unnamed = held.removals.saturating_sub(held.named.len() as u64);
    if unnamed > 0 {
        shown.push(format!("and {unnamed} more"));
    }
    error!(
        target: ctx.target,
        "pair {}: error {}this pass would remove {} entries, more than --max-delete {limit}: {}; none were removed. \
         Approve them for one pass with menu option 6, or run with a higher --max-delete",
        ctx.id,
        ctx.prefix(),
        held.entries,
        shown.join(", ")
    );
}

/// Opens the roots, runs the workers over the tree, and says how it ended.
fn walk(shared: &Shared<'_>) -> Outcome {
    let mut first = Walker::new(shared);
    let Some(root) = first.open_roots() else {
        first.flush();
        return Outcome::Failed;
    };
    first.flush();
    shared.cache.lock().expect("cache poisoned").begin_pass();
    shared.queue.push(vec![Job::Dir(root)]);
    drop(first);
    // A worker that panics ends the pass with an error; the pair, and the
    // program, go on.
    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_workers(shared)));
    if let Err(panic) = worked {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        error!(
            target: shared.ctx.target,
            "pair {}: error internal: a worker of this pass panicked ({why}); the pass ended there. Please report this",
            shared.ctx.id
        );
        let mut totals = shared.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.counts.errors += 1;
        return Outcome::Failed;
    }
    if shared.refused.load(Ordering::Relaxed) {
        return Outcome::Failed;
    }
    if shared.ctx.cancel.is_set() {
        return Outcome::Stopped;
    }
    shared
        .cache
        .lock()
        .expect("cache poisoned")
        .end_complete_pass();
    Outcome::Finished
}

/// The pass's pool of workers over the queue, the calling thread one of
/// them.
fn run_workers(shared: &Shared<'_>) {
    let mut first = Walker::new(shared);
    // The root folder first, alone: a pass that finds no sub-folder and no
    // big file to work on (nothing to do in a flat folder) starts no thread.
    first.work_one();
    if shared.queue.queued() {
        std::thread::scope(|scope| {
            // Named, so a profile tells the workers apart; one that cannot
            // be started only makes the pass use fewer.
            let network = lock_mounts(shared.ctx).replica_on_network();
            for n in 2..=jobs(&shared.ctx.options, network) {
                let builder =
                    std::thread::Builder::new().name(format!("pair-{}-w{n}", shared.ctx.id));
                if let Err(e) = builder.spawn_scoped(scope, || Walker::new(shared).work()) {
                    shared
                        .ctx
                        .log_debug(format_args!("worker {n} not started: {e}"));
                    break;
                }
            }
            first.work();
        });
    }
}

/// Tells the queue a job is over when dropped; after a panic, it ends the
/// pass for every worker.
struct TaskDone<'q, 'a>(&'q Queue<'a>);

impl Drop for TaskDone<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
        self.0.task_done();
    }
}

/// Debug builds only: a folder named as `FOLDERSYNC_TEST_PANIC` says makes
/// the worker that takes it panic, so the tests can prove that a panicking
/// worker ends its pass with an error instead of hanging the others.
fn crash_test_hook(rel: &[u8]) {
    #[cfg(debug_assertions)]
    if let Some(name) = std::env::var_os("FOLDERSYNC_TEST_PANIC") {
        use std::os::unix::ffi::OsStrExt;
        if rel.rsplit(|&b| b == b'/').next() == Some(name.as_bytes()) {
            panic!("test panic in folder {}", display_path(rel));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = rel;
}

/// One worker of a pass: its counts since it last reported them, and its
/// own data buffers.
struct Walker<'s, 'a> {
    shared: &'s Shared<'a>,
    ctx: &'a PassContext<'a>,
    counts: Counts,
    bufs: fsops::Buffers,
}

impl<'s, 'a> Walker<'s, 'a> {
    fn new(shared: &'s Shared<'a>) -> Self {
        Walker {
            shared,
            ctx: shared.ctx,
            counts: Counts::default(),
            bufs: fsops::Buffers::default(),
        }
    }

    /// Syncs queued folders until there are none left (or the pass stops).
    fn work(mut self) {
        while self.work_one() {}
    }

    /// Takes one job from the queue and does it; `false` when the pass is
    /// done or stopped.
    fn work_one(&mut self) -> bool {
        let Some(job) = self.shared.queue.next_task() else {
            return false;
        };
        // Done even if the job panics: the other workers must not wait
        // for it forever.
        let _done = TaskDone(&self.shared.queue);
        match job {
            Job::Dir(task) => {
                crash_test_hook(&task.rel);
                self.sync_dir(task)
            }
            Job::File(task) => self.sync_big(task),
        }
        self.flush();
        true
    }

    /// Adds this worker's counts to the pass's and reports progress.
    fn flush(&mut self) {
        let mut totals = self.shared.totals.lock().expect("totals poisoned");
        totals.counts.add(&self.counts);
        self.counts = Counts::default();
        let Totals { counts, progress } = &mut *totals;
        progress(counts);
    }

    /// Opens (or, when missing, creates) the pair's two root folders and
    /// returns the root's task; `None` when the pass cannot run.
    fn open_roots(&mut self) -> Option<Task> {
        let spec = self.ctx.spec;
        let src_root = match fsops::open_root(&spec.source).and_then(|fd| {
            let meta = fsops::stat_fd(fd.as_fd())?;
            Ok((fd, meta))
        }) {
            Ok(root) => root,
            Err(e) => {
                self.error_line(format_args!(
                    "source folder {} unavailable: {e}; nothing changed in the replica",
                    display_root(&spec.source)
                ));
                return None;
            }
        };
        let mut fresh = false;
        let dst_root = match fsops::open_root(&spec.replica) {
            Ok(fd) => Some(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = lock_mounts(self.ctx).replica.check_missing() {
                    self.error_line(format_args!(
                        "replica folder {} {e}",
                        display_root(&spec.replica)
                    ));
                    return None;
                }
                if !self.locked(self.ctx.replica_lock.hold_ancestors(&spec.replica)) {
                    return None;
                }
                if let Err(e) = self.create_replica_root() {
                    self.error_line(format_args!(
                        "cannot create replica folder {}: {e}",
                        display_root(&spec.replica)
                    ));
                    return None;
                }
                self.ctx.action("created folder", b"", format_args!(""));
                self.counts.created_dirs += 1;
                fresh = true;
                match fsops::open_root(&spec.replica) {
                    Ok(fd) => Some(fd),
                    Err(_) if self.ctx.options.dry_run => None,
                    Err(e) => {
                        self.error_line(format_args!(
                            "replica folder {} unavailable: {e}",
                            display_root(&spec.replica)
                        ));
                        return None;
                    }
                }
            }
            Err(e) => {
                self.error_line(format_args!(
                    "replica folder {} unavailable: {e}; nothing changed",
                    display_root(&spec.replica)
                ));
                return None;
            }
        };
        if let Some(dst) = &dst_root {
            let lock = self.ctx.replica_lock;
            if !self.locked(lock.hold(dst, &spec.replica, self.ctx.options.dry_run)) {
                return None;
            }
            if !self.learn_replica(dst) {
                return None;
            }
        }
        let (src, src_meta) = src_root;
        if let Some(dst) = &dst_root {
            match dst.try_clone() {
                Ok(fd) => {
                    let _ = self.shared.replica_root.set(fd);
                }
                // Hard links are then copied as separate files.
                Err(e) => self
                    .ctx
                    .log_debug(format_args!("replica root not kept for hard links: {e}")),
            }
        }
        Some(Task {
            open: Open::Root { src, dst: dst_root },
            rel: Vec::new(),
            src_meta,
            fresh,
            parent: None,
        })
    }

    /// Checks the open replica root against what earlier passes saw and
    /// learns its file system (see [`Mounts::check_replica`]); `false`
    /// when the pass must not run.
    fn learn_replica(&mut self, dst: &OwnedFd) -> bool {
        let shown = display_root(&self.ctx.spec.replica);
        let checked = lock_mounts(self.ctx).check_replica(dst.as_fd(), !self.ctx.options.dry_run);
        let replica = match checked {
            Ok(replica) => replica,
            Err(e) => {
                self.error_line(format_args!("replica folder {shown} {e}"));
                return false;
            }
        };
        for note in &replica.notes {
            match note {
                Note::Limits(what) => self
                    .ctx
                    .warn_line(format_args!("replica folder {shown} {what}")),
                Note::Remounted => self.ctx.log_info(format_args!(
                    "replica folder {shown}: its file system was mounted again; syncing on"
                )),
                Note::Unprobed(e) => self.ctx.log_debug(format_args!(
                    "replica folder {shown}: what its file system keeps is not known yet: {e}"
                )),
            }
        }
        let _ = self.shared.replica_dev.set(replica.dev);
        let _ = self.shared.caps.set(replica.caps);
        true
    }

    /// How replica metadata is compared in this pass.
    fn caps(&self) -> Caps {
        self.shared.caps.get().copied().unwrap_or(Caps::EXACT)
    }

    /// One count of `node` is done; sets the mode and mtime of every
    /// replica folder this completes (see [`DirNode::release`]).
    fn release(&mut self, node: Option<Arc<DirNode>>) {
        DirNode::release(node, self.ctx.cancel, |f| {
            self.finish_dir(&f.dst, &f.rel, &f.src_meta, f.found_mode);
        });
    }

    /// Whether the replica's lock is held; if not, says so (once while the
    /// reason stays the same) and the pass is skipped, nothing changed.
    fn locked(&mut self, held: Result<(), String>) -> bool {
        let lock = self.ctx.replica_lock;
        match held {
            Ok(()) => {
                lock.is_news(None);
                true
            }
            Err(why) => {
                let line = format_args!("{why}; this pass is skipped, nothing changed");
                if lock.is_news(Some(&why)) {
                    self.ctx.warn_line(line);
                } else {
                    self.ctx.log_debug(line);
                }
                false
            }
        }
    }

    fn create_replica_root(&self) -> io::Result<()> {
        if self.ctx.options.dry_run {
            return Ok(());
        }
        std::fs::create_dir(&self.ctx.spec.replica)
    }

    /// Opens a queued folder on both sides; `None` when that failed (the
    /// error is logged).
    fn open_task(&mut self, open: Open, rel: &[u8]) -> Option<(OwnedFd, Option<OwnedFd>)> {
        let (src_parent, dst_parent, name) = match open {
            Open::Root { src, dst } => return Some((src, dst)),
            Open::Child {
                src_parent,
                dst_parent,
                name,
            } => (src_parent, dst_parent, name),
        };
        let src = match fsops::open_dir_at(src_parent.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) => {
                self.error(rel, "cannot read folder", &e, "its replica is kept as is");
                return None;
            }
        };
        let dst = match dst_parent {
            None => None,
            Some(parent) => match self.open_replica_dir(parent.as_fd(), &name) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    self.error(rel, "open replica folder", &e, "skipped");
                    return None;
                }
            },
        };
        Some((src, dst))
    }

    /// Syncs one queued folder: its removals and entries, then queues its
    /// sub-folders; the folder is finished once they all are.
    fn sync_dir(&mut self, task: Task) {
        let Task {
            open,
            rel,
            src_meta,
            fresh,
            parent,
        } = task;
        let Some((src, dst)) = self.open_task(open, &rel) else {
            self.release(parent);
            return;
        };
        let Some((src_entries, dst_entries)) = self.list_both(&rel, &src, dst.as_ref()) else {
            self.release(parent);
            return;
        };
        if rel.is_empty() && self.source_vanished(&src_entries, &dst_entries) {
            self.shared.refused.store(true, Ordering::Relaxed);
            return;
        }
        let src = Arc::new(src);
        let dst = dst.map(Arc::new);
        let finish = dst.as_ref().map(|dst| {
            let found_mode = if fresh || self.ctx.options.dry_run || !self.caps().modes {
                None
            } else {
                // A read-only replica folder gets owner rwx while the pass
                // works in it; finish_dir sets the mirrored mode again.
                match fsops::make_dir_writable(dst.as_fd()) {
                    Ok(mode) => Some(mode),
                    Err(e) => {
                        self.op_error(&rel, &e);
                        None
                    }
                }
            };
            Finish {
                dst: Arc::clone(dst),
                rel: rel.clone(),
                src_meta,
                found_mode,
            }
        });
        let node = DirNode::new(finish, parent);
        let subdirs = self.sync_entries(&rel, &src, dst.as_ref(), src_entries, dst_entries, &node);
        node.add_pending(subdirs.len());
        self.shared.queue.push(subdirs);
        self.release(Some(node));
    }

    /// Lists a folder's source and replica; `None` when either failed.
    fn list_both(
        &mut self,
        rel: &[u8],
        src: &OwnedFd,
        dst: Option<&OwnedFd>,
    ) -> Option<(Vec<fsops::Entry>, Vec<fsops::Entry>)> {
        let src_entries = match fsops::list(src.as_fd()) {
            Ok(entries) => entries,
            Err(e) => {
                self.error(rel, "cannot read folder", &e, "its replica is kept as is");
                return None;
            }
        };
        let dst_entries = match dst {
            Some(dst) => match fsops::list(dst.as_fd()) {
                Ok(entries) => entries,
                Err(e) => {
                    self.error(rel, "list replica folder", &e, "skipped");
                    return None;
                }
            },
            None => Vec::new(),
        };
        Some((src_entries, dst_entries))
    }

    /// Removals first, then each source entry; returns the sub-folders to
    /// queue (in name order).
    fn sync_entries(
        &mut self,
        rel: &[u8],
        src: &Arc<OwnedFd>,
        dst: Option<&Arc<OwnedFd>>,
        src_entries: Vec<fsops::Entry>,
        dst_entries: Vec<fsops::Entry>,
        node: &Arc<DirNode>,
    ) -> Vec<Job> {
        let merged = merge(src_entries, dst_entries);
        // Removals first: they free space for what is copied next.
        if let Some(dst) = &dst {
            for (s, d) in &merged {
                if let (None, Some(d)) = (s, d) {
                    if self.ctx.cancel.is_set() {
                        return Vec::new();
                    }
                    self.remove_extra(dst.as_fd(), rel, d);
                }
            }
        }

        let old = self
            .shared
            .cache
            .lock()
            .expect("cache poisoned")
            .take_dir(rel);
        let mut new = DirEntries::default();
        let mut subdirs = Vec::new();
        let mut big = Vec::new();
        for (s, d) in merged {
            let Some(s) = s else { continue };
            if self.ctx.cancel.is_set() {
                break;
            }
            self.counts.checked += 1;
            let child = join_rel(rel, s.name.to_bytes());
            let src_meta = match s.meta {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.ctx
                        .log_debug(format_args!("{} vanished", display_path(&child)));
                    continue;
                }
                Err(e) => {
                    self.error(&child, "stat", &e, "replica copy kept");
                    continue;
                }
            };
            let dst_meta = match d.map(|d| d.meta) {
                None => None,
                Some(Ok(meta)) => Some(meta),
                Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => None,
                Some(Err(e)) => {
                    self.error(&child, "stat replica", &e, "skipped");
                    continue;
                }
            };
            let dst_fd = dst.map(|d| d.as_fd());
            match src_meta.kind {
                Kind::Dir => {
                    // In a dry run a folder that would be created has no
                    // replica to compare its contents with.
                    let replica_exists =
                        !self.ctx.options.dry_run || dst_meta.is_some_and(|m| m.kind == Kind::Dir);
                    if let Some(fresh) = self.ensure_dir(dst_fd, &child, &s.name, dst_meta.as_ref())
                    {
                        subdirs.push(Job::Dir(Task {
                            open: Open::Child {
                                src_parent: Arc::clone(src),
                                dst_parent: dst.cloned().filter(|_| replica_exists),
                                name: s.name,
                            },
                            rel: child,
                            src_meta,
                            fresh,
                            parent: Some(Arc::clone(node)),
                        }));
                    }
                }
                Kind::File => {
                    let old_entry = old.get(s.name.to_bytes()).copied();
                    let role = if src_meta.nlink > 1 {
                        self.shared
                            .links
                            .join(links::key(&src_meta), || links::Follower {
                                src: Arc::clone(src),
                                dst: dst.cloned(),
                                dir_rel: rel.to_vec(),
                                name: s.name.clone(),
                                src_meta,
                                dst_meta,
                                old: old_entry,
                                node: Arc::clone(node),
                            })
                    } else {
                        Role::Alone
                    };
                    let leads = match role {
                        Role::Leader => true,
                        Role::Alone => false,
                        Role::Waiting => continue,
                        Role::Follow(leader) => {
                            let entry = self.follow(
                                &leader,
                                src.as_fd(),
                                dst_fd,
                                &child,
                                &s.name,
                                &src_meta,
                                dst_meta.as_ref(),
                                old_entry.as_ref(),
                            );
                            if let Some(entry) = entry {
                                new.insert(s.name.to_bytes(), entry);
                            }
                            continue;
                        }
                    };
                    if let Some(dst) = dst.filter(|_| {
                        self.is_big_job(&src_meta, dst_meta.as_ref(), old_entry.as_ref())
                    }) {
                        big.push(Job::File(FileTask {
                            src: Arc::clone(src),
                            dst: Arc::clone(dst),
                            dir_rel: rel.to_vec(),
                            name: s.name,
                            src_meta,
                            dst_meta,
                            old: old_entry,
                            node: Arc::clone(node),
                            leads,
                        }));
                        continue;
                    }
                    let synced = self.sync_file(
                        src.as_fd(),
                        dst_fd,
                        &child,
                        &s.name,
                        &src_meta,
                        dst_meta.as_ref(),
                        old_entry.as_ref(),
                    );
                    if leads {
                        self.leader_done(&src_meta, &child, synced.as_ref());
                    }
                    if let Some(Synced {
                        entry: Some(entry), ..
                    }) = synced
                    {
                        new.insert(s.name.to_bytes(), entry);
                    }
                }
                Kind::Symlink => self.sync_symlink(
                    src.as_fd(),
                    dst_fd,
                    &child,
                    &s.name,
                    &src_meta,
                    dst_meta.as_ref(),
                ),
                Kind::Special(what) => {
                    // Not copied; nor may the replica keep what the source
                    // had there before (a file that became a FIFO).
                    if let (Some(dst), Some(d)) = (dst_fd, dst_meta.as_ref()) {
                        self.remove_entry(dst, &child, &s.name, d);
                    }
                    self.counts.skipped += 1;
                    self.ctx
                        .warn_line(format_args!("skipped {} ({what})", display_path(&child)));
                }
            }
        }
        if self.ctx.cancel.is_set() {
            // Keep what is known about files this pass did not reach.
            new.absorb(old);
        }
        let mut cache = self.shared.cache.lock().expect("cache poisoned");
        // Entries big-file jobs already recorded for this folder.
        new.absorb(cache.take_dir(rel));
        cache.put_dir(rel, new);
        drop(cache);
        // Big copies on top: other workers start them while this one
        // goes on into the sub-folders.
        subdirs.extend(big);
        subdirs
    }

    /// Whether a file is big and its data must be read (copied, hashed or
    /// compared), so it is worth a job of its own (never in a dry run).
    fn is_big_job(&self, s: &Meta, d: Option<&Meta>, old: Option<&Entry>) -> bool {
        if s.size < BIG_FILE || self.ctx.options.dry_run {
            return false;
        }
        match d {
            Some(d) if d.kind == Kind::File => !matches!(
                plan_file(s, d, old, self.ctx.options.checksum, &self.caps()),
                Plan::Skip | Plan::FixAttrs
            ),
            _ => true,
        }
    }

    /// Syncs one big file queued by its folder, records it in the cache,
    /// and releases the folder.
    fn sync_big(&mut self, task: FileTask) {
        let rel = join_rel(&task.dir_rel, task.name.to_bytes());
        let synced = self.sync_file(
            task.src.as_fd(),
            Some(task.dst.as_fd()),
            &rel,
            &task.name,
            &task.src_meta,
            task.dst_meta.as_ref(),
            task.old.as_ref(),
        );
        if task.leads {
            self.leader_done(&task.src_meta, &rel, synced.as_ref());
        }
        if let Some(Synced {
            entry: Some(entry), ..
        }) = synced
        {
            self.record(&task.dir_rel, &task.name, entry);
        }
        self.release(Some(task.node));
    }

    /// Records a file's cache entry from outside its folder's own work (a
    /// big-file job, a hard link made for a waiting name).
    fn record(&self, dir_rel: &[u8], name: &CStr, entry: Entry) {
        let mut cache = self.shared.cache.lock().expect("cache poisoned");
        let mut dir = cache.take_dir(dir_rel);
        dir.insert(name.to_bytes(), entry);
        cache.put_dir(dir_rel, dir);
    }

    /// Makes sure the replica has a real folder (not a file or a symlink)
    /// where the source has one. Returns whether it was created now, or
    /// `None` when that failed.
    fn ensure_dir(
        &mut self,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        dst_meta: Option<&Meta>,
    ) -> Option<bool> {
        if dst_meta.is_some_and(|m| m.kind == Kind::Dir) {
            return Some(false);
        }
        let Some(dst) = dst else {
            // Dry run below a folder that does not exist yet.
            self.ctx.action("created folder", rel, format_args!(""));
            self.counts.created_dirs += 1;
            return Some(true);
        };
        if let Some(m) = dst_meta {
            if !self.remove_entry(dst, rel, name, m) {
                return None;
            }
        }
        if !self.ctx.options.dry_run {
            if let Err(e) = fsops::make_dir(dst, name) {
                self.op_error(rel, &e);
                return None;
            }
        }
        self.ctx.action("created folder", rel, format_args!(""));
        self.counts.created_dirs += 1;
        Some(true)
    }

    /// The missing-mount guard: a source root that is empty while its
    /// replica is not is far more often an unmounted disk or share than a
    /// user who deleted everything, so the pass refuses to wipe the replica
    /// unless `--allow-empty-source` says it is meant.
    fn source_vanished(&mut self, src: &[fsops::Entry], dst: &[fsops::Entry]) -> bool {
        if self.ctx.options.allow_empty_source || !src.is_empty() {
            return false;
        }
        let kept = dst
            .iter()
            .filter(|d| !fsops::is_temp_name(d.name.to_bytes()))
            .count();
        if kept == 0 {
            return false;
        }
        self.error_line(format_args!(
            "source folder {} is empty but its replica holds {kept} entries: nothing deleted in this pass \
             (is a disk or share unmounted?). Once the source is back, the next pass syncs as usual; \
             if the source really is meant to be empty, run with --allow-empty-source",
            self.ctx.spec.source.display()
        ));
        true
    }

    /// Whether `--max-delete` lets the entry at `rel` (holding `entries`,
    /// asked only when counting) be removed now.
    fn may_delete(&mut self, rel: &[u8], entries: impl FnOnce() -> u64) -> bool {
        match self.shared.deletions.ask(rel, entries) {
            Verdict::Remove => true,
            Verdict::Held => {
                self.ctx.log_debug(format_args!(
                    "removal of {} held until the pass has counted them all",
                    display_path(rel)
                ));
                false
            }
            Verdict::Refused { first } => {
                if first {
                    let limit = self.ctx.options.max_delete.unwrap_or(0);
                    self.error_line(format_args!(
                        "--max-delete {limit} reached: the source changed while the pass ran, and further deletions are skipped in this pass"
                    ));
                }
                false
            }
        }
    }

    /// Opens a replica sub-folder, entering it even when it is mode 000.
    fn open_replica_dir(&self, parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
        if self.ctx.options.dry_run {
            fsops::open_dir_at(parent, name)
        } else {
            fsops::open_dir_writable(parent, name)
        }
    }

    /// Brings one regular file over; `None` when that failed (logged).
    #[allow(clippy::too_many_arguments)]
    fn sync_file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
        old: Option<&Entry>,
    ) -> Option<Synced> {
        let dry_run = self.ctx.options.dry_run;
        let replica_file = d.filter(|d| d.kind == Kind::File);
        let (plan, digest) = match (dst, replica_file) {
            (Some(dst), Some(d)) => match self.resolve_plan(src, dst, rel, name, s, d, old) {
                Ok(decided) => decided,
                Err(e) => {
                    self.op_error(rel, &e);
                    return None;
                }
            },
            _ => (Plan::Copy, None),
        };
        match plan {
            Plan::Skip => {
                let d = replica_file.expect("a skipped file has a replica");
                Some(Synced {
                    entry: Some(Entry::new(
                        s,
                        d,
                        digest.or(old.and_then(|e| e.digest)),
                        self.shared.now,
                    )),
                    replica: Some(*d),
                })
            }
            Plan::FixAttrs => {
                let d = replica_file.expect("a file with attrs to fix has a replica");
                let caps = self.caps();
                let what = attr_change(s, d, &caps);
                if dry_run {
                    self.ctx.action("touched", rel, format_args!(" ({what})"));
                    self.counts.touched += 1;
                    return Some(Synced {
                        entry: old.copied(),
                        replica: Some(*d),
                    });
                }
                let dst = dst.expect("not a dry run");
                match fsops::set_file_attrs(dst, name, s.mode, s.mtime, &caps) {
                    Ok(after) => {
                        self.ctx.action("touched", rel, format_args!(" ({what})"));
                        self.counts.touched += 1;
                        Some(Synced {
                            entry: Some(Entry::new(s, &after, digest, self.shared.now)),
                            replica: Some(after),
                        })
                    }
                    Err(e) => {
                        self.op_error(rel, &e);
                        None
                    }
                }
            }
            _ => self.copy(src, dst, rel, name, s, d),
        }
    }

    /// Whether digests are worth their CPU: only when a cache outlives the
    /// pass and consults them (`--checksum` compares bytes every time).
    fn digests_wanted(&self) -> bool {
        self.ctx.lasting_cache && !self.ctx.options.checksum
    }

    /// Whether a file's bytes are hashed as they pass through: when digests
    /// are wanted, for files small enough that hashing them costs less than
    /// looking at them again later.
    fn hash_inline(&self, size: u64) -> bool {
        self.digests_wanted() && size < BIG_FILE
    }

    /// Notes a big file whose bytes were just read or written without a
    /// digest, for [`crate::digests::fill`] to hash from the replica after
    /// the pass, while its pages are still in memory.
    fn hash_later(&self, rel: &[u8]) {
        if self.digests_wanted() && !self.ctx.options.dry_run {
            self.shared
                .unhashed
                .lock()
                .expect("unhashed poisoned")
                .push(Unhashed { rel: rel.to_vec() });
        }
    }

    /// Reads file data where the metadata alone cannot settle the plan.
    /// Returns the final plan and the digest of the source bytes if known.
    #[allow(clippy::too_many_arguments)]
    fn resolve_plan(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: &Meta,
        old: Option<&Entry>,
    ) -> Result<(Plan, Option<Digest>), OpError> {
        let checksum = self.ctx.options.checksum;
        let caps = self.caps();
        Ok(match plan_file(s, d, old, checksum, &caps) {
            Plan::HashSource(known) => {
                let digest = fsops::hash_file(src, name, &mut self.bufs)?;
                (after_compare(digest == known, s, d, &caps), Some(digest))
            }
            Plan::HashReplica(known) => {
                let digest = fsops::hash_file(dst, name, &mut self.bufs)?;
                (after_compare(digest == known, s, d, &caps), Some(known))
            }
            Plan::CompareBoth => {
                let hash = self.hash_inline(s.size);
                match fsops::compare_files(src, dst, name, hash, &mut self.bufs)? {
                    Compared::Equal(digest) => {
                        if digest.is_none() {
                            self.hash_later(rel);
                        }
                        (after_compare(true, s, d, &caps), digest)
                    }
                    Compared::Different => (Plan::Copy, None),
                }
            }
            settled => (settled, None),
        })
    }

    fn copy(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
    ) -> Option<Synced> {
        let verb = if d.is_some_and(|d| d.kind == Kind::File) {
            "updated"
        } else {
            "copied"
        };
        let count = |c: &mut Counts| {
            if verb == "updated" {
                c.updated += 1
            } else {
                c.copied += 1
            }
        };
        let Some(dst) = dst.filter(|_| !self.ctx.options.dry_run) else {
            self.ctx
                .action(verb, rel, format_args!(" ({} bytes)", s.size));
            count(&mut self.counts);
            return Some(Synced {
                entry: None,
                replica: None,
            });
        };
        // A folder in the way cannot be renamed over; anything else can.
        if let Some(d) = d.filter(|d| d.kind == Kind::Dir) {
            if !self.remove_entry(dst, rel, name, d) {
                return None;
            }
        }
        let cancel = self.ctx.cancel;
        match fsops::copy_file(
            src,
            dst,
            name,
            self.hash_inline(s.size),
            self.ctx.options.fsync,
            &self.caps(),
            &|| cancel.is_set(),
            &mut self.bufs,
        ) {
            Ok(Copied::Done { digest, src, dst }) => {
                self.ctx
                    .action(verb, rel, format_args!(" ({} bytes)", dst.size));
                count(&mut self.counts);
                self.counts.bytes += dst.size;
                if digest.is_none() {
                    self.hash_later(rel);
                }
                Some(Synced {
                    entry: Some(Entry::new(&src, &dst, digest, self.shared.now)),
                    replica: Some(dst),
                })
            }
            Ok(Copied::SourceChanged) => {
                self.counts.errors += 1;
                self.ctx.warn_line(format_args!(
                    "error {}: changed while being copied; the replica keeps its previous version, the next pass copies it again",
                    display_path(rel)
                ));
                None
            }
            Ok(Copied::Cancelled) => None,
            Err(e) => {
                self.op_error(rel, &e);
                None
            }
        }
    }

    /// Brings one symlink over: same target text and same mtime, never
    /// followed.
    fn sync_symlink(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
    ) {
        let caps = self.caps();
        if !caps.symlinks {
            // Said once when the replica was probed. Whatever the replica
            // has in its place, the source does not have.
            if let (Some(dst), Some(d)) = (dst, d) {
                if !self.remove_entry(dst, rel, name, d) {
                    return;
                }
            }
            self.counts.skipped += 1;
            self.ctx.log_debug(format_args!(
                "skipped {} (symlink; the replica's file system has none)",
                display_path(rel)
            ));
            return;
        }
        let target = match fsops::read_link(src, name) {
            Ok(t) => t,
            Err(e) => {
                self.error(rel, "read link", &e, "replica copy kept");
                return;
            }
        };
        if let (Some(dst), Some(d)) = (dst, d.filter(|d| d.kind == Kind::Symlink)) {
            let read = fsops::read_link(dst, name).ok();
            let read = read.as_ref().map(|t| t.as_bytes());
            if caps.same_link_target(read, d.size, target.as_bytes()) {
                if !caps.same_link_mtime(d.mtime, s.mtime) {
                    if !self.ctx.options.dry_run {
                        if let Err(e) = fsops::set_link_mtime(dst, name, s.mtime) {
                            self.op_error(rel, &e);
                            return;
                        }
                    }
                    self.ctx.action("touched", rel, format_args!(" (mtime)"));
                    self.counts.touched += 1;
                }
                return;
            }
        }
        let shown = display_path(target.as_bytes());
        if let Some(dst) = dst.filter(|_| !self.ctx.options.dry_run) {
            if let Some(d) = d.filter(|d| d.kind == Kind::Dir) {
                if !self.remove_entry(dst, rel, name, d) {
                    return;
                }
            }
            let mtime = caps.link_times.then_some(s.mtime);
            if let Err(e) = fsops::make_symlink(dst, name, &target, mtime) {
                self.op_error(rel, &e);
                return;
            }
        }
        self.ctx.action("linked", rel, format_args!(" -> {shown}"));
        self.counts.linked += 1;
    }

    /// Removes a replica entry the source does not have.
    fn remove_extra(&mut self, dst: BorrowedFd<'_>, dir_rel: &[u8], d: &fsops::Entry) {
        let rel = join_rel(dir_rel, d.name.to_bytes());
        let meta = match &d.meta {
            Ok(meta) => *meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.error(&rel, "stat replica", e, "not removed");
                return;
            }
        };
        // Links too: a link being made, or a probe's, when the process
        // was killed.
        if matches!(meta.kind, Kind::File | Kind::Symlink) && fsops::is_temp_name(d.name.to_bytes())
        {
            if !self.ctx.options.dry_run {
                if let Err(e) = fsops::remove_file(dst, &d.name) {
                    self.op_error(&rel, &e);
                    return;
                }
            }
            self.ctx
                .action("removed stale temporary file", &rel, format_args!(""));
            return;
        }
        self.remove_entry(dst, &rel, &d.name, &meta);
    }

    /// Removes a replica entry of any kind, logging each thing removed.
    /// Returns false when that failed.
    fn remove_entry(&mut self, dst: BorrowedFd<'_>, rel: &[u8], name: &CStr, meta: &Meta) -> bool {
        let dry_run = self.ctx.options.dry_run;
        if meta.kind == Kind::Dir && self.shared.deletions.mode() == Mode::Count {
            // Counted whole; removed entry by entry in the second walk.
            return self.may_delete(rel, || deletions::count_tree(dst, name));
        }
        if meta.kind != Kind::Dir {
            if !self.may_delete(rel, || 1) {
                return false;
            }
            if !dry_run {
                if let Err(e) = fsops::remove_file(dst, name) {
                    self.op_error(rel, &e);
                    return false;
                }
            }
            let verb = if meta.kind == Kind::Symlink {
                "removed link"
            } else {
                "removed file"
            };
            self.ctx.action(verb, rel, format_args!(""));
            self.counts.removed_files += 1;
            return true;
        }
        if dry_run {
            if !self.may_delete(rel, || 1) {
                return false;
            }
            self.ctx.action(
                "removed folder",
                rel,
                format_args!(" (and everything in it)"),
            );
            self.counts.removed_dirs += 1;
            return true;
        }
        let parent = &rel[..rel.len() - name.to_bytes().len()];
        let parent = parent.strip_suffix(b"/").unwrap_or(parent);
        let result = fsops::remove_tree(dst, name, &mut TreeRemoval { pass: self, parent });
        match result {
            Ok(finished) => finished,
            Err(e) => {
                self.op_error(rel, &e);
                false
            }
        }
    }

    /// Sets a replica folder's mode and mtime once its contents are done.
    /// A mode change is logged only for a folder that existed before.
    fn finish_dir(&mut self, dst: &OwnedFd, rel: &[u8], s: &Meta, found_mode: Option<u32>) {
        if self.ctx.options.dry_run {
            return;
        }
        let caps = self.caps();
        if let Err(e) = fsops::set_fd_attrs(dst.as_fd(), s.mode, s.mtime, &caps) {
            self.op_error(rel, &e);
            return;
        }
        if found_mode.is_some_and(|m| !caps.same_mode(m, s.mode)) {
            self.ctx
                .action("touched", rel, format_args!(" (mode {:o})", s.mode));
            self.counts.touched += 1;
        }
    }

    fn error(&mut self, rel: &[u8], op: &str, e: &io::Error, consequence: &str) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {}: {op}: {e}; {consequence}", self.ctx.id, display_path(rel));
    }

    fn op_error(&mut self, rel: &[u8], e: &OpError) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {}: {e}", self.ctx.id, display_path(rel));
    }

    fn error_line(&mut self, msg: std::fmt::Arguments<'_>) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {msg}", self.ctx.id);
    }
}

/// The pass's summary line.
///
/// A pass that found nothing to do logs its summary at debug level: the log
/// file still gets it, but a console left open on the menu is not filled
/// with a line every interval (use `-v` to see them).
fn log_summary(ctx: &PassContext<'_>, r: &PassReport) {
    let c = &r.counts;
    let how = match r.outcome {
        Outcome::Finished => "pass finished",
        Outcome::Stopped => "pass stopped",
        Outcome::Failed => "pass failed",
    };
    let quiet = Counts {
        checked: c.checked,
        skipped: c.skipped,
        ..Counts::default()
    };
    let level = if r.outcome == Outcome::Finished && *c == quiet {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        target: ctx.target,
        level,
        "pair {}: {}{how} in {:.3} s: {} checked, {} copied, {} updated, {} touched, {} linked, {} folders created, {} files and {} folders removed, {} skipped, {} errors, {} bytes written",
        ctx.id,
        ctx.prefix(),
        r.duration.as_secs_f64(),
        c.checked,
        c.copied,
        c.updated,
        c.touched,
        c.linked,
        c.created_dirs,
        c.removed_files,
        c.removed_dirs,
        c.skipped,
        c.errors,
        c.bytes
    );
}

/// Logs and counts each entry of a replica folder being removed, within
/// `--max-delete`.
struct TreeRemoval<'p, 's, 'a> {
    pass: &'p mut Walker<'s, 'a>,
    /// Relative path of the folder the removed tree is in.
    parent: &'p [u8],
}

impl fsops::RemovalObserver for TreeRemoval<'_, '_, '_> {
    fn may_remove(&mut self) -> bool {
        self.pass.may_delete(self.parent, || 1)
    }

    fn removed(&mut self, rel: &[u8], is_dir: bool) {
        let path = join_rel(self.parent, rel);
        if is_dir {
            self.pass.counts.removed_dirs += 1;
            self.pass
                .ctx
                .action("removed folder", &path, format_args!(""));
        } else {
            self.pass.counts.removed_files += 1;
            self.pass
                .ctx
                .action("removed file", &path, format_args!(""));
        }
    }
}

/// Says which attributes of a replica file differ from its source.
fn attr_change(s: &Meta, d: &Meta, caps: &Caps) -> String {
    match (
        !caps.same_mtime(s.mtime, d.mtime),
        !caps.same_mode(s.mode, d.mode),
    ) {
        (true, true) => format!("mtime, mode {:o}", s.mode),
        (false, true) => format!("mode {:o}", s.mode),
        _ => "mtime".into(),
    }
}

/// The pair's knowledge of its file systems, for this worker's turn.
fn lock_mounts<'a>(ctx: &'a PassContext<'_>) -> std::sync::MutexGuard<'a, Mounts> {
    ctx.mounts.lock().expect("mounts poisoned")
}

/// Pairs up two name-sorted listings by name.
fn merge(
    src: Vec<fsops::Entry>,
    dst: Vec<fsops::Entry>,
) -> Vec<(Option<fsops::Entry>, Option<fsops::Entry>)> {
    let mut out = Vec::with_capacity(src.len().max(dst.len()));
    let mut src = src.into_iter().peekable();
    let mut dst = dst.into_iter().peekable();
    loop {
        let order = match (src.peek(), dst.peek()) {
            (None, None) => return out,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(s), Some(d)) => s.name.as_bytes().cmp(d.name.as_bytes()),
        };
        out.push(match order {
            std::cmp::Ordering::Less => (src.next(), None),
            std::cmp::Ordering::Greater => (None, dst.next()),
            std::cmp::Ordering::Equal => (src.next(), dst.next()),
        });
    }
}
