//! Replicas on network shares, tested on a real one: an sshfs mount of a
//! folder served by an sshd on 127.0.0.1 (see `tests/sshfs/mod.rs`), whose
//! server keeps whole-second times and applies a symlink's time change to
//! the link's target. Also a replica on a tmpfs that is unmounted between
//! passes. Under `CI=true` a missing sshd, sshfs or FUSE fails the test.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::support::*;
use crate::support::{Share, Tmpfs, or_skip};

/// The limits line the pass logs for a replica on sshfs.
const LIMITS: &str = "is on a file system (fuse.sshfs) that keeps";

/// `foldersync --once SRC DST 1 LOG` in the env root.
fn once_to(env: &TestEnv, dst: &Path) -> std::process::Output {
    env.run([
        OsStr::new("--once"),
        env.src().as_os_str(),
        dst.as_os_str(),
        OsStr::new("1"),
        env.log().as_os_str(),
    ])
}

#[track_caller]
fn assert_ok(out: &std::process::Output, env: &TestEnv) {
    assert!(
        out.status.success(),
        "foldersync failed ({}):\n{}\nlog:\n{}",
        out.status,
        stderr_of(out),
        env.log_text()
    );
}

/// Starts `foldersync --no-menu SRC DST INTERVAL LOG`, its output read as
/// it comes.
fn daemon(env: &TestEnv, dst: &Path, interval: &str) -> MenuSession {
    MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            env.src().as_os_str(),
            dst.as_os_str(),
            OsStr::new(interval),
            env.log().as_os_str(),
        ],
    )
}

fn stop(mut session: MenuSession) {
    signal(session.child.id(), "TERM");
    let status = session.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", session.stderr());
}

/// Bytes a process has read so far (`rchar`: every read call, file data
/// from the share included).
fn bytes_read(pid: u32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.parse().ok())
        .expect("rchar in /proc/PID/io")
}

/// A source tree whose times all have sub-second digits, which a
/// whole-second share cannot keep: files (one read-only), folders, and
/// relative symlinks.
fn build_tree(env: &TestEnv) {
    for i in 0..20 {
        env.write(format!("src/d{}/f{i}.txt", i % 4), format!("file {i}"));
    }
    env.write("src/top.txt", "top");
    env.mkdir("src/empty");
    env.symlink("src/d0/rel", "f0.txt");
    env.symlink("src/up", "d1/f1.txt");
    fs::set_permissions(env.path("src/top.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    for i in 0..20 {
        set_mtime(
            &env.path(format!("src/d{}/f{i}.txt", i % 4)),
            "2021-03-04 05:06:07.5",
        );
    }
    for p in ["src/top.txt", "src/d0", "src/d1", "src/d2", "src/d3"] {
        set_mtime(&env.path(p), "2021-03-04 05:06:07.75");
    }
    for p in ["src/empty", "src"] {
        set_mtime(&env.path(p), "2021-03-04 05:06:08.25");
    }
}

/// Asserts that `dst` mirrors `src` with every mtime cut to whole seconds
/// (what the share keeps) and symlink mtimes left out (the share cannot
/// set them).
#[track_caller]
fn assert_mirror_to_the_second(src: &Path, dst: &Path) {
    let cut = |root: &Path| {
        let mut tree = snapshot(root);
        for node in tree.values_mut() {
            match node {
                Node::File { mtime, .. } => mtime.1 = 0,
                Node::Symlink { mtime, .. } => *mtime = (0, 0),
                _ => {}
            }
        }
        tree
    };
    assert_eq!(cut(src), cut(dst), "replica is not a mirror");
    let dirs = |root: &Path| {
        dir_mtimes(root)
            .into_iter()
            .map(|(k, (s, _))| (k, s))
            .collect::<Vec<_>>()
    };
    assert_eq!(dirs(src), dirs(dst), "folder mtimes differ");
}

#[test]
fn a_link_pointing_outside_the_replica_keeps_its_targets_mtime() {
    let Some(share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    let outside = env.write("outside/target.txt", "not ours");
    set_mtime(&outside, "2015-01-01 00:00:00");
    let before = mtime_of(&outside);
    env.write("src/a.txt", "a");
    env.symlink("src/abs", &outside);
    env.symlink("src/rel-out", "../../../outside/target.txt");
    set_mtime(&env.path("src/abs"), "2022-02-02 02:02:02.5");
    let dst = share.mnt.join("rep");
    for pass in 1..=2 {
        let out = once_to(&env, &dst);
        assert_eq!(
            mtime_of(&outside),
            before,
            "pass {pass} changed the mtime of a file outside the replica"
        );
        assert_ok(&out, &env);
    }
    // The links are there, as links, with their targets.
    let server = share.server.join("rep");
    assert_eq!(fs::read_link(server.join("abs")).unwrap(), outside);
    assert_eq!(
        fs::read_link(server.join("rel-out")).unwrap(),
        Path::new("../../../outside/target.txt")
    );
    let log = env.log_text();
    assert_eq!(
        count(&log, "linked abs"),
        1,
        "relinked on a later pass:\n{log}"
    );
}

#[test]
fn a_dangling_link_syncs_without_error() {
    let Some(share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    env.symlink("src/dangling", "no/such/target");
    let dst = share.mnt.join("rep");
    for _ in 0..2 {
        let out = once_to(&env, &dst);
        assert_ok(&out, &env);
    }
    let log = env.log_text();
    assert!(!log.contains("[ERROR]"), "{log}");
    assert_eq!(
        fs::read_link(share.server.join("rep/dangling")).unwrap(),
        Path::new("no/such/target")
    );
}

#[test]
fn a_no_change_pass_on_a_whole_second_share_touches_nothing() {
    let Some(share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    build_tree(&env);
    let dst = share.mnt.join("rep");
    assert_ok(&once_to(&env, &dst), &env);
    assert_mirror_to_the_second(&env.src(), &share.server.join("rep"));
    assert_ok(&once_to(&env, &dst), &env);
    let log = env.log_text();
    let passes = summaries(&log, 1);
    assert_eq!(passes.len(), 2, "{log}");
    assert!(
        passes[1].contains(
            ": 28 checked, 0 copied, 0 updated, 0 touched, 0 linked, 0 folders created, \
             0 files and 0 folders removed, 0 skipped, 0 errors, 0 bytes written"
        ),
        "the second pass did something: {}\n{log}",
        passes[1]
    );
    assert_mirror_to_the_second(&env.src(), &share.server.join("rep"));
}

#[test]
fn a_daemon_says_once_what_the_share_cannot_do_and_reads_nothing_when_idle() {
    let Some(share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    build_tree(&env);
    // Past the cache's racy window, so no source file is read again for
    // having changed within the same timestamp tick.
    std::thread::sleep(Duration::from_millis(2100));
    let dst = share.mnt.join("rep");
    let session = daemon(&env, &dst, "0.2");
    let pid = session.child.id();
    wait_log(&env.log(), "pass finished", 2);
    let after_second = bytes_read(pid);
    wait_log(&env.log(), "pass finished", 5);
    let after_fifth = bytes_read(pid);
    stop(session);
    let log = env.log_text();
    assert_eq!(count(&log, LIMITS), 1, "{log}");
    let limits = log.lines().find(|l| l.contains(LIMITS)).unwrap();
    assert!(limits.contains("whole seconds"), "{limits}");
    assert!(limits.contains("no symlink times"), "{limits}");
    assert!(!limits.contains("modes"), "sshfs keeps modes: {limits}");
    assert!(!log.contains("[ERROR]"), "{log}");
    for pass in &summaries(&log, 1)[1..] {
        assert!(
            pass.contains(" 0 copied, 0 updated, 0 touched, 0 linked,"),
            "{pass}\n{log}"
        );
    }
    assert_eq!(
        after_fifth - after_second,
        0,
        "no-change passes read file data"
    );
    assert_mirror_to_the_second(&env.src(), &share.server.join("rep"));
}

/// Runs a daemon onto `dst`, waits for its first pass, calls `vanish`,
/// and returns the log once two passes have refused the replica.
fn run_until_refused(env: &TestEnv, dst: &Path, refusal: &str, vanish: impl FnOnce()) -> String {
    let session = daemon(env, dst, "0.2");
    wait_log(&env.log(), "pass finished", 1);
    vanish();
    wait_log(&env.log(), refusal, 2);
    stop(session);
    env.log_text()
}

/// What the log says after the replica vanished: only refusals, nothing
/// created, copied or removed.
#[track_caller]
fn assert_only_refused(log: &str, refusal: &str) {
    let after: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains(refusal))
        .filter(|l| l.contains("pair 1: "))
        .collect();
    for line in &after {
        for verb in [
            "created", "copied", "linked", "removed", "updated", "touched",
        ] {
            assert!(
                !line.contains(&format!("pair 1: {verb}")),
                "acted after the replica vanished: {line}\n{log}"
            );
        }
    }
    assert!(
        log.contains("[ERROR] pair 1: error replica folder"),
        "{log}"
    );
}

#[test]
fn an_unmounted_share_is_refused_and_its_mountpoint_left_alone() {
    let Some(mut share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    build_tree(&env);
    let mnt = share.mnt.clone();
    let refusal = "is now on another file system";
    let log = run_until_refused(&env, &mnt, refusal, || {
        share.unmount();
        // Something of the local disk's own in the bare mountpoint, which
        // a pass would otherwise delete.
        fs::write(mnt.join("local.txt"), "local").unwrap();
    });
    assert_only_refused(&log, refusal);
    assert!(log.contains("fuse.sshfs"), "{log}");
    let left: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["local.txt"],
        "the pass wrote into the bare mountpoint"
    );
}

#[test]
fn a_replica_folder_on_an_unmounted_share_is_not_recreated() {
    let Some(mut share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    build_tree(&env);
    let mnt = share.mnt.clone();
    let refusal = "was there at an earlier pass and is now missing";
    let log = run_until_refused(&env, &mnt.join("backup"), refusal, || share.unmount());
    assert_only_refused(&log, refusal);
    assert_eq!(
        fs::read_dir(&mnt).unwrap().count(),
        0,
        "the pass wrote into the bare mountpoint"
    );
}

#[test]
fn an_unmounted_local_replica_is_refused_and_a_remounted_one_synced() {
    let env = TestEnv::new();
    let mnt = env.mkdir("mnt");
    let Some(mut tmpfs) = or_skip("a tmpfs mount", Tmpfs::mount(&mnt)) else {
        return;
    };
    build_tree(&env);
    let first_dev = fs::metadata(&mnt).unwrap().dev();
    let session = daemon(&env, &mnt, "0.2");
    wait_log(&env.log(), "pass finished", 1);
    tmpfs.unmount();
    let refusal = "is now on another file system";
    wait_log(&env.log(), refusal, 2);
    assert_eq!(
        fs::read_dir(&mnt).unwrap().count(),
        0,
        "the pass wrote into the bare mountpoint"
    );
    assert_only_refused(&env.log_text(), refusal);
    // The same file system mounted again (as an automounter does) is the
    // replica again, and synced, though on a new device number: another
    // tmpfs now holds the one it had.
    let _blocker = Tmpfs::mount(&env.mkdir("blocker")).expect("mount a second tmpfs");
    tmpfs.remount();
    // Other tests mount and unmount tmpfs at the same time, so the number
    // may come back after all; only a new one is worth a line.
    if fs::metadata(&mnt).unwrap().dev() != first_dev {
        wait_log(&env.log(), "was mounted again; syncing on", 1);
    }
    wait_for(
        PATIENCE,
        || fs::read_dir(&mnt).unwrap().count() > 0 && mnt.join("top.txt").exists(),
        || format!("the remounted replica was not synced:\n{}", env.log_text()),
    );
    wait_log(&env.log(), "pass finished", 2);
    stop(session);
    assert_mirror(&env.src(), &mnt);
}
