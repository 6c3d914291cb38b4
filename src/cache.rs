//! Each pair's memory of files it has seen in sync, so that an unchanged
//! file is never read again.
//!
//! An entry records the source file and its replica copy as they were when
//! the two were last known to hold the same bytes, and the MD5 of those
//! bytes. Entries are grouped per folder: names are stored once, not as full
//! paths, and a pass takes a folder's entries out, rebuilds them from what it
//! finds, and puts them back, so deleted files drop out on their own.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::fsops::{Digest, Meta, Time};

/// The parts of a file's metadata that change when its bytes may have:
/// size, mtime, ctime (which no user can set back) and inode (a file
/// replaced by another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
    pub ino: u64,
}

impl From<&Meta> for Stamp {
    fn from(m: &Meta) -> Stamp {
        Stamp {
            size: m.size,
            mtime: m.mtime,
            ctime: m.ctime,
            ino: m.ino,
        }
    }
}

/// What a pass knows about one file it left in sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The source file when it was last checked.
    pub src: Stamp,
    /// The replica file right after it was last written or checked.
    pub dst: Stamp,
    /// MD5 of the bytes both held; `None` when they were only judged equal
    /// by size and mtime (rsync's quick check) and never read.
    pub digest: Option<Digest>,
    /// The source had changed so recently when this was recorded that a
    /// further write within the same timestamp tick would go unseen (the
    /// racy-git problem): the next pass must read it again.
    pub racy: bool,
}

/// A source file modified less than this long before it was recorded is
/// racy: file-system timestamps are coarse (a jiffy on Linux, 2 s on FAT),
/// so a second write in the same tick leaves size and mtime unchanged.
const RACY_WINDOW_NS: i128 = 2_000_000_000;

impl Entry {
    /// Records a source file and its replica as holding the same bytes.
    pub fn new(src: &Meta, dst: &Meta, digest: Option<Digest>, now: SystemTime) -> Entry {
        Entry {
            src: src.into(),
            dst: dst.into(),
            digest,
            racy: is_racy(src.ctime, now),
        }
    }
}

fn is_racy(ctime: Time, now: SystemTime) -> bool {
    let now_ns = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(_) => return true,
    };
    let ctime_ns = ctime.sec as i128 * 1_000_000_000 + ctime.nsec as i128;
    now_ns - ctime_ns < RACY_WINDOW_NS
}

/// The entries of one folder, by file name.
#[derive(Default)]
pub struct DirEntries {
    files: HashMap<Box<[u8]>, Entry>,
}

impl DirEntries {
    /// The entry for a file name, if any.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.files.get(name)
    }

    /// Records (or replaces) a file's entry.
    pub fn insert(&mut self, name: &[u8], entry: Entry) {
        self.files.insert(name.into(), entry);
    }

    /// Adds `other`'s entries for names not present here (used when a pass
    /// stops before it reached them).
    pub fn absorb(&mut self, other: DirEntries) {
        for (name, entry) in other.files {
            self.files.entry(name).or_insert(entry);
        }
    }

    fn bytes(&self) -> usize {
        self.files.keys().map(|k| entry_bytes(k.len())).sum()
    }
}

/// Approximate memory one entry costs: its name, the entry, the map's
/// bookkeeping.
fn entry_bytes(name_len: usize) -> usize {
    name_len + std::mem::size_of::<Entry>() + std::mem::size_of::<Box<[u8]>>() + 8
}

/// One pair's cache: folders by relative path (the root is the empty path).
#[derive(Default)]
pub struct Cache {
    dirs: HashMap<Box<[u8]>, (DirEntries, u64)>,
    pass: u64,
    entries: usize,
    bytes: usize,
}

impl Cache {
    /// Marks the start of a pass; folders not visited by the time a complete
    /// pass ends are gone from the source and are dropped then.
    pub fn begin_pass(&mut self) {
        self.pass += 1;
    }

    /// Takes a folder's entries out for the pass to consult and rebuild.
    pub fn take_dir(&mut self, rel: &[u8]) -> DirEntries {
        match self.dirs.remove(rel) {
            Some((dir, _)) => {
                self.entries -= dir.files.len();
                self.bytes -= dir.bytes() + rel.len();
                dir
            }
            None => DirEntries::default(),
        }
    }

    /// Puts a folder's entries back, marked as seen in this pass.
    pub fn put_dir(&mut self, rel: &[u8], dir: DirEntries) {
        if dir.files.is_empty() {
            return;
        }
        self.entries += dir.files.len();
        self.bytes += dir.bytes() + rel.len();
        self.dirs.insert(rel.into(), (dir, self.pass));
    }

    /// After a pass that visited every folder: drops folders it did not see.
    pub fn end_complete_pass(&mut self) {
        let pass = self.pass;
        let stale: Vec<Box<[u8]>> = self
            .dirs
            .iter()
            .filter(|(_, (_, seen))| *seen != pass)
            .map(|(k, _)| k.clone())
            .collect();
        for rel in stale {
            self.take_dir(&rel);
        }
    }

    /// Number of files remembered.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Approximate memory used, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::Kind;
    use std::time::Duration;

    fn meta(ctime_sec: i64) -> Meta {
        Meta {
            kind: Kind::File,
            size: 10,
            mtime: Time { sec: 100, nsec: 0 },
            ctime: Time {
                sec: ctime_sec,
                nsec: 0,
            },
            ino: 1,
            mode: 0o644,
        }
    }

    #[test]
    fn recently_changed_sources_are_racy() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(Entry::new(&meta(999), &meta(999), None, now).racy);
        assert!(!Entry::new(&meta(990), &meta(999), None, now).racy);
        // A ctime in the future (clock skew on a share) is never trusted.
        assert!(Entry::new(&meta(2_000), &meta(999), None, now).racy);
    }

    #[test]
    fn unvisited_folders_are_dropped_after_a_complete_pass() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut cache = Cache::default();
        cache.begin_pass();
        for rel in [&b"a"[..], b"b"] {
            let mut dir = cache.take_dir(rel);
            dir.insert(b"f", Entry::new(&meta(1), &meta(1), None, now));
            cache.put_dir(rel, dir);
        }
        assert_eq!(cache.len(), 2);
        let both = cache.bytes();
        cache.begin_pass();
        let dir = cache.take_dir(b"a");
        cache.put_dir(b"a", dir);
        cache.end_complete_pass();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), both / 2);
        assert!(cache.take_dir(b"b").get(b"f").is_none());
    }
}
