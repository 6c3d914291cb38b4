//! Tests of the stored digest cache.

use super::*;
use crate::fsops::{Kind, Meta, Time};
use crate::state::State;
use std::path::Path;
use std::time::SystemTime;

fn meta(size: u64, ctime: i64, ino: u64) -> Meta {
    Meta {
        kind: Kind::File,
        size,
        mtime: Time { sec: 100, nsec: 7 },
        ctime: Time {
            sec: ctime,
            nsec: 0,
        },
        ino,
        dev: 1,
        nlink: 1,
        blocks: 8,
        mode: 0o644,
    }
}

fn entry(size: u64, digest: Option<[u8; 16]>) -> Entry {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
    Entry::new(
        &meta(size, 50, u64::MAX - 1),
        &meta(size, 60, 9),
        digest,
        now,
    )
}

fn dir_of(entries: &[(&str, Entry)]) -> DirEntries {
    let mut d = DirEntries::default();
    for (name, e) in entries {
        d.insert(name.as_bytes(), *e);
    }
    d
}

fn store(state: &State, write: bool) -> CacheStore {
    CacheStore::new(
        state.pair(Path::new("/src"), Path::new("/dst")),
        "test",
        1,
        write,
    )
}

#[test]
fn entries_are_kept_changed_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path().join("state"), false).unwrap();
    let mut s = store(&state, true);
    assert_eq!(
        s.load_dir(b"a").map(|d| d.iter().next().is_none()),
        Some(true)
    );
    assert!(
        !state
            .pair(Path::new("/src"), Path::new("/dst"))
            .path()
            .exists(),
        "a read creates nothing"
    );
    let racy = Entry {
        racy: true,
        ..entry(2, None)
    };
    let first = dir_of(&[("x", entry(1, Some([3; 16]))), ("y", racy)]);
    s.save_dir(b"a", &DirEntries::default(), &first, true);
    s.save_dir(b"a/b", &DirEntries::default(), &first, true);
    s.save_dir(b"ab", &DirEntries::default(), &first, true);
    s.commit();
    drop(s);

    let mut s = store(&state, true);
    let back = s.load_dir(b"a").unwrap();
    assert_eq!(back.get(b"x"), first.get(b"x"));
    assert_eq!(back.get(b"y"), Some(racy), "racy stays racy");
    // y is gone, x changed, z is new.
    let second = dir_of(&[("x", entry(5, None)), ("z", entry(6, None))]);
    s.save_dir(b"a", &back, &second, true);
    let back = s.load_dir(b"a").unwrap();
    assert_eq!(back.iter().count(), 2);
    assert_eq!(back.get(b"x"), second.get(b"x"));
    assert!(back.get(b"y").is_none());
    // An incomplete folder keeps what the pass did not reach.
    s.save_dir(b"a", &back, &dir_of(&[("w", entry(7, None))]), false);
    assert_eq!(s.load_dir(b"a").unwrap().iter().count(), 3);

    s.save_entry(b"a/b/v", &entry(8, None));
    assert_eq!(s.load_dir(b"a/b").unwrap().iter().count(), 3);
    s.remove_tree(b"a");
    assert!(s.load_dir(b"a").unwrap().iter().next().is_none());
    assert!(s.load_dir(b"a/b").unwrap().iter().next().is_none());
    assert_eq!(
        s.load_dir(b"ab").unwrap().iter().count(),
        2,
        "a sibling stays"
    );
}

#[test]
fn a_dry_run_reads_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path().join("state"), false).unwrap();
    let mut s = store(&state, false);
    s.save_dir(
        b"",
        &DirEntries::default(),
        &dir_of(&[("x", entry(1, None))]),
        true,
    );
    s.commit();
    assert!(s.load_dir(b"").unwrap().iter().next().is_none());
    assert!(
        !state
            .pair(Path::new("/src"), Path::new("/dst"))
            .path()
            .exists()
    );
}

/// A state folder in `dir` whose pair's file holds one stored entry, and
/// that file's path.
fn state_with_one_entry(dir: &Path) -> (State, std::path::PathBuf) {
    let state = State::open(dir.join("state"), false).unwrap();
    let mut s = store(&state, true);
    s.save_dir(
        b"",
        &DirEntries::default(),
        &dir_of(&[("x", entry(1, None))]),
        true,
    );
    drop(s);
    let path = state
        .pair(Path::new("/src"), Path::new("/dst"))
        .path()
        .to_path_buf();
    (state, path)
}

#[test]
fn an_unknown_layout_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (state, path) = state_with_one_entry(dir.path());
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET value = '99' WHERE key = ?1", [VERSION_KEY])
        .unwrap();
    // Another module's table does not disturb this one.
    conn.execute_batch("CREATE TABLE archive (path BLOB PRIMARY KEY)")
        .unwrap();
    drop(conn);
    let mut s = store(&state, true);
    assert!(s.load_dir(b"").is_none());
    s.save_dir(
        b"",
        &DirEntries::default(),
        &dir_of(&[("y", entry(1, None))]),
        true,
    );
    drop(s);
    let conn = Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM digest_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "nothing written to a layout it does not know");
}

#[test]
fn a_table_of_the_older_layout_is_replaced_at_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let (state, path) = state_with_one_entry(dir.path());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE digest_cache;
         CREATE TABLE digest_cache (dir BLOB, name BLOB, src_size INTEGER, md5 BLOB,
             PRIMARY KEY (dir, name)) WITHOUT ROWID;
         INSERT INTO digest_cache VALUES (x'', x'78', 1, NULL);
         UPDATE meta SET value = '1' WHERE key = 'digest_cache_version';",
    )
    .unwrap();
    drop(conn);
    // Read only: nothing to read, nothing said, nothing changed.
    let mut s = store(&state, false);
    assert_eq!(s.load_dir(b"").map(|d| d.iter().count()), Some(0));
    drop(s);
    let mut s = store(&state, true);
    assert_eq!(s.load_dir(b"").map(|d| d.iter().count()), Some(0));
    let second = dir_of(&[("y", entry(2, Some([4; 16])))]);
    s.save_dir(b"", &DirEntries::default(), &second, true);
    assert_eq!(s.load_dir(b"").unwrap().get(b"y"), second.get(b"y"));
    s.commit();
    drop(s);
    let conn = Connection::open(&path).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [VERSION_KEY],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, LAYOUT);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM digest_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the older layout's rows are gone");
}

#[test]
fn a_corrupt_entry_turns_the_store_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path().join("state"), false).unwrap();
    let mut s = store(&state, true);
    s.save_dir(
        b"a",
        &DirEntries::default(),
        &dir_of(&[("x", entry(1, None))]),
        true,
    );
    s.commit();
    drop(s);
    let path = state
        .pair(Path::new("/src"), Path::new("/dst"))
        .path()
        .to_path_buf();
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE digest_cache SET entry = x'00ff'", [])
        .unwrap();
    drop(conn);
    let mut s = store(&state, true);
    assert!(s.load_dir(b"a").is_none());
}
