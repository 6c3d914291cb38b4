//! The walk of one side of a two-way pair: every entry below its root, in
//! tree order, with what the planner needs. Nothing is followed: a symlink
//! is an entry, never a way into another tree.
//!
//! What cannot be read is never taken for absent: a folder that cannot be
//! listed, an entry that cannot be stat-ed and a special file (FIFO,
//! socket, device) are *unknown*, and the pass leaves those paths, and
//! everything below them, alone on both sides.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use crate::excludes::Matcher;
use crate::fsops::{self, Kind, join_rel};
use crate::pair::Cancel;

use super::row::{Seen, What, tree_order};

/// One side's tree as the scan saw it.
#[derive(Default)]
pub struct Scan {
    /// Every entry, in tree order.
    pub entries: Vec<(Box<[u8]>, Seen)>,
    /// Paths whose state is unknown (and, for folders, all below them).
    pub unknown: Vec<Box<[u8]>>,
    /// What could not be read, for the log: path, what was tried, why.
    pub errors: Vec<(Box<[u8]>, &'static str, io::Error)>,
    /// Special files met (path, kind), for the log.
    pub special: Vec<(Box<[u8]>, &'static str)>,
    /// Files and links named like our temporaries with a tag this pair
    /// recorded: left by a pass that was killed, never synced, removed by
    /// the next. Other names of that form are the user's, synced as any.
    pub stale: Vec<Box<[u8]>>,
    /// Entries left out by the exclude patterns (the outermost ones: an
    /// excluded folder is not entered), so that a pass never deletes or
    /// replaces them (see [`super::excluded`]).
    pub excluded: Vec<(Box<[u8]>, What)>,
    /// Folders on another device than the folder they are in (a disk
    /// mounted inside the side), with that device: checked at the next
    /// pass (see [`super::nested`]).
    pub mounts: Vec<(Box<[u8]>, u64)>,
    /// Stopped before the end (quit or stop).
    pub stopped: bool,
}

/// Where a folder is: its parent's handle and its name there.
type At = (Rc<OwnedFd>, CString);

/// A folder still to list: its path, and its parent's handle and its name
/// there (opened only when listed, so a folder with thousands of
/// sub-folders holds one handle, not thousands), and its device, to find
/// the folders a disk is mounted on.
struct Folder {
    rel: Vec<u8>,
    at: Option<At>,
    dev: u64,
}

/// What a scan leaves out besides `excludes`: our own temporaries (those
/// whose tag is in `tags`).
struct Filters<'a> {
    excludes: &'a Matcher,
    tags: &'a HashSet<u64>,
}

/// Walks the tree below `root`, leaving out what `excludes` names and our
/// own temporary files (those whose tag is in `tags`).
pub fn scan(
    root: BorrowedFd<'_>,
    excludes: &Matcher,
    tags: &HashSet<u64>,
    cancel: &Cancel,
) -> Scan {
    let mut scan = Scan::default();
    let filters = Filters { excludes, tags };
    let dev = fsops::stat_fd(root).map_or(0, |m| m.dev);
    let mut stack = vec![Folder {
        rel: Vec::new(),
        at: None,
        dev,
    }];
    while let Some(folder) = stack.pop() {
        if cancel.is_set() {
            scan.stopped = true;
            return scan;
        }
        let Some((listing, dir)) = scan.list(root, &folder) else {
            continue;
        };
        let dir = Rc::new(dir);
        for entry in listing {
            stack.extend(scan.take(&folder, &dir, entry, &filters));
        }
    }
    // Listed folder by folder; the planner needs tree order.
    // Unstable: no scratch copy of the list (paths are unique, so the
    // order is the same); then the growth's slack is given back.
    scan.entries
        .sort_unstable_by(|(a, _), (b, _)| tree_order(a, b));
    scan.entries.shrink_to_fit();
    scan.unknown.sort_by(|a, b| tree_order(a, b));
    scan
}

impl Scan {
    /// `path` could not be read: said, and unknown (never taken for absent).
    fn unreadable(&mut self, path: Vec<u8>, op: &'static str, e: io::Error) {
        self.errors.push((path.clone().into(), op, e));
        self.unknown.push(path.into());
    }

    /// The folder's listing and handle; `None` when it cannot be listed.
    fn list(
        &mut self,
        root: BorrowedFd<'_>,
        folder: &Folder,
    ) -> Option<(Vec<fsops::Entry>, OwnedFd)> {
        let opened = match &folder.at {
            None => fsops::open_dir_at(root, c"."),
            Some((parent, name)) => fsops::open_dir_at(parent.as_fd(), name),
        };
        match opened.and_then(|dir| Ok((fsops::list(dir.as_fd())?, dir))) {
            Ok(listed) => Some(listed),
            Err(e) => {
                self.unreadable(folder.rel.clone(), "list folder", e);
                None
            }
        }
    }

    /// Takes one listed entry of `folder` (open as `dir`) into the scan;
    /// a folder to list comes back.
    fn take(
        &mut self,
        folder: &Folder,
        dir: &Rc<OwnedFd>,
        entry: fsops::Entry,
        filters: &Filters<'_>,
    ) -> Option<Folder> {
        let path = join_rel(&folder.rel, entry.name.to_bytes());
        let tag = fsops::temp_tag(entry.name.to_bytes());
        if tag.is_some_and(|t| filters.tags.contains(&t)) {
            if entry
                .meta
                .as_ref()
                .is_ok_and(|m| matches!(m.kind, Kind::File | Kind::Symlink))
            {
                self.stale.push(path.into());
            }
            return None;
        }
        let meta = match entry.meta {
            Ok(meta) => meta,
            // Gone since it was listed: absent, as it now is.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.unreadable(path, "stat", e);
                return None;
            }
        };
        let what = match meta.kind {
            Kind::File => What::File,
            Kind::Dir => What::Dir,
            Kind::Symlink => What::Link,
            Kind::Special(kind) => {
                self.special.push((path.clone().into(), kind));
                self.unknown.push(path.into());
                return None;
            }
        };
        if filters.excludes.excludes(&path, what == What::Dir) {
            self.excluded.push((path.into(), what));
            return None;
        }
        let target = match what {
            What::Link => match fsops::read_link(dir.as_fd(), &entry.name) {
                Ok(t) => Some(Box::new(t.into_bytes())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
                Err(e) => {
                    self.unreadable(path, "read link", e);
                    return None;
                }
            },
            _ => None,
        };
        let sub = (what == What::Dir).then(|| {
            if meta.dev != folder.dev {
                self.mounts.push((path.clone().into(), meta.dev));
            }
            Folder {
                rel: path.clone(),
                at: Some((Rc::clone(dir), entry.name)),
                dev: meta.dev,
            }
        });
        self.entries
            .push((path.into(), Seen::of(&meta, what, target)));
        sub
    }
}

/// Whether the file system of the folder `root` keeps a file's inode
/// number from one look to the next. FUSE file systems (sshfs without
/// `-o use_ino`, rclone) make numbers up and may hand out new ones once
/// they forget a file: there a changed number says nothing, and a pass
/// that trusted it would see edits nobody made.
pub fn stable_inodes(root: BorrowedFd<'_>) -> bool {
    const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
    rustix::fs::fstatfs(root).map_or(true, |s| s.f_type as u64 != FUSE_SUPER_MAGIC)
}
