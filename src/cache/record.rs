//! One cache entry as the bytes a folder's buffer holds ([`super::dir`]):
//! a flags byte, then varints, each field stored as what differs from a
//! value the reader already has, so most take one to four bytes.

use super::{Entry, Stamp};

/// The record's flags byte.
const RACY: u8 = 1;
const DIGEST: u8 = 1 << 1;
/// The replica's size differs from the source's (never for a file judged
/// equal, but the entry says what it was told).
const DST_SIZE: u8 = 1 << 2;
/// The replica's mtime differs from the source's (a file system that keeps
/// coarser times).
const DST_MTIME: u8 = 1 << 3;

/// The values a folder's records are stored as differences from: those of
/// the first entry it was given.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Base {
    src_mtime: i64,
    src_ctime: i64,
    src_ino: u64,
    dst_ctime: i64,
    dst_ino: u64,
}

impl Base {
    pub(super) fn of(e: &Entry) -> Base {
        Base {
            src_mtime: e.src.mtime_ns,
            src_ctime: e.src.ctime_ns,
            src_ino: e.src.ino,
            dst_ctime: e.dst.ctime_ns,
            dst_ino: e.dst.ino,
        }
    }
}

/// Appends an entry's flags and fields: the source's size, mtime, ctime and
/// inode; the replica's size and mtime if they differ from the source's;
/// the replica's ctime and inode; the digest if any. Times and inodes are
/// differences (wrapping, so any value round-trips) from `base`, the
/// replica's mtime from the source's.
pub(super) fn encode(out: &mut Vec<u8>, e: &Entry, base: &Base) {
    let mut flags = 0;
    if e.racy {
        flags |= RACY;
    }
    if e.digest.is_some() {
        flags |= DIGEST;
    }
    if e.dst.size != e.src.size {
        flags |= DST_SIZE;
    }
    if e.dst.mtime_ns != e.src.mtime_ns {
        flags |= DST_MTIME;
    }
    out.push(flags);
    put(out, e.src.size);
    put_diff(out, e.src.mtime_ns, base.src_mtime);
    put_diff(out, e.src.ctime_ns, base.src_ctime);
    put_diff(out, e.src.ino as i64, base.src_ino as i64);
    if flags & DST_SIZE != 0 {
        put(out, e.dst.size);
    }
    if flags & DST_MTIME != 0 {
        put_diff(out, e.dst.mtime_ns, e.src.mtime_ns);
    }
    put_diff(out, e.dst.ctime_ns, base.dst_ctime);
    put_diff(out, e.dst.ino as i64, base.dst_ino as i64);
    if let Some(digest) = &e.digest {
        out.extend_from_slice(digest);
    }
}

/// The entry [`encode`] wrote at `at`, and where it ends; `None` for
/// bytes it cannot have written (which only a corrupt store holds:
/// checked, so such bytes are refused, never a panic).
pub(super) fn decode(bytes: &[u8], mut at: usize, base: &Base) -> Option<(Entry, usize)> {
    let flags = *bytes.get(at)?;
    if flags & !(RACY | DIGEST | DST_SIZE | DST_MTIME) != 0 {
        return None;
    }
    at += 1;
    let mut next = || take(bytes, &mut at);
    let src_size = next()?;
    let src_mtime = undiff(next()?, base.src_mtime);
    let src_ctime = undiff(next()?, base.src_ctime);
    let src_ino = undiff(next()?, base.src_ino as i64) as u64;
    let dst_size = if flags & DST_SIZE != 0 {
        next()?
    } else {
        src_size
    };
    let dst_mtime = if flags & DST_MTIME != 0 {
        undiff(next()?, src_mtime)
    } else {
        src_mtime
    };
    let dst_ctime = undiff(next()?, base.dst_ctime);
    let dst_ino = undiff(next()?, base.dst_ino as i64) as u64;
    let digest = if flags & DIGEST != 0 {
        let d: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
        at += 16;
        Some(d)
    } else {
        None
    };
    let entry = Entry {
        src: Stamp {
            size: src_size,
            mtime_ns: src_mtime,
            ctime_ns: src_ctime,
            ino: src_ino,
        },
        dst: Stamp {
            size: dst_size,
            mtime_ns: dst_mtime,
            ctime_ns: dst_ctime,
            ino: dst_ino,
        },
        digest,
        racy: flags & RACY != 0,
    };
    Some((entry, at))
}

impl Entry {
    /// The entry alone, as the stored cache keeps it
    /// ([`crate::cache_store`]): its record against a zero base, so it
    /// needs nothing else to be read back.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        encode(&mut out, &self, &Base::default());
        out
    }

    /// The entry [`Entry::to_bytes`] made, or `None` for bytes it cannot
    /// have made (a corrupt store): checked to the end before [`decode`]
    /// reads them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Entry> {
        match decode(bytes, 0, &Base::default())? {
            (entry, end) if end == bytes.len() => Some(entry),
            _ => None,
        }
    }
}

/// Appends `v` as a varint: seven bits a byte, low first, the top bit set
/// on every byte but the last.
fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v - base` (wrapping) zigzag-encoded, so that small differences
/// either way take few bytes.
fn put_diff(out: &mut Vec<u8>, v: i64, base: i64) {
    let d = v.wrapping_sub(base);
    put(out, ((d << 1) ^ (d >> 63)) as u64);
}

/// Reads a varint at `*at` and moves past it (inlined: a call a field was
/// a third of the cost of a decode).
#[inline(always)]
fn take(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        // The tenth byte holds the top bit only.
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

/// The value whose [`put_diff`] from `base` was `z`.
fn undiff(z: u64, base: i64) -> i64 {
    let d = (z >> 1) as i64 ^ -((z & 1) as i64);
    base.wrapping_add(d)
}
