//! The archive of a two-way pair: what both sides held after the last
//! sync, per path, in the pair's SQLite state file (table `archive`). It
//! tells a file deleted on one side from one created on the other.
//!
//! Entries are written only after what they record was done, in batched
//! transactions: a kill loses at most the last batch, which leaves the
//! archive behind the folders, never ahead of them, and the next pass
//! finds those paths already alike on both sides and only records them.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::fsops::Time;
use crate::state::PairState;

use super::reconcile::{Record, Stamp, What};
use super::scan::tree_order;

/// Writes waiting for their transaction; flushed at this many or after
/// [`FLUSH_AFTER`].
const BATCH: usize = 2000;
const FLUSH_AFTER: Duration = Duration::from_millis(500);

/// A path and its archive entry.
pub type Recorded = (Box<[u8]>, Record);

enum Write {
    Put(Box<[u8]>, Record),
    Forget(Box<[u8]>),
}

/// A pair's archive, open for one pass.
pub struct Archive<'s> {
    /// `None` in a dry run whose pair has no state file yet: nothing to
    /// read, nothing to write.
    conn: Option<&'s mut Connection>,
    dry_run: bool,
    pending: Vec<Write>,
    since: Instant,
}

impl<'s> Archive<'s> {
    /// Opens the archive in `state`'s file, creating the table if needed
    /// (never in a dry run).
    pub fn open(state: &'s mut PairState, dry_run: bool) -> Result<Archive<'s>, String> {
        let conn = if dry_run && !state.path().exists() {
            None
        } else {
            let path = state.path().to_path_buf();
            let conn = state.connection()?;
            if !dry_run {
                make_table(conn).map_err(|e| format!("pair state {}: {e}", path.display()))?;
            }
            Some(conn)
        };
        Ok(Archive {
            conn,
            dry_run,
            pending: Vec::new(),
            since: Instant::now(),
        })
    }

    /// Every entry, in tree order.
    pub fn load(&mut self) -> Result<Vec<Recorded>, String> {
        let Some(conn) = self.conn.as_deref_mut() else {
            return Ok(Vec::new());
        };
        let mut rows = read_all(conn).map_err(|e| e.to_string())?;
        // SQLite gives them by byte order, which is tree order unless a
        // name continues another with a byte below '/'. Unstable: no
        // scratch copy of the list (paths are unique).
        if !rows.is_sorted_by(|(a, _), (b, _)| tree_order(a, b).is_le()) {
            rows.sort_unstable_by(|(a, _), (b, _)| tree_order(a, b));
        }
        rows.shrink_to_fit();
        Ok(rows)
    }

    /// Records `path` as `rec` (after the pass made both sides so).
    pub fn put(&mut self, path: &[u8], rec: Record) -> Result<(), String> {
        self.queue(Write::Put(path.into(), rec))
    }

    /// Drops `path` (gone from both sides).
    pub fn forget(&mut self, path: &[u8]) -> Result<(), String> {
        self.queue(Write::Forget(path.into()))
    }

    fn queue(&mut self, write: Write) -> Result<(), String> {
        if self.dry_run {
            return Ok(());
        }
        self.pending.push(write);
        if self.pending.len() >= BATCH || self.since.elapsed() >= FLUSH_AFTER {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits what is pending in one transaction.
    pub fn flush(&mut self) -> Result<(), String> {
        self.since = Instant::now();
        let Some(conn) = self.conn.as_deref_mut() else {
            self.pending.clear();
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        write_all(conn, &self.pending).map_err(|e| e.to_string())?;
        self.pending.clear();
        Ok(())
    }
}

fn make_table(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: a batch commits with one sync instead of three; a crash still
    // leaves the last committed batch.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS archive (
             path BLOB PRIMARY KEY,
             what INTEGER NOT NULL,   -- 0 file, 1 folder, 2 symlink
             size INTEGER NOT NULL,
             target BLOB,             -- a symlink's target
             a_mtime_ns INTEGER NOT NULL,
             a_ino INTEGER NOT NULL,
             a_mode INTEGER NOT NULL,
             b_mtime_ns INTEGER NOT NULL,
             b_ino INTEGER NOT NULL,
             b_mode INTEGER NOT NULL,
             racy INTEGER NOT NULL
         ) WITHOUT ROWID;",
    )
}

fn read_all(conn: &Connection) -> rusqlite::Result<Vec<Recorded>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'archive'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT path, what, size, target, a_mtime_ns, a_ino, a_mode, b_mtime_ns, b_ino, b_mode,
                racy
         FROM archive",
    )?;
    let rows = stmt.query_map([], |row| {
        let what = match row.get::<_, i64>(1)? {
            0 => What::File,
            1 => What::Dir,
            _ => What::Link,
        };
        let path: Vec<u8> = row.get(0)?;
        let target: Option<Vec<u8>> = row.get(3)?;
        let stamp = |at: usize| -> rusqlite::Result<Stamp> {
            Ok(Stamp {
                mtime: from_ns(row.get(at)?),
                ino: row.get::<_, i64>(at + 1)? as u64,
                mode: row.get::<_, i64>(at + 2)? as u32,
            })
        };
        Ok((
            path.into_boxed_slice(),
            Record {
                what,
                size: row.get::<_, i64>(2)? as u64,
                target: target.map(Vec::into_boxed_slice),
                a: stamp(4)?,
                b: stamp(7)?,
                racy: row.get(10)?,
            },
        ))
    })?;
    rows.collect()
}

fn write_all(conn: &mut Connection, writes: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO archive
             (path, what, size, target, a_mtime_ns, a_ino, a_mode, b_mtime_ns, b_ino, b_mode,
              racy)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut forget = tx.prepare_cached("DELETE FROM archive WHERE path = ?1")?;
        for write in writes {
            match write {
                Write::Put(path, r) => {
                    let what = match r.what {
                        What::File => 0,
                        What::Dir => 1,
                        What::Link => 2,
                    };
                    // SQLite integers are signed; the bits are kept.
                    put.execute(params![
                        &path[..],
                        what,
                        r.size as i64,
                        r.target.as_deref(),
                        to_ns(r.a.mtime),
                        r.a.ino as i64,
                        i64::from(r.a.mode),
                        to_ns(r.b.mtime),
                        r.b.ino as i64,
                        i64::from(r.b.mode),
                        r.racy,
                    ])?;
                }
                Write::Forget(path) => {
                    forget.execute(params![&path[..]])?;
                }
            }
        }
    }
    tx.commit()
}

fn to_ns(t: Time) -> i64 {
    t.sec
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nsec))
}

fn from_ns(ns: i64) -> Time {
    Time {
        sec: ns.div_euclid(1_000_000_000),
        nsec: ns.rem_euclid(1_000_000_000) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_survive_the_round_trip() {
        for t in [
            Time { sec: 0, nsec: 0 },
            Time {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            Time { sec: -1, nsec: 5 },
        ] {
            assert_eq!(from_ns(to_ns(t)), t);
        }
    }
}
