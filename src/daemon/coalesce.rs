//! A watched pair's changes, gathered per path: each path is due for a
//! pass on its own clock, so a file that settled is synced now, whatever
//! else is still being written, and a file written continuously is synced
//! at a bounded rate without holding back the rest. (Gathering per pair
//! made every change wait for the whole source to be quiet, up to a
//! second under a steady writer.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::pass::{self, Start};

/// How long a change that is not known complete (a write still open, a
/// deletion, a new folder) waits for more on its path: a save is several
/// events in a row.
const QUIET: Duration = Duration::from_millis(5);
/// The longest a path's changes are gathered under events that never
/// pause.
const GATHER_MOST: Duration = Duration::from_secs(1);
/// The least time between two passes for one path: a file appended every
/// few milliseconds is synced ten times a second, not after each append.
const RATE: Duration = Duration::from_millis(100);

/// What a note says of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The entry changed, and more may come.
    Changed,
    /// The file was closed after writing, or moved in: complete.
    Settled,
    /// The folder was made or moved in: all of it is new.
    Arrived,
}

/// One path waiting for its pass.
struct Pending {
    /// Its folder's entries are to be synced (it changed).
    folder: bool,
    /// All of it is to be synced (it is a folder that arrived).
    tree: bool,
    first: Instant,
    due: Instant,
}

/// The paths waiting, and when each was last handed to a pass.
#[derive(Default)]
pub struct Coalesce {
    pending: HashMap<Vec<u8>, Pending>,
    last: HashMap<Vec<u8>, Instant>,
}

impl Coalesce {
    /// Adds a note on `path` (relative to the root; empty for the root)
    /// at `now`.
    pub fn note(&mut self, kind: Kind, path: Vec<u8>, now: Instant) {
        let since = self.last.get(&path).map(|t| *t + RATE);
        let p = self.pending.entry(path).or_insert(Pending {
            folder: false,
            tree: false,
            first: now,
            due: now,
        });
        let due = match kind {
            Kind::Settled => now,
            Kind::Changed | Kind::Arrived => (now + QUIET).min(p.first + GATHER_MOST),
        };
        p.due = since.map_or(due, |s| due.max(s));
        p.folder |= kind != Kind::Arrived;
        p.tree |= kind == Kind::Arrived;
    }

    /// When the first path is due; `None` when none waits.
    pub fn due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// The starts of a pass over the paths due at `now`, which are then
    /// no longer waiting.
    pub fn take(&mut self, now: Instant) -> Vec<Start> {
        self.last.retain(|_, t| *t + RATE > now);
        let due: Vec<Vec<u8>> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(path, _)| path.clone())
            .collect();
        let mut starts = Vec::with_capacity(due.len());
        for path in due {
            let Some(p) = self.pending.remove(&path) else {
                continue;
            };
            if p.folder {
                starts.push(Start::folder(parent(&path).to_vec()));
            }
            if p.tree {
                starts.push(Start::tree(path.clone()));
            }
            self.last.insert(path, now);
        }
        pass::fewest(starts)
    }

    /// Forgets what waits: a full pass covers it.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// The folder holding `path`; the root for the root itself.
fn parent(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|&b| b == b'/')
        .map_or(&[][..], |at| &path[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_settled_file_is_due_now_whatever_else_is_being_written() {
        let t = Instant::now();
        let mut c = Coalesce::default();
        c.note(Kind::Changed, b"hot/log".to_vec(), t);
        c.note(Kind::Settled, b"quiet/a".to_vec(), t);
        assert_eq!(c.take(t), vec![Start::folder(b"quiet".to_vec())]);
        assert_eq!(c.due(), Some(t + QUIET));
        assert_eq!(c.take(t + QUIET), vec![Start::folder(b"hot".to_vec())]);
        assert_eq!(c.due(), None);
    }

    #[test]
    fn a_file_written_continuously_is_synced_at_a_bounded_rate() {
        let t = Instant::now();
        let mut c = Coalesce::default();
        c.note(Kind::Settled, b"log".to_vec(), t);
        assert_eq!(c.take(t), vec![Start::folder(Vec::new())]);
        // Appended again 10 ms later: due once RATE has passed.
        c.note(Kind::Settled, b"log".to_vec(), t + ms(10));
        assert_eq!(c.due(), Some(t + RATE));
        assert!(c.take(t + ms(50)).is_empty());
        assert_eq!(c.take(t + RATE).len(), 1);
    }

    #[test]
    fn changes_that_never_pause_wait_at_most_gather_most() {
        let t = Instant::now();
        let mut c = Coalesce::default();
        for i in 0..500 {
            c.note(Kind::Changed, b"d/big".to_vec(), t + ms(i * 4));
        }
        assert_eq!(c.due(), Some(t + GATHER_MOST));
        c.note(Kind::Arrived, b"d/new".to_vec(), t);
        let starts = c.take(t + GATHER_MOST);
        assert_eq!(
            starts,
            vec![Start::folder(b"d".to_vec()), Start::tree(b"d/new".to_vec())]
        );
    }

    #[test]
    fn the_parent_of_a_top_entry_and_of_the_root_is_the_root() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
        assert_eq!(parent(b""), b"");
    }
}
