//! What a pair keeps across restarts: one SQLite database per pair in the
//! state folder (`--state-dir`, else `$XDG_STATE_HOME/foldersync`, else
//! `~/.local/state/foldersync`), found by a hash of the pair's two resolved
//! paths. Today it holds the devices of the pair's roots (see
//! [`crate::mounts::RootWatch`]), so a `--once` from cron notices a disk
//! swapped between runs; two-way sync will keep its archive there too.
//!
//! A pair's file is created at its first write, never by a dry run; to make
//! a pair start over, delete its file.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// The layout this program writes; kept in `meta` for later migrations.
const SCHEMA_VERSION: &str = "1";

/// The state folder of this run.
#[derive(Clone, Debug)]
pub struct State {
    dir: PathBuf,
}

impl State {
    /// The state folder `--state-dir` names, or the XDG default. `Err` when
    /// there is no home to put it in.
    pub fn resolve(arg: Option<&Path>) -> Result<PathBuf, String> {
        if let Some(dir) = arg {
            if dir.as_os_str().is_empty() {
                return Err("--state-dir is empty".into());
            }
            return std::path::absolute(dir)
                .map_err(|e| format!("state folder {}: {e}", dir.display()));
        }
        // The XDG spec ignores a relative value.
        if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from)
            && xdg.is_absolute()
        {
            return Ok(xdg.join("foldersync"));
        }
        match std::env::home_dir() {
            Some(home) if home.is_absolute() => Ok(home.join(".local/state/foldersync")),
            _ => Err("no state folder: neither XDG_STATE_HOME nor HOME is set; \
                      name one with --state-dir"
                .into()),
        }
    }

    /// Checks the state folder and creates it (mode 0700: it names the
    /// user's folders) unless `dry_run`, which writes nothing. `Err` is bad
    /// input: the path is not a folder or cannot be created.
    pub fn open(dir: PathBuf, dry_run: bool) -> Result<State, String> {
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("state folder {}: not a folder", dir.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && dry_run => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("state folder {}: cannot create it: {e}", dir.display()))?,
            Err(e) => return Err(format!("state folder {}: {e}", dir.display())),
        }
        // Compared with replica folders, which are resolved.
        let dir = crate::config::resolve(&dir).unwrap_or(dir);
        Ok(State { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state of the pair from `source` to `replica` (resolved paths),
    /// not opened yet.
    pub fn pair(&self, source: &Path, replica: &Path) -> PairState {
        let mut key = source.as_os_str().as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(replica.as_os_str().as_bytes());
        PairState {
            path: self.dir.join(format!("pair-{:016x}.sqlite", fnv1a(&key))),
            source: source.to_string_lossy().into_owned(),
            replica: replica.to_string_lossy().into_owned(),
            conn: None,
        }
    }
}

/// Refuses a state folder `dir` (resolved) that is, contains or lies inside
/// a folder of the pair `spec`: a pass would copy its live database to the
/// other side, or delete it as an extra in a replica. Every pair, from the
/// command line, a pairs file or the menu, is checked by this.
pub fn check_place(dir: &Path, spec: &crate::config::PairSpec) -> Result<(), String> {
    for (folder, role) in [(&spec.source, "source"), (&spec.replica, "replica")] {
        let how = if dir == folder.as_path() {
            "is"
        } else if dir.starts_with(folder) {
            "is inside"
        } else if folder.starts_with(dir) {
            "contains"
        } else {
            continue;
        };
        let why = match (role, spec.two_way) {
            ("replica", false) => "where a pass would delete its files",
            _ => "whose passes would copy its live files to the other folder",
        };
        return Err(format!(
            "state folder {} {how} the {role} folder {} of a pair, {why}; \
             name a state folder outside every pair's folders with --state-dir",
            dir.display(),
            folder.display()
        ));
    }
    Ok(())
}

/// FNV-1a, 64 bits: stable across versions and platforms, unlike std's
/// hasher, so a pair finds its file again after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Where one root of a pair was at its first good pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRecord {
    /// `source` or `replica`.
    pub side: String,
    pub dev: u64,
    /// The mount, as `/proc/self/mountinfo` named it, when it was listed.
    pub fstype: Option<String>,
    pub mount_source: Option<String>,
}

/// One pair's database, opened at the first read that finds it or the
/// first write.
pub struct PairState {
    path: PathBuf,
    source: String,
    replica: String,
    conn: Option<Connection>,
}

impl PairState {
    /// The pair's file, for messages (and for a user who wants to start
    /// over).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, for the tables other modules keep in the pair's
    /// file (the two-way archive); created now if need be.
    pub fn connection(&mut self) -> Result<&mut Connection, String> {
        let path = self.path.clone();
        self.connect()
            .map_err(|e| format!("pair state {}: {e}", path.display()))
    }

    /// The roots remembered by earlier runs; none when the file does not
    /// exist yet.
    pub fn roots(&mut self) -> Result<Vec<RootRecord>, String> {
        if self.conn.is_none() && !self.path.exists() {
            return Ok(Vec::new());
        }
        self.read_roots().map_err(|e| self.failed(&e))
    }

    /// Replaces the remembered roots, in one transaction, creating the
    /// file if needed.
    pub fn save_roots(&mut self, roots: &[RootRecord]) -> Result<(), String> {
        self.write_roots(roots).map_err(|e| self.failed(&e))
    }

    /// A connection of its own to the pair's file, for a module that keeps
    /// its own tables there (the digest cache, [`crate::cache_store`]).
    /// `write`: the file and the shared tables are made if need be, as by
    /// a write here. Otherwise the file is only read (a dry run): `None`
    /// when it does not exist, and nothing is created. Either way the file
    /// is checked to be this pair's. `Err` names the file.
    pub fn open_connection(&self, write: bool) -> Result<Option<Connection>, String> {
        if !write && !self.path.exists() {
            return Ok(None);
        }
        let flags = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let open = || -> Result<Connection, String> {
            let conn =
                Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .map_err(|e| e.to_string())?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            if write {
                init(&conn, &self.source, &self.replica)?;
            } else {
                check_owner(&conn, &self.source, &self.replica)?;
            }
            Ok(conn)
        };
        open().map(Some).map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &str) -> String {
        format!("pair state {}: {e}", self.path.display())
    }

    fn read_roots(&mut self) -> Result<Vec<RootRecord>, String> {
        let conn = self.connect()?;
        read_roots(conn).map_err(|e| e.to_string())
    }

    fn write_roots(&mut self, roots: &[RootRecord]) -> Result<(), String> {
        let conn = self.connect()?;
        write_roots(conn, roots).map_err(|e| e.to_string())
    }

    /// The open database, opened (and its tables made) now if need be.
    fn connect(&mut self) -> Result<&mut Connection, String> {
        if self.conn.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| e.to_string())?;
            // Two runs of one pair (cron overlapping) wait for each other.
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            init(&conn, &self.source, &self.replica)?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }
}

fn read_roots(conn: &Connection) -> rusqlite::Result<Vec<RootRecord>> {
    let mut stmt = conn.prepare("SELECT side, dev, fstype, mount_source FROM roots")?;
    let rows = stmt.query_map([], |row| {
        Ok(RootRecord {
            side: row.get(0)?,
            // SQLite integers are signed; the bits are the device's.
            dev: row.get::<_, i64>(1)? as u64,
            fstype: row.get(2)?,
            mount_source: row.get(3)?,
        })
    })?;
    rows.collect()
}

fn write_roots(conn: &mut Connection, roots: &[RootRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM roots", [])?;
    for r in roots {
        tx.execute(
            "INSERT INTO roots (side, dev, fstype, mount_source) VALUES (?1, ?2, ?3, ?4)",
            params![r.side, r.dev as i64, r.fstype, r.mount_source],
        )?;
    }
    tx.commit()
}

/// Makes the tables of a new file, and checks that an existing one is
/// this pair's (the hash is 64 bits; a clash must not mix two pairs).
fn init(conn: &Connection, source: &str, replica: &str) -> Result<(), String> {
    make_tables(conn, source, replica).map_err(|e| e.to_string())?
}

/// `Ok(Err)`: the file is another pair's.
fn make_tables(
    conn: &Connection,
    source: &str,
    replica: &str,
) -> rusqlite::Result<Result<(), String>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS roots (
             side TEXT PRIMARY KEY,
             dev INTEGER NOT NULL,
             fstype TEXT,
             mount_source TEXT
         );",
    )?;
    let get = |key: &str| {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    };
    match (get("source")?, get("replica")?) {
        (Some(s), Some(r)) if s == source && r == replica => {}
        (None, None) => {
            // For a human with sqlite3: whose file this is.
            for (key, value) in [
                ("source", source),
                ("replica", replica),
                ("version", SCHEMA_VERSION),
            ] {
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    [key, value],
                )?;
            }
        }
        (s, r) => {
            return Ok(Err(format!(
                "it belongs to another pair ({} -> {})",
                s.unwrap_or_default(),
                r.unwrap_or_default()
            )));
        }
    }
    Ok(Ok(()))
}

/// Checks, reading only, that an existing file is this pair's (or has no
/// owner recorded yet).
fn check_owner(conn: &Connection, source: &str, replica: &str) -> Result<(), String> {
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if !has_meta {
        return Ok(());
    }
    let get = |key: &str| {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map_err(|e| e.to_string())
    };
    match (get("source")?, get("replica")?) {
        (Some(s), Some(r)) if s == source && r == replica => Ok(()),
        (None, None) => Ok(()),
        (s, r) => Err(format!(
            "it belongs to another pair ({} -> {})",
            s.unwrap_or_default(),
            r.unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_is_stable() {
        // FNV-1a's published test value.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let state = State {
            dir: PathBuf::from("/s"),
        };
        let a = state.pair(Path::new("/a"), Path::new("/b"));
        let b = state.pair(Path::new("/a/b"), Path::new(""));
        assert_ne!(a.path(), b.path(), "the separator keeps them apart");
    }

    #[test]
    fn roots_are_kept_and_read_back() {
        let dir = std::env::temp_dir().join(format!("foldersync-state-{}", std::process::id()));
        let state = State::open(dir.clone(), false).expect("state dir");
        let mut pair = state.pair(Path::new("/src"), Path::new("/dst"));
        assert_eq!(pair.roots().unwrap(), Vec::new());
        assert!(!pair.path().exists(), "a read creates nothing");
        let roots = vec![RootRecord {
            side: "source".into(),
            dev: u64::MAX - 3,
            fstype: Some("ext4".into()),
            mount_source: None,
        }];
        pair.save_roots(&roots).unwrap();
        let mut again = state.pair(Path::new("/src"), Path::new("/dst"));
        assert_eq!(again.roots().unwrap(), roots);
        let _ = fs::remove_dir_all(dir);
    }
}
