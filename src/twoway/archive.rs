//! The archive of a two-way pair: what both sides held after the last
//! sync, per path, in the pair's SQLite state file (table `archive`). It
//! tells a file deleted on one side from one created on the other.
//!
//! Entries are written only after what they record was done, in batched
//! transactions: a kill loses at most the last batch, which leaves the
//! archive behind the folders, never ahead of them, and the next pass
//! finds those paths already alike on both sides and only records them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::state::PairState;

use super::row::{Record, Stamp, UNKNOWN_CTIME, What};

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

    /// The pair's state database, for the other tables two-way keeps
    /// there (see [`super::nested`]); `None` in a dry run of a pair with
    /// no state yet.
    pub fn connection(&mut self) -> Option<&mut Connection> {
        self.conn.as_deref_mut()
    }

    /// Whether the last sync left a folder at `path` (see
    /// [`super::nested`]); `false` too when that cannot be read.
    pub fn had_folder(&mut self, path: &[u8]) -> bool {
        let Some(conn) = self.conn.as_deref_mut() else {
            return false;
        };
        conn.query_row(
            "SELECT what FROM archive WHERE tree_key = ?1",
            [tree_key(path)],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|what| what == 1)
    }

    /// How many entries the archive holds.
    pub fn count(&mut self) -> Result<u64, String> {
        let Some(conn) = self.conn.as_deref_mut() else {
            return Ok(0);
        };
        if !has_table(conn).map_err(|e| e.to_string())? {
            return Ok(0);
        }
        conn.query_row("SELECT count(*) FROM archive", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    /// Hands `merge` every entry, last first in tree order, straight from
    /// the table's own order (its key is the path in tree order): the
    /// archive is never held whole in memory.
    pub fn read_reverse<R>(
        &mut self,
        merge: impl FnOnce(&mut dyn Iterator<Item = Recorded>) -> R,
    ) -> Result<R, String> {
        let Some(conn) = self.conn.as_deref_mut() else {
            return Ok(merge(&mut std::iter::empty()));
        };
        if !has_table(conn).map_err(|e| e.to_string())? {
            return Ok(merge(&mut std::iter::empty()));
        }
        // A dry run reads an archive of the layout before ctimes as it is.
        let ctimes = if has_ctimes(conn) {
            "a_ctime_ns, b_ctime_ns"
        } else {
            "NULL, NULL"
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT path, what, size, target, a_mtime_ns, a_ino, a_mode, b_mtime_ns, b_ino,
                        b_mode, racy, {ctimes}
                 FROM archive ORDER BY tree_key DESC"
            ))
            .map_err(|e| e.to_string())?;
        let mut failed = None;
        let rows = stmt.query_map([], decode).map_err(|e| e.to_string())?;
        // The first unreadable row ends the reading; the pass then fails
        // rather than take the missing entries for never synced.
        let mut entries = rows.map_while(|row| row.map_err(|e| failed = Some(e)).ok());
        let merged = merge(&mut entries);
        match failed {
            Some(e) => Err(e.to_string()),
            None => Ok(merged),
        }
    }

    /// The tags of passes that may have left temporaries behind (see
    /// [`crate::fsops::tag_temporaries`]).
    pub fn temp_tags(&mut self) -> Result<HashSet<u64>, String> {
        let Some(conn) = self.conn.as_deref_mut() else {
            return Ok(HashSet::new());
        };
        if !has_tags_table(conn).map_err(|e| e.to_string())? {
            return Ok(HashSet::new());
        }
        let mut stmt = conn
            .prepare("SELECT tag FROM temp_tags")
            .map_err(|e| e.to_string())?;
        let tags = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())?
            .map(|t| t.map(|t| t as u64))
            .collect::<rusqlite::Result<_>>();
        tags.map_err(|e| e.to_string())
    }

    /// Records `tag` as this pass's, committed before the pass writes a
    /// temporary under it.
    pub fn add_temp_tag(&mut self, tag: u64) -> Result<(), String> {
        let Some(conn) = self.conn.as_deref_mut().filter(|_| !self.dry_run) else {
            return Ok(());
        };
        conn.execute(
            "INSERT OR IGNORE INTO temp_tags (tag) VALUES (?1)",
            [tag as i64],
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }

    /// Forgets every tag: no temporary of a recorded tag is left.
    pub fn clear_temp_tags(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_deref_mut().filter(|_| !self.dry_run) else {
            return Ok(());
        };
        conn.execute("DELETE FROM temp_tags", [])
            .map(drop)
            .map_err(|e| e.to_string())
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
    // A table of an earlier layout (before its tree key, never released):
    // dropped, so the next pass is a first sync, which loses nothing.
    if has_table(conn)?
        && conn
            .prepare("SELECT tree_key FROM archive LIMIT 0")
            .is_err()
    {
        conn.execute_batch("DROP TABLE archive")?;
    }
    // WAL: a batch commits with one sync instead of three; a crash still
    // leaves the last committed batch.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS archive (
             tree_key BLOB PRIMARY KEY, -- the path, each '/' a 0 byte: tree order
             path BLOB NOT NULL,
             what INTEGER NOT NULL,   -- 0 file, 1 folder, 2 symlink
             size INTEGER NOT NULL,
             target BLOB,             -- a symlink's target
             a_mtime_ns INTEGER NOT NULL,
             a_ino INTEGER NOT NULL,
             a_mode INTEGER NOT NULL,
             b_mtime_ns INTEGER NOT NULL,
             b_ino INTEGER NOT NULL,
             b_mode INTEGER NOT NULL,
             racy INTEGER NOT NULL,
             a_ctime_ns INTEGER,      -- NULL: written before ctimes were kept
             b_ctime_ns INTEGER
         ) WITHOUT ROWID;",
    )?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS temp_tags (tag INTEGER PRIMARY KEY);")?;
    // An archive of the layout before ctimes: the columns are added, and
    // each entry gets its ctimes at the next pass that sees it unchanged.
    if !has_ctimes(conn) {
        conn.execute_batch(
            "ALTER TABLE archive ADD COLUMN a_ctime_ns INTEGER;
             ALTER TABLE archive ADD COLUMN b_ctime_ns INTEGER;",
        )?;
    }
    Ok(())
}

/// Whether the archive table exists, in the layout this version reads.
fn has_table(conn: &Connection) -> rusqlite::Result<bool> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'archive'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    Ok(exists && conn.prepare("SELECT tree_key FROM archive LIMIT 0").is_ok())
}

/// Forgets one pass's tag in the pair's state file (whose tables that
/// pass made): a pass that ended, even early, dropped its temporaries as it
/// went; only a kill leaves some.
pub fn forget_temp_tag(state: &mut PairState, tag: u64) -> Result<(), String> {
    state
        .connection()?
        .execute("DELETE FROM temp_tags WHERE tag = ?1", [tag as i64])
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether the table of temporaries' tags exists.
fn has_tags_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'temp_tags'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

/// Whether the archive table has the ctime columns.
fn has_ctimes(conn: &Connection) -> bool {
    conn.prepare("SELECT a_ctime_ns FROM archive LIMIT 0")
        .is_ok()
}

/// A path in tree order as SQLite compares blobs (byte by byte): each
/// `/` a 0 byte, which no name holds.
fn tree_key(path: &[u8]) -> Vec<u8> {
    path.iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect()
}

fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<Recorded> {
    let what = match row.get::<_, i64>(1)? {
        0 => What::File,
        1 => What::Dir,
        _ => What::Link,
    };
    let path: Vec<u8> = row.get(0)?;
    let target: Option<Vec<u8>> = row.get(3)?;
    let stamp = |at: usize, ctime_at: usize| -> rusqlite::Result<Stamp> {
        Ok(Stamp {
            mtime: row.get(at)?,
            ctime: row
                .get::<_, Option<i64>>(ctime_at)?
                .unwrap_or(UNKNOWN_CTIME),
            ino: row.get::<_, i64>(at + 1)? as u64,
            mode: row.get::<_, i64>(at + 2)? as u32,
        })
    };
    Ok((
        path.into_boxed_slice(),
        Record {
            what,
            size: row.get::<_, i64>(2)? as u64,
            target: target.map(Box::new),
            a: stamp(4, 11)?,
            b: stamp(7, 12)?,
            racy: row.get(10)?,
        },
    ))
}

fn write_all(conn: &mut Connection, writes: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO archive
             (tree_key, path, what, size, target, a_mtime_ns, a_ino, a_mode, b_mtime_ns, b_ino,
              b_mode, racy, a_ctime_ns, b_ctime_ns)
             VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13, ?14)",
        )?;
        let mut forget = tx.prepare_cached("DELETE FROM archive WHERE tree_key = ?1")?;
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
                        r.a.mtime,
                        r.a.ino as i64,
                        i64::from(r.a.mode),
                        r.b.mtime,
                        r.b.ino as i64,
                        i64::from(r.b.mode),
                        r.racy,
                        tree_key(path),
                        ctime_column(r.a.ctime),
                        ctime_column(r.b.ctime),
                    ])?;
                }
                Write::Forget(path) => {
                    forget.execute(params![tree_key(path)])?;
                }
            }
        }
    }
    tx.commit()
}

/// A ctime as stored: NULL when not known.
fn ctime_column(ctime: i64) -> Option<i64> {
    (ctime != UNKNOWN_CTIME).then_some(ctime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::Time;

    #[test]
    fn an_archive_without_ctimes_gains_them_and_reads_them_as_unknown() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE archive (tree_key BLOB PRIMARY KEY, path BLOB NOT NULL,
                 what INTEGER NOT NULL, size INTEGER NOT NULL, target BLOB,
                 a_mtime_ns INTEGER NOT NULL, a_ino INTEGER NOT NULL, a_mode INTEGER NOT NULL,
                 b_mtime_ns INTEGER NOT NULL, b_ino INTEGER NOT NULL, b_mode INTEGER NOT NULL,
                 racy INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO archive VALUES (x'61', x'61', 0, 3, NULL, 5, 1, 420, 5, 2, 420, 0);",
        )
        .unwrap();
        make_table(&conn).unwrap();
        let read = |conn: &Connection| {
            conn.query_row(
                "SELECT path, what, size, target, a_mtime_ns, a_ino, a_mode, b_mtime_ns, b_ino,
                        b_mode, racy, a_ctime_ns, b_ctime_ns FROM archive",
                [],
                decode,
            )
            .unwrap()
        };
        let (path, rec) = read(&conn);
        assert_eq!(
            (
                &path[..],
                rec.size,
                rec.a.ctime == UNKNOWN_CTIME,
                rec.b.ctime == UNKNOWN_CTIME
            ),
            (&b"a"[..], 3, true, true)
        );
        let ctime = 7_000_000_009;
        let mut rec = rec;
        rec.a.ctime = ctime;
        write_all(&mut conn, &[Write::Put(path, rec)]).unwrap();
        assert_eq!(read(&conn).1.a.ctime, ctime);
    }

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
            assert_eq!(Time::from_nanos(Time::nanos(t)), t);
        }
    }
}
