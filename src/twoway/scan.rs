//! The walk of one side of a two-way pair: every entry below its root, in
//! tree order, with what the planner needs. Nothing is followed: a symlink
//! is an entry, never a way into another tree.
//!
//! What cannot be read is never taken for absent: a folder that cannot be
//! listed, an entry that cannot be stat-ed and a special file (FIFO,
//! socket, device) are *unknown*, and the pass leaves those paths, and
//! everything below them, alone on both sides.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use crate::excludes::Matcher;
use crate::fsops::{self, Kind, join_rel};
use crate::pair::Cancel;

use super::reconcile::{Seen, What};

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

/// Compares two relative paths in tree order: a folder right before its
/// contents, each subtree contiguous (`a`, `a/x`, `a!`), which is the
/// order of a depth-first walk over name-sorted listings.
pub fn tree_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

/// Where a folder is: its parent's handle and its name there.
type At = (Rc<OwnedFd>, CString);

/// Walks the tree below `root`, leaving out what `excludes` names and our
/// own temporary files (those whose tag is in `tags`).
pub fn scan(
    root: BorrowedFd<'_>,
    excludes: &Matcher,
    tags: &HashSet<u64>,
    cancel: &Cancel,
) -> Scan {
    let mut scan = Scan::default();
    // Folders still to list: their path, and their parent's handle and
    // their name there (opened only when listed, so a folder with
    // thousands of sub-folders holds one handle, not thousands).
    // And each folder's device, to find the folders a disk is mounted on.
    let root_dev = fsops::stat_fd(root).map_or(0, |m| m.dev);
    let mut stack: Vec<(Vec<u8>, Option<At>, u64)> = vec![(Vec::new(), None, root_dev)];
    while let Some((rel, at, dev)) = stack.pop() {
        if cancel.is_set() {
            scan.stopped = true;
            return scan;
        }
        let opened = match &at {
            None => fsops::open_dir_at(root, c"."),
            Some((parent, name)) => fsops::open_dir_at(parent.as_fd(), name),
        };
        let listing = opened.and_then(|dir| Ok((fsops::list(dir.as_fd())?, dir)));
        let (listing, dir) = match listing {
            Ok(listed) => listed,
            Err(e) => {
                scan.errors.push((rel.clone().into(), "list folder", e));
                scan.unknown.push(rel.into());
                continue;
            }
        };
        let dir = Rc::new(dir);
        for entry in listing {
            let path = join_rel(&rel, entry.name.to_bytes());
            let ours = fsops::temp_tag(entry.name.to_bytes()).is_some_and(|t| tags.contains(&t));
            if ours {
                if entry
                    .meta
                    .as_ref()
                    .is_ok_and(|m| matches!(m.kind, Kind::File | Kind::Symlink))
                {
                    scan.stale.push(path.into());
                }
                continue;
            }
            let meta = match entry.meta {
                Ok(meta) => meta,
                // Gone since it was listed: absent, as it now is.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    scan.errors.push((path.clone().into(), "stat", e));
                    scan.unknown.push(path.into());
                    continue;
                }
            };
            let what = match meta.kind {
                Kind::File => What::File,
                Kind::Dir => What::Dir,
                Kind::Symlink => What::Link,
                Kind::Special(kind) => {
                    scan.special.push((path.clone().into(), kind));
                    scan.unknown.push(path.into());
                    continue;
                }
            };
            if excludes.excludes(&path, what == What::Dir) {
                scan.excluded.push((path.into(), what));
                continue;
            }
            let target = match what {
                What::Link => match fsops::read_link(dir.as_fd(), &entry.name) {
                    Ok(t) => Some(Box::new(t.into_bytes())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        scan.errors.push((path.clone().into(), "read link", e));
                        scan.unknown.push(path.into());
                        continue;
                    }
                },
                _ => None,
            };
            if what == What::Dir {
                if meta.dev != dev {
                    scan.mounts.push((path.clone().into(), meta.dev));
                }
                stack.push((path.clone(), Some((Rc::clone(&dir), entry.name)), meta.dev));
            }
            scan.entries.push((
                path.into(),
                Seen {
                    what,
                    size: meta.size,
                    mtime: meta.mtime,
                    ctime: meta.ctime.nanos(),
                    ino: meta.ino,
                    mode: meta.mode,
                    target,
                },
            ));
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

/// Whether the file system of the folder `root` keeps a file's inode
/// number from one look to the next. FUSE file systems (sshfs without
/// `-o use_ino`, rclone) make numbers up and may hand out new ones once
/// they forget a file: there a changed number says nothing, and a pass
/// that trusted it would see edits nobody made.
pub fn stable_inodes(root: BorrowedFd<'_>) -> bool {
    const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
    rustix::fs::fstatfs(root).map_or(true, |s| s.f_type as u64 != FUSE_SUPER_MAGIC)
}

/// Whether `path` is `prefix` or lies inside it.
pub fn is_under(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_order_puts_a_folder_before_its_contents_and_keeps_subtrees_together() {
        let mut paths: Vec<&[u8]> = vec![b"a!", b"a/x", b"a", b"b", b"a/x/y", b"a.txt", b"a/z"];
        paths.sort_by(|a, b| tree_order(a, b));
        let want: Vec<&[u8]> = vec![b"a", b"a/x", b"a/x/y", b"a/z", b"a!", b"a.txt", b"b"];
        assert_eq!(paths, want);
    }

    #[test]
    fn under_means_the_path_or_below_it() {
        assert!(is_under(b"a/b", b"a"));
        assert!(is_under(b"a", b"a"));
        assert!(!is_under(b"ab", b"a"));
        assert!(is_under(b"x", b""));
    }
}
