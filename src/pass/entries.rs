//! One folder's entries through the pipeline: each pair of source and
//! replica entries is filtered ([`super::filter`]), planned
//! ([`super::plan`]) and applied ([`super::apply`]); sub-folders and big
//! files become jobs of their own.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use crate::cache::{DirEntries, Entry};
use crate::cache_store;
use crate::fsops::{self, Kind, Meta, join_rel};
use crate::logging::display_path;

use super::filter;
use super::links;
use super::links::Role;
use super::plan::{Plan, plan_file};
use super::schedule::{DirNode, FileTask, Job, Open, Task};
use super::walk::merge;
use super::{BIG_FILE, Synced};

use super::report::Done;
use super::walk::Walker;

/// One folder being synced: where it is on both sides, how far down the
/// pass goes, and the node its jobs report to.
pub(super) struct Folder<'a> {
    pub rel: &'a [u8],
    /// Every sub-folder is entered (else only those new to the replica).
    pub deep: bool,
    /// This pass made the replica folder.
    pub made: bool,
    pub src: &'a Arc<OwnedFd>,
    pub dst: Option<&'a Arc<OwnedFd>>,
    pub node: &'a Arc<DirNode>,
}

/// What a folder's entries leave behind as they are synced.
struct Outcome {
    /// The cache entries this pass knows of the folder's files.
    new: DirEntries,
    subdirs: Vec<Job>,
    big: Vec<Job>,
}

/// An entry's source and replica metadata, once both are known.
type Metas = (Meta, Option<Meta>);

/// A source entry and the replica's of the same name, either absent.
type MergedEntry = (Option<fsops::Entry>, Option<fsops::Entry>);

impl Walker<'_, '_> {
    /// Removals first, then each source entry; returns the sub-folders to
    /// queue (in name order): all of them when `deep`, else only those new
    /// to the replica, and the big files as jobs of their own.
    pub(super) fn sync_entries(
        &mut self,
        f: &Folder<'_>,
        mut src_entries: Vec<fsops::Entry>,
        mut dst_entries: Vec<fsops::Entry>,
    ) -> Vec<Job> {
        self.leave_out(f.rel, &mut src_entries, &mut dst_entries);
        let merged = merge(src_entries, dst_entries);
        // Removals first: they free space for what is copied next.
        if !self.remove_extras(f, &merged) {
            return Vec::new();
        }
        let old = self.old_entries(f);
        let mut out = Outcome {
            new: DirEntries::with_room_of(&old),
            subdirs: Vec::new(),
            big: Vec::new(),
        };
        // Each entry's path, built in one buffer: a fresh one an entry was
        // a fifth of this loop's allocations.
        let mut child = join_rel(f.rel, b"");
        let prefix = child.len();
        let mut old_next = 0;
        for (s, d) in merged {
            let Some(s) = s else { continue };
            if self.ctx.cancel.is_set() {
                break;
            }
            self.counts.checked += 1;
            child.truncate(prefix);
            child.extend_from_slice(s.name.to_bytes());
            let Some(metas) = self.metas(f, &child, &s, d.as_ref()) else {
                continue;
            };
            match metas.0.kind {
                Kind::Dir => self.dir_entry(f, &child, s.name, metas, &mut out),
                Kind::File => {
                    let old_entry = old.get_in_order(s.name.to_bytes(), &mut old_next);
                    self.file_entry(f, &child, s.name, metas, old_entry, &mut out);
                }
                Kind::Symlink => self.sync_symlink(
                    f.src.as_fd(),
                    f.dst.map(|d| d.as_fd()),
                    &child,
                    &s.name,
                    &metas.0,
                    metas.1.as_ref(),
                ),
                Kind::Special(_) => unreachable!("filtered out in metas"),
            }
        }
        self.keep_entries(f.rel, old, out.new);
        // Big copies on top: other workers start them while this one
        // goes on into the sub-folders.
        out.subdirs.extend(out.big);
        out.subdirs
    }

    /// Removes the replica entries the source does not have; `false` when
    /// a stop came first.
    fn remove_extras(&mut self, f: &Folder<'_>, merged: &[MergedEntry]) -> bool {
        let Some(dst) = f.dst else { return true };
        for (s, d) in merged {
            if let (None, Some(d)) = (s, d) {
                if self.ctx.cancel.is_set() {
                    return false;
                }
                self.remove_extra(dst.as_fd(), f.rel, d);
            }
        }
        true
    }

    /// What was last known of the folder's files: in memory, or, when not
    /// there, what an earlier run stored (nothing in a folder this pass
    /// made).
    fn old_entries(&self, f: &Folder<'_>) -> DirEntries {
        let old = self
            .shared
            .cache
            .lock()
            .expect("cache poisoned")
            .take_dir(f.rel);
        let in_memory = old.iter().next().is_some();
        let old = match in_memory || f.made {
            true => old,
            false => cache_store::lookup(self.ctx.store, f.rel).unwrap_or(old),
        };
        if f.made && f.rel.is_empty() {
            self.forget_stored(f.rel);
        }
        old
    }

    /// Both sides' metadata of one entry; `None` when it is left alone
    /// (vanished, unreadable, or not of a kind that is synced: then the
    /// replica's entry goes, so it keeps nothing the source had before).
    fn metas(
        &mut self,
        f: &Folder<'_>,
        child: &[u8],
        s: &fsops::Entry,
        d: Option<&fsops::Entry>,
    ) -> Option<Metas> {
        let src_meta = match &s.meta {
            Ok(meta) => *meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ctx
                    .log_debug(format_args!("{} vanished", display_path(child)));
                return None;
            }
            Err(e) => {
                self.error(child, "stat", e, "replica copy kept");
                return None;
            }
        };
        let dst_meta = match d.map(|d| &d.meta) {
            None => None,
            Some(Ok(meta)) => Some(*meta),
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => None,
            Some(Err(e)) => {
                self.error(child, "stat replica", e, "skipped");
                return None;
            }
        };
        if let Err(what) = filter::takes_part(src_meta.kind) {
            // Not copied; nor may the replica keep what the source had
            // there before (a file that became a FIFO).
            if let (Some(dst), Some(d)) = (f.dst, dst_meta.as_ref()) {
                self.remove_entry(dst.as_fd(), child, &s.name, d);
            }
            self.done(child, Done::Skipped(what));
            return None;
        }
        Some((src_meta, dst_meta))
    }

    /// A source folder: made in the replica if need be; entered (as a job)
    /// when new to the replica or the pass goes deep, else only its mode
    /// and mtime are set.
    fn dir_entry(
        &mut self,
        f: &Folder<'_>,
        child: &[u8],
        name: std::ffi::CString,
        (src_meta, dst_meta): Metas,
        out: &mut Outcome,
    ) {
        let dst_fd = f.dst.map(|d| d.as_fd());
        // In a dry run a folder that would be created has no replica to
        // compare its contents with.
        let replica_exists =
            self.shared.replica.writes() || dst_meta.is_some_and(|m| m.kind == Kind::Dir);
        let fresh = self.ensure_dir(dst_fd, child, &name, dst_meta.as_ref());
        if fresh == Some(false) && !f.deep {
            self.sync_folder_attrs(dst_fd, child, &name, &src_meta, dst_meta.as_ref());
            return;
        }
        let Some(fresh) = fresh else { return };
        if fresh && !f.made {
            self.forget_stored(child);
        }
        out.subdirs.push(Job::Dir(Task {
            open: Open::Child {
                src_parent: Arc::clone(f.src),
                dst_parent: f.dst.cloned().filter(|_| replica_exists),
                name,
            },
            rel: child.to_vec(),
            src_meta,
            fresh,
            deep: true,
            parent: Some(Arc::clone(f.node)),
        }));
    }

    /// A source file: one name of a hard-linked inode waits for, or
    /// follows, its leader; a big one becomes a job of its own; the rest
    /// are synced here and their cache entries kept.
    fn file_entry(
        &mut self,
        f: &Folder<'_>,
        child: &[u8],
        name: std::ffi::CString,
        (src_meta, dst_meta): Metas,
        old: Option<Entry>,
        out: &mut Outcome,
    ) {
        let dst_fd = f.dst.map(|d| d.as_fd());
        let role = if src_meta.nlink > 1 {
            self.shared
                .links
                .join(links::key(&src_meta), || links::Follower {
                    src: Arc::clone(f.src),
                    dst: f.dst.cloned(),
                    dir_rel: f.rel.to_vec(),
                    name: name.clone(),
                    src_meta,
                    dst_meta,
                    old,
                    node: Arc::clone(f.node),
                })
        } else {
            Role::Alone
        };
        let leads = match role {
            Role::Leader => true,
            Role::Alone => false,
            Role::Waiting => return,
            Role::Follow(leader) => {
                let entry = self.follow(
                    &leader,
                    f.src.as_fd(),
                    dst_fd,
                    child,
                    &name,
                    &src_meta,
                    dst_meta.as_ref(),
                    old.as_ref(),
                );
                if let Some(entry) = entry {
                    out.new.insert(name.to_bytes(), entry);
                }
                return;
            }
        };
        if let Some(dst) = f
            .dst
            .filter(|_| self.is_big_job(&src_meta, dst_meta.as_ref(), old.as_ref()))
        {
            out.big.push(Job::File(FileTask {
                src: Arc::clone(f.src),
                dst: Arc::clone(dst),
                dir_rel: f.rel.to_vec(),
                name,
                src_meta,
                dst_meta,
                old,
                node: Arc::clone(f.node),
                leads,
            }));
            return;
        }
        let synced = self.sync_file(
            f.src.as_fd(),
            dst_fd,
            child,
            &name,
            &src_meta,
            dst_meta.as_ref(),
            old.as_ref(),
        );
        if leads {
            self.leader_done(&src_meta, child, synced.as_ref());
        }
        if let Some(Synced {
            entry: Some(entry), ..
        }) = synced
        {
            out.new.insert(name.to_bytes(), entry);
        }
    }

    /// Puts the folder's entries in the cache (and what changed in the
    /// store, after the work it records); a folder a stop cut short keeps
    /// what was known of the files the pass did not reach.
    fn keep_entries(&self, rel: &[u8], old: DirEntries, mut new: DirEntries) {
        let complete = !self.ctx.cancel.is_set();
        let mut cache = self.shared.cache.lock().expect("cache poisoned");
        // Entries already recorded for this folder from outside (a hard
        // link made for one of its names).
        new.absorb(cache.take_dir(rel));
        if let Some(store) = self.ctx.store {
            cache_store::lock(store).save_dir(rel, &old, &new, complete);
        }
        if !complete {
            new.absorb(old);
        }
        cache.put_dir(rel, new);
    }

    /// Whether a file is big and its data must be read (copied, hashed or
    /// compared), so it is worth a job of its own (never in a dry run).
    pub(super) fn is_big_job(&self, s: &Meta, d: Option<&Meta>, old: Option<&Entry>) -> bool {
        if s.size < BIG_FILE || !self.shared.replica.writes() {
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
    pub(super) fn sync_big(&mut self, task: FileTask) {
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

    /// Drops what the store holds at and below `rel`, a replica folder this
    /// pass made below one it did not (or the replica's root): no file
    /// there can match those rows, so its folders read none (see
    /// [`Self::sync_entries`]), and rows their new entries do not replace
    /// would stay for good.
    fn forget_stored(&self, rel: &[u8]) {
        if let Some(store) = self.ctx.store {
            cache_store::lock(store).forget_tree(rel);
        }
    }

    /// Records a file's cache entry from outside its folder's own work (a
    /// big-file job, a hard link made for a waiting name).
    pub(super) fn record(&self, dir_rel: &[u8], name: &CStr, entry: Entry) {
        let mut cache = self.shared.cache.lock().expect("cache poisoned");
        let mut dir = cache.take_dir(dir_rel);
        dir.insert(name.to_bytes(), entry);
        cache.put_dir(dir_rel, dir);
        if let Some(store) = self.ctx.store {
            cache_store::lock(store).save_entry(&join_rel(dir_rel, name.to_bytes()), &entry);
        }
    }
}
