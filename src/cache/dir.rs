//! One folder's cache entries, packed: a daemon keeps one for every file of
//! its trees, so a byte saved here is a megabyte saved on a 1,000,000-file
//! tree (issue 14's target: cache and watches within 80 bytes a file).
//!
//! A folder's entries are records back to back in one byte buffer, each a
//! name and its entry, plus one `u32` a file saying where its record starts
//! (kept in name order, for binary search). The entry is stored exactly but
//! as what differs: times and inode numbers as the difference from the
//! folder's first entry (files of a folder are mostly written together, so
//! a difference takes two to four bytes where the value takes eight), the
//! replica's size and mtime only when they differ from the source's, and
//! the digest only when there is one. Every value is recovered bit for bit:
//! the cache trusts what it decodes as much as what it recorded.

use super::Entry;
use super::record::{Base, decode, encode};

/// The entries of one folder, by file name.
#[derive(Default)]
pub struct DirEntries {
    /// Records: a name's length (one byte: names are at most 255 bytes on
    /// Linux), the name, a flags byte, then the entry's fields as varints
    /// (see [`encode`]) and the digest's 16 bytes if any.
    bytes: Vec<u8>,
    /// Where each record starts in `bytes`; in name order unless
    /// `unsorted`.
    starts: Vec<u32>,
    base: Base,
    /// Whether `starts` may be out of name order or hold a name twice
    /// (inserts in listing order keep it sorted; anything else is sorted
    /// once when the folder goes back into the cache).
    unsorted: bool,
    /// Whether `bytes` holds bytes no record uses (an entry rewritten
    /// since it was packed), reclaimed with the next sort.
    loose: bool,
}

impl DirEntries {
    fn name_at(&self, start: u32) -> &[u8] {
        let start = start as usize;
        let len = self.bytes[start] as usize;
        &self.bytes[start + 1..start + 1 + len]
    }

    /// Where a name's record is listed, by binary search over the sorted
    /// starts.
    fn position(&self, name: &[u8]) -> Option<usize> {
        debug_assert!(!self.unsorted, "looked up before being sorted");
        self.starts
            .binary_search_by(|&start| self.name_at(start).cmp(name))
            .ok()
    }

    /// The entry for a file name, if any.
    pub fn get(&self, name: &[u8]) -> Option<Entry> {
        let i = self.position(name)?;
        Some(self.entry_at(self.starts[i]).0)
    }

    /// Like [`DirEntries::get`] for names asked in name order, as a pass
    /// asks them: `next` (start at 0) is where the search begins, moved
    /// past the name found, so a folder whose names have not changed finds
    /// each at the first comparison instead of by a binary search.
    pub fn get_in_order(&self, name: &[u8], next: &mut usize) -> Option<Entry> {
        debug_assert!(!self.unsorted, "looked up before being sorted");
        let from = (*next).min(self.starts.len());
        let rest = &self.starts[from..];
        let found = match rest.first() {
            Some(&start) if self.name_at(start) == name => Ok(0),
            _ => rest.binary_search_by(|&start| self.name_at(start).cmp(name)),
        };
        match found {
            Ok(i) => {
                *next = from + i + 1;
                Some(self.entry_at(rest[i]).0)
            }
            Err(i) => {
                *next = from + i;
                None
            }
        }
    }

    /// The entry whose record starts at `start`, and where the record ends.
    fn entry_at(&self, start: u32) -> (Entry, usize) {
        let start = start as usize;
        let fields = start + 1 + self.bytes[start] as usize;
        decode(&self.bytes, fields, &self.base).expect("a record this folder packed")
    }

    /// An empty folder with room for as many entries as `old` holds: a
    /// pass rebuilds a folder's entries from its last ones, and growing
    /// the buffers step by step would leave the freed steps scattered
    /// through the heap, which a daemon's memory then keeps.
    pub fn with_room_of(old: &DirEntries) -> DirEntries {
        DirEntries {
            bytes: Vec::with_capacity(old.bytes.len()),
            starts: Vec::with_capacity(old.starts.len()),
            ..DirEntries::default()
        }
    }

    /// Records a file's entry. A pass meets each name of a folder once.
    pub fn insert(&mut self, name: &[u8], entry: Entry) {
        if self.starts.is_empty() {
            self.base = Base::of(&entry);
        }
        if let Some(&last) = self.starts.last() {
            self.unsorted |= self.name_at(last) >= name;
        }
        let start = self.append(name, &entry);
        self.starts.push(start);
    }

    /// Appends a record; returns where it starts.
    fn append(&mut self, name: &[u8], entry: &Entry) -> u32 {
        let start = u32::try_from(self.bytes.len()).expect("a folder's entries exceed 4 GiB");
        let len = u8::try_from(name.len()).expect("a file name is at most 255 bytes");
        self.bytes.push(len);
        self.bytes.extend_from_slice(name);
        encode(&mut self.bytes, entry, &self.base);
        start
    }

    /// Changes the entry of a file name as `change` says, if it has one and
    /// `change` returns true; returns whether it changed. The new record
    /// overwrites the old one where it fits, else is appended.
    pub(super) fn update(&mut self, name: &[u8], change: impl FnOnce(&mut Entry) -> bool) -> bool {
        let Some(i) = self.position(name) else {
            return false;
        };
        let start = self.starts[i];
        let (mut entry, end) = self.entry_at(start);
        if !change(&mut entry) {
            return false;
        }
        let mut record = Vec::with_capacity(64);
        encode(&mut record, &entry, &self.base);
        let fields = start as usize + 1 + name.len();
        if fields + record.len() <= end {
            self.bytes[fields..fields + record.len()].copy_from_slice(&record);
            self.loose |= fields + record.len() < end;
        } else {
            self.starts[i] = self.append(name, &entry);
            self.loose = true;
        }
        true
    }

    /// Adds `other`'s entries for names not present here (used when a pass
    /// stops before it reached them).
    pub fn absorb(&mut self, mut other: DirEntries) {
        self.sort();
        other.sort();
        let missing: Vec<u32> = other
            .starts
            .iter()
            .copied()
            .filter(|&start| self.position(other.name_at(start)).is_none())
            .collect();
        for start in missing {
            let entry = other.entry_at(start).0;
            self.insert(other.name_at(start), entry);
        }
        self.sort();
    }

    /// Puts the records in name order (the last entry of a name wins) and
    /// packs them, leaving no unused byte.
    pub(super) fn sort(&mut self) {
        if !self.unsorted && !self.loose {
            return;
        }
        let mut starts = std::mem::take(&mut self.starts);
        // Stable: of equal names, the one inserted last stays last.
        starts.sort_by(|&a, &b| self.name_at(a).cmp(self.name_at(b)));
        let mut kept: Vec<u32> = Vec::with_capacity(starts.len());
        for start in starts {
            match kept.last_mut() {
                Some(prev) if self.name_at(*prev) == self.name_at(start) => *prev = start,
                _ => kept.push(start),
            }
        }
        let mut bytes = Vec::with_capacity(self.bytes.len());
        for start in &mut kept {
            let end = self.entry_at(*start).1;
            let from = *start as usize;
            *start = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[from..end]);
        }
        self.bytes = bytes;
        self.starts = kept;
        self.unsorted = false;
        self.loose = false;
    }

    /// Gives back the room kept for growth.
    pub(super) fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.starts.shrink_to_fit();
    }

    /// Whether both hold the same entries by their packed bytes: records,
    /// their order and the values they are stored as differences from.
    /// True means equal; false may still be equal (entries packed in
    /// another order or against another first entry). A pass that finds a
    /// folder unchanged rebuilds its entries in the same order from the
    /// same first entry, so this settles the common case with one
    /// comparison of bytes instead of a lookup and two decodes an entry.
    pub fn packed_eq(&self, other: &DirEntries) -> bool {
        self.base == other.base && self.starts == other.starts && self.bytes == other.bytes
    }

    /// Each file name with its entry (for the stored cache,
    /// [`crate::cache_store`]; in name order once sorted).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Entry)> {
        self.starts
            .iter()
            .map(|&start| (self.name_at(start), self.entry_at(start).0))
    }

    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    /// Memory held beyond the struct itself, in bytes.
    pub(super) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.starts.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Stamp;
    use proptest::prelude::*;

    fn stamp(size: u64, mtime_ns: i64, ctime_ns: i64, ino: u64) -> Stamp {
        Stamp {
            size,
            mtime_ns,
            ctime_ns,
            ino,
        }
    }

    fn entry(size: u64) -> Entry {
        let s = stamp(
            size,
            1_700_000_000_000_000_000,
            1_700_000_000_500_000_000,
            7,
        );
        Entry {
            src: s,
            dst: Stamp { ino: 9, ..s },
            digest: Some([size as u8; 16]),
            racy: false,
        }
    }

    #[test]
    fn entries_are_found_whatever_the_insert_order() {
        let mut dir = DirEntries::default();
        for (i, name) in ["m", "b", "zz", "a", "b"].iter().enumerate() {
            dir.insert(name.as_bytes(), entry(i as u64));
        }
        dir.sort();
        assert_eq!(dir.len(), 4, "a repeated name keeps one entry");
        assert_eq!(dir.get(b"b").unwrap().src.size, 4, "the last insert wins");
        assert_eq!(dir.get(b"zz").unwrap().src.size, 2);
        assert_eq!(dir.get(b"a").unwrap().src.size, 3);
        assert!(dir.get(b"c").is_none());
    }

    #[test]
    fn an_entry_alone_comes_back_from_its_bytes_and_garbage_does_not() {
        let far = Entry {
            src: stamp(u64::MAX, i64::MIN, i64::MAX, u64::MAX),
            dst: stamp(0, i64::MAX, i64::MIN, 0),
            digest: None,
            racy: true,
        };
        for e in [entry(5), far] {
            let bytes = e.to_bytes();
            assert_eq!(Entry::from_bytes(&bytes), Some(e));
            for cut in 0..bytes.len() {
                assert_eq!(Entry::from_bytes(&bytes[..cut]), None, "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Entry::from_bytes(&longer), None);
        }
        assert_eq!(Entry::from_bytes(&[0x80]), None, "unknown flag");
        let mut overlong = vec![0];
        overlong.extend([0xff; 10]);
        overlong.extend([0; 5]);
        assert_eq!(Entry::from_bytes(&overlong), None, "a varint past 64 bits");
    }

    #[test]
    fn names_asked_in_order_are_found_as_by_get() {
        let mut dir = DirEntries::default();
        for (i, name) in ["b", "d", "e", "g"].iter().enumerate() {
            dir.insert(name.as_bytes(), entry(i as u64));
        }
        let mut next = 0;
        for name in ["a", "b", "c", "e", "f", "g", "h"] {
            let name = name.as_bytes();
            assert_eq!(dir.get_in_order(name, &mut next), dir.get(name), "{name:?}");
        }
        assert_eq!(next, 4);
    }

    #[test]
    fn packed_equality_means_the_same_entries() {
        let build = |sizes: &[u64]| {
            let mut dir = DirEntries::default();
            for (i, &size) in sizes.iter().enumerate() {
                dir.insert(&[b'a' + i as u8], entry(size));
            }
            dir
        };
        assert!(build(&[1, 2, 3]).packed_eq(&build(&[1, 2, 3])));
        assert!(!build(&[1, 2, 3]).packed_eq(&build(&[1, 2, 4])));
        assert!(!build(&[1, 2, 3]).packed_eq(&build(&[1, 2])));
        assert!(DirEntries::default().packed_eq(&DirEntries::default()));
    }

    #[test]
    fn absorb_keeps_what_the_pass_did_not_reach() {
        let mut new = DirEntries::default();
        new.insert(b"b", entry(10));
        let mut old = DirEntries::default();
        old.insert(b"a", entry(1));
        old.insert(b"b", entry(2));
        old.insert(b"c", entry(3));
        new.absorb(old);
        assert_eq!(new.get(b"a"), Some(entry(1)));
        assert_eq!(new.get(b"b"), Some(entry(10)));
        assert_eq!(new.get(b"c"), Some(entry(3)));
    }

    #[test]
    fn extreme_values_come_back_exactly() {
        let far = Entry {
            src: stamp(u64::MAX, i64::MIN, i64::MAX, u64::MAX),
            dst: stamp(0, i64::MAX, i64::MIN, 0),
            digest: None,
            racy: true,
        };
        let mut dir = DirEntries::default();
        dir.insert(b"near", entry(1));
        dir.insert(b"far", far);
        dir.insert(b"\xff", far);
        dir.sort();
        assert_eq!(dir.get(b"far"), Some(far));
        assert_eq!(dir.get(b"\xff"), Some(far));
        assert_eq!(dir.get(b"near"), Some(entry(1)));
    }

    #[test]
    fn a_file_written_with_its_folder_takes_few_bytes() {
        // 20 files written a millisecond apart, copied a millisecond apart,
        // with a digest each: 16 bytes of digest, 8 of name and its length,
        // 4 of start, and the flags and 7 fields in 16 bytes (where they
        // take 65 unpacked).
        let mut dir = DirEntries::default();
        let t = 1_764_000_000_123_456_789;
        for f in 0..20u64 {
            let name = format!("f{f:02}.txt");
            let src = stamp(
                f * 3,
                t + 1_000_000 * f as i64,
                t + 1_000_000 * f as i64,
                5_000 + f,
            );
            let dst = stamp(
                f * 3,
                src.mtime_ns,
                t + 9_000_000_000 + 1_000_000 * f as i64,
                90_000 + f,
            );
            dir.insert(
                name.as_bytes(),
                Entry {
                    src,
                    dst,
                    digest: Some([1; 16]),
                    racy: false,
                },
            );
        }
        dir.shrink();
        assert!(
            dir.heap_bytes() <= 20 * (16 + 8 + 4 + 16),
            "{}",
            dir.heap_bytes()
        );
    }

    #[test]
    fn updates_that_grow_or_shrink_a_record_keep_every_entry() {
        let mut dir = DirEntries::default();
        let plain = Entry {
            digest: None,
            ..entry(5)
        };
        for name in ["a", "b", "c"] {
            dir.insert(name.as_bytes(), plain);
        }
        // Grows: a digest where there was none.
        assert!(dir.update(b"b", |e| {
            e.digest = Some([3; 16]);
            true
        }));
        assert!(dir.loose);
        // Shrinks: back to none.
        assert!(dir.update(b"a", |e| {
            e.dst.ctime_ns = e.src.ctime_ns;
            e.digest = None;
            true
        }));
        assert!(!dir.update(b"c", |_| false));
        assert!(!dir.update(b"d", |_| true));
        let expect = |dir: &DirEntries| {
            assert_eq!(dir.get(b"a").unwrap().dst.ctime_ns, plain.src.ctime_ns);
            assert_eq!(dir.get(b"b").unwrap().digest, Some([3; 16]));
            assert_eq!(dir.get(b"c"), Some(plain));
        };
        expect(&dir);
        let before = dir.bytes.len();
        dir.sort();
        assert!(dir.bytes.len() < before, "packing drops the old record");
        assert!(!dir.loose);
        expect(&dir);
    }

    fn any_stamp() -> impl Strategy<Value = Stamp> {
        (any::<u64>(), any::<i64>(), any::<i64>(), any::<u64>())
            .prop_map(|(size, mtime_ns, ctime_ns, ino)| stamp(size, mtime_ns, ctime_ns, ino))
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        (
            any_stamp(),
            any_stamp(),
            any::<Option<[u8; 16]>>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(src, dst, digest, racy, same)| Entry {
                src,
                // Half the time the replica's size and mtime are the
                // source's, as for most files.
                dst: if same {
                    Stamp {
                        size: src.size,
                        mtime_ns: src.mtime_ns,
                        ..dst
                    }
                } else {
                    dst
                },
                digest,
                racy,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Whatever the values and the insert order, a sorted folder gives
        /// back the last entry recorded for each name.
        #[test]
        fn every_entry_round_trips(
            entries in prop::collection::vec(
                (prop::collection::vec(1u8..=255, 1..12), any_entry()),
                1..40,
            )
        ) {
            let mut dir = DirEntries::default();
            let mut want = std::collections::BTreeMap::new();
            for (name, e) in &entries {
                dir.insert(name, *e);
                want.insert(name.clone(), *e);
            }
            dir.sort();
            prop_assert_eq!(dir.len(), want.len());
            for (name, e) in &want {
                prop_assert_eq!(dir.get(name), Some(*e));
            }
        }
    }
}
