//! The set of folders a watch holds, for the list's count: packed, since
//! a huge tree has tens of thousands of them.

/// The folders watched, relative to the source root, kept as notify keeps
/// its watches: a folder made or moved in brings every folder below it
/// (notify walks it too: folders made in it before its watch was added
/// send no event), one removed or moved out takes its subtree along.
/// Paths, not a count, since a folder moved out is gone by the time its
/// event comes: only the set knows how many folders it held.
///
/// Kept in path order in blocks of up to [`BLOCK_PATHS`] paths, each path
/// written after the one before it as the length of the start they share
/// and the rest: about 3 bytes a folder of the huge workload (`d12/e345`
/// after `d12/e344` is 7, 1 and `5`), where a set of boxed paths took
/// about 55 (a 32-byte allocation and a B-tree slot each). A change
/// unpacks and packs again only the blocks it touches.
#[derive(Default)]
pub(super) struct Folders {
    /// In path order, none empty; the first path of each is written whole.
    blocks: Vec<Box<[u8]>>,
    len: usize,
}

/// Paths a block holds at most: a change unpacks one block of this many
/// paths, and each block costs about 40 bytes of its own.
const BLOCK_PATHS: usize = 128;

impl Folders {
    /// How many folders are watched.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn add(&mut self, mut folders: Vec<Box<[u8]>>) {
        folders.sort_unstable();
        folders.dedup();
        let mut rest = &folders[..];
        while let Some(first) = rest.first() {
            // The block `first` goes in (the last one starting at or before
            // it), with every other new path that sorts before the next
            // block.
            let at = self
                .blocks
                .partition_point(|b| first_path(b) <= &first[..])
                .saturating_sub(1);
            let end = match self.blocks.get(at + 1) {
                Some(next) => rest.partition_point(|p| &p[..] < first_path(next)),
                None => rest.len(),
            };
            let (group, tail) = rest.split_at(end);
            rest = tail;
            let mut paths = self.blocks.get(at).map(|b| unpack(b)).unwrap_or_default();
            let before = paths.len();
            paths.extend(group.iter().map(|p| p.to_vec()));
            paths.sort_unstable();
            paths.dedup();
            self.len += paths.len() - before;
            let end = (at + 1).min(self.blocks.len());
            self.blocks.splice(at..end, pack(&paths));
        }
    }

    /// Drops every folder (the root's folder is gone).
    pub(super) fn remove_all(&mut self) {
        *self = Folders::default();
    }

    /// Drops `rel` (not empty) and every folder below it.
    pub(super) fn remove_tree(&mut self, rel: &[u8]) {
        let below = [rel, b"/"].concat();
        // '0' sorts right after '/': the paths below are the range between.
        let past = [rel, b"0"].concat();
        let gone = |p: &[u8]| p == rel || (p >= &below[..] && p < &past[..]);
        // The blocks that may hold any of them.
        let start = self
            .blocks
            .partition_point(|b| first_path(b) <= rel)
            .saturating_sub(1);
        let end = self.blocks.partition_point(|b| first_path(b) < &past[..]);
        if start >= end {
            return;
        }
        let mut paths: Vec<Vec<u8>> = self.blocks[start..end]
            .iter()
            .flat_map(|b| unpack(b))
            .collect();
        let before = paths.len();
        paths.retain(|p| !gone(p));
        if paths.len() == before {
            return;
        }
        self.len -= before - paths.len();
        self.blocks.splice(start..end, pack(&paths));
    }

    /// Every path, in order.
    #[cfg(test)]
    fn paths(&self) -> Vec<Vec<u8>> {
        self.blocks.iter().flat_map(|b| unpack(b)).collect()
    }
}

/// Sorted paths in blocks of equal size (a full block that gains a path
/// becomes two halves, not a full one and one of a single path): each
/// path as a varint of the bytes it shares with the one before in its
/// block, a varint of the length of the rest, and the rest.
fn pack(paths: &[Vec<u8>]) -> Vec<Box<[u8]>> {
    let blocks = paths.len().div_ceil(BLOCK_PATHS);
    if blocks == 0 {
        return Vec::new();
    }
    paths
        .chunks(paths.len().div_ceil(blocks))
        .map(|chunk| {
            let mut block = Vec::new();
            let mut prev: &[u8] = &[];
            for path in chunk {
                let shared = prev.iter().zip(path).take_while(|(a, b)| a == b).count();
                put_varint(&mut block, shared);
                put_varint(&mut block, path.len() - shared);
                block.extend_from_slice(&path[shared..]);
                prev = path;
            }
            block.into_boxed_slice()
        })
        .collect()
}

/// The paths of one block, in order.
fn unpack(block: &[u8]) -> Vec<Vec<u8>> {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let shared = get_varint(block, &mut at);
        let len = get_varint(block, &mut at);
        let mut path = paths.last().map_or_else(Vec::new, |p| p[..shared].to_vec());
        path.extend_from_slice(&block[at..at + len]);
        at += len;
        paths.push(path);
    }
    paths
}

/// The first path of a block, written whole.
fn first_path(block: &[u8]) -> &[u8] {
    let mut at = 0;
    let _shared = get_varint(block, &mut at);
    let len = get_varint(block, &mut at);
    &block[at..at + len]
}

/// LEB128: 7 bits a byte, low first; the high bit says more follow.
fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> usize {
    let mut n = 0;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_folder_removed_takes_its_subtree_and_nothing_else() {
        let mut f = Folders::default();
        let all = ["a", "a/b", "a/b/c", "a-b", "a0", "ab", "x"];
        f.add(all.iter().map(|s| s.as_bytes().into()).collect());
        f.remove_tree(b"a");
        let left: Vec<Vec<u8>> = ["a-b", "a0", "ab", "x"].map(|s| s.into()).to_vec();
        assert_eq!(f.paths(), left);
        f.remove_tree(b"nothing");
        assert_eq!(f.len(), 4);
    }

    proptest::proptest! {
        /// Any adds and removals leave the same folders as a plain set
        /// would, across block boundaries too.
        #[test]
        fn folders_are_kept_as_a_set_would(
            ops in proptest::collection::vec(
                (proptest::bool::ANY, proptest::collection::vec("[ab/]{1,6}", 0..200)),
                1..12,
            )
        ) {
            let mut f = Folders::default();
            let mut model = BTreeSet::new();
            for (add, paths) in ops {
                if add {
                    f.add(paths.iter().map(|p| p.as_bytes().into()).collect());
                    model.extend(paths.iter().map(|p| p.as_bytes().to_vec()));
                } else if let Some(rel) = paths.first() {
                    f.remove_tree(rel.as_bytes());
                    let below = format!("{rel}/");
                    model.retain(|p: &Vec<u8>| p != rel.as_bytes() && !p.starts_with(below.as_bytes()));
                }
                proptest::prop_assert_eq!(f.paths(), model.iter().cloned().collect::<Vec<_>>());
                proptest::prop_assert_eq!(f.len(), model.len());
            }
        }
    }
}
