//! Two-way pairs (`--two-way`): edits on either side reach the other, an
//! edit made on both sides keeps both versions, a deletion loses to an
//! edit, and no side is wiped because the other looks empty.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;
use crate::support::{Share, or_skip};

/// One `--once --two-way` pass of src and dst, which must succeed; the
/// log lines it added.
fn pass(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let before = actions(&env.log_text(), 1).len();
    let mut args = vec!["--two-way"];
    args.extend_from_slice(extra);
    env.once_ok(&args);
    actions(&env.log_text(), 1).split_off(before)
}

/// Both sides hold the same names, types, bytes, link targets and file
/// modes (folder mtimes differ: each side's change its own).
#[track_caller]
fn assert_same_sides(env: &TestEnv) {
    assert_same_trees(&env.src(), &env.dst(), false);
}

/// [`assert_same_sides`] for any two folders; `whole_seconds` when one of
/// them is on a file system that keeps no more of an mtime.
#[track_caller]
fn assert_same_trees(a: &Path, b: &Path, whole_seconds: bool) {
    let strip = |root: &Path| {
        snapshot(root)
            .into_iter()
            .map(|(path, node)| (path, format!("{node:?}")))
            .filter(|(p, _)| !p.is_empty())
            .collect::<Vec<_>>()
    };
    let (sa, sb) = (strip(a), strip(b));
    let names = |s: &[(Vec<u8>, String)]| s.iter().map(|(p, _)| show(p)).collect::<Vec<_>>();
    assert_eq!(names(&sa), names(&sb), "the sides hold different names");
    for (path, _) in &sa {
        let (pa, pb) = (a.join(show(path)), b.join(show(path)));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", show(path));
        if ma.is_file() {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "{}",
                show(path)
            );
            assert_eq!(
                ma.permissions().mode(),
                mb.permissions().mode(),
                "{}",
                show(path)
            );
            let secs = |p: &Path| {
                let t = mtime_of(p).duration_since(std::time::UNIX_EPOCH).unwrap();
                if whole_seconds {
                    t.as_secs() as u128 * 1_000_000_000
                } else {
                    t.as_nanos()
                }
            };
            assert_eq!(secs(&pa), secs(&pb), "{}", show(path));
        } else if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
        }
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read: {e}"))
}

/// The conflict copies beside `name` in `dir`.
pub(crate) fn conflict_copies(dir: &Path, stem: &str) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{stem}.conflict-")))
        .collect();
    found.sort();
    found
}

#[test]
fn a_first_sync_joins_both_sides_and_only_records_identical_files() {
    let env = TestEnv::new();
    env.write("src/only-a.txt", "a");
    env.write("src/same/both.txt", "same bytes");
    env.write("dst/only-b/deep.txt", "b");
    env.write("dst/same/both.txt", "same bytes");
    env.symlink("dst/link", "only-a.txt");
    let lines = pass(&env, &[]);
    assert_same_sides(&env);
    assert!(
        lines.contains(&"copied only-a.txt to the replica (1 bytes)".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"copied only-b/deep.txt to the source (1 bytes)".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"linked link in the source -> only-a.txt".to_string()),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("both.txt") && !l.ends_with("(mtime)")),
        "identical files are only recorded (and take the older mtime): {lines:#?}"
    );
    // Nothing left to do.
    let again = pass(&env, &[]);
    assert!(
        again
            .iter()
            .all(|l| !l.starts_with("copied") && !l.starts_with("removed")),
        "{again:#?}"
    );
}

#[test]
fn edits_deletions_modes_and_links_go_either_way() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a1");
    env.write("src/b.txt", "b1");
    env.write("src/dir/c.txt", "c1");
    env.write("src/gone.txt", "g");
    env.symlink("src/l", "a.txt");
    pass(&env, &[]);
    env.write("dst/a.txt", "a2 from the replica");
    env.write("src/dir/c.txt", "c2");
    fs::remove_file(env.path("dst/gone.txt")).unwrap();
    chmod(&env.path("dst/b.txt"), 0o600);
    fs::remove_file(env.path("src/l")).unwrap();
    env.symlink("src/l", "b.txt");
    let lines = pass(&env, &[]);
    assert_same_sides(&env);
    assert_eq!(read(env.path("src/a.txt")), "a2 from the replica");
    assert_eq!(read(env.path("dst/dir/c.txt")), "c2");
    assert!(!env.path("src/gone.txt").exists());
    assert_eq!(
        fs::metadata(env.path("src/b.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_link(env.path("dst/l")).unwrap(),
        Path::new("b.txt")
    );
    assert!(
        lines.contains(&"removed gone.txt from the source".to_string()),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("conflict:")), "{lines:#?}");
}

#[test]
fn an_edit_on_both_sides_keeps_both_versions_and_the_newer_keeps_the_name() {
    let env = TestEnv::new();
    env.write("src/notes.txt", "original");
    pass(&env, &[]);
    env.write("src/notes.txt", "laptop edit");
    set_mtime(&env.path("src/notes.txt"), "2020-01-01 10:00:00");
    env.write("dst/notes.txt", "nas edit, newer");
    let out = env.once_ok(&["--two-way"]);
    assert_eq!(out.status.code(), Some(0), "nothing was lost: exit 0");
    assert_same_sides(&env);
    assert_eq!(read(env.path("src/notes.txt")), "nas edit, newer");
    let copies = conflict_copies(&env.src(), "notes");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0].ends_with(".txt"),
        "the extension stays last: {copies:?}"
    );
    assert_eq!(read(env.src().join(&copies[0])), "laptop edit");
    let log = env.log_text();
    assert!(
        log.contains("[WARN ] pair 1: conflict: notes.txt was changed on both sides; the replica's version (newer) keeps the name"),
        "{log}"
    );
    // Settled: the next pass has nothing to do.
    let again = pass(&env, &[]);
    assert!(
        !again
            .iter()
            .any(|l| l.contains("conflict:") || l.starts_with("copied")),
        "{again:#?}"
    );
}

#[test]
fn a_folder_deleted_on_one_side_keeps_what_the_other_side_changed_inside_it() {
    let env = TestEnv::new();
    env.write("src/project/edited.txt", "v1");
    env.write("src/project/untouched.txt", "u");
    env.write("src/project/sub/old.txt", "o");
    // Else the replica would be empty, which looks like a lost disk.
    env.write("src/other.txt", "stays");
    pass(&env, &[]);
    fs::remove_dir_all(env.path("dst/project")).unwrap();
    env.write(
        "src/project/edited.txt",
        "v2, edited while the replica deleted the folder",
    );
    env.write("src/project/sub/new.txt", "new");
    pass(&env, &[]);
    assert_same_sides(&env);
    assert_eq!(
        read(env.path("dst/project/edited.txt")),
        "v2, edited while the replica deleted the folder"
    );
    assert_eq!(read(env.path("dst/project/sub/new.txt")), "new");
    assert!(
        !env.path("src/project/untouched.txt").exists(),
        "unchanged: the deletion wins"
    );
    assert!(!env.path("src/project/sub/old.txt").exists());
}

#[test]
fn a_side_that_looks_unmounted_is_refused_and_nothing_is_deleted() {
    let env = TestEnv::new();
    env.write("src/keep.txt", "precious");
    env.write("src/sub/more.txt", "more");
    pass(&env, &[]);
    // The replica's disk is gone: its mount point is an empty folder.
    fs::remove_dir_all(env.dst()).unwrap();
    fs::create_dir(env.dst()).unwrap();
    let before = snapshot(&env.src());
    let out = env.once(&["--two-way"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(snapshot(&env.src()), before, "the source must be untouched");
    let log = env.log_text();
    assert!(
        log.contains("replica folder")
            && log.contains("is empty, while the last sync left 3 entries in it"),
        "{log}"
    );
    // Told so, the emptiness goes across.
    pass(&env, &["--allow-empty-source"]);
    assert!(!env.path("src/keep.txt").exists());
    // A missing replica folder is refused too, not recreated and refilled.
    env.write("src/again.txt", "x");
    pass(&env, &[]);
    fs::remove_dir_all(env.dst()).unwrap();
    let out = env.once(&["--two-way"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!env.dst().exists());
    assert!(env.path("src/again.txt").exists());
}

#[test]
fn a_dry_run_writes_nothing_on_either_side_and_no_state() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("dst/b.txt", "b");
    let before = snapshot(env.root());
    let lines = pass(&env, &["--dry-run"]);
    let after = snapshot(env.root());
    let changed: Vec<_> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k) && !show(k).starts_with("log.txt"))
        .map(|k| show(k))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    assert!(
        lines.contains(&"[dry run] copied a.txt to the replica (1 bytes)".to_string()),
        "{lines:#?}"
    );
    let states: Vec<_> = fs::read_dir(env.state_home().join("foldersync"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(states.is_empty(), "a dry run writes no state: {states:?}");
}

#[test]
fn max_delete_holds_the_deletions_of_a_two_way_pass() {
    let env = TestEnv::new();
    for i in 0..5 {
        env.write(format!("src/f{i}"), "x");
    }
    pass(&env, &[]);
    for i in 0..5 {
        fs::remove_file(env.path(format!("dst/f{i}"))).unwrap();
    }
    env.write("dst/new.txt", "still copied");
    let out = env.once(&["--two-way", "--max-delete", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        fs::read_dir(env.src()).unwrap().count(),
        6,
        "nothing removed, the new file copied"
    );
    assert!(
        env.log_text().contains("more than --max-delete 2"),
        "{}",
        env.log_text()
    );
    pass(&env, &["--max-delete", "5"]);
    assert_same_sides(&env);
    assert_eq!(fs::read_dir(env.src()).unwrap().count(), 1);
}

#[test]
fn a_deleted_state_starts_over_and_loses_nothing() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    pass(&env, &[]);
    fs::remove_dir_all(env.state_home()).unwrap();
    env.write("dst/a.txt", "edited without an archive");
    env.write("src/b.txt", "b");
    pass(&env, &[]);
    assert_same_sides(&env);
    // Without the archive the two versions of a.txt cannot be told apart:
    // both are kept.
    assert_eq!(conflict_copies(&env.src(), "a").len(), 1);
    assert_eq!(read(env.path("dst/b.txt")), "b");
}

#[test]
fn a_two_way_folder_may_not_be_another_pairs_replica() {
    let env = TestEnv::new();
    env.mkdir("other");
    let pairs = env.write(
        "pairs.txt",
        "src dst 10 log.txt two-way\nother src/inner 10 log2.txt\n",
    );
    assert_refused(
        &env,
        &["--once", "--pairs", pairs.to_str().unwrap()],
        "is inside two-way source",
    );
}

#[test]
fn the_menu_asks_the_direction_and_the_list_shows_it() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("dst/b.txt", "b");
    let mut session = MenuSession::start(env.root(), Vec::<&str>::new());
    session.send("2");
    for answer in ["src", "dst", "1h", "log.txt", "2", ""] {
        session.send(answer);
    }
    session.wait_stdout("Started pair 1: ", 1, PATIENCE);
    wait_log(&env.log(), "pass finished", 1);
    assert_same_sides(&env);
    session.send("1");
    session.wait_stdout("(two-way)", 1, PATIENCE);
    let out = session.stdout();
    assert!(
        out.contains(" <-> ") && out.contains("0 conflicts (both versions kept)"),
        "{out}"
    );
    quit(session);
}

#[test]
fn a_replica_on_an_sshfs_share_syncs_both_ways_and_then_stays_still() {
    let Some(mut share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    let nas = share.mnt.join("projects");
    fs::create_dir(&nas).unwrap();
    env.write("src/laptop.txt", "from the laptop");
    env.write("src/both.txt", "original");
    env.write("src/dir/deep.txt", "deep");
    env.symlink("src/link", "laptop.txt");
    fs::write(nas.join("nas.txt"), "from the nas").unwrap();
    let run = |env: &TestEnv| {
        let before = actions(&env.log_text(), 1).len();
        let out = env.run([
            std::ffi::OsStr::new("--once"),
            std::ffi::OsStr::new("--two-way"),
            env.src().as_os_str(),
            nas.as_os_str(),
            std::ffi::OsStr::new("1"),
            env.log().as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "{}\n{}",
            stderr_of(&out),
            env.log_text()
        );
        actions(&env.log_text(), 1).split_off(before)
    };
    run(&env);
    assert_same_trees(&env.src(), &nas, true);
    // Edits on both sides, one of them a conflict.
    env.write("src/laptop.txt", "laptop, edited");
    fs::write(nas.join("nas.txt"), "nas, edited on the share").unwrap();
    env.write("src/both.txt", "laptop's version");
    set_mtime(&env.path("src/both.txt"), "2020-01-01 10:00:00");
    fs::write(nas.join("both.txt"), "nas's version, newer").unwrap();
    let lines = run(&env);
    assert_same_trees(&env.src(), &nas, true);
    assert_eq!(read(nas.join("laptop.txt")), "laptop, edited");
    assert_eq!(read(env.path("src/nas.txt")), "nas, edited on the share");
    assert_eq!(read(env.path("src/both.txt")), "nas's version, newer");
    assert_eq!(conflict_copies(&nas, "both").len(), 1, "{lines:#?}");
    // Whole-second times and made-up inode numbers are no edits: sshfs
    // numbers files in the order it meets them, so after a remount, met in
    // reverse order, they have new numbers.
    for round in 0..2 {
        if round == 1 {
            share.remount().expect("mount the share again");
            let mut paths = snapshot(&nas).into_keys().collect::<Vec<_>>();
            paths.reverse();
            for p in paths {
                let _ = fs::symlink_metadata(nas.join(show(&p)));
            }
        }
        let lines = run(&env);
        let busy: Vec<_> = lines
            .iter()
            .filter(|l| {
                !l.starts_with("started")
                    && !l.starts_with("stopped")
                    && !l.starts_with("pass finished")
                    && !l.contains("is on a file system (fuse.sshfs)")
            })
            .collect();
        assert!(busy.is_empty(), "a pass with nothing to do did: {busy:#?}");
    }
}

#[test]
fn a_panicking_two_way_pass_fails_with_an_error_and_the_program_goes_on() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.mkdir("src/boom");
    let mut session = MenuSession::start_with_env(
        env.root(),
        ["--two-way", "src", "dst", "1h", "log.txt"],
        &[("FOLDERSYNC_TEST_PANIC", "boom")],
    );
    wait_log(&env.log(), "pass failed in", 1);
    let log = env.log_text();
    assert!(
        log.contains("error internal: the two-way pass panicked (test panic in folder boom)"),
        "{log}"
    );
    session.send("1");
    session.wait_stdout("last pass: failed", 1, PATIENCE);
    quit(session);
}

#[test]
fn a_watched_two_way_pair_syncs_an_edit_on_either_side_at_once() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let session = MenuSession::start(
        env.root(),
        [
            "--no-menu",
            "--two-way",
            "--watch",
            "src",
            "dst",
            "1h",
            "log.txt",
        ],
    );
    // Watched from when the first pass has made the replica.
    wait_log(
        &env.log(),
        "watching the source and the replica for changes",
        1,
    );
    // The interval is an hour: only the watch can bring these across.
    env.write("dst/from-replica.txt", "written in the replica");
    wait_for(
        PATIENCE,
        || env.path("src/from-replica.txt").exists(),
        || {
            format!(
                "the replica's new file never reached the source:\n{}",
                env.log_text()
            )
        },
    );
    env.write("src/sub/from-source.txt", "written in the source");
    wait_for(
        PATIENCE,
        || {
            fs::read_to_string(env.path("dst/sub/from-source.txt"))
                .is_ok_and(|t| t == "written in the source")
        },
        || {
            format!(
                "the source's new file never reached the replica:\n{}",
                env.log_text()
            )
        },
    );
    signal(session.child.id(), "TERM");
    let mut session = session;
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    assert_same_sides(&env);
}
