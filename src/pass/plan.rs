//! The decision, for a source file whose replica is also a regular file, of
//! what work is needed: a pure function of the two files' metadata and the
//! cache entry, so every rule is unit-tested without touching a disk.

use crate::cache::{Entry, Stamp};
use crate::fsops::{Digest, Meta};
use crate::mounts::Caps;

/// What a pass must do to bring one replica file in line with its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Same bytes, same mode and mtime: nothing to do.
    Skip,
    /// Same bytes, but mode or mtime differ: set them, write no data.
    FixAttrs,
    /// The bytes differ (or sizes do): copy.
    Copy,
    /// The replica's bytes are known (its cache entry still matches), the
    /// source's are not: hash the source and compare with this digest.
    HashSource(Digest),
    /// The source's bytes are known, the replica was changed behind our
    /// back: hash the replica and compare with this digest.
    HashReplica(Digest),
    /// Neither side is known: read both and compare.
    CompareBoth,
}

/// Decides what a replica file needs, reading no file data.
///
/// The cache is trusted only where both stamps still match and the source
/// was not racy when recorded; without a cache entry, equal size and mtime
/// count as equal bytes (rsync's quick check) unless `checksum` is set.
/// With `checksum`, only an entry with a digest counts (the bytes were
/// read when it was recorded): size and mtime alone never do.
/// Replica times and modes are compared as far as its file system keeps
/// them (`caps`): the source is compared exactly with what it was.
pub fn plan_file(
    src: &Meta,
    dst: &Meta,
    cached: Option<&Entry>,
    checksum: bool,
    caps: &Caps,
) -> Plan {
    if src.size != dst.size {
        return Plan::Copy;
    }
    let same_mtime = caps.same_mtime(src.mtime, dst.mtime);
    let settled = same_bytes(src, dst, caps);
    let Some(entry) = cached.filter(|e| !checksum || e.digest.is_some()) else {
        return if same_mtime && !checksum {
            settled
        } else {
            Plan::CompareBoth
        };
    };
    let src_known = entry.src == Stamp::from(src) && !entry.racy;
    let dst_known = caps.same_stamp(&entry.dst, &Stamp::from(dst));
    match (src_known, dst_known, entry.digest) {
        (true, true, _) => settled,
        (false, true, Some(digest)) => Plan::HashSource(digest),
        (true, false, Some(digest)) => Plan::HashReplica(digest),
        _ => Plan::CompareBoth,
    }
}

/// The plan once the bytes have been compared.
pub fn after_compare(equal: bool, src: &Meta, dst: &Meta, caps: &Caps) -> Plan {
    if equal {
        same_bytes(src, dst, caps)
    } else {
        Plan::Copy
    }
}

/// The plan for a replica file with the source's bytes. Its mode and mtime
/// are set in place, unless it has more names than the source file (a
/// hard link the source no longer has, or a snapshot made with `cp -al`):
/// those names would change too, so it is copied instead.
fn same_bytes(src: &Meta, dst: &Meta, caps: &Caps) -> Plan {
    if caps.same_mtime(src.mtime, dst.mtime) && caps.same_mode(src.mode, dst.mode) {
        Plan::Skip
    } else if dst.nlink > src.nlink {
        Plan::Copy
    } else {
        Plan::FixAttrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::{Kind, Time};
    use std::time::{Duration, SystemTime};

    const DIGEST: Digest = [7; 16];

    fn file(size: u64, mtime: i64, ctime: i64, ino: u64) -> Meta {
        Meta {
            kind: Kind::File,
            size,
            mtime: Time {
                sec: mtime,
                nsec: 0,
            },
            ctime: Time {
                sec: ctime,
                nsec: 0,
            },
            ino,
            dev: 1,
            nlink: 1,
            blocks: size.div_ceil(512),
            mode: 0o644,
        }
    }

    /// A cache entry recorded long after both files last changed.
    fn settled(src: &Meta, dst: &Meta, digest: Option<Digest>) -> Entry {
        Entry::new(
            src,
            dst,
            digest,
            SystemTime::UNIX_EPOCH + Duration::from_secs(10_000),
        )
    }

    #[test]
    fn different_sizes_always_copy() {
        let src = file(10, 100, 100, 1);
        let dst = file(11, 100, 100, 2);
        assert_eq!(plan_file(&src, &dst, None, false, &Caps::EXACT), Plan::Copy);
        assert_eq!(plan_file(&src, &dst, None, true, &Caps::EXACT), Plan::Copy);
    }

    #[test]
    fn quick_check_without_cache_trusts_size_and_mtime() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        assert_eq!(plan_file(&src, &dst, None, false, &Caps::EXACT), Plan::Skip);
        let mut chmodded = src;
        chmodded.mode = 0o600;
        assert_eq!(
            plan_file(&chmodded, &dst, None, false, &Caps::EXACT),
            Plan::FixAttrs
        );
    }

    #[test]
    fn checksum_trusts_only_entries_whose_bytes_were_read() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        assert_eq!(
            plan_file(&src, &dst, None, true, &Caps::EXACT),
            Plan::CompareBoth
        );
        let quick = settled(&src, &dst, None);
        assert_eq!(
            plan_file(&src, &dst, Some(&quick), true, &Caps::EXACT),
            Plan::CompareBoth
        );
        let read = settled(&src, &dst, Some(DIGEST));
        assert_eq!(
            plan_file(&src, &dst, Some(&read), true, &Caps::EXACT),
            Plan::Skip
        );
        let rewritten = file(10, 100, 300, 1);
        assert_eq!(
            plan_file(&rewritten, &dst, Some(&read), true, &Caps::EXACT),
            Plan::HashSource(DIGEST)
        );
    }

    #[test]
    fn touched_source_without_cache_is_compared_not_copied() {
        let src = file(10, 500, 500, 1);
        let dst = file(10, 100, 200, 2);
        assert_eq!(
            plan_file(&src, &dst, None, false, &Caps::EXACT),
            Plan::CompareBoth
        );
    }

    #[test]
    fn unchanged_pair_in_cache_is_skipped() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        let entry = settled(&src, &dst, Some(DIGEST));
        assert_eq!(
            plan_file(&src, &dst, Some(&entry), false, &Caps::EXACT),
            Plan::Skip
        );
    }

    #[test]
    fn changed_source_is_hashed_against_the_known_replica() {
        let old = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        let entry = settled(&old, &dst, Some(DIGEST));
        let touched = file(10, 300, 300, 1);
        assert_eq!(
            plan_file(&touched, &dst, Some(&entry), false, &Caps::EXACT),
            Plan::HashSource(DIGEST)
        );
        // Same size and mtime, but ctime moved: content may have changed.
        let rewritten = file(10, 100, 300, 1);
        assert_eq!(
            plan_file(&rewritten, &dst, Some(&entry), false, &Caps::EXACT),
            Plan::HashSource(DIGEST)
        );
        // Replaced by another file with the same size and mtime.
        let replaced = file(10, 100, 100, 9);
        assert_eq!(
            plan_file(&replaced, &dst, Some(&entry), false, &Caps::EXACT),
            Plan::HashSource(DIGEST)
        );
    }

    #[test]
    fn replica_changed_behind_our_back_is_detected() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        let entry = settled(&src, &dst, Some(DIGEST));
        // Rewritten in place with the same size, mtime reset: ctime moved.
        let tampered = file(10, 100, 400, 2);
        assert_eq!(
            plan_file(&src, &tampered, Some(&entry), false, &Caps::EXACT),
            Plan::HashReplica(DIGEST)
        );
    }

    #[test]
    fn racy_entry_rereads_the_source() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        let racy = Entry::new(
            &src,
            &dst,
            Some(DIGEST),
            SystemTime::UNIX_EPOCH + Duration::from_secs(101),
        );
        assert!(racy.racy);
        assert_eq!(
            plan_file(&src, &dst, Some(&racy), false, &Caps::EXACT),
            Plan::HashSource(DIGEST)
        );
    }

    #[test]
    fn entries_without_digest_compare_both_sides() {
        let src = file(10, 100, 100, 1);
        let dst = file(10, 100, 200, 2);
        let entry = settled(&src, &dst, None);
        let touched = file(10, 300, 300, 1);
        assert_eq!(
            plan_file(&touched, &dst, Some(&entry), false, &Caps::EXACT),
            Plan::CompareBoth
        );
    }

    #[test]
    fn a_replica_with_more_names_than_its_source_is_copied_not_touched() {
        let src = file(10, 300, 300, 1);
        let mut dst = file(10, 100, 200, 2);
        dst.nlink = 3;
        assert_eq!(
            plan_file(&src, &dst, None, false, &Caps::EXACT),
            Plan::CompareBoth
        );
        assert_eq!(after_compare(true, &src, &dst, &Caps::EXACT), Plan::Copy);
        let mut linked = src;
        linked.nlink = 3;
        assert_eq!(
            after_compare(true, &linked, &dst, &Caps::EXACT),
            Plan::FixAttrs
        );
        // Nothing to set: the extra names do no harm.
        let mut same = file(10, 300, 1, 2);
        same.nlink = 3;
        assert_eq!(after_compare(true, &src, &same, &Caps::EXACT), Plan::Skip);
    }

    #[test]
    fn whole_second_replica_times_count_as_equal_there() {
        let seconds = Caps {
            mtime_step_ns: 1_000_000_000,
            ..Caps::EXACT
        };
        let mut src = file(10, 100, 100, 1);
        src.mtime.nsec = 500_000_000;
        let dst = file(10, 100, 100, 2);
        assert_eq!(plan_file(&src, &dst, None, false, &seconds), Plan::Skip);
        assert_eq!(
            plan_file(&src, &dst, None, false, &Caps::EXACT),
            Plan::CompareBoth
        );
        // The cache's replica stamp, recorded with the time the file was
        // given, still matches the truncated time the share reports.
        let mut recorded = dst;
        recorded.mtime.nsec = 500_000_000;
        let entry = settled(&src, &recorded, Some(DIGEST));
        assert_eq!(
            plan_file(&src, &dst, Some(&entry), false, &seconds),
            Plan::Skip
        );
        assert_eq!(after_compare(true, &src, &dst, &seconds), Plan::Skip);
        // A real change is still one.
        let mut later = src;
        later.mtime.sec = 101;
        assert_eq!(
            plan_file(&later, &dst, None, false, &seconds),
            Plan::CompareBoth
        );
    }

    #[test]
    fn modes_are_ignored_where_the_replica_cannot_keep_them() {
        let no_modes = Caps {
            modes: false,
            ..Caps::EXACT
        };
        let src = file(10, 100, 100, 1);
        let mut dst = file(10, 100, 100, 2);
        dst.mode = 0o755;
        assert_eq!(plan_file(&src, &dst, None, false, &no_modes), Plan::Skip);
        assert_eq!(
            plan_file(&src, &dst, None, false, &Caps::EXACT),
            Plan::FixAttrs
        );
    }

    #[test]
    fn after_compare_copies_only_different_bytes() {
        let src = file(10, 300, 300, 1);
        let dst = file(10, 100, 200, 2);
        assert_eq!(after_compare(false, &src, &dst, &Caps::EXACT), Plan::Copy);
        assert_eq!(
            after_compare(true, &src, &dst, &Caps::EXACT),
            Plan::FixAttrs
        );
        assert_eq!(after_compare(true, &src, &src, &Caps::EXACT), Plan::Skip);
    }

    /// One row of the planner's state table: what differs between the two
    /// files and what the cache knows.
    #[derive(Clone, Copy, Debug)]
    struct Row {
        same_size: bool,
        same_mtime: bool,
        same_mode: bool,
        replica_has_more_names: bool,
        checksum: bool,
        /// `None`: no cache entry.
        cache: Option<CacheState>,
    }

    #[derive(Clone, Copy, Debug)]
    struct CacheState {
        source_unchanged: bool,
        racy: bool,
        replica_unchanged: bool,
        digest: bool,
    }

    /// The rules as docs/how-it-decides.md states them, one by one.
    fn expected(r: Row) -> Plan {
        if !r.same_size {
            return Plan::Copy;
        }
        if r.checksum && !r.cache.is_some_and(|c| c.digest) {
            return Plan::CompareBoth;
        }
        let equal_bytes = if r.same_mtime && r.same_mode {
            Plan::Skip
        } else if r.replica_has_more_names {
            Plan::Copy
        } else {
            Plan::FixAttrs
        };
        let Some(c) = r.cache else {
            return if r.same_mtime {
                equal_bytes
            } else {
                Plan::CompareBoth
            };
        };
        let source_known = c.source_unchanged && !c.racy;
        match (source_known, c.replica_unchanged, c.digest) {
            (true, true, _) => equal_bytes,
            (false, true, true) => Plan::HashSource(DIGEST),
            (true, false, true) => Plan::HashReplica(DIGEST),
            _ => Plan::CompareBoth,
        }
    }

    /// Builds the two files and the cache entry of a row.
    fn files(r: Row) -> (Meta, Meta, Option<Entry>) {
        let mut dst = file(10, 100, 200, 2);
        let recorded_src = file(10, 100, 150, 1);
        if !r.same_mode {
            dst.mode = 0o600;
        }
        if r.replica_has_more_names {
            dst.nlink = 2;
        }
        let recorded_dst = dst;
        let entry = r.cache.map(|c| {
            let mut e = settled(&recorded_src, &recorded_dst, c.digest.then_some(DIGEST));
            e.racy = c.racy;
            e
        });
        let mut src = recorded_src;
        if let Some(c) = r.cache {
            if !c.source_unchanged {
                src.ctime.sec += 1; // touched since: same size, same mtime
            }
            if !c.replica_unchanged {
                dst.ctime.sec += 1;
            }
        }
        if !r.same_mtime {
            src.mtime.sec += 5;
        }
        if !r.same_size {
            src.size += 1;
        }
        (src, dst, entry)
    }

    #[test]
    fn the_whole_state_table_follows_the_rules() {
        let flags = [false, true];
        let mut caches = vec![None];
        for source_unchanged in flags {
            for racy in flags {
                for replica_unchanged in flags {
                    for digest in flags {
                        caches.push(Some(CacheState {
                            source_unchanged,
                            racy,
                            replica_unchanged,
                            digest,
                        }));
                    }
                }
            }
        }
        let mut rows = 0;
        for same_size in flags {
            for same_mtime in flags {
                for same_mode in flags {
                    for replica_has_more_names in flags {
                        for checksum in flags {
                            for &cache in &caches {
                                let row = Row {
                                    same_size,
                                    same_mtime,
                                    same_mode,
                                    replica_has_more_names,
                                    checksum,
                                    cache,
                                };
                                let (src, dst, entry) = files(row);
                                let mut row = row;
                                if let Some(c) = row.cache.as_mut() {
                                    // A moved mtime is a changed source too.
                                    c.source_unchanged &= same_mtime && same_size;
                                }
                                let got =
                                    plan_file(&src, &dst, entry.as_ref(), checksum, &Caps::EXACT);
                                assert_eq!(got, expected(row), "{row:?}");
                                // Safety whatever the row: a file whose
                                // bytes may differ is never left alone.
                                if !same_size {
                                    assert_eq!(got, Plan::Copy, "{row:?}");
                                }
                                rows += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(rows, 2 * 2 * 2 * 2 * 2 * 17);
    }
}
