//! The two-way planner: what to do at each path, a pure function of what
//! the archive remembers from the last sync and what each side holds now.
//!
//! Each side is unchanged, changed, created or deleted relative to the
//! archive. A change on one side is propagated; a change on both sides to
//! the same content is only recorded; different changes on both sides are
//! a conflict, and both versions are kept. A deletion loses to a change on
//! the other side. Folders are decided after their contents: a folder one
//! side deleted survives when something inside it must.

use std::collections::HashMap;

use super::excluded::{self, Excluded};
use super::row::{Action, Record, Row, Seen, Side, Stamp, UNKNOWN_CTIME, What, parent};

/// How one side's entry stands against the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Neither in the archive nor on this side.
    Absent,
    Same,
    /// Size, mtime, inode and mode as recorded, but the ctime moved: the
    /// bytes may have been rewritten with the old mtime put back, or only
    /// the inode touched (a hard link, an owner). Only the bytes tell.
    Touched,
    Changed,
    Created,
    Deleted,
}

impl Change {
    fn edited(self) -> bool {
        matches!(self, Change::Changed | Change::Created | Change::Touched)
    }
}

/// How `seen` on `side` stands against `rec`.
pub fn change(rec: Option<&Record>, seen: Option<&Seen>, side: Side) -> Change {
    match (rec, seen) {
        (None, None) => Change::Absent,
        (None, Some(_)) => Change::Created,
        (Some(_), None) => Change::Deleted,
        (Some(r), Some(s)) => {
            let stamp = r.stamp(side);
            let same = r.what == s.what
                && match s.what {
                    What::File => same_bytes_stamps(r, &stamp, s) && s.mode == stamp.mode,
                    What::Dir => s.mode == stamp.mode,
                    What::Link => s.target == r.target,
                };
            if !same {
                Change::Changed
            } else if s.what == What::File && known(stamp.ctime).is_some_and(|c| c != s.ctime) {
                Change::Touched
            } else {
                Change::Same
            }
        }
    }
}

/// A recorded ctime, unless it is not known.
fn known(ctime: i64) -> Option<i64> {
    (ctime != UNKNOWN_CTIME).then_some(ctime)
}

/// Whether a file's size, mtime and inode are as recorded (its mode and
/// ctime aside).
fn same_bytes_stamps(r: &Record, stamp: &Stamp, s: &Seen) -> bool {
    s.size == r.size && s.mtime.nanos() == stamp.mtime && s.ino == stamp.ino
}

/// Whether the stamps cannot vouch for a file's bytes on `side`: its
/// size, mtime and inode are as recorded, yet its mode or ctime moved (a
/// chmod moves the ctime, so a rewrite that keeps the mtime can hide
/// behind it). Read before anything trusts that the bytes are the
/// archive's.
pub fn stamps_unsure(rec: Option<&Record>, seen: Option<&Seen>, side: Side) -> bool {
    let (Some(r), Some(s)) = (rec, seen) else {
        return false;
    };
    let stamp = r.stamp(side);
    r.what == What::File
        && s.what == What::File
        && same_bytes_stamps(r, &stamp, s)
        && (s.mode != stamp.mode || known(stamp.ctime).is_some_and(|c| c != s.ctime))
}

impl Record {
    /// The stamp of `side`'s copy.
    pub fn stamp(&self, side: Side) -> Stamp {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Whether it was written before ctimes were kept.
    fn lacks_ctime(&self) -> bool {
        self.what == What::File && (known(self.a.ctime).is_none() || known(self.b.ctime).is_none())
    }
}

/// Whether the two sides' bytes must be read before this row can be
/// decided: two files of one size that were both edited (or met for the
/// first time), or a racy entry, or every unchanged pair under
/// `--checksum`.
pub fn needs_compare(row: &Row, checksum: bool) -> bool {
    let (Some(a), Some(b)) = (&row.a, &row.b) else {
        return false;
    };
    if a.what != What::File || b.what != What::File || a.size != b.size {
        return false;
    }
    let rec = row.rec.as_ref();
    let ca = change(rec, Some(a), Side::A);
    let cb = change(rec, Some(b), Side::B);
    let racy = rec.is_some_and(|r| r.racy);
    // One side's bytes may have changed under the stamps and the other's
    // did not: reading both tells whether anything must be copied.
    let unsure = (stamps_unsure(rec, Some(a), Side::A) && cb == Change::Same)
        || (stamps_unsure(rec, Some(b), Side::B) && ca == Change::Same);
    (ca.edited() && cb.edited())
        || unsure
        || (ca == Change::Same && cb == Change::Same && (racy || checksum))
}

/// Whether two entries hold the same thing, as far as the scan and the
/// comparison (`same`) tell.
fn alike(a: &Seen, b: &Seen, same: Option<bool>) -> bool {
    a.what == b.what
        && match a.what {
            What::File => a.size == b.size && same == Some(true),
            What::Dir => true,
            What::Link => a.target == b.target,
        }
}

/// The side whose version is newer by mtime (SOURCE on a tie).
fn newer(a: &Seen, b: &Seen) -> Side {
    if b.mtime > a.mtime { Side::B } else { Side::A }
}

/// The action at a path where neither side holds a folder (or both do),
/// from the archive entry and both sides alone.
pub fn decide(row: &Row) -> Action {
    let rec = row.rec.as_ref();
    let (ca, cb) = (
        change(rec, row.a.as_ref(), Side::A),
        change(rec, row.b.as_ref(), Side::B),
    );
    match (&row.a, &row.b) {
        (None, None) => {
            if rec.is_some() {
                Action::Forget
            } else {
                Action::Keep
            }
        }
        (Some(_), None) => match ca {
            // The other side deleted it; an unchanged entry goes too, a
            // changed one is restored there.
            Change::Same => Action::Delete { on: Side::A },
            _ => Action::Copy { to: Side::B },
        },
        (None, Some(_)) => match cb {
            Change::Same => Action::Delete { on: Side::B },
            _ => Action::Copy { to: Side::A },
        },
        (Some(a), Some(b)) => match (ca, cb) {
            (Change::Same, Change::Same) => {
                let racy = rec.is_some_and(|r| r.racy);
                match row.same {
                    // Read because the entry was racy or --checksum: the
                    // stamps hide an edit, and which side made it is not
                    // known, so both are kept.
                    Some(false) => Action::Conflict {
                        winner: newer(a, b),
                    },
                    Some(true) if racy => Action::Record,
                    // Written before ctimes were kept: they are now.
                    _ if rec.is_some_and(Record::lacks_ctime) => Action::Record,
                    _ => Action::Keep,
                }
            }
            // Only the ctime moved, and the bytes are the other side's: the
            // new stamps are recorded, nothing is copied.
            (Change::Same, Change::Touched) | (Change::Touched, Change::Same)
                if row.same == Some(true) =>
            {
                Action::Record
            }
            (Change::Same, _) => Action::Copy { to: Side::A },
            (_, Change::Same) => Action::Copy { to: Side::B },
            _ if alike(a, b, row.same) => {
                if a.what == What::Link || a.mode == b.mode {
                    Action::Record
                } else {
                    // Same bytes, different modes: the newer one's mode.
                    Action::Copy {
                        to: newer(a, b).other(),
                    }
                }
            }
            _ if a.what == What::Dir && b.what == What::Dir => Action::Record,
            _ => Action::Conflict {
                winner: newer(a, b),
            },
        },
    }
}

/// What a row's action leaves at its path on side A and on side B.
fn leaves(row: &Row) -> (bool, bool) {
    match row.action {
        Action::Keep | Action::Record => (row.a.is_some(), row.b.is_some()),
        Action::Copy { .. } | Action::Conflict { .. } | Action::Excluded { .. } => (true, true),
        Action::Delete { .. } | Action::Forget => (false, false),
    }
}

/// Plans every row. `rows` are in tree order (see
/// [`crate::twoway::row::tree_order`]): a folder before its contents,
/// each subtree contiguous. Contents are planned first (from the end), so
/// a folder's fate can follow from what must survive inside it. The
/// tests' entry: a pass plans with what it excluded ([`plan_with`]).
#[cfg(test)]
pub fn plan(rows: &mut [Row]) {
    plan_with(rows, &Excluded::default());
}

/// [`plan`], leaving alone what each side excludes (`excluded`).
pub fn plan_with(rows: &mut [Row], excluded: &Excluded) {
    // For each folder path: whether something inside stays on A, on B.
    let mut inside: HashMap<Box<[u8]>, (bool, bool)> = HashMap::new();
    for row in rows.iter_mut().rev() {
        let needs = inside.remove(&row.path).unwrap_or((false, false));
        let dir_a = row.a.as_ref().is_some_and(|s| s.what == What::Dir);
        let dir_b = row.b.as_ref().is_some_and(|s| s.what == What::Dir);
        let action = if dir_a == dir_b {
            decide(row)
        } else if dir_a {
            decide_folder(row, Side::A, needs)
        } else {
            decide_folder(row, Side::B, needs)
        };
        row.action = excluded::keep(row, action, excluded);
        let (on_a, on_b) = leaves(row);
        if on_a || on_b {
            let up = inside.entry(parent(&row.path).into()).or_default();
            up.0 |= on_a;
            up.1 |= on_b;
        }
    }
    excluded::keep_below_blocked(rows);
}

/// The action at a path where side `dir` holds a folder and the other side
/// holds something else or nothing; `needs` says whether something inside
/// the folder stays on side A and on side B.
fn decide_folder(row: &Row, dir: Side, needs: (bool, bool)) -> Action {
    let other = dir.other();
    let rec = row.rec.as_ref();
    let c_other = change(rec, row.seen(other), other);
    let (need_dir, need_other) = match dir {
        Side::A => needs,
        Side::B => (needs.1, needs.0),
    };
    let was_dir = rec.is_some_and(|r| r.what == What::Dir);
    // A folder whose mode was changed on this side was changed too, and a
    // change wins over the other side's deletion or replacement.
    let dir_changed = was_dir && change(rec, row.seen(dir), dir) == Change::Changed;
    match row.seen(other) {
        None => {
            if !was_dir || need_other || dir_changed {
                // New here (or the old entry there is gone), its mode was
                // changed here, or something inside must be restored on
                // the other side.
                Action::Copy { to: other }
            } else if need_dir {
                Action::Keep
            } else {
                // The other side deleted the folder, and nothing inside
                // was changed here: it goes.
                Action::Delete { on: dir }
            }
        }
        Some(_) => {
            if was_dir && c_other == Change::Changed && !need_dir && !need_other && !dir_changed {
                // The other side replaced the folder, and nothing inside
                // it (nor its mode) was changed here.
                Action::Copy { to: dir }
            } else if !was_dir && c_other == Change::Same {
                // This side replaced the other side's unchanged entry with
                // a folder.
                Action::Copy { to: other }
            } else {
                // Both changed: the folder keeps the name, and the other
                // side's entry is kept beside it.
                Action::Conflict { winner: dir }
            }
        }
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
