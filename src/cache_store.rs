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
use rusqlite::{Connection, OptionalExtension, params};

use crate::cache::{DirEntries, Entry, Stamp};
use crate::fsops::join_rel;
use crate::state::PairState;

/// The layout of `digest_cache`, kept in `meta` under [`VERSION_KEY`]:
/// the table has its own version, so other tables of the same file can
/// change theirs without touching it.
/// Layout 1 kept each entry's fields as ten columns; reading them cost
/// half the user time of a `--once` no-change pass, so layout 2 keeps the
/// entry as one packed blob ([`Entry::to_bytes`]). A table of layout 1 is
/// dropped when the file is next written (losing entries is safe: files
/// are judged as on a first pass).
const LAYOUT: &str = "2";
const OLDER_LAYOUT: &str = "1";
const VERSION_KEY: &str = "digest_cache_version";

/// A transaction is committed after this many rows, or this long, and at
/// the end of each pass.
const BATCH_ROWS: usize = 20_000;
const BATCH_TIME: Duration = Duration::from_secs(2);

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
    /// Whether the file was read or written since the last [`Self::commit`]
    /// (which then empties SQLite's page cache).
    used: bool,
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
            used: false,
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
            // One statement for the folder: looking it up in the cache
            // again for each row was a fifth of the row's cost.
            let mut insert = conn.prepare_cached(PUT)?;
            let mut rows = 0;
            for (name, entry) in new.iter().filter(|(name, e)| old.get(name) != Some(*e)) {
                rows += insert.execute(params![rel, name, entry.to_bytes()])?;
            }
            if complete && gone > 0 {
                let mut delete =
                    conn.prepare_cached("DELETE FROM digest_cache WHERE dir = ?1 AND name = ?2")?;
                for (name, _) in old.iter().filter(|(name, _)| new.get(name).is_none()) {
                    rows += delete.execute(params![rel, name])?;
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
            let stored: Option<Vec<u8>> = conn
                .prepare_cached("SELECT entry FROM digest_cache WHERE dir = ?1 AND name = ?2")?
                .query_row(params![dir, name], |r| r.get(0))
                .optional()?;
            let Some(mut entry) = stored.as_deref().and_then(Entry::from_bytes) else {
                return Ok(0);
            };
            if (entry.dst.ino, entry.dst.size, entry.dst.mtime_ns)
                != (dst.ino, dst.size, dst.mtime_ns)
            {
                return Ok(0);
            }
            entry.dst = dst;
            put(conn, dir, name, &entry)
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

    /// Forgets a folder and everything below it, the replica's root (`rel`
    /// empty) too: a replica folder the pass has just made.
    pub fn forget_tree(&mut self, rel: &[u8]) {
        if !rel.is_empty() {
            return self.remove_tree(rel);
        }
        if !self.write || !self.pair.path().exists() {
            return;
        }
        // One statement, not a batch's worth of rows.
        let result = self
            .transaction()
            .and_then(|conn| conn.execute("DELETE FROM digest_cache", []).map(|_| 1));
        self.wrote(result);
    }

    /// Commits what was written (at the end of a pass, and before another
    /// connection to the file writes, as the roots' does after a pass), and
    /// empties SQLite's page cache: a daemon whose in-memory cache holds
    /// everything reads nothing here until the next change, so the pages
    /// (up to SQLite's default 2 MiB) would only sit in memory until then.
    pub fn commit(&mut self) {
        self.end_batch();
        if !std::mem::take(&mut self.used) {
            return;
        }
        if let Link::Open(conn) = &self.link {
            // Memory only: nothing is lost if it fails.
            let _ = conn.execute_batch("PRAGMA shrink_memory");
            // The pages were freed among the in-memory cache's blocks:
            // without this they stay with the process.
            crate::allocator::give_back();
        }
    }

    /// Commits the open transaction, if any.
    fn end_batch(&mut self) {
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
            self.end_batch();
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
        self.used = true;
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
        // Each folder's rows are read once a pass: a small page cache
        // serves them (SQLite's default holds up to 2 MiB, most of a
        // --once's peak memory over 20,000 files). Dirty pages are spilled
        // before the commit only past 512 KiB (128 pages).
        let _ = conn.execute_batch("PRAGMA cache_size = -256; PRAGMA cache_spill = 128");
        let failed = |e: String| format!("pair state {}: {e}", self.pair.path().display());
        match layout(&conn).map_err(|e| failed(e.to_string()))? {
            Layout::Known => Ok(Link::Open(conn)),
            Layout::Unknown(what) => Err(failed(format!(
                "its digest cache has layout {what}, which this version of foldersync does not know"
            ))),
            Layout::Missing | Layout::Older if create => {
                make_table(&conn).map_err(|e| failed(e.to_string()))?;
                Ok(Link::Open(conn))
            }
            Layout::Missing | Layout::Older => Ok(Link::Empty),
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
    /// Layout 1's table: nothing this version reads; replaced at the
    /// first write.
    Older,
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
        (Some(v), true) if v == OLDER_LAYOUT => Layout::Older,
        (Some(v), _) if v != LAYOUT => Layout::Unknown(v),
        (None, false) => Layout::Missing,
        // A table without its version, or a version without its table.
        (v, _) => Layout::Unknown(v.unwrap_or_else(|| "(none recorded)".into())),
    })
}

fn make_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         DROP TABLE IF EXISTS digest_cache;
         CREATE TABLE digest_cache (
             dir BLOB NOT NULL,
             name BLOB NOT NULL,
             entry BLOB NOT NULL,
             PRIMARY KEY (dir, name)
         ) WITHOUT ROWID;
         INSERT OR REPLACE INTO meta (key, value) VALUES ('{VERSION_KEY}', '{LAYOUT}');
         COMMIT;"
    ))
}

const PUT: &str = "INSERT OR REPLACE INTO digest_cache (dir, name, entry) VALUES (?1, ?2, ?3)";

/// Stores one entry; returns the rows written (1).
fn put(conn: &Connection, dir: &[u8], name: &[u8], e: &Entry) -> rusqlite::Result<usize> {
    conn.prepare_cached(PUT)?
        .execute(params![dir, name, e.to_bytes()])
}

/// A folder's entries in name order; `Err` on a row that cannot be one
/// (the file is then treated as corrupt).
fn read_dir(conn: &Connection, dir: &[u8]) -> Result<DirEntries, String> {
    let mut stmt = conn
        .prepare_cached("SELECT name, entry FROM digest_cache WHERE dir = ?1 ORDER BY name")
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([dir]).map_err(|e| e.to_string())?;
    let mut out = DirEntries::default();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let bad = |e: &dyn std::fmt::Display| format!("a bad digest_cache row: {e}");
        let name = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(|e| bad(&e))?;
        if name.is_empty() || name.len() > 255 || name.iter().any(|&b| b == b'/' || b == 0) {
            return Err(bad(&"not a file name"));
        }
        let bytes = row
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(|e| bad(&e))?;
        let entry = Entry::from_bytes(bytes).ok_or_else(|| bad(&"not an entry"))?;
        out.insert(name, entry);
    }
    Ok(out)
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
