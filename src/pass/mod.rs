//! One sync pass: make the replica an exact copy of the source, as a
//! pipeline whose steps are modules:
//!
//! - [`walk`]: both trees together, folder by folder, on a pool of
//!   workers sharing a job queue ([`schedule`]); a folder's mode and mtime
//!   are set once everything below it is done.
//! - [`entries`]: one folder's merged listing through the next steps.
//! - [`filter`]: which entries take part.
//! - [`plan`]: what a file needs, a pure function of the two sides and
//!   the cache.
//! - [`apply`]: doing it (or, in a dry run, only saying so), within
//!   `--max-delete` ([`deletions`]); hard-linked names are kept together
//!   ([`links`]).
//! - [`report`]: the log lines and the pass's summary.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use crate::cache::{Cache, Entry};
use crate::excludes::Matcher;
use crate::fsops::Meta;
use crate::mounts::Caps;
use crate::pair::{PairContext, Unhashed};
use crate::status::{Counts, Outcome, PassReport};

mod apply;
mod deletions;
mod entries;
mod filter;
mod links;
pub mod plan;
mod replica;
mod report;
mod roots;
mod schedule;
mod starts;
mod walk;

use deletions::{Deletions, Held, Mode};
use links::Links;
use replica::Replica;
use schedule::Queue;
pub use starts::{Start, fewest};
pub(crate) use walk::{crash_test_hook, panic_message};

/// Files at least this big whose data must be read are synced as jobs of
/// their own; below it, the per-job overhead and the folder's inode lock
/// make it pointless.
const BIG_FILE: u64 = 4 << 20;

/// What the pass's workers share. Each folder is handled by one worker
/// from listing to queueing its sub-folders; everything else they touch is
/// here, behind a lock or atomic.
struct Shared<'a> {
    ctx: &'a PairContext<'a>,
    /// Taken once per folder (take_dir, put_dir), so contention is low.
    cache: Mutex<&'a mut Cache>,
    /// The jobs (folders and big files) waiting for a worker.
    queue: Queue<'a>,
    /// When the pass started, for the cache's racy check.
    now: SystemTime,
    /// What `--max-delete` allows in this walk, across all workers.
    deletions: Deletions,
    /// Where every change to the replica is made (or, in a dry run, only
    /// pretended).
    replica: Replica,
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
    /// What this pass leaves out.
    excludes: Arc<Matcher>,
    /// The folders this pass starts at (see [`Start`]), sorted: one that
    /// is also a folder in another's listing has its mode and mtime set by
    /// its own task, when it is done.
    starts: OnceLock<Vec<Vec<u8>>>,
    /// The in-memory cache keeps entries after the pass, so big files are
    /// hashed after it ([`crate::digests`]); not for `--once`.
    fills_later: bool,
    /// Replica folders removed whole: their cache entries go after the
    /// walk ([`Cache::drop_trees`]).
    gone: Mutex<Vec<Vec<u8>>>,
}

impl Shared<'_> {
    /// Notes that the folder at `rel` was removed from the replica.
    fn gone_dirs(&self, rel: &[u8]) {
        self.gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rel.to_vec());
    }
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
    ctx: &PairContext<'_>,
    cache: &mut Cache,
    deletions_approved: bool,
    progress: &mut (dyn FnMut(&Counts) + Send),
) -> (PassReport, Vec<Unhashed>) {
    run_at(
        ctx,
        cache,
        &[Start::everything()],
        deletions_approved,
        progress,
    )
}

/// Like [`run`], over the folders a watch saw change ([`Start`]), as one
/// pass. Each starts at the deepest folder of its path that exists on both
/// sides, so a new subtree is created from its parent; a start inside an
/// excluded folder is dropped.
pub fn run_at(
    ctx: &PairContext<'_>,
    cache: &mut Cache,
    starts: &[Start],
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
    let refreshed = report::refresh_excludes(ctx);
    let (excludes, refresh_error) = (refreshed.matcher, refreshed.errors);
    let everything = [Start::everything()];
    let starts = if refreshed.changed && starts != everything {
        // What the patterns select may have changed in any folder, one no
        // event names among them.
        ctx.log_info(format_args!(
            "the exclude patterns changed: this pass looks at every folder"
        ));
        &everything[..]
    } else {
        starts
    };
    let starts: Vec<Start> = starts
        .iter()
        .filter(|start| match excluded_prefix(&excludes, &start.rel) {
            // A change inside an excluded folder (that the replica may
            // hold from before the pattern): not this pair's business.
            Some(out) => {
                ctx.log_debug(format_args!(
                    "change in {} ignored: it is excluded",
                    crate::logging::display_path(out)
                ));
                false
            }
            None => true,
        })
        .cloned()
        .collect();
    if starts.is_empty() {
        return (
            PassReport {
                outcome: Outcome::Finished,
                counts: Counts {
                    errors: refresh_error,
                    ..Counts::default()
                },
                duration: started.elapsed(),
                held_deletions: 0,
            },
            Vec::new(),
        );
    }
    let mut walked = walk_with(ctx, cache, &starts, mode, &excludes, progress);
    walked.counts.errors += refresh_error;
    let mut held = 0;
    if let (Some(limit), true) = (guarded, walked.outcome == Outcome::Finished) {
        let count = walked.held.entries;
        if count > limit {
            held = count;
            walked.counts.errors += 1;
            report::log_held(ctx, limit, &walked.held);
        } else if count > 0 {
            // Within the limit: a second walk removes them.
            let checked = walked.counts.checked;
            let second = walk_with(ctx, cache, &starts, Mode::Limit(limit), &excludes, progress);
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
    report::log_summary(ctx, &report, &starts);
    (report, walked.unhashed)
}

/// The first folder along `start` that the patterns exclude, if any.
fn excluded_prefix<'s>(excludes: &Matcher, start: &'s [u8]) -> Option<&'s [u8]> {
    let mut end = 0;
    for name in start.split(|&b| b == b'/') {
        end += name.len();
        if !name.is_empty() && excludes.excludes(&start[..end], true) {
            return Some(&start[..end]);
        }
        end += 1;
    }
    None
}

/// What one walk over the tree did.
struct Walked {
    outcome: Outcome,
    counts: Counts,
    /// Removals held back (`Mode::Count`).
    held: Held,
    unhashed: Vec<Unhashed>,
}

/// One walk from `starts`, with removals treated as `mode` says.
fn walk_with(
    ctx: &PairContext<'_>,
    cache: &mut Cache,
    starts: &[Start],
    mode: Mode,
    excludes: &Arc<Matcher>,
    progress: &mut (dyn FnMut(&Counts) + Send),
) -> Walked {
    let shared = Shared {
        ctx,
        fills_later: cache.keeps(),
        cache: Mutex::new(cache),
        queue: Queue::new(ctx.cancel),
        now: SystemTime::now(),
        deletions: Deletions::new(mode),
        replica: Replica::new(ctx.options.dry_run),
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
        excludes: Arc::clone(excludes),
        starts: OnceLock::new(),
        gone: Mutex::new(Vec::new()),
    };
    let outcome = walk::walk(&shared, starts);
    if outcome == Outcome::Finished {
        crate::mounts::lock(ctx.mounts).passed(shared.replica_dev.get().copied());
    }
    let cache = shared.cache.into_inner().unwrap_or_else(|e| e.into_inner());
    cache.drop_trees(&shared.gone.into_inner().unwrap_or_else(|e| e.into_inner()));
    shared
        .links
        .restamp(shared.replica_root.get(), cache, ctx.store);
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

/// The pair's knowledge of its file systems, for this worker's turn.
#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::config::{PairSpec, SyncOptions};
    use crate::excludes::PairExcludes;
    use crate::mounts::Mounts;
    use crate::pair::{Cancel, PairContext};
    use crate::replica_lock::ReplicaLock;

    /// One pass of the pair `root/src -> root/dst` from `start`, run as the
    /// library, without the binary.
    fn pass_at(root: &Path, cache: &mut Cache, start: Start) -> PassReport {
        pass_at_all(root, cache, &[start])
    }

    /// One pass of the pair `root/src -> root/dst` from `starts`.
    fn pass_at_all(root: &Path, cache: &mut Cache, starts: &[Start]) -> PassReport {
        let spec = PairSpec {
            source: root.join("src"),
            replica: root.join("dst"),
            interval: Duration::from_secs(1),
            log_file: root.join("log"),
            watch: false,
            two_way: false,
            name: None,
            options: Default::default(),
            excludes: Default::default(),
        };
        let cancel = Cancel::default();
        let lock = ReplicaLock::default();
        let mounts = Mutex::new(Mounts::default());
        let excludes =
            Mutex::new(PairExcludes::load(Arc::default(), &spec.source).expect("no pattern file"));
        let ctx = PairContext {
            id: 1,
            target: "pair1",
            spec: &spec,
            options: SyncOptions::default(),
            cancel: &cancel,
            lasting_cache: true,
            store: None,
            replica_lock: &lock,
            mounts: &mounts,
            excludes: &excludes,
        };
        run_at(&ctx, cache, starts, false, &mut |_| {}).0
    }

    #[test]
    fn a_pass_can_start_at_a_subfolder_and_leaves_the_rest_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for (path, text) in [("src/a/deep/x", "x1"), ("src/b/y", "y1"), ("src/z", "z1")] {
            let path = root.join(path);
            fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let mut cache = Cache::new(None);
        let whole = pass_at(root, &mut cache, Start::everything());
        assert_eq!((whole.outcome, whole.counts.copied), (Outcome::Finished, 3));
        for path in ["src/a/deep/x", "src/b/y", "src/z"] {
            fs::write(root.join(path), "changed").expect("write");
        }
        fs::write(root.join("src/a/deep/new"), "new").expect("write");

        let sub = pass_at(root, &mut cache, Start::tree(b"a/deep".to_vec()));
        assert_eq!(sub.outcome, Outcome::Finished);
        assert_eq!((sub.counts.copied, sub.counts.updated), (1, 1));
        let read = |p: &str| fs::read_to_string(root.join(p)).expect("read");
        assert_eq!(read("dst/a/deep/x"), "changed");
        assert_eq!(read("dst/a/deep/new"), "new");
        assert_eq!(read("dst/b/y"), "y1", "outside the subtree");
        assert_eq!(read("dst/z"), "z1", "outside the subtree");

        // A start the replica does not have yet begins at its parent.
        fs::create_dir(root.join("src/b/fresh")).expect("mkdir");
        fs::write(root.join("src/b/fresh/f"), "f").expect("write");
        let fresh = pass_at(root, &mut cache, Start::tree(b"b/fresh".to_vec()));
        assert_eq!(read("dst/b/fresh/f"), "f");
        assert_eq!(read("dst/b/y"), "changed", "the parent was synced");
        assert_eq!(read("dst/z"), "z1");
        assert_eq!(fresh.counts.created_dirs, 1);

        // A change inside an excluded folder that the replica holds from
        // before the pattern syncs nothing there.
        fs::create_dir_all(root.join("src/b/skip")).expect("mkdir");
        fs::create_dir_all(root.join("dst/b/skip")).expect("mkdir");
        fs::write(root.join("src/b/skip/new"), "excluded").expect("write");
        fs::write(root.join("dst/b/skip/kept"), "replica's own").expect("write");
        fs::write(root.join("src/.foldersyncignore"), "skip/\n").expect("write");
        let skipped = pass_at(root, &mut cache, Start::folder(b"b/skip".to_vec()));
        assert_eq!(skipped.counts, Counts::default());
        assert!(!root.join("dst/b/skip/new").exists());
        assert!(root.join("dst/b/skip/kept").exists());
        fs::remove_file(root.join("src/.foldersyncignore")).expect("rm");
        fs::remove_dir_all(root.join("src/b/skip")).expect("rm");
        fs::remove_dir_all(root.join("dst/b/skip")).expect("rm");

        // The cache still knows the folders a partial pass did not visit.
        let again = pass_at(root, &mut cache, Start::everything());
        assert_eq!((again.counts.copied, again.counts.updated), (0, 1));
        assert_eq!(read("dst/z"), "changed");
    }

    #[test]
    fn a_pass_over_a_folder_s_entries_enters_only_its_new_folders() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for (path, text) in [("src/a/deep/x", "x1"), ("src/a/y", "y1"), ("src/z", "z1")] {
            let path = root.join(path);
            fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let mut cache = Cache::new(None);
        pass_at(root, &mut cache, Start::everything());
        for path in ["src/a/deep/x", "src/a/y", "src/z"] {
            fs::write(root.join(path), "changed").expect("write");
        }
        fs::create_dir_all(root.join("src/a/new/below")).expect("mkdir");
        fs::write(root.join("src/a/new/below/n"), "n").expect("write");
        fs::set_permissions(root.join("src/a/deep"), fs::Permissions::from_mode(0o750))
            .expect("chmod");

        let report = pass_at(root, &mut cache, Start::folder(b"a".to_vec()));
        assert_eq!(report.outcome, Outcome::Finished);
        let read = |p: &str| fs::read_to_string(root.join(p)).expect("read");
        assert_eq!(read("dst/a/y"), "changed", "its own entries");
        assert_eq!(read("dst/a/new/below/n"), "n", "a new folder, all of it");
        assert_eq!(
            read("dst/a/deep/x"),
            "x1",
            "a folder it holds is not entered"
        );
        let mode = fs::metadata(root.join("dst/a/deep"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o750, "but takes the source's mode");
        assert_eq!(read("dst/z"), "z1", "outside it");
        assert_eq!((report.counts.copied, report.counts.updated), (1, 1));

        // Two starts, one pass: the root's own entries, and a folder in it.
        let both = pass_at_all(
            root,
            &mut cache,
            &[Start::folder(Vec::new()), Start::folder(b"a/deep".to_vec())],
        );
        assert_eq!((both.outcome, both.counts.updated), (Outcome::Finished, 2));
        assert_eq!(read("dst/z"), "changed");
        assert_eq!(read("dst/a/deep/x"), "changed");
    }
}
