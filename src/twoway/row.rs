//! One path of a two-way pass, as values: what each side holds, what the
//! archive recorded, and the action planned; and the tree order every list
//! of a pass is kept in. Every step of the pass (scan, merge, the
//! planner, apply) shares these, and they depend on nothing of the pass.

use std::cmp::Ordering;

use crate::fsops::Time;

/// What an entry is, as far as two-way sync cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum What {
    File,
    Dir,
    Link,
}

impl What {
    /// What a file system entry is; `None` for a FIFO, socket or device,
    /// which two-way sync never touches.
    pub fn of(kind: crate::fsops::Kind) -> Option<What> {
        use crate::fsops::Kind;
        match kind {
            Kind::File => Some(What::File),
            Kind::Dir => Some(What::Dir),
            Kind::Symlink => Some(What::Link),
            Kind::Special(_) => None,
        }
    }
}

/// One side's entry as this pass's scan saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub what: What,
    pub size: u64,
    pub mtime: Time,
    /// Moves with every write and every change of the inode, even one that
    /// keeps the size and the mtime (a tool that restores the mtime). In
    /// nanoseconds: 8 bytes, where a [`Time`] takes 16, in a list of every
    /// entry of both sides.
    pub ctime: i64,
    pub ino: u64,
    /// Permission bits.
    pub mode: u32,
    /// A symlink's target.
    pub target: Target,
}

impl Seen {
    /// What a scan sees of an entry stat-ed as `meta`.
    pub fn of(meta: &crate::fsops::Meta, what: What, target: Target) -> Seen {
        Seen {
            what,
            size: meta.size,
            mtime: meta.mtime,
            ctime: meta.ctime.nanos(),
            ino: meta.ino,
            mode: meta.mode,
            target,
        }
    }
}

/// A symlink's target, boxed twice over: a thin pointer, 8 bytes where a
/// boxed slice's is 16, in a field that only symlinks use.
pub type Target = Option<Box<Vec<u8>>>;

/// A recorded ctime that is not known: the archive was written before
/// ctimes were kept. No file has it.
pub const UNKNOWN_CTIME: i64 = i64::MIN;

/// What identifies one side's copy of an entry at the last sync. The mode
/// is each side's own: a file system that keeps none (FAT) shows one of
/// its own, which must not look like an edit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// In nanoseconds, as the ctime.
    pub mtime: i64,
    /// In nanoseconds, [`UNKNOWN_CTIME`] in an archive written before
    /// ctimes were kept.
    pub ctime: i64,
    pub ino: u64,
    pub mode: u32,
}

/// An archive entry: the path as both sides held it after the last sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub what: What,
    pub size: u64,
    pub target: Target,
    pub a: Stamp,
    pub b: Stamp,
    /// Recorded within a timestamp tick of a file's mtime: an edit in the
    /// same tick would leave the same stamp, so the next pass compares
    /// the two sides' bytes before it trusts the stamps.
    pub racy: bool,
}

/// The two folders of a pair: SOURCE (first) and REPLICA (second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What the pass does at one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing; the archive stays as it is.
    Keep,
    /// Both sides agree: write the archive entry from what was seen.
    Record,
    /// Make side `to` hold what the other side holds (create, replace,
    /// change type, or set a folder's mode).
    Copy { to: Side },
    /// Remove the entry on side `on` (the other side deleted it).
    Delete { on: Side },
    /// Gone from both sides: drop the archive entry.
    Forget,
    /// Changed differently on both sides: `winner` keeps the name on both
    /// sides; the other version is kept beside it, under a conflict name,
    /// on both sides.
    Conflict { winner: Side },
    /// The other side's change would delete, move or replace what side
    /// `holder` excludes (at the path, or inside its folder): `holder`
    /// keeps the name, the other side's entry is kept beside it as a
    /// conflict copy on both sides, and a folder of `holder`'s is made on
    /// the other side (see [`super::excluded`]).
    Excluded { holder: Side },
}

/// One path of the pass: the archive's entry, both sides', and, once
/// planned, the action.
#[derive(Clone, Debug)]
pub struct Row {
    pub path: Box<[u8]>,
    pub rec: Option<Record>,
    pub a: Option<Seen>,
    pub b: Option<Seen>,
    /// Whether both sides' files hold the same bytes, when that had to be
    /// read to decide (see [`needs_compare`]).
    pub same: Option<bool>,
    pub action: Action,
}

impl Row {
    pub fn seen(&self, side: Side) -> Option<&Seen> {
        match side {
            Side::A => self.a.as_ref(),
            Side::B => self.b.as_ref(),
        }
    }
}

/// The parent of a relative path (empty for a top-level entry).
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// Compares two relative paths in tree order: a folder right before its
/// contents, each subtree contiguous (`a`, `a/x`, `a!`), which is the
/// order of a depth-first walk over name-sorted listings.
pub fn tree_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
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
