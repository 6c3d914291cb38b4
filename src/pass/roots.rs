//! The pair's two roots, opened before a walk: the source checked, the
//! replica created at a first pass, locked against other processes and
//! probed for what its file system keeps; and the folder a walk over a
//! subtree starts at.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::fsops::{self, Meta, join_rel};
use crate::logging::display_root;
use crate::mounts::Note;

use super::report::Done;
use super::schedule::{Open, Task};
use super::starts::{Start, fewest};

use super::walk::Walker;

/// The tasks for `starts`: each at the deepest folder along its path that
/// is a folder on both sides (opened from the roots without following
/// symlinks), without those another covers. A start whose whole path is
/// not there becomes a pass over the folder it reached: the rest of its
/// path is then new there (entered, as new folders are) or gone (removed).
pub(super) fn descend_all(root: Task, starts: &[Start]) -> std::io::Result<Vec<Task>> {
    let Open::Root {
        src,
        dst: Some(dst),
    } = &root.open
    else {
        return Ok(vec![root]); // A dry run with no replica yet: all of it.
    };
    if root.fresh {
        return Ok(vec![root]); // A replica just made: all of it is new.
    }
    let mut tasks = Vec::with_capacity(starts.len());
    for start in starts {
        tasks.push(descend(src, dst, root.src_meta, start)?);
    }
    let mut kept: HashSet<Start> = fewest(tasks.iter().map(Task::start).collect())
        .into_iter()
        .collect();
    Ok(tasks
        .into_iter()
        .filter(|t| kept.remove(&t.start()))
        .collect())
}

/// One start's task (see [`descend_all`]).
fn descend(src: &OwnedFd, dst: &OwnedFd, root_meta: Meta, start: &Start) -> io::Result<Task> {
    let (mut src, mut dst, mut src_meta, mut rel) =
        (src.try_clone()?, dst.try_clone()?, root_meta, Vec::new());
    let mut reached = true;
    for name in start
        .rel
        .split(|&b| b == b'/')
        .filter(|n| !n.is_empty() && *n != b".")
    {
        let Ok(name) = std::ffi::CString::new(name) else {
            reached = false;
            break;
        };
        let (Ok(s), Ok(d)) = (
            fsops::open_dir_at(src.as_fd(), &name),
            fsops::open_dir_at(dst.as_fd(), &name),
        ) else {
            reached = false;
            break;
        };
        let Ok(meta) = fsops::stat_fd(s.as_fd()) else {
            reached = false;
            break;
        };
        (src, dst, src_meta) = (s, d, meta);
        rel = join_rel(&rel, name.to_bytes());
    }
    Ok(Task {
        open: Open::Root {
            src,
            dst: Some(dst),
        },
        rel,
        src_meta,
        fresh: false,
        deep: start.deep && reached,
        parent: None,
    })
}

impl Walker<'_, '_> {
    /// Opens (or, when missing, creates) the pair's two root folders and
    /// returns the root's task; `None` when the pass cannot run.
    pub(super) fn open_roots(&mut self) -> Option<Task> {
        let (src, src_meta) = self.open_source()?;
        let (dst_root, fresh) = self.open_replica()?;
        if let Some(dst) = &dst_root {
            self.hold_replica(dst)?;
        }
        for accepted in crate::mounts::lock(self.ctx.mounts).take_accepted() {
            self.ctx.warn_line(format_args!("{accepted}"));
        }
        Some(Task {
            open: Open::Root { src, dst: dst_root },
            rel: Vec::new(),
            src_meta,
            fresh,
            deep: true,
            parent: None,
        })
    }

    /// The source root and its metadata, on the device it was on.
    fn open_source(&mut self) -> Option<(OwnedFd, fsops::Meta)> {
        let source = &self.ctx.spec.source;
        let opened = fsops::open_root(source).and_then(|fd| {
            let meta = fsops::stat_fd(fd.as_fd())?;
            Ok((fd, meta))
        });
        let root = match opened {
            Ok(root) => root,
            Err(e) => {
                self.error_line(format_args!(
                    "source folder {} unavailable: {e}; nothing changed in the replica",
                    display_root(source)
                ));
                return None;
            }
        };
        // Before anything is created: a source on another device than at
        // its first good pass is most likely a bare mountpoint.
        if let Err(e) = crate::mounts::lock(self.ctx.mounts).check_source(root.1.dev) {
            self.error_line(format_args!("source folder {} {e}", display_root(source)));
            return None;
        }
        Some(root)
    }

    /// The replica root, created when missing (`None` inside: a dry run
    /// did not create it), and whether this pass created it.
    fn open_replica(&mut self) -> Option<(Option<OwnedFd>, bool)> {
        let replica = &self.ctx.spec.replica;
        match fsops::open_root(replica) {
            Ok(fd) => Some((Some(fd), false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.make_replica().map(|fd| (fd, true))
            }
            Err(e) => {
                self.error_line(format_args!(
                    "replica folder {} unavailable: {e}; nothing changed",
                    display_root(replica)
                ));
                None
            }
        }
    }

    /// Creates the missing replica root, unless it went with its disk.
    fn make_replica(&mut self) -> Option<Option<OwnedFd>> {
        let replica = &self.ctx.spec.replica;
        // Deleted, or gone with its disk: its parent folder tells.
        let parent_dev = replica
            .parent()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        if let Err(e) = crate::mounts::lock(self.ctx.mounts).check_replica_missing(parent_dev) {
            self.error_line(format_args!("replica folder {} {e}", display_root(replica)));
            return None;
        }
        if !self.locked(self.ctx.replica_lock.hold_ancestors(replica)) {
            return None;
        }
        if let Err(e) = self.create_replica_root() {
            self.error_line(format_args!(
                "cannot create replica folder {}: {e}",
                display_root(replica)
            ));
            return None;
        }
        self.done(b"", Done::CreatedFolder);
        match fsops::open_root(replica) {
            Ok(fd) => Some(Some(fd)),
            // A dry run did not create it.
            Err(_) if !self.shared.replica.writes() => Some(None),
            Err(e) => {
                self.error_line(format_args!(
                    "replica folder {} unavailable: {e}",
                    display_root(replica)
                ));
                None
            }
        }
    }

    /// Locks the open replica root, learns its file system, and keeps a
    /// handle of it for hard links.
    fn hold_replica(&mut self, dst: &OwnedFd) -> Option<()> {
        let lock = self.ctx.replica_lock;
        // A dry run only reads: shared with others that read.
        let shared = !self.shared.replica.writes();
        if !self.locked(lock.hold(dst, &self.ctx.spec.replica, shared)) || !self.learn_replica(dst)
        {
            return None;
        }
        match dst.try_clone() {
            Ok(fd) => {
                let _ = self.shared.replica_root.set(fd);
            }
            // Hard links are then copied as separate files.
            Err(e) => self
                .ctx
                .log_debug(format_args!("replica root not kept for hard links: {e}")),
        }
        Some(())
    }

    /// Checks the open replica root against what earlier passes saw and
    /// learns its file system (see [`Mounts::check_replica`]); `false`
    /// when the pass must not run.
    pub(super) fn learn_replica(&mut self, dst: &OwnedFd) -> bool {
        let shown = display_root(&self.ctx.spec.replica);
        // The probe writes: not in a dry run.
        let probe = self.shared.replica.writes();
        let checked = crate::mounts::lock(self.ctx.mounts).check_replica(dst.as_fd(), probe);
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
