//! One sync pass: walk the source and replica trees together and make the
//! replica an exact copy of the source.
//!
//! Folders are visited depth first from an explicit stack (no recursion, so
//! depth is not limited by the call stack). In each folder the two sorted
//! listings are merged: replica entries the source lacks are removed first
//! (freeing space), then each source entry is brought over. A folder's own
//! mode and mtime are set after everything inside it, since writing inside
//! changes its mtime.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use log::{debug, error, info, warn};

use crate::cache::{Cache, DirEntries, Entry};
use crate::config::{PairSpec, SyncOptions};
use crate::decide::{Plan, after_compare, plan_file};
use crate::fsops::{self, Copied, Digest, Kind, Meta, OpError, join_rel};
use crate::logging::{display_path, display_root};
use crate::status::{Counts, Outcome, PassReport};

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

    fn log_debug(&self, msg: std::fmt::Arguments<'_>) {
        debug!(target: self.target, "pair {}: {msg}", self.id);
    }
}

/// Work left on the stack.
enum Work {
    /// A folder to sync, opened when its turn comes (so a wide tree does not
    /// hold a handle per pending folder).
    Dir {
        src_parent: Arc<OwnedFd>,
        /// `None` in a dry run when the replica folder does not exist yet.
        dst_parent: Option<Arc<OwnedFd>>,
        name: CString,
        rel: Vec<u8>,
        src_meta: Meta,
        /// The replica folder was created in this pass.
        fresh: bool,
    },
    /// A replica folder whose contents are done: set its mode and mtime.
    Finish {
        dst: Arc<OwnedFd>,
        rel: Vec<u8>,
        src_meta: Meta,
        /// Its mode when the pass found it; `None` when the pass created it.
        found_mode: Option<u32>,
    },
}

/// Runs one pass and reports what it did. `progress` hears the counts so far
/// now and then.
pub fn run(
    ctx: &PassContext<'_>,
    cache: &mut Cache,
    progress: &mut dyn FnMut(&Counts),
) -> PassReport {
    let started = Instant::now();
    let mut pass = Pass {
        ctx,
        cache,
        counts: Counts::default(),
        progress,
        stack: Vec::new(),
        now: SystemTime::now(),
        deletions_left: ctx.options.max_delete,
        max_delete_hit: false,
        refused: false,
    };
    pass.ctx.log_debug(format_args!("pass started"));
    let outcome = pass.walk();
    let report = PassReport {
        outcome,
        counts: pass.counts,
        duration: started.elapsed(),
    };
    pass.log_summary(&report);
    report
}

struct Pass<'a, 'c> {
    ctx: &'a PassContext<'a>,
    cache: &'c mut Cache,
    counts: Counts,
    progress: &'c mut dyn FnMut(&Counts),
    stack: Vec<Work>,
    /// When the pass started, for the cache's racy check.
    now: SystemTime,
    /// What `--max-delete` still allows in this pass.
    deletions_left: Option<u64>,
    /// `--max-delete` ran out (reported once).
    max_delete_hit: bool,
    /// The pass refused to run (the empty-source guard); nothing changed.
    refused: bool,
}

impl Pass<'_, '_> {
    fn walk(&mut self) -> Outcome {
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
                return Outcome::Failed;
            }
        };
        let mut fresh = false;
        let dst_root = match fsops::open_root(&spec.replica) {
            Ok(fd) => Some(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = self.create_replica_root() {
                    self.error_line(format_args!(
                        "cannot create replica folder {}: {e}",
                        display_root(&spec.replica)
                    ));
                    return Outcome::Failed;
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
                        return Outcome::Failed;
                    }
                }
            }
            Err(e) => {
                self.error_line(format_args!(
                    "replica folder {} unavailable: {e}; nothing changed",
                    display_root(&spec.replica)
                ));
                return Outcome::Failed;
            }
        };

        self.cache.begin_pass();
        let (src_fd, src_meta) = src_root;
        self.sync_dir(b"", src_fd, dst_root, src_meta, fresh);
        if self.refused {
            return Outcome::Failed;
        }
        while let Some(work) = self.stack.pop() {
            if self.ctx.cancel.is_set() {
                return Outcome::Stopped;
            }
            match work {
                Work::Dir {
                    src_parent,
                    dst_parent,
                    name,
                    rel,
                    src_meta,
                    fresh,
                } => {
                    let src = match fsops::open_dir_at(src_parent.as_fd(), &name) {
                        Ok(fd) => fd,
                        Err(e) => {
                            self.error(&rel, "cannot read folder", &e, "its replica is kept as is");
                            continue;
                        }
                    };
                    let dst = match dst_parent {
                        None => None,
                        Some(parent) => match self.open_replica_dir(parent.as_fd(), &name) {
                            Ok(fd) => Some(fd),
                            Err(e) => {
                                self.error(&rel, "open replica folder", &e, "skipped");
                                continue;
                            }
                        },
                    };
                    self.sync_dir(&rel, src, dst, src_meta, fresh);
                }
                Work::Finish {
                    dst,
                    rel,
                    src_meta,
                    found_mode,
                } => self.finish_dir(&dst, &rel, &src_meta, found_mode),
            }
        }
        if self.ctx.cancel.is_set() {
            return Outcome::Stopped;
        }
        self.cache.end_complete_pass();
        Outcome::Finished
    }

    fn create_replica_root(&self) -> io::Result<()> {
        if self.ctx.options.dry_run {
            return Ok(());
        }
        std::fs::create_dir(&self.ctx.spec.replica)
    }

    /// Syncs the entries of one folder and queues its sub-folders.
    fn sync_dir(
        &mut self,
        rel: &[u8],
        src: OwnedFd,
        dst: Option<OwnedFd>,
        src_meta: Meta,
        fresh: bool,
    ) {
        let src_entries = match fsops::list(src.as_fd()) {
            Ok(entries) => entries,
            Err(e) => {
                self.error(rel, "cannot read folder", &e, "its replica is kept as is");
                return;
            }
        };
        let dst_entries = match &dst {
            Some(dst) => match fsops::list(dst.as_fd()) {
                Ok(entries) => entries,
                Err(e) => {
                    self.error(rel, "list replica folder", &e, "skipped");
                    return;
                }
            },
            None => Vec::new(),
        };
        if rel.is_empty() && self.source_vanished(&src_entries, &dst_entries) {
            self.refused = true;
            return;
        }
        let src = Arc::new(src);
        let dst = dst.map(Arc::new);
        if let Some(dst) = &dst {
            let found_mode = if fresh || self.ctx.options.dry_run {
                None
            } else {
                // A read-only replica folder gets owner rwx while the pass
                // works in it; finish_dir sets the mirrored mode again.
                match fsops::make_dir_writable(dst.as_fd()) {
                    Ok(mode) => Some(mode),
                    Err(e) => {
                        self.op_error(rel, &e);
                        None
                    }
                }
            };
            self.stack.push(Work::Finish {
                dst: Arc::clone(dst),
                rel: rel.to_vec(),
                src_meta,
                found_mode,
            });
        }

        let merged = merge(src_entries, dst_entries);
        // Removals first: they free space for what is copied next.
        if let Some(dst) = &dst {
            for (s, d) in &merged {
                if let (None, Some(d)) = (s, d) {
                    if self.ctx.cancel.is_set() {
                        return;
                    }
                    self.remove_extra(dst.as_fd(), rel, d);
                }
            }
        }

        let old = self.cache.take_dir(rel);
        let mut new = DirEntries::default();
        let mut subdirs = Vec::new();
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
            let dst_fd = dst.as_deref().map(AsFd::as_fd);
            match src_meta.kind {
                Kind::Dir => {
                    // In a dry run a folder that would be created has no
                    // replica to compare its contents with.
                    let replica_exists =
                        !self.ctx.options.dry_run || dst_meta.is_some_and(|m| m.kind == Kind::Dir);
                    if let Some(fresh) = self.ensure_dir(dst_fd, &child, &s.name, dst_meta.as_ref())
                    {
                        subdirs.push(Work::Dir {
                            src_parent: Arc::clone(&src),
                            dst_parent: dst.clone().filter(|_| replica_exists),
                            name: s.name,
                            rel: child,
                            src_meta,
                            fresh,
                        });
                    }
                }
                Kind::File => {
                    let old_entry = old.get(s.name.to_bytes()).copied();
                    if let Some(entry) = self.sync_file(
                        src.as_fd(),
                        dst_fd,
                        &child,
                        &s.name,
                        &src_meta,
                        dst_meta.as_ref(),
                        old_entry.as_ref(),
                    ) {
                        new.insert(s.name.to_bytes(), entry);
                    }
                }
                Kind::Symlink => {
                    self.sync_symlink(src.as_fd(), dst_fd, &child, &s.name, dst_meta.as_ref())
                }
                Kind::Special(what) => {
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
        self.cache.put_dir(rel, new);
        (self.progress)(&self.counts);
        self.stack.extend(subdirs.into_iter().rev());
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

    /// Whether `--max-delete` allows one more removal; says so once when it
    /// runs out.
    fn may_delete(&mut self) -> bool {
        match self.deletions_left.as_mut() {
            None => true,
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            Some(_) => {
                if !self.max_delete_hit {
                    self.max_delete_hit = true;
                    let limit = self.ctx.options.max_delete.unwrap_or(0);
                    self.error_line(format_args!(
                        "--max-delete {limit} reached: further deletions skipped in this pass \
                         (the replica keeps entries the source no longer has)"
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

    /// Brings one regular file over; returns the cache entry to keep for it.
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
    ) -> Option<Entry> {
        let dry_run = self.ctx.options.dry_run;
        let replica_file = d.filter(|d| d.kind == Kind::File);
        let (plan, digest) = match (dst, replica_file) {
            (Some(dst), Some(d)) => match self.resolve_plan(src, dst, name, s, d, old) {
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
                Some(Entry::new(
                    s,
                    d,
                    digest.or(old.and_then(|e| e.digest)),
                    self.now,
                ))
            }
            Plan::FixAttrs => {
                let d = replica_file.expect("a file with attrs to fix has a replica");
                let what = attr_change(s, d);
                if dry_run {
                    self.ctx.action("touched", rel, format_args!(" ({what})"));
                    self.counts.touched += 1;
                    return old.copied();
                }
                let dst = dst.expect("not a dry run");
                match fsops::set_file_attrs(dst, name, s.mode, s.mtime) {
                    Ok(after) => {
                        self.ctx.action("touched", rel, format_args!(" ({what})"));
                        self.counts.touched += 1;
                        Some(Entry::new(s, &after, digest, self.now))
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

    /// Reads file data where the metadata alone cannot settle the plan.
    /// Returns the final plan and the digest of the source bytes if known.
    fn resolve_plan(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        s: &Meta,
        d: &Meta,
        old: Option<&Entry>,
    ) -> Result<(Plan, Option<Digest>), OpError> {
        let checksum = self.ctx.options.checksum;
        Ok(match plan_file(s, d, old, checksum) {
            Plan::HashSource(known) => {
                let digest = fsops::hash_file(src, name)?;
                (after_compare(digest == known, s, d), Some(digest))
            }
            Plan::HashReplica(known) => {
                let digest = fsops::hash_file(dst, name)?;
                (after_compare(digest == known, s, d), Some(known))
            }
            Plan::CompareBoth => match fsops::compare_files(src, dst, name)? {
                Some(digest) => (after_compare(true, s, d), Some(digest)),
                None => (Plan::Copy, None),
            },
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
    ) -> Option<Entry> {
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
            return None;
        };
        // A folder in the way cannot be renamed over; anything else can.
        if let Some(d) = d.filter(|d| d.kind == Kind::Dir) {
            if !self.remove_entry(dst, rel, name, d) {
                return None;
            }
        }
        let cancel = self.ctx.cancel;
        match fsops::copy_file(src, dst, name, self.ctx.options.fsync, &|| cancel.is_set()) {
            Ok(Copied::Done { digest, src, dst }) => {
                self.ctx
                    .action(verb, rel, format_args!(" ({} bytes)", dst.size));
                count(&mut self.counts);
                self.counts.bytes += dst.size;
                Some(Entry::new(&src, &dst, Some(digest), self.now))
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

    fn sync_symlink(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        d: Option<&Meta>,
    ) {
        let target = match fsops::read_link(src, name) {
            Ok(t) => t,
            Err(e) => {
                self.error(rel, "read link", &e, "replica copy kept");
                return;
            }
        };
        if let (
            Some(dst),
            Some(Meta {
                kind: Kind::Symlink,
                ..
            }),
        ) = (dst, d)
        {
            if fsops::read_link(dst, name).is_ok_and(|t| t == target) {
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
            if let Err(e) = fsops::make_symlink(dst, name, &target) {
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
        if meta.kind == Kind::File && fsops::is_temp_name(d.name.to_bytes()) {
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
        if meta.kind != Kind::Dir {
            if !self.may_delete() {
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
            if !self.may_delete() {
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
        if let Err(e) = fsops::set_fd_attrs(dst.as_fd(), s.mode, s.mtime) {
            self.op_error(rel, &e);
            return;
        }
        if found_mode.is_some_and(|m| m != s.mode) {
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

    fn log_summary(&self, r: &PassReport) {
        let c = &r.counts;
        let how = match r.outcome {
            Outcome::Finished => "pass finished",
            Outcome::Stopped => "pass stopped",
            Outcome::Failed => "pass failed",
        };
        info!(
            target: self.ctx.target,
            "pair {}: {}{how} in {:.3} s: {} checked, {} copied, {} updated, {} touched, {} linked, {} folders created, {} files and {} folders removed, {} skipped, {} errors, {} bytes written",
            self.ctx.id,
            self.ctx.prefix(),
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
}

/// Logs and counts each entry of a replica folder being removed, within
/// `--max-delete`.
struct TreeRemoval<'p, 'a, 'c> {
    pass: &'p mut Pass<'a, 'c>,
    /// Relative path of the folder the removed tree is in.
    parent: &'p [u8],
}

impl fsops::RemovalObserver for TreeRemoval<'_, '_, '_> {
    fn may_remove(&mut self) -> bool {
        self.pass.may_delete()
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
fn attr_change(s: &Meta, d: &Meta) -> String {
    match (s.mtime != d.mtime, s.mode != d.mode) {
        (true, true) => format!("mtime, mode {:o}", s.mode),
        (false, true) => format!("mode {:o}", s.mode),
        _ => "mtime".into(),
    }
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
