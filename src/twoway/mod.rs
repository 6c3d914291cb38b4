//! Two-way sync: both folders are edited, and each pass brings every
//! change made on one side to the other, as a pipeline whose steps are
//! modules:
//!
//! - [`scan`]: both sides walked at once, each into a list in tree order.
//! - [`archive`]: what both sides held after the last sync (SQLite, in the
//!   pair's state file).
//! - [`reconcile`]: the pure planner, per path, from those three; the
//!   bytes of two files are compared first where it needs to know.
//! - [`apply`]: doing it, re-checking each target right before it is
//!   touched, and recording each result once done; conflict copies are
//!   named by [`conflict`].
//! - [`report`]: the log lines and the summary.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::fsops::{self, Buffers, Compared};
use crate::logging::display_root;
use crate::mounts::{Caps, Note};
use crate::pair::PairContext;
use crate::replica_lock::ReplicaLock;
use crate::state::PairState;
use crate::status::{Counts, Outcome, PassReport};

mod apply;
mod archive;
mod conflict;
pub mod reconcile;
mod report;
mod scan;

use apply::Apply;
use archive::{Archive, Recorded};
use reconcile::{Action, Row, Side, parent};
use report::Log;
use scan::{Scan, tree_order};

/// What a two-way pair keeps from pass to pass.
pub struct TwoWay {
    /// The pair's state file, where the archive is.
    state: Option<PairState>,
    /// Keeps other processes out of the source folder, which this pair
    /// writes too.
    source_lock: ReplicaLock,
    /// What the source's file system keeps, probed at the first pass that
    /// may write.
    source_caps: Option<Caps>,
}

impl TwoWay {
    pub fn new(state: Option<PairState>) -> TwoWay {
        TwoWay {
            state,
            source_lock: ReplicaLock::default(),
            source_caps: None,
        }
    }

    /// Runs one pass. `approved`: removals over `--max-delete` go ahead.
    pub fn pass(
        &mut self,
        ctx: &PairContext<'_>,
        approved: bool,
        progress: &mut (dyn FnMut(&Counts) + Send),
    ) -> PassReport {
        let started = Instant::now();
        let mut log = Log::new(ctx);
        // A panic ends this pass with an error; the pair, and the program,
        // go on (what was done is done, and recorded up to the last batch).
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(ctx, approved, &mut log, progress)
        }));
        let (outcome, held) = ran.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            log.pass_error(format_args!(
                "internal: the two-way pass panicked ({why}); it ended there. Please report this"
            ));
            (Outcome::Failed, 0)
        });
        self.source_lock.end_pass();
        let report = PassReport {
            outcome,
            counts: log.counts,
            duration: started.elapsed(),
            held_deletions: held,
        };
        log.summary(&report);
        report
    }

    fn run(
        &mut self,
        ctx: &PairContext<'_>,
        approved: bool,
        log: &mut Log<'_>,
        progress: &mut (dyn FnMut(&Counts) + Send),
    ) -> (Outcome, u64) {
        let spec = ctx.spec;
        let dry_run = ctx.options.dry_run;
        let Some(state) = self.state.as_mut() else {
            log.pass_error(format_args!(
                "a two-way pair needs a state folder for its archive; nothing changed"
            ));
            return (Outcome::Failed, 0);
        };
        let mut archive = match Archive::open(state, dry_run) {
            Ok(archive) => archive,
            Err(e) => {
                log.pass_error(format_args!("{e}; nothing changed on either side"));
                return (Outcome::Failed, 0);
            }
        };
        let recorded = match archive.load() {
            Ok(rows) => rows,
            Err(e) => {
                log.pass_error(format_args!(
                    "reading the archive: {e}; nothing changed on either side"
                ));
                return (Outcome::Failed, 0);
            }
        };
        let Some(roots) = open_roots(ctx, &self.source_lock, !recorded.is_empty(), log) else {
            return (Outcome::Failed, 0);
        };
        let b_caps = match roots.b.as_ref() {
            Some(b) => {
                let checked = lock_mounts(ctx).check_replica(b.as_fd(), !dry_run);
                match checked {
                    Ok(replica) => {
                        for note in replica.notes {
                            if let Note::Limits(what) = note {
                                log.info(format_args!(
                                    "replica folder {} {what}",
                                    display_root(&spec.replica)
                                ));
                            }
                        }
                        replica.caps
                    }
                    Err(e) => {
                        log.pass_error(format_args!(
                            "replica folder {} {e}",
                            display_root(&spec.replica)
                        ));
                        return (Outcome::Failed, 0);
                    }
                }
            }
            None => Caps::EXACT,
        };
        let a_caps = if dry_run {
            Caps::EXACT
        } else {
            *self.source_caps.get_or_insert_with(|| {
                crate::mounts::probe(roots.a.as_fd()).map_or(Caps::EXACT, |(caps, _)| caps)
            })
        };
        let excludes = {
            let mut pair = ctx.excludes.lock().expect("excludes poisoned");
            if let Err(e) = pair.refresh() {
                log.pass_error(format_args!("{e}; the patterns read before stay in force"));
            }
            pair.matcher()
        };

        // Both sides at once: on two disks, or a disk and a share, each
        // waits on its own.
        let (sa, sb) = std::thread::scope(|s| {
            let b = s.spawn(|| {
                roots
                    .b
                    .as_ref()
                    .map(|b| scan::scan(b.as_fd(), &excludes, ctx.cancel))
                    .unwrap_or_default()
            });
            let a = scan::scan(roots.a.as_fd(), &excludes, ctx.cancel);
            (a, b.join())
        });
        let Ok(sb) = sb else {
            log.pass_error(format_args!(
                "internal: the scan of the replica panicked; nothing changed. Please report this"
            ));
            return (Outcome::Failed, 0);
        };
        let stable = [
            scan::stable_inodes(roots.a.as_fd()),
            roots
                .b
                .as_ref()
                .is_none_or(|b| scan::stable_inodes(b.as_fd())),
        ];
        let (mut sa, mut sb) = (sa, sb);
        for (scan, stable) in [(&mut sa, stable[0]), (&mut sb, stable[1])] {
            if !stable {
                // Compared as 0 = 0 against the archive, which keeps 0 too.
                scan.entries.iter_mut().for_each(|(_, s)| s.ino = 0);
            }
        }
        if sa.stopped || sb.stopped || ctx.cancel.is_set() {
            return (Outcome::Stopped, 0);
        }
        for (scan, side) in [(&sa, Side::A), (&sb, Side::B)] {
            for (path, op, e) in &scan.errors {
                log.scan_error(path, side, op, e);
            }
            for (path, kind) in &scan.special {
                log.special(path, side, kind);
            }
        }
        if !recorded.is_empty() && !ctx.options.allow_empty_source {
            for (scan, root, name) in [
                (&sa, &spec.source, "source"),
                (&sb, &spec.replica, "replica"),
            ] {
                if scan.entries.is_empty() && scan.unknown.is_empty() {
                    log.pass_error(format_args!(
                        "{name} folder {} is empty, while the last sync left {} entries in it: is its disk unmounted? \
                         Nothing was deleted on either side; --allow-empty-source syncs it anyway, deleting them on the other side",
                        display_root(root),
                        recorded.len()
                    ));
                    return (Outcome::Failed, 0);
                }
            }
        }

        let mut rows = merge(recorded, sa, sb);
        compare(ctx, &roots, &mut rows, log);
        reconcile::plan(&mut rows);
        let held = hold_deletions(ctx, &mut rows, approved, log);
        pause_test_hook();

        let mut apply = Apply::new(
            ctx,
            [Some(&roots.a), roots.b.as_ref()],
            [a_caps, b_caps],
            &mut archive,
            Log::new(ctx),
        );
        apply.stable_inodes = stable;
        let mut outcome = Outcome::Finished;
        for (i, row) in rows.iter().enumerate() {
            if ctx.cancel.is_set() {
                outcome = Outcome::Stopped;
                break;
            }
            crate::pass::crash_test_hook(&row.path);
            apply.row(row);
            if i % 1024 == 1023 {
                let mut counts = apply.counts();
                counts.checked = i as u64 + 1;
                progress(&counts);
            }
        }
        apply.finish();
        let mut counts = apply.counts();
        counts.checked = rows.len() as u64;
        log.counts.add(&counts);
        if outcome == Outcome::Finished && !dry_run {
            let b_dev = roots.b.as_ref().and_then(|b| fsops::device(b.as_fd()).ok());
            lock_mounts(ctx).passed(b_dev);
        }
        (outcome, held)
    }
}

fn lock_mounts<'a>(ctx: &'a PairContext<'_>) -> std::sync::MutexGuard<'a, crate::mounts::Mounts> {
    ctx.mounts.lock().expect("mounts poisoned")
}

/// Both roots, open and locked.
struct Roots {
    a: OwnedFd,
    /// `None` only in a dry run whose replica does not exist yet.
    b: Option<OwnedFd>,
}

/// Opens the source, and the replica (created at a first sync); checks
/// their devices against earlier passes and locks both against other
/// processes. `had_entries`: the archive is not empty, so a missing side
/// is a vanished disk, not a new pair.
fn open_roots(
    ctx: &PairContext<'_>,
    source_lock: &ReplicaLock,
    had_entries: bool,
    log: &mut Log<'_>,
) -> Option<Roots> {
    let spec = ctx.spec;
    let dry_run = ctx.options.dry_run;
    let a = match fsops::open_root(&spec.source).and_then(|fd| {
        let dev = fsops::stat_fd(fd.as_fd())?.dev;
        Ok((fd, dev))
    }) {
        Ok(a) => a,
        Err(e) => {
            log.pass_error(format_args!(
                "source folder {} unavailable: {e}; nothing changed on either side",
                display_root(&spec.source)
            ));
            return None;
        }
    };
    if let Err(e) = lock_mounts(ctx).check_source(a.1) {
        log.pass_error(format_args!(
            "source folder {} {e}",
            display_root(&spec.source)
        ));
        return None;
    }
    let b = match fsops::open_root(&spec.replica) {
        Ok(fd) => Some(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !had_entries => {
            let parent_dev = spec
                .replica
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
            if let Err(e) = lock_mounts(ctx).check_replica_missing(parent_dev) {
                log.pass_error(format_args!(
                    "replica folder {} {e}",
                    display_root(&spec.replica)
                ));
                return None;
            }
            if dry_run {
                None
            } else {
                if let Err(e) = ctx.replica_lock.hold_ancestors(&spec.replica) {
                    log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
                    return None;
                }
                match std::fs::create_dir(&spec.replica)
                    .and_then(|()| fsops::open_root(&spec.replica))
                {
                    Ok(fd) => {
                        log.info(format_args!(
                            "created replica folder {}",
                            display_root(&spec.replica)
                        ));
                        Some(fd)
                    }
                    Err(e) => {
                        log.pass_error(format_args!(
                            "cannot create replica folder {}: {e}",
                            display_root(&spec.replica)
                        ));
                        return None;
                    }
                }
            }
        }
        Err(e) => {
            let why = if e.kind() == io::ErrorKind::NotFound {
                "is missing, while the last sync left entries in it: is its disk unmounted? Nothing was deleted in the source".to_string()
            } else {
                format!("unavailable: {e}; nothing changed on either side")
            };
            log.pass_error(format_args!(
                "replica folder {} {why}",
                display_root(&spec.replica)
            ));
            return None;
        }
    };
    let locked = b
        .as_ref()
        .map_or(Ok(()), |b| ctx.replica_lock.hold(b, &spec.replica, dry_run))
        .and_then(|()| source_lock.hold(&a.0, &spec.source, dry_run));
    if let Err(e) = locked {
        log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
        return None;
    }
    Some(Roots { a: a.0, b })
}

/// The archive's entries and both scans, merged path by path in tree
/// order; paths under anything a scan could not read are left out, so
/// nothing is done there on either side.
fn merge(recorded: Vec<Recorded>, sa: Scan, sb: Scan) -> Vec<Row> {
    let unknown: HashSet<Box<[u8]>> = sa.unknown.into_iter().chain(sb.unknown).collect();
    let mut rec = recorded.into_iter().peekable();
    let mut a = sa.entries.into_iter().peekable();
    let mut b = sb.entries.into_iter().peekable();
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    loop {
        let next = [
            rec.peek().map(|(p, _)| p),
            a.peek().map(|(p, _)| p),
            b.peek().map(|(p, _)| p),
        ]
        .into_iter()
        .flatten()
        .min_by(|x, y| tree_order(x, y))
        .cloned();
        let Some(path) = next else { break };
        let take_rec = rec.next_if(|(p, _)| *p == path).map(|(_, r)| r);
        let take_a = a.next_if(|(p, _)| *p == path).map(|(_, s)| s);
        let take_b = b.next_if(|(p, _)| *p == path).map(|(_, s)| s);
        if !unknown.is_empty() && under_unknown(&path, &unknown) {
            continue;
        }
        rows.push(Row {
            path,
            rec: take_rec,
            a: take_a,
            b: take_b,
            same: None,
            action: Action::Keep,
        });
    }
    rows
}

/// Whether `path` or a folder above it is unknown.
fn under_unknown(path: &[u8], unknown: &HashSet<Box<[u8]>>) -> bool {
    let mut p = path;
    loop {
        if unknown.contains(p) {
            return true;
        }
        if p.is_empty() {
            return false;
        }
        p = parent(p);
    }
}

/// Reads both sides' bytes where the planner needs to know whether they
/// are the same, on `--jobs` threads. A row whose files cannot be read is
/// left alone (its action stays Keep, decided here by dropping it).
fn compare(ctx: &PairContext<'_>, roots: &Roots, rows: &mut Vec<Row>, log: &mut Log<'_>) {
    let Some(b_root) = roots.b.as_ref() else {
        return;
    };
    let wanted: Vec<usize> = (0..rows.len())
        .filter(|&i| reconcile::needs_compare(&rows[i], ctx.options.checksum))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let next = AtomicUsize::new(0);
    let jobs = crate::pair::jobs(&ctx.options, false).min(wanted.len());
    let rows_ref: &[Row] = rows;
    let results: Vec<Vec<(usize, Comparison)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut bufs = Buffers::default();
                    let mut dirs: Option<(Vec<u8>, OwnedFd, OwnedFd)> = None;
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = wanted.get(k) else { break };
                        if ctx.cancel.is_set() {
                            break;
                        }
                        let path = &rows_ref[i].path;
                        let result = compare_one(&roots.a, b_root, path, &mut dirs, &mut bufs);
                        out.push((i, result));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut unreadable = HashSet::new();
    for (i, result) in results.into_iter().flatten() {
        match result {
            Ok(same) => rows[i].same = Some(same),
            Err((side, e)) => {
                log.op_error(&rows[i].path, side, &e);
                unreadable.insert(i);
            }
        }
    }
    if !unreadable.is_empty() {
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            !unreadable.contains(&(i - 1))
        });
    }
}

/// Whether two files hold the same bytes, or why they could not be read.
type Comparison = Result<bool, (Side, fsops::OpError)>;

fn compare_one(
    a_root: &OwnedFd,
    b_root: &OwnedFd,
    path: &[u8],
    dirs: &mut Option<(Vec<u8>, OwnedFd, OwnedFd)>,
    bufs: &mut Buffers,
) -> Comparison {
    let dir = parent(path);
    if !matches!(dirs, Some((p, _, _)) if p.as_slice() == dir) {
        let open = |root: &OwnedFd, side: Side| {
            let mut fd = root.try_clone().map_err(|e| (side, op("open folder", e)))?;
            for name in dir.split(|&c| c == b'/').filter(|n| !n.is_empty()) {
                let name = std::ffi::CString::new(name)
                    .map_err(|e| (side, op("open folder", io::Error::other(e))))?;
                fd = fsops::open_dir_at(fd.as_fd(), &name)
                    .map_err(|e| (side, op("open folder", e)))?;
            }
            Ok(fd)
        };
        *dirs = Some((dir.to_vec(), open(a_root, Side::A)?, open(b_root, Side::B)?));
    }
    let (_, a, b) = dirs.as_ref().expect("opened above");
    let name = std::ffi::CString::new(&path[dir.len() + usize::from(!dir.is_empty())..])
        .expect("names from a listing hold no NUL");
    match fsops::compare_files(a.as_fd(), b.as_fd(), &name, false, bufs) {
        Ok(Compared::Equal(_)) => Ok(true),
        Ok(Compared::Different) => Ok(false),
        Err(e) => {
            let side = if e.op.contains("replica") {
                Side::B
            } else {
                Side::A
            };
            Err((side, e))
        }
    }
}

fn op(op: &'static str, err: io::Error) -> fsops::OpError {
    fsops::OpError { op, err }
}

/// `--max-delete`: when the plan removes more entries than allowed and the
/// user has not approved them, none are removed (the rest of the pass goes
/// on) and the pass says which. Returns how many were held.
fn hold_deletions(
    ctx: &PairContext<'_>,
    rows: &mut [Row],
    approved: bool,
    log: &mut Log<'_>,
) -> u64 {
    let Some(limit) = ctx.options.max_delete.filter(|_| !approved) else {
        return 0;
    };
    let removals: Vec<usize> = (0..rows.len())
        .filter(|&i| matches!(rows[i].action, Action::Delete { .. }))
        .collect();
    let count = removals.len() as u64;
    if count <= limit {
        return 0;
    }
    let mut named: Vec<String> = removals
        .iter()
        .take(5)
        .map(|&i| crate::logging::display_path(&rows[i].path))
        .collect();
    if count > 5 {
        named.push(format!("and {} more", count - 5));
    }
    for i in removals {
        rows[i].action = Action::Keep;
    }
    log.pass_error(format_args!(
        "this pass would remove {count} entries, more than --max-delete {limit}: {}; none were removed. \
         Approve them with menu option 6, or run once with a higher --max-delete",
        named.join(", ")
    ));
    count
}

/// Debug builds only: with `FOLDERSYNC_TEST_PAUSE_TWOWAY` set to a path,
/// the pass writes a file there once it has planned, and applies nothing
/// until that file is removed (60 s at most), so the tests can edit both
/// sides between the scan and the apply, deterministically (issue 13:
/// "anything that changes after it was examined in this pass is neither
/// propagated nor recorded").
fn pause_test_hook() {
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("FOLDERSYNC_TEST_PAUSE_TWOWAY") {
        let flag = std::path::PathBuf::from(flag);
        if std::fs::write(&flag, b"paused").is_ok() {
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            while flag.exists() && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}
