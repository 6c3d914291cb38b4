//! The digest cache kept in the pair's state file: a restarted daemon and
//! a `--once` from cron start from what the last run knew, never trust an
//! entry whose files changed, and go on without it when the file is bad.
//!
//! Whether file data was read is told by the process's `rchar` (bytes
//! read through system calls, `/proc/PID/io`): the trees are several MiB,
//! far more than the state file and `/proc` reads a pass makes otherwise.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// 16 files of 256 KiB in two folders: 4 MiB a side.
const TREE_BYTES: u64 = 16 * 256 * 1024;
/// Far below one side's bytes: what a pass reads besides file data.
const NO_FILE_DATA: u64 = 1 << 20;

fn tree(env: &TestEnv) {
    for i in 0..16u8 {
        let bytes: Vec<u8> = (0..256 * 1024usize)
            .map(|n| (n / 511) as u8 ^ i.wrapping_mul(37))
            .collect();
        env.write(format!("src/d{}/f{i}.bin", i % 2), bytes);
    }
    // An entry recorded within 2 s of its source's ctime is racy and
    // re-read next time; these must be settled.
    std::thread::sleep(Duration::from_millis(2_200));
}

/// The pair's state file.
fn state_file(env: &TestEnv) -> PathBuf {
    let dir = env.state_home().join("foldersync");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("sqlite")))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The `rchar` of a running process.
fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in {io}"))
}

/// `foldersync --once [extra...] src dst 1 log.txt`, asserting success,
/// with the bytes it read (taken once it exited, before it is reaped).
fn once_read(env: &TestEnv, extra: &[&str]) -> u64 {
    let mut child = Command::new(bin())
        .arg("--once")
        .args(extra)
        .args(["src", "dst", "1", "log.txt"])
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn foldersync");
    let pid = child.id();
    // SAFETY: waitid with WNOWAIT on our own child leaves it to be reaped
    // by `wait` below; the siginfo is only written.
    let waited = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
    };
    assert_eq!(waited, 0, "waitid");
    let read = rchar(pid);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}:\n{}", env.log_text());
    read
}

fn passes(env: &TestEnv) -> usize {
    env.log_text().matches("pass finished").count()
}

/// A daemon's first pass; returns the bytes read by then. Stopped after.
fn daemon_first_pass(env: &TestEnv, extra: &[&str]) -> u64 {
    let before = passes(env);
    let mut args = vec!["--no-menu", "-v"];
    args.extend(extra);
    args.extend(["src", "dst", "3600", "log.txt"]);
    let mut s = MenuSession::start(env.root(), args);
    wait_for(
        Duration::from_secs(30),
        || passes(env) > before,
        || format!("no pass finished:\n{}", env.log_text()),
    );
    let read = rchar(s.child.id());
    signal(s.child.id(), "INT");
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    read
}

#[test]
fn a_restarted_daemon_with_checksum_reads_no_file_it_knew() {
    let env = TestEnv::new();
    tree(&env);
    let first = daemon_first_pass(&env, &["--checksum"]);
    assert!(first >= TREE_BYTES, "the first pass copied: {first}");
    assert_mirror(&env.src(), &env.dst());

    let restarted = daemon_first_pass(&env, &["--checksum"]);
    assert!(
        restarted < NO_FILE_DATA,
        "the restarted daemon read {restarted} bytes:\n{}",
        env.log_text()
    );
    assert!(
        env.log_text()
            .contains("digest cache: 16 entries read, 0 rows written"),
        "{}",
        env.log_text()
    );

    // Without the stored cache, --checksum reads both sides in full.
    std::fs::remove_file(state_file(&env)).unwrap();
    let cold = daemon_first_pass(&env, &["--checksum"]);
    assert!(cold >= 2 * TREE_BYTES, "a cold start read {cold} bytes");
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn a_file_changed_while_the_daemon_was_down_is_copied_though_size_and_mtime_are_the_same() {
    let env = TestEnv::new();
    env.write("src/edited.txt", "version one");
    env.write("src/replaced.txt", "version one");
    env.write("src/kept.txt", "kept");
    for name in ["edited.txt", "replaced.txt", "kept.txt"] {
        set_mtime(&env.path("src").join(name), past());
    }
    std::thread::sleep(Duration::from_millis(2_200));
    daemon_first_pass(&env, &[]);
    assert_mirror(&env.src(), &env.dst());

    // Rewritten in place (the ctime moves) and replaced by another file
    // (the inode differs), each with the same size and the old mtime: the
    // quick check alone would keep the old replica.
    env.write("src/edited.txt", "version two");
    env.write("replaced.next", "version two");
    std::fs::rename(env.path("replaced.next"), env.path("src/replaced.txt")).unwrap();
    for name in ["edited.txt", "replaced.txt"] {
        set_mtime(&env.path("src").join(name), past());
    }
    daemon_first_pass(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains("updated edited.txt"), "{log}");
    assert!(log.contains("updated replaced.txt"), "{log}");
    assert!(!log.contains("updated kept.txt"), "{log}");
}

/// The warning a run gives when it cannot use the stored cache.
const WITHOUT: &str = "goes on without the stored digest cache";

#[test]
fn a_corrupt_state_file_is_said_once_and_the_pass_is_right() {
    let env = TestEnv::new();
    env.write("src/a/one.txt", "one");
    env.write("src/b/two.txt", "two");
    env.once_ok(&[]);
    let state = state_file(&env);
    std::fs::write(&state, "not a database, ".repeat(1_000)).unwrap();
    env.write("src/a/three.txt", "three");
    env.write("src/b/two.txt", "two, longer");
    let out = env.once(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    let said: Vec<&str> = log.lines().filter(|l| l.contains(WITHOUT)).collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains(&*state.to_string_lossy()), "{}", said[0]);
    // The devices kept in the same file are lost too, which a --once says
    // with its exit status (README, The state).
    assert_eq!(out.status.code(), Some(1), "{log}");
}

#[test]
fn a_digest_cache_of_an_unknown_layout_is_said_once_and_left_alone() {
    let env = TestEnv::new();
    env.write("src/a/one.txt", "one");
    env.once_ok(&[]);
    let state = state_file(&env);
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'digest_cache_version'",
        [],
    )
    .unwrap();
    // Another module's table in the same file is no trouble.
    conn.execute_batch("CREATE TABLE archive (path BLOB PRIMARY KEY)")
        .unwrap();
    drop(conn);
    env.write("src/a/two.txt", "two");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    let said: Vec<&str> = log.lines().filter(|l| l.contains(WITHOUT)).collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("layout 99"), "{}", said[0]);
    let conn = rusqlite::Connection::open(&state).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM digest_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "a layout it does not know is not written to");
}

#[test]
fn once_with_checksum_reads_only_what_changed_since_the_last_run() {
    let env = TestEnv::new();
    tree(&env);
    // A dry run writes no state.
    env.once_ok(&["--dry-run"]);
    assert!(!env.state_home().join("foldersync").exists());
    let first = once_read(&env, &["--checksum"]);
    assert!(first >= TREE_BYTES, "{first}");
    assert_mirror(&env.src(), &env.dst());

    let second = once_read(&env, &["--checksum"]);
    assert!(second < NO_FILE_DATA, "the second run read {second} bytes");

    // One file rewritten with the same size and mtime: only it is read
    // (source and replica), and it is copied.
    let path = env.path("src/d1/f3.bin");
    let mtime = mtime_of(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let third = once_read(&env, &["--checksum"]);
    assert!(
        third < NO_FILE_DATA + 2 * 256 * 1024,
        "the third run read {third} bytes"
    );
    assert_mirror(&env.src(), &env.dst());
    assert!(env.log_text().contains("updated d1/f3.bin"));

    // Without --checksum, the stored cache keeps a --once as cheap.
    let plain = once_read(&env, &[]);
    assert!(plain < NO_FILE_DATA, "{plain}");
    assert!(Path::new(&state_file(&env)).exists());
}
