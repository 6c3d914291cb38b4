//! The walk: the source and replica trees together, folder by folder, on a
//! pool of workers sharing one queue of jobs (see [`super::schedule`]). It
//! opens the roots, then for each folder opens and lists both sides,
//! merges the two sorted listings, and hands the pairs of entries to the
//! rest of the pipeline ([`super::entries`]); a folder's own mode and mtime
//! are set once everything below it is done.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use log::error;

use crate::fsops::{self, Meta};
use crate::mounts::Caps;
use crate::status::{Counts, Outcome};

use super::entries::Folder;
use super::report::Done;
use super::roots;
use super::schedule::{DirNode, Finish, Job, Open, Queue, Task};
use super::starts::Start;
use super::{Shared, Totals};
use crate::pair::PairContext;
use crate::pair::jobs;

/// Opens the roots, runs the workers over the tree from `starts`, and says
/// how it ended.
pub(super) fn walk(shared: &Shared<'_>, starts: &[Start]) -> Outcome {
    let mut first = Walker::new(shared);
    let Some(root) = first.open_roots() else {
        first.flush();
        return Outcome::Failed;
    };
    first.flush();
    let whole = starts.contains(&Start::everything());
    let tops = if whole {
        vec![root]
    } else {
        match roots::descend_all(root, starts) {
            Ok(tops) => tops,
            Err(e) => {
                first.error_line(format_args!("cannot open the changed folders: {e}"));
                first.flush();
                return Outcome::Failed;
            }
        }
    };
    let mut rels: Vec<Vec<u8>> = tops.iter().map(|t| t.rel.clone()).collect();
    rels.sort();
    shared.starts.set(rels).expect("set once, here");
    shared.cache.lock().expect("cache poisoned").begin_pass();
    shared.queue.push(tops.into_iter().map(Job::Dir).collect());
    drop(first);
    // A worker that panics ends the pass with an error; the pair, and the
    // program, go on.
    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_workers(shared)));
    if let Err(panic) = worked {
        let why = panic_message(panic.as_ref());
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
    if whole {
        // Only a walk of everything knows which folders are gone.
        shared
            .cache
            .lock()
            .expect("cache poisoned")
            .end_complete_pass();
    }
    Outcome::Finished
}

/// The pass's pool of workers over the queue, the calling thread one of
/// them.
pub(super) fn run_workers(shared: &Shared<'_>) {
    let mut first = Walker::new(shared);
    // The root folder first, alone: a pass that finds no sub-folder and no
    // big file to work on (nothing to do in a flat folder) starts no thread.
    first.work_one();
    if shared.queue.queued() {
        std::thread::scope(|scope| {
            // Named, so a profile tells the workers apart; one that cannot
            // be started only makes the pass use fewer.
            let network = crate::mounts::lock(shared.ctx.mounts).replica_on_network();
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

/// What a caught panic said, for the error line that replaces it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// Debug builds only: a folder named as `FOLDERSYNC_TEST_PANIC` says makes
/// the worker that takes it panic, so the tests can prove that a panicking
/// worker ends its pass with an error instead of hanging the others.
pub(crate) fn crash_test_hook(rel: &[u8]) {
    #[cfg(debug_assertions)]
    if let Some(name) = std::env::var_os("FOLDERSYNC_TEST_PANIC") {
        use std::os::unix::ffi::OsStrExt;
        if rel.rsplit(|&b| b == b'/').next() == Some(name.as_bytes()) {
            let shown = crate::logging::display_path(rel);
            panic!("test panic in folder {shown}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = rel;
}

/// One worker of a pass: its counts since it last reported them, and its
/// own data buffers.
pub(super) struct Walker<'s, 'a> {
    pub(super) shared: &'s Shared<'a>,
    pub(super) ctx: &'a PairContext<'a>,
    pub(super) counts: Counts,
    pub(super) bufs: fsops::Buffers,
}

impl<'s, 'a> Walker<'s, 'a> {
    pub(super) fn new(shared: &'s Shared<'a>) -> Self {
        Walker {
            shared,
            ctx: shared.ctx,
            counts: Counts::default(),
            bufs: fsops::Buffers::default(),
        }
    }

    /// Syncs queued folders until there are none left (or the pass stops).
    pub(super) fn work(mut self) {
        while self.work_one() {}
    }

    /// Takes one job from the queue and does it; `false` when the pass is
    /// done or stopped.
    pub(super) fn work_one(&mut self) -> bool {
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
    pub(super) fn flush(&mut self) {
        let mut totals = self.shared.totals.lock().expect("totals poisoned");
        totals.counts.add(&self.counts);
        self.counts = Counts::default();
        let Totals { counts, progress } = &mut *totals;
        progress(counts);
    }

    /// How replica metadata is compared in this pass.
    pub(super) fn caps(&self) -> Caps {
        self.shared.caps.get().copied().unwrap_or(Caps::EXACT)
    }

    /// One count of `node` is done; sets the mode and mtime of every
    /// replica folder this completes (see [`DirNode::release`]).
    pub(super) fn release(&mut self, node: Option<Arc<DirNode>>) {
        DirNode::release(node, self.ctx.cancel, |f| {
            self.finish_dir(&f.dst, &f.rel, &f.src_meta, f.found_mode);
        });
    }

    /// Opens a queued folder on both sides; `None` when that failed (the
    /// error is logged).
    pub(super) fn open_task(
        &mut self,
        open: Open,
        rel: &[u8],
    ) -> Option<(OwnedFd, Option<OwnedFd>)> {
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
                if !self.vanished(rel, &e, "") {
                    self.error(rel, "cannot read folder", &e, "its replica is kept as is");
                }
                return None;
            }
        };
        let dst = match dst_parent {
            None => None,
            Some(parent) => match self.open_replica_dir(parent.as_fd(), &name) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    if !self.vanished(rel, &e, " from the replica") {
                        self.error(rel, "open replica folder", &e, "skipped");
                    }
                    return None;
                }
            },
        };
        Some((src, dst))
    }

    /// Syncs one queued folder: its removals and entries, then queues its
    /// sub-folders; the folder is finished once they all are.
    pub(super) fn sync_dir(&mut self, task: Task) {
        let Task {
            open,
            rel,
            src_meta,
            fresh,
            deep,
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
            let found_mode = if fresh || !self.caps().modes {
                None
            } else {
                // A read-only replica folder gets owner rwx while the pass
                // works in it; finish_dir sets the mirrored mode again.
                match self.shared.replica.make_dir_writable(dst.as_fd()) {
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
        let folder = Folder {
            rel: &rel,
            deep,
            made: fresh,
            src: &src,
            dst: dst.as_ref(),
            node: &node,
        };
        let subdirs = self.sync_entries(&folder, src_entries, dst_entries);
        node.add_pending(subdirs.len());
        self.shared.queue.push(subdirs);
        self.release(Some(node));
    }

    /// Lists a folder's source and replica; `None` when either failed.
    pub(super) fn list_both(
        &mut self,
        rel: &[u8],
        src: &OwnedFd,
        dst: Option<&OwnedFd>,
    ) -> Option<(Vec<fsops::Entry>, Vec<fsops::Entry>)> {
        let src_entries = match fsops::list(src.as_fd()) {
            Ok(entries) => entries,
            Err(e) => {
                if !self.vanished(rel, &e, "") {
                    self.error(rel, "cannot read folder", &e, "its replica is kept as is");
                }
                return None;
            }
        };
        let dst_entries = match dst {
            Some(dst) => match fsops::list(dst.as_fd()) {
                Ok(entries) => entries,
                Err(e) => {
                    if !self.vanished(rel, &e, " from the replica") {
                        self.error(rel, "list replica folder", &e, "skipped");
                    }
                    return None;
                }
            },
            None => Vec::new(),
        };
        Some((src_entries, dst_entries))
    }

    /// Opens a replica sub-folder, entering it even when it is mode 000.
    pub(super) fn open_replica_dir(
        &self,
        parent: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<OwnedFd> {
        self.shared.replica.open_dir(parent, name)
    }

    /// Sets the mode and mtime of a folder that a pass over its parent's
    /// entries does not enter (a chmod on it is its parent's event), when
    /// they differ; unless the pass starts at that folder too, whose own
    /// task sets them once done inside it.
    pub(super) fn sync_folder_attrs(
        &mut self,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
    ) {
        let (Some(dst), Some(d)) = (dst, d) else {
            return; // A dry run's folder to be created.
        };
        let caps = self.caps();
        let starts = self.shared.starts.get().map_or(&[][..], Vec::as_slice);
        if caps.same_mode(d.mode, s.mode) && caps.same_mtime(d.mtime, s.mtime)
            || starts.binary_search_by(|r| r[..].cmp(rel)).is_ok()
        {
            return;
        }
        match fsops::open_dir_path(dst, name) {
            Ok(dir) => self.finish_dir(&dir, rel, s, Some(d.mode)),
            Err(e) => self.error(rel, "open replica folder", &e, "skipped"),
        }
    }

    /// Sets a replica folder's mode and mtime once its contents are done.
    /// A mode change is logged only for a folder that existed before.
    pub(super) fn finish_dir(
        &mut self,
        dst: &OwnedFd,
        rel: &[u8],
        s: &Meta,
        found_mode: Option<u32>,
    ) {
        let caps = self.caps();
        let replica = &self.shared.replica;
        if let Err(e) = replica.set_dir_attrs(dst.as_fd(), s.mode, s.mtime, &caps) {
            self.op_error(rel, &e);
            return;
        }
        if found_mode.is_some_and(|m| !caps.same_mode(m, s.mode)) {
            self.done(rel, Done::Touched(format_args!("mode {:o}", s.mode)));
        }
    }
}

/// Pairs up two name-sorted listings by name.
pub(super) fn merge(
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
