//! Two-way sync: both folders are edited, and each pass brings every
//! change made on one side to the other, as a pipeline whose steps are
//! modules:
//!
//! - [`scan`]: both sides walked at once, each into a list in tree order.
//! - [`archive`]: what both sides held after the last sync (SQLite, in the
//!   pair's state file).
//! - [`merge`]: the archive and both scans, one row a path.
//! - [`reconcile`]: the pure planner, per path, from those three; the
//!   bytes of two files are compared first where it needs to know
//!   ([`compare`]); [`holds`] keeps back removals the user must approve.
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
mod holds;
mod merge;
mod nested;
pub mod reconcile;
mod report;
mod roots;
mod row;
mod scan;

use apply::Apply;
use archive::Archive;
use report::Log;
use row::{Row, Side};
use scan::Scan;

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
    /// The tag of the running pass's temporaries, once recorded.
    tag: Option<u64>,
}

impl TwoWay {
    pub fn new(state: Option<PairState>) -> TwoWay {
        TwoWay {
            state,
            source_lock: ReplicaLock::default(),
            source_caps: None,
            tag: None,
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
        if ran.is_ok() {
            // However it ended, the pass dropped its temporaries: its tag
            // goes, so only kills, never failing passes, add tags.
            self.forget_tag(&mut log);
        }
        let (outcome, held) = match ran {
            Ok(Ok(held)) => (Outcome::Finished, held),
            Ok(Err(Ended(outcome))) => (outcome, 0),
            Err(panic) => {
                let why = crate::pass::panic_message(panic.as_ref());
                log.pass_error(format_args!(
                    "internal: the two-way pass panicked ({why}); it ended there. Please report this"
                ));
                (Outcome::Failed, 0)
            }
        };
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

    /// The pass's stages: the archive and this pass's tag, the roots, both
    /// scans, the guards, the plan, the apply. A stage that ends the pass
    /// early has said why ([`Ended`]).
    fn run(
        &mut self,
        ctx: &PairContext<'_>,
        approved: bool,
        log: &mut Log<'_>,
        progress: &mut (dyn FnMut(&Counts) + Send),
    ) -> Result<u64, Ended> {
        let dry_run = ctx.options.dry_run;
        let Some(state) = self.state.as_mut() else {
            log.pass_error(format_args!(
                "a two-way pair needs a state folder for its archive; nothing changed"
            ));
            return Err(Ended(Outcome::Failed));
        };
        let (mut archive, recorded) = open_archive(state, dry_run, log)?;
        // Before anything is written: the tag of this pass's temporaries,
        // and those of earlier passes whose leftovers the scan removes.
        let (tags, tag) = temp_tags(&mut archive).map_err(|e| {
            log.pass_error(format_args!(
                "pair state: {e}; nothing changed on either side"
            ));
            Ended(Outcome::Failed)
        })?;
        if !dry_run {
            self.tag = Some(tag);
        }
        let _tagged = fsops::tag_temporaries(tag);
        let roots = roots::open_roots(ctx, &self.source_lock, recorded > 0, log)
            .ok_or(Ended(Outcome::Failed))?;
        let caps = caps(&mut self.source_caps, ctx, &roots, log)?;
        let (mut sa, mut sb, stable) = scan_both(ctx, &roots, &tags, log)?;
        refuse_empty(ctx, recorded, [&sa, &sb], log)?;
        nested::check(ctx, &mut archive, [&mut sa, &mut sb], devices(&roots), log);
        let stale = [std::mem::take(&mut sa.stale), std::mem::take(&mut sb.stale)];
        let excluded = excluded::Excluded::new(
            std::mem::take(&mut sa.excluded),
            std::mem::take(&mut sb.excluded),
        );
        // Leftovers below what could not be read may still carry a tag.
        let whole_scans = sa.unknown.is_empty() && sb.unknown.is_empty();
        let mut rows = archive
            .read_reverse(|recorded| merge::merge(recorded, sa, sb))
            .map_err(|e| {
                log.pass_error(format_args!(
                    "reading the archive: {e}; nothing changed on either side"
                ));
                Ended(Outcome::Failed)
            })?;
        compare::compare(ctx, &roots, &mut rows, log);
        reconcile::plan_with(&mut rows, &excluded);
        let held = holds::hold_wipe(ctx, &holds::rows_files(&rows), &mut rows, approved, log)
            + holds::hold_deletions(ctx, &mut rows, approved, log);
        pause_test_hook();

        let mut apply = Apply::new(
            ctx,
            [Some(&roots.a), roots.b.as_ref()],
            caps,
            &mut archive,
            Log::new(ctx),
        );
        apply.stable_inodes = stable;
        apply.excluded = excluded;
        let mut stale_left = false;
        for (paths, side) in stale.iter().zip([Side::A, Side::B]) {
            for path in paths {
                stale_left |= !apply.remove_stale(side, path);
            }
        }
        let outcome = apply_rows(ctx, &mut apply, &rows, progress);
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
        if outcome != Outcome::Finished {
            return Err(Ended(outcome));
        }
        if !dry_run {
            let b_dev = roots.b.as_ref().and_then(|b| fsops::device(b.as_fd()).ok());
            crate::mounts::lock(ctx.mounts).passed(b_dev);
        }
        Ok(held)
    }
}

/// What each side's file system keeps: the replica's checked (and its
/// device with it) at every pass, the source's probed once.
fn caps(
    source_caps: &mut Option<Caps>,
    ctx: &PairContext<'_>,
    roots: &roots::Roots,
    log: &mut Log<'_>,
) -> Result<[Caps; 2], Ended> {
    let dry_run = ctx.options.dry_run;
    let replica = &ctx.spec.replica;
    let b_caps = match roots.b.as_ref() {
        Some(b) => {
            let checked = crate::mounts::lock(ctx.mounts).check_replica(b.as_fd(), !dry_run);
            let checked = checked.map_err(|e| {
                log.pass_error(format_args!("replica folder {} {e}", display_root(replica)));
                Ended(Outcome::Failed)
            })?;
            for note in checked.notes {
                if let Note::Limits(what) = note {
                    log.info(format_args!(
                        "replica folder {} {what}",
                        display_root(replica)
                    ));
                }
            }
            checked.caps
        }
        None => Caps::EXACT,
    };
    let a_caps = if dry_run {
        Caps::EXACT
    } else {
        *source_caps.get_or_insert_with(|| {
            crate::mounts::probe(roots.a.as_fd()).map_or(Caps::EXACT, |(caps, _)| caps)
        })
    };
    Ok([a_caps, b_caps])
}

impl TwoWay {
    fn forget_tag(&mut self, log: &mut Log<'_>) {
        let (Some(tag), Some(state)) = (self.tag.take(), self.state.as_mut()) else {
            return;
        };
        // The tag is set only once recorded, never in a dry run.
        if let Err(e) = archive::forget_temp_tag(state, tag) {
            log.state_error(&e);
        }
    }
}

/// A pass that ended before its end, with this outcome; what ended it is
/// in the log already.
struct Ended(Outcome);

/// The archive, and how many entries it holds.
fn open_archive<'s>(
    state: &'s mut PairState,
    dry_run: bool,
    log: &mut Log<'_>,
) -> Result<(Archive<'s>, u64), Ended> {
    let mut archive = Archive::open(state, dry_run).map_err(|e| {
        log.pass_error(format_args!("{e}; nothing changed on either side"));
        Ended(Outcome::Failed)
    })?;
    let recorded = archive.count().map_err(|e| {
        log.pass_error(format_args!(
            "reading the archive: {e}; nothing changed on either side"
        ));
        Ended(Outcome::Failed)
    })?;
    Ok((archive, recorded))
}

/// Both sides scanned at once (on two disks, or a disk and a share, each
/// waits on its own), what they could not read said, and whether each
/// side's file system keeps inode numbers.
fn scan_both(
    ctx: &PairContext<'_>,
    roots: &roots::Roots,
    tags: &HashSet<u64>,
    log: &mut Log<'_>,
) -> Result<(Scan, Scan, [bool; 2]), Ended> {
    let excludes = {
        let mut pair = ctx.excludes.lock().expect("excludes poisoned");
        if let Err(e) = pair.refresh() {
            log.pass_error(format_args!("{e}; the patterns read before stay in force"));
        }
        pair.matcher()
    };
    let (sa, sb) = std::thread::scope(|s| {
        let b = s.spawn(|| {
            roots
                .b
                .as_ref()
                .map(|b| scan::scan(b.as_fd(), &excludes, tags, ctx.cancel))
                .unwrap_or_default()
        });
        let a = scan::scan(roots.a.as_fd(), &excludes, tags, ctx.cancel);
        (a, b.join())
    });
    let Ok(sb) = sb else {
        log.pass_error(format_args!(
            "internal: the scan of the replica panicked; nothing changed. Please report this"
        ));
        return Err(Ended(Outcome::Failed));
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
        return Err(Ended(Outcome::Stopped));
    }
    for (scan, side) in [(&sa, Side::A), (&sb, Side::B)] {
        for (path, op, e) in &scan.errors {
            log.scan_error(path, side, op, e);
        }
        for (path, kind) in &scan.special {
            log.special(path, side, kind);
        }
    }
    Ok((sa, sb, stable))
}

/// The empty-side guard: a side wholly empty while the archive says the
/// last sync left entries there (an unmounted disk) ends the pass before
/// anything is planned, unless `--allow-empty-source`.
fn refuse_empty(
    ctx: &PairContext<'_>,
    recorded: u64,
    scans: [&Scan; 2],
    log: &mut Log<'_>,
) -> Result<(), Ended> {
    if recorded == 0 || ctx.options.allow_empty_source {
        return Ok(());
    }
    let sides = [(&ctx.spec.source, "source"), (&ctx.spec.replica, "replica")];
    for (scan, (root, name)) in scans.into_iter().zip(sides) {
        if scan.entries.is_empty() && scan.unknown.is_empty() {
            log.pass_error(format_args!(
                "{name} folder {} is empty, while the last sync left {recorded} entries in it: is its disk unmounted? \
                 Nothing was deleted on either side; --allow-empty-source syncs it anyway, deleting them on the other side",
                display_root(root),
            ));
            return Err(Ended(Outcome::Failed));
        }
    }
    Ok(())
}

/// The devices of both roots (0 where not known), for the nested mounts.
fn devices(roots: &roots::Roots) -> [u64; 2] {
    [
        fsops::device(roots.a.as_fd()).unwrap_or(0),
        roots
            .b
            .as_ref()
            .map_or(0, |b| fsops::device(b.as_fd()).unwrap_or(0)),
    ]
}

/// Does every row's action in tree order, saying the progress now and
/// then; a stop ends it between two rows.
fn apply_rows(
    ctx: &PairContext<'_>,
    apply: &mut Apply<'_>,
    rows: &[Row],
    progress: &mut (dyn FnMut(&Counts) + Send),
) -> Outcome {
    for (i, row) in rows.iter().enumerate() {
        if ctx.cancel.is_set() {
            return Outcome::Stopped;
        }
        crate::pass::crash_test_hook(&row.path);
        apply.row(row);
        if i % 1024 == 1023 {
            let mut counts = apply.counts();
            counts.checked = i as u64 + 1;
            progress(&counts);
        }
    }
    Outcome::Finished
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
