//! Every change a pass makes to the replica goes through [`Replica`], which
//! either makes it (through [`crate::fsops`]) or, in a dry run, makes
//! nothing and answers as if it had. So a dry run is this one executor, not
//! a flag checked at every write: the rest of the pass runs the same way
//! and reports the same outcomes, and tells a dry run apart only where it
//! has no replica folder to look into ([`Replica::writes`]).

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use crate::fsops::{self, Copied, Meta, OpError, RemovalObserver, Time};
use crate::mounts::Caps;

/// The replica, written or only told about.
pub(super) struct Replica {
    dry_run: bool,
}

/// How a folder's removal went.
pub(super) enum TreeRemoval {
    /// Removed for real, entry by entry (each told to the observer);
    /// `false` when it stopped early.
    Removed(bool),
    /// A dry run: would be removed, with everything in it.
    Pretended,
}

impl Replica {
    pub(super) fn new(dry_run: bool) -> Self {
        Replica { dry_run }
    }

    /// Whether changes are made (not a dry run): what a pass needs to know
    /// where a dry run has no replica folder, file or cache entry to show.
    pub(super) fn writes(&self) -> bool {
        !self.dry_run
    }

    /// Creates the replica's root folder.
    pub(super) fn create_root(&self, path: &Path) -> io::Result<()> {
        if self.dry_run {
            return Ok(());
        }
        std::fs::create_dir(path)
    }

    /// Opens a replica sub-folder to work in: even a mode 000 one when
    /// writing, as it is when only reading.
    pub(super) fn open_dir(&self, parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
        if self.dry_run {
            fsops::open_dir_at(parent, name)
        } else {
            fsops::open_dir_writable(parent, name)
        }
    }

    /// Gives a replica folder owner rwx while the pass works in it; returns
    /// its mode before.
    pub(super) fn make_dir_writable(&self, dir: BorrowedFd<'_>) -> Result<u32, OpError> {
        if self.dry_run {
            return fsops::stat_fd(dir)
                .map(|m| m.mode)
                .map_err(|err| OpError { op: "stat", err });
        }
        fsops::make_dir_writable(dir)
    }

    /// Sets a replica folder's mode and mtime.
    pub(super) fn set_dir_attrs(
        &self,
        dir: BorrowedFd<'_>,
        mode: u32,
        mtime: Time,
        caps: &Caps,
    ) -> Result<(), OpError> {
        if self.dry_run {
            return Ok(());
        }
        fsops::set_fd_attrs(dir, mode, mtime, caps)
    }

    /// Sets a replica file's mode and mtime; returns it as it now is
    /// (`None` in a dry run).
    pub(super) fn set_file_attrs(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: u32,
        mtime: Time,
        caps: &Caps,
    ) -> Result<Option<Meta>, OpError> {
        if self.dry_run {
            return Ok(None);
        }
        fsops::set_file_attrs(dir, name, mode, mtime, caps).map(Some)
    }

    /// Copies a source file over the replica's (see [`fsops::copy_file`]);
    /// `None` in a dry run.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_file(
        &self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &CStr,
        hash: bool,
        fsync: bool,
        caps: &Caps,
        cancelled: &dyn Fn() -> bool,
        bufs: &mut fsops::Buffers,
    ) -> Result<Option<Copied>, OpError> {
        if self.dry_run {
            return Ok(None);
        }
        fsops::copy_file(src_dir, dst_dir, name, hash, fsync, caps, cancelled, bufs).map(Some)
    }

    /// Creates or replaces a symlink.
    pub(super) fn make_symlink(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        target: &CStr,
        mtime: Option<Time>,
    ) -> Result<(), OpError> {
        if self.dry_run {
            return Ok(());
        }
        fsops::make_symlink(dir, name, target, mtime)
    }

    /// Sets a symlink's own mtime.
    pub(super) fn set_link_mtime(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mtime: Time,
    ) -> Result<(), OpError> {
        if self.dry_run {
            return Ok(());
        }
        fsops::set_link_mtime(dir, name, mtime)
    }

    /// Creates a folder.
    pub(super) fn make_dir(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), OpError> {
        if self.dry_run {
            return Ok(());
        }
        fsops::make_dir(dir, name)
    }

    /// Removes a file, symlink or other non-folder entry.
    pub(super) fn remove_file(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), OpError> {
        if self.dry_run {
            return Ok(());
        }
        fsops::remove_file(dir, name)
    }

    /// Removes a folder and everything in it, telling `observer` entry by
    /// entry.
    pub(super) fn remove_tree(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        observer: &mut dyn RemovalObserver,
    ) -> Result<TreeRemoval, OpError> {
        if self.dry_run {
            return Ok(TreeRemoval::Pretended);
        }
        fsops::remove_tree(dir, name, observer).map(TreeRemoval::Removed)
    }
}
