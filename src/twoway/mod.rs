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
use std::os::fd::AsFd;
use std::time::Instant;

use crate::fsops;
use crate::logging::display_root;
use crate::mounts::{Caps, Note};
use crate::pair::PairContext;
use crate::replica_lock::ReplicaLock;
use crate::state::PairState;
use crate::status::{Counts, Outcome, PassReport};

mod apply;
mod archive;
mod compare;
mod conflict;
mod excluded;
mod nested;
pub mod reconcile;
mod report;
mod roots;
mod scan;

use apply::Apply;
use archive::{Archive, Recorded};
use reconcile::{Action, Row, Side, What, parent};
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
            let why = crate::pass::panic_message(panic.as_ref());
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
        let recorded = match archive.count() {
            Ok(n) => n,
            Err(e) => {
                log.pass_error(format_args!(
                    "reading the archive: {e}; nothing changed on either side"
                ));
                return (Outcome::Failed, 0);
            }
        };
        // Before anything is written: the tag of this pass's temporaries,
        // and those of earlier passes whose leftovers the scan removes.
        let tags = match temp_tags(&mut archive) {
            Ok(tags) => tags,
            Err(e) => {
                log.pass_error(format_args!(
                    "pair state: {e}; nothing changed on either side"
                ));
                return (Outcome::Failed, 0);
            }
        };
        let _tagged = fsops::tag_temporaries(tags.1);
        let tags = tags.0;
        let Some(roots) = roots::open_roots(ctx, &self.source_lock, recorded > 0, log) else {
            return (Outcome::Failed, 0);
        };
        let b_caps = match roots.b.as_ref() {
            Some(b) => {
                let checked = crate::mounts::lock(ctx.mounts).check_replica(b.as_fd(), !dry_run);
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
                    .map(|b| scan::scan(b.as_fd(), &excludes, &tags, ctx.cancel))
                    .unwrap_or_default()
            });
            let a = scan::scan(roots.a.as_fd(), &excludes, &tags, ctx.cancel);
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
        if recorded > 0 && !ctx.options.allow_empty_source {
            for (scan, root, name) in [
                (&sa, &spec.source, "source"),
                (&sb, &spec.replica, "replica"),
            ] {
                if scan.entries.is_empty() && scan.unknown.is_empty() {
                    log.pass_error(format_args!(
                        "{name} folder {} is empty, while the last sync left {} entries in it: is its disk unmounted? \
                         Nothing was deleted on either side; --allow-empty-source syncs it anyway, deleting them on the other side",
                        display_root(root),
                        recorded
                    ));
                    return (Outcome::Failed, 0);
                }
            }
        }

        let devs = [
            fsops::device(roots.a.as_fd()).unwrap_or(0),
            roots
                .b
                .as_ref()
                .map_or(0, |b| fsops::device(b.as_fd()).unwrap_or(0)),
        ];
        nested::check(ctx, &mut archive, [&mut sa, &mut sb], devs, log);
        let stale = (std::mem::take(&mut sa.stale), std::mem::take(&mut sb.stale));
        let excluded = excluded::Excluded::new(
            std::mem::take(&mut sa.excluded),
            std::mem::take(&mut sb.excluded),
        );
        // Leftovers below what could not be read may still carry a tag.
        let whole_scans = sa.unknown.is_empty() && sb.unknown.is_empty();
        let mut rows = match archive.read_reverse(|recorded| merge(recorded, sa, sb)) {
            Ok(rows) => rows,
            Err(e) => {
                log.pass_error(format_args!(
                    "reading the archive: {e}; nothing changed on either side"
                ));
                return (Outcome::Failed, 0);
            }
        };
        compare::compare(ctx, &roots, &mut rows, log);
        reconcile::plan_with(&mut rows, &excluded);
        let held = hold_wipe(ctx, &rows_files(&rows), &mut rows, approved, log)
            + hold_deletions(ctx, &mut rows, approved, log);
        pause_test_hook();

        let mut apply = Apply::new(
            ctx,
            [Some(&roots.a), roots.b.as_ref()],
            [a_caps, b_caps],
            &mut archive,
            Log::new(ctx),
        );
        apply.stable_inodes = stable;
        apply.excluded = excluded;
        let mut stale_left = false;
        for (scan_stale, side) in [(&stale.0, Side::A), (&stale.1, Side::B)] {
            for path in scan_stale {
                stale_left |= !apply.remove_stale(side, path);
            }
        }
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
        if outcome == Outcome::Finished && whole_scans && !stale_left {
            // This pass's own temporaries were removed as it went.
            if let Err(e) = apply.archive.clear_temp_tags() {
                apply.log.state_error(&e);
            }
        }
        let mut counts = apply.counts();
        counts.checked = rows.len() as u64;
        log.counts.add(&counts);
        if outcome == Outcome::Finished && !dry_run {
            let b_dev = roots.b.as_ref().and_then(|b| fsops::device(b.as_fd()).ok());
            crate::mounts::lock(ctx.mounts).passed(b_dev);
        }
        (outcome, held)
    }
}

/// The tags of earlier passes' temporaries, with a new one for this pass
/// (recorded first, so that a kill at any later moment leaves nothing
/// the next pass cannot tell from a user's file); both in the set.
fn temp_tags(archive: &mut Archive<'_>) -> Result<(HashSet<u64>, u64), String> {
    let mut tags = archive.temp_tags()?;
    let tag = fsops::new_tag();
    archive.add_temp_tag(tag)?;
    tags.insert(tag);
    Ok((tags, tag))
}

/// The archive's entries and both scans, merged path by path in tree
/// order; paths under anything a scan could not read are left out, so
/// nothing is done there on either side.
///
/// The inputs are taken from their ends (the archive's straight from
/// SQLite, last first), and the scans' buffers are shrunk as the rows
/// grow, so the inputs and the rows are not all held at once (at 100,000
/// entries that was a third of the pass's peak memory).
fn merge(recorded: &mut dyn Iterator<Item = Recorded>, sa: Scan, sb: Scan) -> Vec<Row> {
    /// Rows between two shrinks of the inputs.
    const SHRINK_EVERY: usize = 4096;
    let unknown: HashSet<Box<[u8]>> = sa.unknown.into_iter().chain(sb.unknown).collect();
    let (mut a, mut b) = (sa.entries, sb.entries);
    let mut recorded = recorded.peekable();
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    let mut taken = 0usize;
    loop {
        // The last path in tree order, and where it is.
        let last = [
            recorded.peek().map(|(p, _)| p),
            a.last().map(|(p, _)| p),
            b.last().map(|(p, _)| p),
        ]
        .into_iter()
        .flatten()
        .max_by(|x, y| tree_order(x, y))
        .cloned();
        let Some(last) = last else { break };
        let last = &last;
        let (in_rec, in_a, in_b) = (
            recorded.peek().is_some_and(|(p, _)| p == last),
            a.last().is_some_and(|(p, _)| p == last),
            b.last().is_some_and(|(p, _)| p == last),
        );
        // The path is kept from the first list that holds it.
        let mut path = None;
        let take_rec = in_rec
            .then(|| recorded.next().expect("peeked"))
            .map(|(p, r)| {
                path = Some(p);
                r
            });
        let take_a = in_a.then(|| a.pop().expect("last")).map(|(p, s)| {
            path.get_or_insert(p);
            s
        });
        let take_b = in_b.then(|| b.pop().expect("last")).map(|(p, s)| {
            path.get_or_insert(p);
            s
        });
        let path = path.expect("taken from one of them");
        taken += 1;
        if taken % SHRINK_EVERY == 0 {
            a.shrink_to_fit();
            b.shrink_to_fit();
        }
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
    rows.reverse();
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

/// How many files the archive recorded, and how many each side holds now
/// (`.foldersyncignore` files left out: one left on an emptied side says
/// nothing about the rest).
fn rows_files(rows: &[Row]) -> [u64; 3] {
    let mut n = [0u64; 3];
    let ignore_file =
        |p: &[u8]| p.rsplit(|&c| c == b'/').next() == Some(crate::excludes::IGNORE_FILE.as_bytes());
    for row in rows.iter().filter(|r| !ignore_file(&r.path)) {
        let file = |what: Option<What>| u64::from(what == Some(What::File));
        n[0] += file(row.rec.as_ref().map(|r| r.what));
        n[1] += file(row.a.as_ref().map(|s| s.what));
        n[2] += file(row.b.as_ref().map(|s| s.what));
    }
    n
}

/// The emptied-side guard: a side that holds none of the files the last
/// sync left (its folders may be left, as `find -type f -delete` leaves
/// them) is far more often a mistake or a half-gone disk than a wish, so
/// nothing is deleted on the other side until the user approves it (menu
/// option 6) or runs with `--allow-empty-source`. The rest of the pass
/// goes on. Returns how many removals were held.
fn hold_wipe(
    ctx: &PairContext<'_>,
    files: &[u64; 3],
    rows: &mut [Row],
    approved: bool,
    log: &mut Log<'_>,
) -> u64 {
    let [recorded, on_a, on_b] = *files;
    if approved || ctx.options.allow_empty_source || recorded == 0 {
        return 0;
    }
    let mut held = 0;
    for (emptied, left, other) in [(Side::A, on_a, Side::B), (Side::B, on_b, Side::A)] {
        if left > 0 {
            continue;
        }
        let mut count = 0u64;
        for row in rows.iter_mut() {
            if row.action == (Action::Delete { on: other }) {
                row.action = Action::Keep;
                count += 1;
            }
        }
        if count == 0 {
            continue;
        }
        let (name, root) = match emptied {
            Side::A => ("source", &ctx.spec.source),
            Side::B => ("replica", &ctx.spec.replica),
        };
        log.pass_error(format_args!(
            "{name} folder {} holds none of the files the last sync left in it ({recorded}): were they deleted by mistake, \
             or is part of its disk gone? None of the {count} entries this would remove on the other side were removed. \
             Approve the removals with menu option 6, or run once with --allow-empty-source",
            display_root(root)
        ));
        held += count;
    }
    held
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
