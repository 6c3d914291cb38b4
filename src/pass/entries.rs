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

impl Walker<'_, '_> {
    /// Removals first, then each source entry; returns the sub-folders to
    /// queue (in name order): all of them when `deep`, else only those new
    /// to the replica. `made`: this pass made the replica folder.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sync_entries(
        &mut self,
        rel: &[u8],
        deep: bool,
        made: bool,
        src: &Arc<OwnedFd>,
        dst: Option<&Arc<OwnedFd>>,
        mut src_entries: Vec<fsops::Entry>,
        mut dst_entries: Vec<fsops::Entry>,
        node: &Arc<DirNode>,
    ) -> Vec<Job> {
        self.leave_out(rel, &mut src_entries, &mut dst_entries);
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
        // Not in memory: what an earlier run stored, if anything.
        let in_memory = old.iter().next().is_some();
        let old = match in_memory || made {
            true => old,
            false => cache_store::lookup(self.ctx.store, rel).unwrap_or(old),
        };
        if made && rel.is_empty() {
            self.forget_stored(rel);
        }
        let mut new = DirEntries::with_room_of(&old);
        let mut subdirs = Vec::new();
        let mut big = Vec::new();
        // Each entry's path, built in one buffer: a fresh one an entry was
        // a fifth of this loop's allocations.
        let mut child = join_rel(rel, b"");
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
            if let Err(what) = filter::takes_part(src_meta.kind) {
                // Not copied; nor may the replica keep what the source had
                // there before (a file that became a FIFO).
                if let (Some(dst), Some(d)) = (dst_fd, dst_meta.as_ref()) {
                    self.remove_entry(dst, &child, &s.name, d);
                }
                self.done(&child, Done::Skipped(what));
                continue;
            }
            match src_meta.kind {
                Kind::Dir => {
                    // In a dry run a folder that would be created has no
                    // replica to compare its contents with.
                    let replica_exists = self.shared.replica.writes()
                        || dst_meta.is_some_and(|m| m.kind == Kind::Dir);
                    let fresh = self.ensure_dir(dst_fd, &child, &s.name, dst_meta.as_ref());
                    if fresh == Some(false) && !deep {
                        self.sync_folder_attrs(
                            dst_fd,
                            &child,
                            &s.name,
                            &src_meta,
                            dst_meta.as_ref(),
                        );
                    } else if let Some(fresh) = fresh {
                        if fresh && !made {
                            self.forget_stored(&child);
                        }
                        subdirs.push(Job::Dir(Task {
                            open: Open::Child {
                                src_parent: Arc::clone(src),
                                dst_parent: dst.cloned().filter(|_| replica_exists),
                                name: s.name,
                            },
                            rel: child.clone(),
                            src_meta,
                            fresh,
                            deep: true,
                            parent: Some(Arc::clone(node)),
                        }));
                    }
                }
                Kind::File => {
                    let old_entry = old.get_in_order(s.name.to_bytes(), &mut old_next);
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
                Kind::Special(_) => unreachable!("filtered out above"),
            }
        }
        let complete = !self.ctx.cancel.is_set();
        let mut cache = self.shared.cache.lock().expect("cache poisoned");
        // Entries already recorded for this folder from outside (a hard
        // link made for one of its names).
        new.absorb(cache.take_dir(rel));
        if let Some(store) = self.ctx.store {
            // After the work it records; what changed only.
            cache_store::lock(store).save_dir(rel, &old, &new, complete);
        }
        if !complete {
            // Keep what is known about files this pass did not reach.
            new.absorb(old);
        }
        cache.put_dir(rel, new);
        drop(cache);
        // Big copies on top: other workers start them while this one
        // goes on into the sub-folders.
        subdirs.extend(big);
        subdirs
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
