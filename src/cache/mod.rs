//! Each pair's memory of files it has seen in sync, so that an unchanged
//! file is never read again.
//!
//! An entry records the source file and its replica copy as they were when
//! the two were last known to hold the same bytes, and the MD5 of those
//! bytes. Entries are grouped per folder: names are stored once, not as full
//! paths, and a pass takes a folder's entries out, rebuilds them from what it
//! finds, and puts them back, so deleted files drop out on their own. A
//! folder's entries are packed ([`dir`]): about 45 bytes a small file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use crate::fsops::{Digest, Meta, Time};

mod dir;
mod record;

pub use dir::DirEntries;

/// The parts of a file's metadata that change when its bytes may have:
/// size, mtime, ctime (which no user can set back) and inode (a file
/// replaced by another). Times are kept as nanoseconds in one `i64` to keep
/// entries small; two times that differ map to different values unless
/// they are some 584 years apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

/// A file-system time as wrapping nanoseconds.
fn nanos(t: Time) -> i64 {
    t.sec
        .wrapping_mul(1_000_000_000)
        .wrapping_add(i64::from(t.nsec))
}

impl From<&Meta> for Stamp {
    fn from(m: &Meta) -> Stamp {
        Stamp {
            size: m.size,
            mtime_ns: nanos(m.mtime),
            ctime_ns: nanos(m.ctime),
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

/// A folder's entries as the cache holds them.
struct Dir {
    entries: DirEntries,
    /// The pass that last saw this folder.
    pass: u64,
    /// When it was last put back, for least-recently-used eviction.
    used: u64,
}

/// Memory a cached folder costs beyond its entries' packed bytes and its
/// path: the map's slot (key and value) and its control byte, and the heap
/// allocator's header of each of its three allocations (path, records,
/// starts).
const DIR_OVERHEAD: usize = std::mem::size_of::<(Box<[u8]>, Dir)>() + 1 + 3 * 8;

/// One pair's cache: folders by relative path (the root is the empty path).
///
/// With a limit (`--cache-limit`), the folders least recently used are
/// evicted whole when the cache grows past it; a file without an entry is
/// judged by rsync's quick check (size and mtime) as on a first pass, so
/// eviction costs reads only for files whose mtime moved.
pub struct Cache {
    dirs: HashMap<Box<[u8]>, Dir>,
    /// Folders in the order they were put back, oldest first, with the
    /// `used` stamp they had then; an element whose folder has been put back
    /// since is stale and skipped. Only kept when there is a limit.
    order: VecDeque<(Box<[u8]>, u64)>,
    limit: Option<usize>,
    pass: u64,
    clock: u64,
    entries: usize,
    bytes: usize,
    evicted: u64,
    /// Whether entries are kept at all: not for `--once`, whose cache dies
    /// with the pass, so its memory does not grow with the tree.
    keeps: bool,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(None)
    }
}

impl Cache {
    /// An empty cache that keeps its memory under `limit` bytes, if given.
    pub fn new(limit: Option<usize>) -> Cache {
        Cache {
            dirs: HashMap::new(),
            order: VecDeque::new(),
            limit,
            pass: 0,
            clock: 0,
            entries: 0,
            bytes: 0,
            evicted: 0,
            keeps: true,
        }
    }

    /// A cache for a single pass (`--once`): it records nothing, so a pass
    /// holds only the folders in flight. Nothing would consult the entries
    /// after the pass; within it, each folder reads its entries before
    /// putting them back.
    pub fn for_one_pass() -> Cache {
        Cache {
            keeps: false,
            ..Cache::new(None)
        }
    }

    /// Marks the start of a pass; folders not visited by the time a complete
    /// pass ends are gone from the source and are dropped then.
    pub fn begin_pass(&mut self) {
        self.pass += 1;
    }

    /// Takes a folder's entries out for the pass to consult and rebuild.
    pub fn take_dir(&mut self, rel: &[u8]) -> DirEntries {
        match self.dirs.remove(rel) {
            Some(dir) => {
                self.entries -= dir.entries.len();
                self.bytes -= dir.entries.heap_bytes() + rel.len() + DIR_OVERHEAD;
                dir.entries
            }
            None => DirEntries::default(),
        }
    }

    /// Puts a folder's entries back, marked as seen in this pass, and evicts
    /// the least recently used folders while over the limit.
    pub fn put_dir(&mut self, rel: &[u8], mut entries: DirEntries) {
        if !self.keeps || entries.len() == 0 {
            return;
        }
        entries.sort();
        entries.shrink();
        self.clock += 1;
        self.entries += entries.len();
        self.bytes += entries.heap_bytes() + rel.len() + DIR_OVERHEAD;
        let dir = Dir {
            entries,
            pass: self.pass,
            used: self.clock,
        };
        if let Some(old) = self.dirs.insert(rel.into(), dir) {
            self.entries -= old.entries.len();
            self.bytes -= old.entries.heap_bytes() + rel.len() + DIR_OVERHEAD;
        }
        let Some(limit) = self.limit else { return };
        self.order.push_back((rel.into(), self.clock));
        while self.bytes > limit {
            let Some((oldest, used)) = self.order.pop_front() else {
                break;
            };
            if self.dirs.get(&oldest).is_some_and(|d| d.used == used) {
                self.evicted += self.take_dir(&oldest).len() as u64;
            }
        }
        // Drop stale order elements now and then so the queue stays in
        // proportion to the cache.
        if self.order.len() > 2 * self.dirs.len() + 64 {
            let dirs = &self.dirs;
            self.order
                .retain(|(rel, used)| dirs.get(rel).is_some_and(|d| d.used == *used));
        }
    }

    /// After a pass that visited every folder: drops folders it did not see.
    pub fn end_complete_pass(&mut self) {
        let pass = self.pass;
        let stale: Vec<Box<[u8]>> = self
            .dirs
            .iter()
            .filter(|(_, dir)| dir.pass != pass)
            .map(|(k, _)| k.clone())
            .collect();
        for rel in stale {
            self.take_dir(&rel);
        }
    }

    /// Drops the folders at `tops` and all below them: a pass removed them
    /// from the replica, the source having none there any more (deleted,
    /// moved away). Only a full pass would drop them otherwise, and a
    /// watched pair's full pass may be an hour away.
    pub fn drop_trees(&mut self, tops: &[Vec<u8>]) {
        if tops.is_empty() {
            return;
        }
        let tops: HashSet<&[u8]> = tops.iter().map(Vec::as_slice).collect();
        // A folder is gone if it or a folder it is in is one of `tops`.
        let gone = |rel: &[u8]| {
            tops.contains(rel)
                || rel
                    .iter()
                    .enumerate()
                    .any(|(at, &b)| b == b'/' && tops.contains(&rel[..at]))
        };
        let stale: Vec<Box<[u8]>> = self.dirs.keys().filter(|k| gone(k)).cloned().collect();
        for rel in stale {
            self.take_dir(&rel);
        }
    }

    /// The entry of the file at `rel` (a folder's path, a slash, a name),
    /// without marking its folder as used.
    pub fn get(&self, rel: &[u8]) -> Option<Entry> {
        let (dir, name) = split_rel(rel);
        self.dirs.get(dir)?.entries.get(name)
    }

    /// Records the digest of a file's bytes, provided its entry still
    /// describes the replica file as `dst` (it was not rewritten or
    /// re-recorded meanwhile). Returns whether it did.
    pub fn set_digest(&mut self, rel: &[u8], dst: Stamp, digest: Digest) -> bool {
        self.update(rel, |e| {
            let matches = e.dst == dst;
            if matches {
                e.digest = Some(digest);
            }
            matches
        })
    }

    /// Records the replica side of a file's entry again after hard links
    /// made to the replica file moved its ctime, provided the entry still
    /// describes that file with that size and mtime.
    pub fn restamp_replica(&mut self, rel: &[u8], dst: Stamp) {
        self.update(rel, |e| {
            let same_file =
                (e.dst.ino, e.dst.size, e.dst.mtime_ns) == (dst.ino, dst.size, dst.mtime_ns);
            if same_file {
                e.dst = dst;
            }
            same_file
        });
    }

    /// Changes the entry of the file at `rel` in place as `change` says
    /// (if it returns true), keeping the count of bytes held true.
    fn update(&mut self, rel: &[u8], change: impl FnOnce(&mut Entry) -> bool) -> bool {
        let (dir, name) = split_rel(rel);
        let Some(dir) = self.dirs.get_mut(dir) else {
            return false;
        };
        let before = dir.entries.heap_bytes();
        let changed = dir.entries.update(name, change);
        self.bytes = self.bytes - before + dir.entries.heap_bytes();
        changed
    }

    /// Number of files remembered.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Approximate memory used, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries evicted to keep under the limit since the cache was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Whether entries are kept after the pass (not by
    /// [`Cache::for_one_pass`]).
    pub fn keeps(&self) -> bool {
        self.keeps
    }
}

/// A file's relative path split into its folder's path and its name.
fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
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
            dev: 1,
            nlink: 1,
            blocks: 8,
            mode: 0o644,
        }
    }

    #[test]
    fn dropping_a_tree_keeps_its_look_alike_neighbours() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut cache = Cache::new(None);
        for dir in ["a", "a/b", "a/b/c", "a-b", "a0", "ab", "x/a"] {
            let mut entries = DirEntries::default();
            entries.insert(b"f", Entry::new(&meta(1), &meta(1), None, now));
            cache.put_dir(dir.as_bytes(), entries);
        }
        cache.drop_trees(&[b"a".to_vec(), b"nothing".to_vec()]);
        let mut left: Vec<&[u8]> = cache.dirs.keys().map(|k| &k[..]).collect();
        left.sort();
        assert_eq!(left, [&b"a-b"[..], b"a0", b"ab", b"x/a"]);
        assert_eq!(cache.len(), 4);
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

    fn entry(size: u64) -> Entry {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut m = meta(1);
        m.size = size;
        Entry::new(&m, &m, Some([size as u8; 16]), now)
    }

    #[test]
    fn a_digest_is_recorded_only_for_the_replica_it_was_taken_from() {
        let mut cache = Cache::new(None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let m = meta(1);
        let mut dir = DirEntries::default();
        dir.insert(b"f", Entry::new(&m, &m, None, now));
        cache.put_dir(b"a/b", dir);
        let stamp = Stamp::from(&m);
        let rewritten = Stamp::from(&meta(2));
        assert!(!cache.set_digest(b"a/b/f", rewritten, [1; 16]));
        assert!(!cache.set_digest(b"a/f", stamp, [1; 16]));
        assert!(!cache.set_digest(b"f", stamp, [1; 16]));
        assert_eq!(cache.get(b"a/b/f").unwrap().digest, None);
        assert!(cache.set_digest(b"a/b/f", stamp, [1; 16]));
        assert_eq!(cache.get(b"a/b/f").unwrap().digest, Some([1; 16]));

        let mut root = DirEntries::default();
        root.insert(b"top", Entry::new(&m, &m, None, now));
        cache.put_dir(b"", root);
        assert!(cache.set_digest(b"top", stamp, [2; 16]));
        assert_eq!(cache.get(b"top").unwrap().digest, Some([2; 16]));
    }

    #[test]
    fn a_limit_evicts_the_least_recently_used_folders() {
        let one_dir = {
            let mut probe = Cache::default();
            let mut dir = DirEntries::default();
            for n in 0..10u8 {
                dir.insert(&[b'f', n], entry(n.into()));
            }
            probe.put_dir(b"d0", dir);
            probe.bytes()
        };
        let mut cache = Cache::new(Some(3 * one_dir + one_dir / 2));
        for round in 0..3 {
            for d in 0..5u8 {
                let rel = [b'd', b'0' + d];
                let mut dir = cache.take_dir(&rel);
                for n in 0..10u8 {
                    dir.insert(&[b'f', n], entry(n.into()));
                }
                cache.put_dir(&rel, dir);
                assert!(cache.bytes() <= 3 * one_dir + one_dir / 2, "round {round}");
            }
        }
        // The three folders used last are kept, the two before are gone.
        assert_eq!(cache.len(), 30);
        assert!(cache.take_dir(b"d1").get(b"f\x01").is_none());
        assert!(cache.take_dir(b"d4").get(&[b'f', 1]).is_some());
        assert!(cache.evicted() > 0);
        assert!(cache.order.len() <= 2 * cache.dirs.len() + 64 + 1);
    }
}
