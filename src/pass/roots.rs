//! The pair's two roots, opened before a walk: the source checked, the
//! replica created at a first pass, locked against other processes and
//! probed for what its file system keeps; and the folder a walk over a
//! subtree starts at.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::fsops::{self, join_rel};
use crate::logging::display_root;
use crate::mounts::Note;

use super::lock_mounts;
use super::report::Done;
use super::schedule::{Open, Task};

/// Opens the roots, runs the workers over the tree, and says how it ended.
use super::walk::Walker;

/// The task for the deepest folder along `start` that is a folder on both
/// sides (the root's when the first step is not), opened from the roots
/// without following symlinks.
pub(super) fn descend(root: Task, start: &[u8]) -> Task {
    let Open::Root {
        src,
        dst: Some(dst),
    } = root.open
    else {
        return root; // A dry run with no replica yet: all of it.
    };
    let (mut src, mut dst, mut src_meta, mut rel) = (src, dst, root.src_meta, Vec::new());
    for name in start
        .split(|&b| b == b'/')
        .filter(|n| !n.is_empty() && *n != b".")
    {
        let Ok(name) = std::ffi::CString::new(name) else {
            break;
        };
        let (Ok(s), Ok(d)) = (
            fsops::open_dir_at(src.as_fd(), &name),
            fsops::open_dir_at(dst.as_fd(), &name),
        ) else {
            break;
        };
        let Ok(meta) = fsops::stat_fd(s.as_fd()) else {
            break;
        };
        (src, dst, src_meta) = (s, d, meta);
        rel = join_rel(&rel, name.to_bytes());
    }
    Task {
        open: Open::Root {
            src,
            dst: Some(dst),
        },
        rel,
        src_meta,
        fresh: false,
        parent: None,
    }
}

impl Walker<'_, '_> {
    /// Opens (or, when missing, creates) the pair's two root folders and
    /// returns the root's task; `None` when the pass cannot run.
    pub(super) fn open_roots(&mut self) -> Option<Task> {
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
        // Before anything is created: a source on another device than at
        // its first good pass is most likely a bare mountpoint.
        if let Err(e) = lock_mounts(self.ctx).check_source(src_root.1.dev) {
            self.error_line(format_args!(
                "source folder {} {e}",
                display_root(&spec.source)
            ));
            return None;
        }
        let mut fresh = false;
        let dst_root = match fsops::open_root(&spec.replica) {
            Ok(fd) => Some(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted, or gone with its disk: its parent folder tells.
                let parent_dev = spec
                    .replica
                    .parent()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
                if let Err(e) = lock_mounts(self.ctx).check_replica_missing(parent_dev) {
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
                self.done(b"", Done::CreatedFolder);
                fresh = true;
                match fsops::open_root(&spec.replica) {
                    Ok(fd) => Some(fd),
                    // A dry run did not create it.
                    Err(_) if !self.shared.replica.writes() => None,
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
            // A dry run only reads: shared with others that read.
            let shared = !self.shared.replica.writes();
            if !self.locked(lock.hold(dst, &spec.replica, shared)) {
                return None;
            }
            if !self.learn_replica(dst) {
                return None;
            }
        }
        for accepted in lock_mounts(self.ctx).take_accepted() {
            self.ctx.warn_line(format_args!("{accepted}"));
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
    pub(super) fn learn_replica(&mut self, dst: &OwnedFd) -> bool {
        let shown = display_root(&self.ctx.spec.replica);
        // The probe writes: not in a dry run.
        let probe = self.shared.replica.writes();
        let checked = lock_mounts(self.ctx).check_replica(dst.as_fd(), probe);
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

    /// Whether the replica's lock is held; if not, says so (once while the
    /// reason stays the same) and the pass is skipped, nothing changed.
    pub(super) fn locked(&mut self, held: Result<(), String>) -> bool {
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

    pub(super) fn create_replica_root(&self) -> io::Result<()> {
        self.shared.replica.create_root(&self.ctx.spec.replica)
    }
}
