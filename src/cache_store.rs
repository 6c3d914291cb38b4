//! The digest cache kept across restarts: a one-way pair's cache entries
//! (see [`crate::cache`]) in the table `digest_cache` of the pair's state
//! file (see [`crate::state`]), so that a restarted daemon or a `--once`
//! from cron does not start cold.
//!
//! The pass reads a folder's stored entries when it reaches a folder the
//! in-memory cache does not hold, and writes back what changed once the
//! folder's files are done, in batched transactions: a `--once` never
//! holds more than the folders in flight, and a daemon whose cache holds
//! everything reads nothing after its first complete pass.
//!
//! Why a stored entry is safe to trust: it says that two files with these
//! exact stamps (size, mtime, ctime, inode on each side) held the same
//! bytes. No user can set a ctime back, so a file that still has its stamp
//! has not been written since, however old the entry; the planner trusts
//! nothing less ([`crate::pass::plan`]), and a racy entry is kept racy. An
//! entry is written only after the copy or comparison it records. Losing
//! entries is always safe (files are then judged as on a first pass), so
//! any trouble with the file (corrupt, unknown layout, locked, full disk)
//! is said once and the pair goes on without the stored cache.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{debug, warn};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::cache::{DirEntries, Entry, Stamp};
use crate::fsops::join_rel;
use crate::state::PairState;

/// The layout of `digest_cache`, kept in `meta` under [`VERSION_KEY`]:
/// the table has its own version, so other tables of the same file can
/// change theirs without touching it.
const LAYOUT: &str = "1";
const VERSION_KEY: &str = "digest_cache_version";

/// A transaction is committed after this many rows, or this long, and at
/// the end of each pass.
const BATCH_ROWS: usize = 20_000;
const BATCH_TIME: Duration = Duration::from_secs(2);

const COLUMNS: &str = "src_size, src_mtime_ns, src_ctime_ns, src_ino, \
                       dst_size, dst_mtime_ns, dst_ctime_ns, dst_ino, md5, racy";

/// How far the store got.
enum Link {
    /// Not opened yet (it is at the first read or write).
    Closed,
    Open(Connection),
    /// Nothing to read: no file yet (a dry run does not create one), or a
    /// file without the table.
    Empty,
    /// Failed, or of a layout this version does not know: left alone for
    /// the rest of the run.
    Off,
}

/// One pair's stored digest cache.
pub struct CacheStore {
    pair: PairState,
    target: String,
    id: usize,
    /// Whether this run may write (not a dry run).
    write: bool,
    link: Link,
    /// Whether a folder the in-memory cache lacks is looked up here: until
    /// the in-memory cache holds all the store knows (a daemon after its
    /// first complete pass, without evictions); always for `--once`.
    lookups: bool,
    in_transaction: bool,
    pending: usize,
    batch_started: Instant,
    /// Entries read and rows written in this run, for the log.
    read: u64,
    written: u64,
}

impl CacheStore {
    /// The stored cache of `pair`, opened at its first use; `write` is
    /// false in a dry run, which reads the file if it exists and writes
    /// nothing.
    pub fn new(pair: PairState, target: &str, id: usize, write: bool) -> CacheStore {
        CacheStore {
            pair,
            target: target.to_string(),
            id,
            write,
            link: Link::Closed,
            lookups: true,
            in_transaction: false,
            pending: 0,
            batch_started: Instant::now(),
            read: 0,
            written: 0,
        }
    }

    /// Whether entries missing from memory are looked up here.
    pub fn lookups(&self) -> bool {
        self.lookups && !matches!(self.link, Link::Off | Link::Empty)
    }

    /// Sets whether entries missing from memory are looked up here.
    pub fn set_lookups(&mut self, on: bool) {
        self.lookups = on;
    }

    /// Entries read and rows written so far in this run.
    pub fn counts(&self) -> (u64, u64) {
        (self.read, self.written)
    }

    /// The entries stored for the folder at `rel`; `None` when the store
    /// cannot be read (said once).
    pub fn load_dir(&mut self, rel: &[u8]) -> Option<DirEntries> {
        if self.connection(false).is_none() {
            return matches!(self.link, Link::Empty).then(DirEntries::default);
        }
        let read = self
            .read_transaction()
            .map_err(|e| e.to_string())
            .and_then(|conn| read_dir(conn, rel));
        match read {
            Ok(entries) => {
                self.read += entries.iter().count() as u64;
                self.commit_if_due();
                Some(entries)
            }
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    /// Writes what changed in a folder's entries, from `old` (what the
    /// store or the in-memory cache held) to `new` (both in name order).
    /// `complete`: the pass went through the whole folder, so a name of
    /// `old` missing from `new` is gone (otherwise it is kept).
    pub fn save_dir(&mut self, rel: &[u8], old: &DirEntries, new: &DirEntries, complete: bool) {
        if !self.write || new.packed_eq(old) {
            return;
        }
        let changed = new
            .iter()
            .filter(|(name, entry)| old.get(name) != Some(*entry))
            .count();
        let gone = if complete {
            old.iter()
                .filter(|(name, _)| new.get(name).is_none())
                .count()
        } else {
            0
        };
        if changed + gone == 0 || !self.write {
            return;
        }
        let result = self.transaction().and_then(|conn| {
            let mut rows = 0;
            for (name, entry) in new.iter().filter(|(name, e)| old.get(name) != Some(*e)) {
                rows += put(conn, rel, name, &entry)?;
            }
            if complete {
                for (name, _) in old.iter().filter(|(name, _)| new.get(name).is_none()) {
                    rows += conn
                        .prepare_cached("DELETE FROM digest_cache WHERE dir = ?1 AND name = ?2")?
                        .execute(params![rel, name])?;
                }
            }
            Ok(rows)
        });
        self.wrote(result);
    }

    /// Writes one file's entry (`rel` is the file's path), recorded from
    /// outside its folder's own work: a big file's job, a hard link, a
    /// digest taken after the pass.
    pub fn save_entry(&mut self, rel: &[u8], entry: &Entry) {
        if !self.write {
            return;
        }
        let (dir, name) = split_rel(rel);
        let result = self
            .transaction()
            .and_then(|conn| put(conn, dir, name, entry));
        self.wrote(result);
    }

    /// Records the replica side of a file's entry again after hard links
    /// made to it moved its ctime, provided the entry still describes that
    /// file with that size and mtime (as [`crate::cache::Cache::restamp_replica`]).
    pub fn restamp_replica(&mut self, rel: &[u8], dst: Stamp) {
        if !self.write {
            return;
        }
        let (dir, name) = split_rel(rel);
        let result = self.transaction().and_then(|conn| {
            conn.prepare_cached(
                "UPDATE digest_cache SET dst_ctime_ns = ?3 \
                 WHERE dir = ?1 AND name = ?2 AND dst_ino = ?4 AND dst_size = ?5 AND dst_mtime_ns = ?6",
            )?
            .execute(params![
                dir,
                name,
                dst.ctime_ns,
                dst.ino as i64,
                dst.size as i64,
                dst.mtime_ns
            ])
        });
        self.wrote(result);
    }

    /// Forgets a folder and everything below it (its replica was removed).
    pub fn remove_tree(&mut self, rel: &[u8]) {
        if !self.write || rel.is_empty() {
            return;
        }
        let below = join_rel(rel, b"");
        // '0' comes right after '/': every path below `rel` sorts in
        // [rel/, rel0).
        let mut past = rel.to_vec();
        past.push(b'0');
        let result = self.transaction().and_then(|conn| {
            conn.prepare_cached(
                "DELETE FROM digest_cache WHERE dir = ?1 OR (dir >= ?2 AND dir < ?3)",
            )?
            .execute(params![rel, below, past])
        });
        self.wrote(result);
    }

    /// Commits what was written (at the end of a pass, and before another
    /// connection to the file writes, as the roots' does after a pass).
    pub fn commit(&mut self) {
        if !self.in_transaction {
            return;
        }
        self.in_transaction = false;
        self.pending = 0;
        let Link::Open(conn) = &self.link else { return };
        if let Err(e) = conn.execute_batch("COMMIT") {
            self.fail(&e.to_string());
        }
    }

    /// Counts rows written, commits a full batch, or gives up on an error.
    fn wrote(&mut self, result: rusqlite::Result<usize>) {
        match result {
            Ok(rows) => {
                self.written += rows as u64;
                self.pending += rows;
                self.commit_if_due();
            }
            Err(e) if self.in_transaction || matches!(self.link, Link::Open(_)) => {
                self.fail(&e.to_string())
            }
            // Already said.
            Err(_) => {}
        }
    }

    /// Commits a batch that is full or has been open long enough.
    fn commit_if_due(&mut self) {
        if self.pending >= BATCH_ROWS || self.batch_started.elapsed() >= BATCH_TIME {
            self.commit();
        }
    }

    /// The connection inside an open transaction, begun now if need be.
    fn transaction(&mut self) -> rusqlite::Result<&Connection> {
        self.begin(true, "BEGIN IMMEDIATE")
    }

    /// The open connection inside a transaction, for a read. A folder's
    /// read outside one would take and drop SQLite's file lock and check
    /// for a hot journal: nine system calls a folder, a tenth of a
    /// `--once` no-change pass's time. So reads share the batch's
    /// transaction, committed like writes (after [`BATCH_TIME`] and at
    /// the end of the pass). A writing run takes the write lock at once,
    /// as its writes do, so a later write in the same transaction never
    /// meets SQLite's busy-upgrade deadlock; a dry run only reads.
    fn read_transaction(&mut self) -> rusqlite::Result<&Connection> {
        let begin = if self.write {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        self.begin(false, begin)
    }

    /// The connection (opened for writing if `for_write`) inside a
    /// transaction, begun with `begin` if none is open.
    fn begin(&mut self, for_write: bool, begin: &str) -> rusqlite::Result<&Connection> {
        let began = self.in_transaction;
        let Some(conn) = self.connection(for_write) else {
            return Err(rusqlite::Error::InvalidQuery);
        };
        if !began {
            conn.execute_batch(begin)?;
        }
        self.in_transaction = true;
        if !began {
            self.batch_started = Instant::now();
        }
        match &self.link {
            Link::Open(conn) => Ok(conn),
            _ => unreachable!("connected above"),
        }
    }

    /// The open database, opened now if need be; `None` when there is
    /// nothing to read (`for_write` false) or the store is off. Opening
    /// for a read does not create the file.
    fn connection(&mut self, for_write: bool) -> Option<&Connection> {
        if matches!(self.link, Link::Empty) && for_write && self.write {
            self.link = Link::Closed;
        }
        if matches!(self.link, Link::Closed) {
            let create = for_write && self.write;
            if !create && !self.pair.path().exists() {
                self.link = Link::Empty;
                return None;
            }
            match self.open(create) {
                Ok(link) => self.link = link,
                Err(e) => {
                    self.fail(&e);
                    return None;
                }
            }
        }
        match &self.link {
            Link::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// Opens the file (writable unless this is a dry run) and checks the
    /// table's layout; makes the table when `create`.
    fn open(&self, create: bool) -> Result<Link, String> {
        let Some(conn) = self.pair.open_connection(self.write)? else {
            return Ok(Link::Empty);
        };
        let failed = |e: String| format!("pair state {}: {e}", self.pair.path().display());
        match layout(&conn).map_err(|e| failed(e.to_string()))? {
            Layout::Known => Ok(Link::Open(conn)),
            Layout::Unknown(what) => Err(failed(format!(
                "its digest cache has layout {what}, which this version of foldersync does not know"
            ))),
            Layout::Missing if create => {
                make_table(&conn).map_err(|e| failed(e.to_string()))?;
                Ok(Link::Open(conn))
            }
            Layout::Missing => Ok(Link::Empty),
        }
    }

    /// Says once that the pair goes on without the stored cache; the
    /// uncommitted batch is dropped.
    fn fail(&mut self, why: &str) {
        let why = if why.starts_with("pair state ") {
            why.to_string()
        } else {
            format!("pair state {}: {why}", self.pair.path().display())
        };
        if matches!(self.link, Link::Off) {
            debug!(target: &self.target, "pair {}: {why}", self.id);
            return;
        }
        warn!(
            target: &self.target,
            "pair {}: warning: {why}; this run goes on without the stored digest cache \
             (files are judged as on a first pass; nothing is lost). Delete that file to start it afresh",
            self.id
        );
        self.link = Link::Off;
        self.in_transaction = false;
        self.pending = 0;
    }
}

impl Drop for CacheStore {
    /// What was written records work already done: keep it.
    fn drop(&mut self) {
        self.commit();
    }
}

/// A folder's stored entries, if the pair has a store and looks there.
pub fn lookup(store: Option<&Mutex<CacheStore>>, rel: &[u8]) -> Option<DirEntries> {
    let mut store = lock(store?);
    if !store.lookups() {
        return None;
    }
    store.load_dir(rel)
}

/// Locks a pair's store; a panic elsewhere leaves it usable.
pub fn lock(store: &Mutex<CacheStore>) -> std::sync::MutexGuard<'_, CacheStore> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `meta` says of the table.
enum Layout {
    Known,
    Missing,
    Unknown(String),
}

fn layout(conn: &Connection) -> rusqlite::Result<Layout> {
    let exists = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [name],
            |r| r.get(0),
        )
    };
    let version = if exists("meta")? {
        conn.query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [VERSION_KEY],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    } else {
        None
    };
    Ok(match (version, exists("digest_cache")?) {
        (Some(v), true) if v == LAYOUT => Layout::Known,
        (Some(v), _) if v != LAYOUT => Layout::Unknown(v),
        (None, false) => Layout::Missing,
        // A table without its version, or a version without its table.
        (v, _) => Layout::Unknown(v.unwrap_or_else(|| "(none recorded)".into())),
    })
}

fn make_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE digest_cache (
             dir BLOB NOT NULL,
             name BLOB NOT NULL,
             src_size INTEGER NOT NULL,
             src_mtime_ns INTEGER NOT NULL,
             src_ctime_ns INTEGER NOT NULL,
             src_ino INTEGER NOT NULL,
             dst_size INTEGER NOT NULL,
             dst_mtime_ns INTEGER NOT NULL,
             dst_ctime_ns INTEGER NOT NULL,
             dst_ino INTEGER NOT NULL,
             md5 BLOB,
             racy INTEGER NOT NULL,
             PRIMARY KEY (dir, name)
         ) WITHOUT ROWID;
         INSERT OR REPLACE INTO meta (key, value) VALUES ('{VERSION_KEY}', '{LAYOUT}');
         COMMIT;"
    ))
}

/// Stores one entry; returns the rows written (1).
fn put(conn: &Connection, dir: &[u8], name: &[u8], e: &Entry) -> rusqlite::Result<usize> {
    let digest = e.digest.as_ref().map(|d| &d[..]);
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO digest_cache (dir, name, {COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        dir,
        name,
        // SQLite integers are signed; the bits are kept.
        e.src.size as i64,
        e.src.mtime_ns,
        e.src.ctime_ns,
        e.src.ino as i64,
        e.dst.size as i64,
        e.dst.mtime_ns,
        e.dst.ctime_ns,
        e.dst.ino as i64,
        digest,
        e.racy,
    ])
}

/// A folder's entries in name order; `Err` on a row that cannot be one
/// (the file is then treated as corrupt).
fn read_dir(conn: &Connection, dir: &[u8]) -> Result<DirEntries, String> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT name, {COLUMNS} FROM digest_cache WHERE dir = ?1 ORDER BY name"
        ))
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([dir]).map_err(|e| e.to_string())?;
    let mut out = DirEntries::default();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let (name, entry) = from_row(row).map_err(|e| format!("a bad digest_cache row: {e}"))?;
        out.insert(&name, entry);
    }
    Ok(out)
}

fn from_row(row: &Row<'_>) -> Result<(Vec<u8>, Entry), String> {
    let int = |i: usize| row.get::<_, i64>(i).map_err(|e| e.to_string());
    let name: Vec<u8> = row.get(0).map_err(|e| e.to_string())?;
    if name.is_empty() || name.len() > 255 || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err("not a file name".into());
    }
    let stamp = |first: usize| -> Result<Stamp, String> {
        Ok(Stamp {
            size: int(first)? as u64,
            mtime_ns: int(first + 1)?,
            ctime_ns: int(first + 2)?,
            ino: int(first + 3)? as u64,
        })
    };
    let digest: Option<Vec<u8>> = row.get(9).map_err(|e| e.to_string())?;
    let digest = match digest {
        None => None,
        Some(d) => Some(<[u8; 16]>::try_from(&d[..]).map_err(|_| "not an MD5 digest")?),
    };
    let racy = match int(10)? {
        0 => false,
        1 => true,
        _ => return Err("racy is neither 0 nor 1".into()),
    };
    let entry = Entry {
        src: stamp(1)?,
        dst: stamp(5)?,
        digest,
        racy,
    };
    Ok((name, entry))
}

/// A file's relative path split into its folder's path and its name.
fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

#[cfg(test)]
#[path = "cache_store_tests.rs"]
mod tests;
