//! The deletion guard (`--max-delete N`): a pass that would remove more
//! than N replica entries removes none of them.
//!
//! Such a pass first walks with every removal held back and counted (a
//! folder counts with everything in it). Within the limit, a second walk
//! does the removals (and the type changes that needed them); over it, the
//! pass does everything else, holds the removals, and names them, until the
//! user approves them from the menu or raises the limit. Stopping half way
//! through a deletion, as a plain counter does, leaves a replica that is
//! neither the old tree nor the new one.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::fsops::{self, Kind};

/// How a walk treats removals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Remove freely (no `--max-delete`, or approved from the menu).
    Free,
    /// Count and hold back every removal: the first walk of a guarded pass.
    Count,
    /// Remove up to this many, then refuse: the second walk, which the
    /// count said fits (a source changed in between cannot push it over).
    Limit(u64),
}

/// What to do with one removal.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Remove,
    /// Counted and held back: not removed in this walk.
    Held,
    /// The limit ran out in the middle of the second walk.
    Refused {
        first: bool,
    },
}

/// How many paths a held-back removal names in its error line.
const NAMED: usize = 5;

/// One walk's removals under its [`Mode`].
pub(super) struct Deletions {
    mode: Mode,
    /// What is left of the `Limit`.
    left: AtomicU64,
    /// Entries held back in a `Count` walk, and in how many removals (a
    /// folder is one removal of many entries).
    held: AtomicU64,
    removals: AtomicU64,
    /// The first few removals held back, with their entries, for the
    /// message.
    named: Mutex<Vec<(Vec<u8>, u64)>>,
    /// The `Limit` ran out (said once).
    ran_out: AtomicBool,
}

impl Deletions {
    pub(super) fn new(mode: Mode) -> Self {
        Deletions {
            mode,
            left: AtomicU64::new(match mode {
                Mode::Limit(n) => n,
                _ => 0,
            }),
            held: AtomicU64::new(0),
            removals: AtomicU64::new(0),
            named: Mutex::new(Vec::new()),
            ran_out: AtomicBool::new(false),
        }
    }

    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// Asks to remove the entry at `rel`, which holds `entries` entries
    /// counting itself (`count` is only called in a `Count` walk, since
    /// counting a folder's tree reads it).
    pub(super) fn ask(&self, rel: &[u8], count: impl FnOnce() -> u64) -> Verdict {
        match self.mode {
            Mode::Free => Verdict::Remove,
            Mode::Count => {
                let entries = count();
                self.held.fetch_add(entries, Ordering::Relaxed);
                self.removals.fetch_add(1, Ordering::Relaxed);
                let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
                if named.len() < NAMED {
                    named.push((rel.to_vec(), entries));
                }
                Verdict::Held
            }
            Mode::Limit(_) => {
                let took = self
                    .left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                match took {
                    Ok(_) => Verdict::Remove,
                    Err(_) => Verdict::Refused {
                        first: !self.ran_out.swap(true, Ordering::Relaxed),
                    },
                }
            }
        }
    }

    /// What this walk held back.
    pub(super) fn held(self) -> Held {
        Held {
            entries: self.held.into_inner(),
            removals: self.removals.into_inner(),
            named: self.named.into_inner().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The removals a `Count` walk held back.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Entries in all (a folder's count includes everything in it).
    pub(super) entries: u64,
    /// Removals they take: one per file, link or whole folder.
    pub(super) removals: u64,
    /// The first few removals, with their entries.
    pub(super) named: Vec<(Vec<u8>, u64)>,
}

/// How many entries the replica folder `name` in `dir` holds, counting
/// itself; what cannot be read counts as one entry.
pub(super) fn count_tree(dir: BorrowedFd<'_>, name: &CStr) -> u64 {
    let Ok(top) = fsops::open_dir_at(dir, name) else {
        return 1;
    };
    let mut count = 1;
    let mut stack = vec![top];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = fsops::list(folder.as_fd()) else {
            continue;
        };
        for entry in entries {
            count += 1;
            if entry.meta.is_ok_and(|m| m.kind == Kind::Dir) {
                if let Ok(sub) = fsops::open_dir_at(folder.as_fd(), &entry.name) {
                    stack.push(sub);
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_holds_everything_and_names_the_first_few() {
        let d = Deletions::new(Mode::Count);
        for i in 0..8u8 {
            assert_eq!(d.ask(&[b'a' + i], || u64::from(i) + 1), Verdict::Held);
        }
        let held = d.held();
        assert_eq!(held.entries, (1..=8).sum::<u64>());
        assert_eq!(held.removals, 8);
        let named: Vec<_> = held.named.iter().map(|(p, n)| (p[0], *n)).collect();
        assert_eq!(
            named,
            [(b'a', 1), (b'b', 2), (b'c', 3), (b'd', 4), (b'e', 5)]
        );
    }

    #[test]
    fn a_limit_refuses_past_it_and_says_so_once() {
        let d = Deletions::new(Mode::Limit(2));
        assert_eq!(d.ask(b"x", || unreachable!()), Verdict::Remove);
        assert_eq!(d.ask(b"y", || unreachable!()), Verdict::Remove);
        assert_eq!(
            d.ask(b"z", || unreachable!()),
            Verdict::Refused { first: true }
        );
        assert_eq!(
            d.ask(b"w", || unreachable!()),
            Verdict::Refused { first: false }
        );
        assert_eq!(Deletions::new(Mode::Free).ask(b"x", || 9), Verdict::Remove);
    }
}
