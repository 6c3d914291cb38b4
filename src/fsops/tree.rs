//! Removing a whole replica folder without following links, and entering
//! read-only replica folders to work in them.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

use super::*;

/// Hears of a tree removal entry by entry, and may stop it (`--max-delete`).
pub trait RemovalObserver {
    /// Asked before each entry is removed; `false` stops the removal there.
    fn may_remove(&mut self) -> bool;
    /// Told after an entry was removed, by its path relative to the folder
    /// the tree is in, and whether it was a folder.
    fn removed(&mut self, rel: &[u8], is_dir: bool);
}

/// Removes a folder and everything below it, depth first, without ever
/// following a symlink (links are unlinked, not entered). Works with an
/// explicit stack, so depth is bounded by open file handles, not by the
/// call stack. Read-only folders on the way are made writable first, as
/// removing needs it. Returns `Ok(false)` when the observer stopped it.
pub fn remove_tree(
    dir: BorrowedFd<'_>,
    name: &CStr,
    observer: &mut dyn RemovalObserver,
) -> Result<bool, OpError> {
    /// A folder being emptied: its handle and the sub-folders still to go.
    struct Level {
        fd: OwnedFd,
        name: CString,
        rel: Vec<u8>,
        subdirs: Vec<CString>,
    }
    /// Opens a folder and removes its non-folder entries; `None` when the
    /// observer said stop.
    fn open(
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: Vec<u8>,
        observer: &mut dyn RemovalObserver,
    ) -> Result<Option<Level>, OpError> {
        let fd = open_dir_writable(parent, name).op("open folder")?;
        let mut subdirs = Vec::new();
        for entry in list(fd.as_fd()).op("list folder")? {
            if matches!(
                entry.meta,
                Ok(Meta {
                    kind: Kind::Dir,
                    ..
                })
            ) {
                subdirs.push(entry.name);
                continue;
            }
            if !observer.may_remove() {
                return Ok(None);
            }
            unlink_in_writable(fd.as_fd(), &entry.name, AtFlags::empty()).op("remove")?;
            observer.removed(&join_rel(&rel, entry.name.to_bytes()), false);
        }
        subdirs.reverse();
        Ok(Some(Level {
            fd,
            name: name.to_owned(),
            rel,
            subdirs,
        }))
    }
    let Some(first) = open(dir, name, name.to_bytes().to_vec(), observer)? else {
        return Ok(false);
    };
    let mut stack = vec![first];
    while let Some(top) = stack.last_mut() {
        match top.subdirs.pop() {
            Some(sub) => {
                let rel = join_rel(&top.rel, sub.to_bytes());
                let Some(level) = open(top.fd.as_fd(), &sub, rel, observer)? else {
                    return Ok(false);
                };
                stack.push(level);
            }
            None => {
                if !observer.may_remove() {
                    return Ok(false);
                }
                let done = stack.pop().expect("stack is not empty");
                drop(done.fd);
                let parent = stack.last().map_or(dir, |l| l.fd.as_fd());
                unlink_in_writable(parent, &done.name, AtFlags::REMOVEDIR).op("remove folder")?;
                observer.removed(&done.rel, true);
            }
        }
    }
    Ok(true)
}

/// Opens a replica sub-folder to change what is inside it, without
/// following a symlink. A folder we may not enter (mode 000 and we are not
/// root) first gets owner `rwx`; the pass sets its mirrored mode again when
/// it is done with it.
pub fn open_dir_writable(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    match open_dir_at(dir, name) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ACCESS.raw_os_error()) => {
            let handle = open_dir_path(dir, name)?;
            let mode = stat_fd(handle.as_fd())?.mode;
            chmod_via_proc(handle.as_fd(), mode | 0o700)?;
            open_dir_at(dir, name)
        }
        other => other,
    }
}

/// A handle on a sub-folder (`O_PATH`, symlinks not followed) to set its
/// mode and mtime through ([`super::set_fd_attrs`]), whatever its mode.
pub fn open_dir_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Gives an open folder owner `rwx` if it lacks it, so entries can be
/// created, replaced and removed in it. Returns the mode it had.
pub fn make_dir_writable(dir: BorrowedFd<'_>) -> Result<u32, OpError> {
    let mode = stat_fd(dir).op("stat folder")?.mode;
    if mode & 0o700 != 0o700 {
        rfs::fchmod(dir, Mode::from_raw_mode(mode | 0o700)).op("make folder writable")?;
    }
    Ok(mode)
}

/// `unlinkat`, retried once after giving the folder owner `rwx` when it
/// was read-only.
fn unlink_in_writable(dir: BorrowedFd<'_>, name: &CStr, flags: AtFlags) -> io::Result<()> {
    match rfs::unlinkat(dir, name, flags) {
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
            make_dir_writable(dir).map_err(|e| e.err)?;
            Ok(rfs::unlinkat(dir, name, flags)?)
        }
        other => Ok(other?),
    }
}
