//! Apply: what the plan decided, done through [`crate::fsops`] (or, in a
//! dry run, only reported), with the deletion limit of `--max-delete`.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use crate::cache::Entry;
use crate::cache_store;
use crate::fsops::{self, Compared, Copied, Digest, Kind, Meta, OpError, join_rel};
use crate::logging::display_path;
use crate::pair::Unhashed;

use super::deletions::{self, Mode, Verdict};
use super::filter;
use super::plan::{Plan, after_compare, plan_file};
use super::report::attr_change;
use super::{BIG_FILE, Synced};

use super::replica;
use super::report::Done;
use super::walk::Walker;

impl Walker<'_, '_> {
    /// Whether `--max-delete` lets the entry at `rel` (holding `entries`,
    /// asked only when counting) be removed now.
    pub(super) fn may_delete(&mut self, rel: &[u8], entries: impl FnOnce() -> u64) -> bool {
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

    /// Brings one regular file over; `None` when that failed (logged).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sync_file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
        old: Option<&Entry>,
    ) -> Option<Synced> {
        let replica_file = d.filter(|d| d.kind == Kind::File);
        let (plan, digest) = match (dst, replica_file) {
            (Some(dst), Some(d)) => match self.resolve_plan(src, dst, rel, name, s, d, old) {
                Ok(decided) => decided,
                Err(e) => {
                    self.file_failed(rel, &e);
                    return None;
                }
            },
            _ => (Plan::Copy, None),
        };
        match plan {
            Plan::Skip => {
                let d = replica_file.expect("a skipped file has a replica");
                Some(Synced {
                    entry: Some(Entry::new(s, d, digest, self.shared.now)),
                    replica: Some(*d),
                })
            }
            Plan::FixAttrs => {
                let d = replica_file.expect("a file with attrs to fix has a replica");
                let caps = self.caps();
                let what = attr_change(s, d, &caps);
                let dst = dst.expect("a replica file is in a replica folder");
                let replica = &self.shared.replica;
                match replica.set_file_attrs(dst, name, s.mode, s.mtime, &caps) {
                    Ok(after) => {
                        self.done(rel, Done::Touched(format_args!("{what}")));
                        let now = self.shared.now;
                        Some(Synced {
                            entry: after
                                .map(|after| Entry::new(s, &after, digest, now))
                                .or(old.copied()),
                            replica: Some(after.unwrap_or(*d)),
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
    /// pass (a daemon's, or the pair's stored cache) and consults them.
    /// A `--once` without `--checksum` takes none: its next run settles an
    /// unchanged file by its stamps alone, so a digest pays only for a
    /// touched file (read on one side instead of two), while taking it
    /// costs MD5 over every byte copied or compared and turns the kernel's
    /// copy into reads and writes through this process (issue 21: 70% of
    /// a first sync's instructions). Its entries keep their stamps, so it
    /// still notices a same-stamp rewrite.
    pub(super) fn digests_wanted(&self) -> bool {
        self.ctx.lasting_cache && (self.shared.fills_later || self.ctx.options.checksum)
    }

    /// Whether a file's bytes are hashed as they pass through: when digests
    /// are wanted, for files small enough that hashing them costs less than
    /// looking at them again later. Big files are hashed after the pass
    /// by a daemon ([`crate::digests`]); a `--once` has no after, so with
    /// `--checksum`, whose next run trusts only hashed entries, it hashes
    /// them on the way.
    pub(super) fn hash_inline(&self, size: u64) -> bool {
        self.digests_wanted()
            && (size < BIG_FILE || (self.ctx.options.checksum && !self.shared.fills_later))
    }

    /// Notes a big file whose bytes were just read or written without a
    /// digest, for [`crate::digests::fill`] to hash from the replica after
    /// the pass, while its pages are still in memory.
    pub(super) fn hash_later(&self, rel: &[u8]) {
        if self.digests_wanted() && self.shared.fills_later && self.shared.replica.writes() {
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
    pub(super) fn resolve_plan(
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
            // Settled by a cache entry whose both sides are unchanged: its
            // digest still describes both files.
            settled => (settled, old.and_then(|e| e.digest)),
        })
    }

    pub(super) fn copy(
        &mut self,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
    ) -> Option<Synced> {
        let new = !d.is_some_and(|d| d.kind == Kind::File);
        let Some(dst) = dst else {
            // A dry run below a folder it would create.
            let size = s.size;
            self.done(
                rel,
                Done::Copied {
                    new,
                    size,
                    written: false,
                },
            );
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
        match self.shared.replica.copy_file(
            src,
            dst,
            name,
            self.hash_inline(s.size),
            self.ctx.options.fsync,
            &self.caps(),
            &|| cancel.is_set(),
            &mut self.bufs,
        ) {
            Ok(None) => {
                let size = s.size;
                let written = false;
                self.done(rel, Done::Copied { new, size, written });
                Some(Synced {
                    entry: None,
                    replica: None,
                })
            }
            Ok(Some(Copied::Done { digest, src, dst })) => {
                let size = dst.size;
                self.done(
                    rel,
                    Done::Copied {
                        new,
                        size,
                        written: true,
                    },
                );
                if digest.is_none() {
                    self.hash_later(rel);
                }
                Some(Synced {
                    entry: Some(Entry::new(&src, &dst, digest, self.shared.now)),
                    replica: Some(dst),
                })
            }
            Ok(Some(Copied::SourceChanged)) => {
                self.changed_while_copied(rel);
                None
            }
            Ok(Some(Copied::Cancelled | Copied::Refused)) => None,
            Err(e) => {
                self.file_failed(rel, &e);
                None
            }
        }
    }

    /// Brings one symlink over: same target text and same mtime, never
    /// followed.
    pub(super) fn sync_symlink(
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
            let why = "symlink; the replica's file system has none";
            self.done(rel, Done::SkippedAsSaid(why));
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
                    if let Err(e) = self.shared.replica.set_link_mtime(dst, name, s.mtime) {
                        self.op_error(rel, &e);
                        return;
                    }
                    self.done(rel, Done::Touched(format_args!("mtime")));
                }
                return;
            }
        }
        if let Some(dst) = dst {
            if let Some(d) = d.filter(|d| d.kind == Kind::Dir) {
                if !self.remove_entry(dst, rel, name, d) {
                    return;
                }
            }
            let mtime = caps.link_times.then_some(s.mtime);
            if let Err(e) = self.shared.replica.make_symlink(dst, name, &target, mtime) {
                self.op_error(rel, &e);
                return;
            }
        }
        let target = target.as_bytes();
        self.done(rel, Done::Linked { target });
    }

    /// Removes a replica entry the source does not have.
    pub(super) fn remove_extra(&mut self, dst: BorrowedFd<'_>, dir_rel: &[u8], d: &fsops::Entry) {
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
        if filter::is_stale_temporary(d.name.to_bytes(), &meta) {
            if let Err(e) = self.shared.replica.remove_file(dst, &d.name) {
                self.op_error(&rel, &e);
                return;
            }
            self.done(&rel, Done::RemovedStaleTemporary);
            return;
        }
        self.remove_entry(dst, &rel, &d.name, &meta);
    }

    /// Removes a replica entry of any kind, logging each thing removed.
    /// Returns false when that failed.
    pub(super) fn remove_entry(
        &mut self,
        dst: BorrowedFd<'_>,
        rel: &[u8],
        name: &CStr,
        meta: &Meta,
    ) -> bool {
        if meta.kind == Kind::Dir && self.shared.deletions.mode() == Mode::Count {
            // Counted whole; removed entry by entry in the second walk.
            return self.may_delete(rel, || deletions::count_tree(dst, name));
        }
        if meta.kind != Kind::Dir {
            if !self.may_delete(rel, || 1) {
                return false;
            }
            if let Err(e) = self.shared.replica.remove_file(dst, name) {
                self.op_error(rel, &e);
                return false;
            }
            let done = if meta.kind == Kind::Symlink {
                Done::RemovedLink
            } else {
                Done::RemovedFile
            };
            self.done(rel, done);
            return true;
        }
        let parent = &rel[..rel.len() - name.to_bytes().len()];
        let parent = parent.strip_suffix(b"/").unwrap_or(parent);
        let replica = &self.shared.replica;
        match replica.remove_tree(dst, name, &mut TreeRemoval { pass: self, parent }) {
            Ok(replica::TreeRemoval::Removed(finished)) => {
                if let (true, Some(store)) = (finished, self.ctx.store) {
                    cache_store::lock(store).remove_tree(rel);
                }
                if finished {
                    self.shared.gone_dirs(rel);
                }
                finished
            }
            Ok(replica::TreeRemoval::Pretended) => {
                if !self.may_delete(rel, || 1) {
                    return false;
                }
                self.done(rel, Done::RemovedFolder { whole: true });
                true
            }
            Err(e) => {
                self.op_error(rel, &e);
                false
            }
        }
    }

    /// Makes sure the replica has a real folder (not a file or a symlink)
    /// where the source has one. Returns whether it was created now, or
    /// `None` when that failed.
    pub(super) fn ensure_dir(
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
            self.done(rel, Done::CreatedFolder);
            return Some(true);
        };
        if let Some(m) = dst_meta {
            if !self.remove_entry(dst, rel, name, m) {
                return None;
            }
        }
        if let Err(e) = self.shared.replica.make_dir(dst, name) {
            self.op_error(rel, &e);
            return None;
        }
        self.done(rel, Done::CreatedFolder);
        Some(true)
    }

    /// The missing-mount guard: a source root that is empty while its
    /// replica is not is far more often an unmounted disk or share than a
    /// user who deleted everything, so the pass refuses to wipe the replica
    /// unless `--allow-empty-source` says it is meant.
    pub(super) fn source_vanished(&mut self, src: &[fsops::Entry], dst: &[fsops::Entry]) -> bool {
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
        let done = if is_dir {
            Done::RemovedFolder { whole: false }
        } else {
            Done::RemovedFile
        };
        self.pass.done(&path, done);
    }
}
