//! What one pass does to the replica, and what it writes to the log.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

#[test]
fn once_mirrors_folders_files_symlinks_modes_and_mtimes_exactly() {
    let env = TestEnv::new();
    env.write("src/a.txt", "alpha");
    env.write("src/empty.txt", "");
    env.write(
        "src/sub/deep/er/b.bin",
        (0..=255u8).cycle().take(700_000).collect::<Vec<_>>(),
    );
    env.mkdir("src/empty folder");
    env.mkdir("src/sub/empty");
    env.write("outside/file.txt", "outside the source");
    env.symlink("src/rel", "a.txt");
    env.symlink("src/sub/up", "../a.txt");
    env.symlink("src/abs", env.path("outside/file.txt"));
    env.symlink("src/dangling", "no/such/target");
    env.symlink("src/dirlink", "../outside");
    chmod(&env.path("src/a.txt"), 0o600);
    chmod(&env.path("src/sub/deep/er/b.bin"), 0o755);
    chmod(&env.path("src/empty.txt"), 0o4750);
    chmod(&env.path("src/sub/deep"), 0o750);
    chmod(&env.path("src/empty folder"), 0o700);
    for (p, t) in [
        ("src/a.txt", "2019-05-06 07:08:09.5"),
        ("src/sub/deep/er/b.bin", past()),
        ("src/sub/deep", "2018-01-01 00:00:00.25"),
        ("src/empty folder", "2017-01-01 12:00:00"),
        ("src", "2016-01-01 00:00:01"),
    ] {
        set_mtime(&env.path(p), t);
    }
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    // The links were copied as links, never followed.
    assert!(
        fs::symlink_metadata(env.path("dst/dirlink"))
            .unwrap()
            .is_symlink()
    );
    assert!(!env.path("dst/outside").exists());
    let log = env.log_text();
    for line in [
        "created folder .",
        "created folder empty folder",
        "created folder sub/deep/er",
        "copied a.txt (5 bytes)",
        "copied empty.txt (0 bytes)",
        "copied sub/deep/er/b.bin (700000 bytes)",
        "linked rel -> a.txt",
        "linked sub/up -> ../a.txt",
        "linked dangling -> no/such/target",
        "linked dirlink -> ../outside",
    ] {
        assert_action(&log, 1, line);
    }
}

#[test]
fn extras_at_every_depth_are_removed() {
    let env = TestEnv::new();
    env.write("src/keep.txt", "keep");
    env.write("src/a/b/c/keep.txt", "deep keep");
    env.once_ok(&[]);
    env.write("dst/extra.txt", "x");
    env.write("dst/a/b/c/extra.txt", "x");
    env.write("dst/a/b/junk/x/y/z.txt", "x");
    env.mkdir("dst/a/empty extra");
    env.symlink("dst/a/b/extra link", "keep.txt");
    env.symlink("dst/dangling extra", "nowhere");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    for line in [
        "removed file extra.txt",
        "removed file a/b/c/extra.txt",
        "removed file a/b/junk/x/y/z.txt",
        "removed folder a/b/junk/x/y",
        "removed folder a/b/junk/x",
        "removed folder a/b/junk",
        "removed folder a/empty extra",
        "removed link a/b/extra link",
        "removed link dangling extra",
    ] {
        assert_action(&log, 1, line);
    }
}

#[test]
fn a_source_file_that_became_a_fifo_is_not_kept_in_the_replica() {
    let env = TestEnv::new();
    env.write("src/was_file", "a file once");
    env.write("src/was_dir/inner.txt", "a folder once");
    env.once_ok(&[]);
    for name in ["was_file", "was_dir"] {
        let path = env.path(format!("src/{name}"));
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
    }
    env.once_ok(&[]);
    let log = env.log_text();
    assert!(!env.path("dst/was_file").exists(), "{log}");
    assert!(!env.path("dst/was_dir").exists(), "{log}");
    assert_action(&log, 1, "removed file was_file");
    assert_action(&log, 1, "skipped was_file (fifo)");
    assert_action(&log, 1, "removed folder was_dir");
}

#[test]
fn fifo_in_the_source_is_skipped_with_a_warning_and_never_opened() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let status = Command::new("mkfifo")
        .arg(env.path("src/pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    // Opening the FIFO would block: the watchdog would kill the run.
    let out = run_with_timeout(
        Command::new(bin())
            .args(["--once", "src", "dst", "1", "log.txt"])
            .current_dir(env.root())
            .env("XDG_STATE_HOME", env.state_home()),
        Duration::from_secs(15),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!env.path("dst/pipe").exists());
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains("[WARN ] pair 1: skipped pipe (fifo)"), "{log}");
    assert!(
        summaries(&log, 1)[0].contains(" 1 skipped, 0 errors"),
        "{log}"
    );
}

#[test]
fn non_utf8_file_names_are_synced_and_escaped_in_the_log() {
    let env = TestEnv::new();
    let dir = env.path("src").join(OsStr::from_bytes(b"dir\xff"));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin-1").unwrap();
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(
        fs::read(env.dst().join(OsStr::from_bytes(b"dir\xff/caf\xe9.txt"))).unwrap(),
        b"latin-1"
    );
    assert_action(&env.log_text(), 1, "copied dir\\xff/caf\\xe9.txt (7 bytes)");
}

#[test]
fn newline_in_a_file_name_is_escaped_and_forges_no_log_line() {
    let env = TestEnv::new();
    let forged = "2020-01-01 00:00:00.000 [ERROR] pair 1: forged";
    env.write(format!("src/evil\n{forged}"), "boo");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(
        log.lines().all(|l| !l.starts_with(forged)),
        "a file name started a log line:\n{log}"
    );
    assert_action(&log, 1, &format!("copied evil\\n{forged} (3 bytes)"));
    // Every line is a record of its own: timestamp, level, pair.
    for line in log.lines() {
        assert!(
            line.len() > 24 && line.as_bytes()[4] == b'-' && line.contains("] pair 1: "),
            "not a log record: {line:?}"
        );
    }
}

#[test]
fn replica_file_changed_behind_our_back_is_restored_on_the_next_pass() {
    let env = TestEnv::new();
    let src = env.write("src/f.txt", "original content");
    set_mtime(&src, past());
    let mut session = start_hourly(&env);
    wait_log(&env.log(), "pass finished", 1);
    assert_mirror(&env.src(), &env.dst());

    let replica = env.path("dst/f.txt");
    fs::write(&replica, "tampered content").unwrap();
    set_mtime(&replica, past());
    // Same size and mtime: only the content differs.
    let (s, d) = (fs::metadata(&src).unwrap(), fs::metadata(&replica).unwrap());
    assert_eq!(
        (s.len(), s.mtime(), s.mtime_nsec()),
        (d.len(), d.mtime(), d.mtime_nsec())
    );

    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 2);
    assert_eq!(fs::read(&replica).unwrap(), b"original content");
    assert_mirror(&env.src(), &env.dst());
    assert_action(&env.log_text(), 1, "updated f.txt (16 bytes)");
    quit(session);
}

#[test]
fn source_touched_without_a_content_change_is_touched_not_rewritten() {
    let env = TestEnv::new();
    let src = env.write("src/f.txt", "same bytes");
    set_mtime(&src, past());
    env.once_ok(&[]);
    let ino = inode(&env.path("dst/f.txt"));

    set_mtime(&src, "2021-06-07 08:09:10.111");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(
        inode(&env.path("dst/f.txt")),
        ino,
        "the replica was rewritten"
    );
    let log = env.log_text();
    assert_action(&log, 1, "touched f.txt (mtime)");
    assert!(
        summaries(&log, 1)[1].contains("0 copied, 0 updated, 1 touched"),
        "{log}"
    );
    assert!(summaries(&log, 1)[1].ends_with(" 0 bytes written"), "{log}");

    chmod(&src, 0o640);
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(
        inode(&env.path("dst/f.txt")),
        ino,
        "the replica was rewritten"
    );
    assert_action(&env.log_text(), 1, "touched f.txt (mode 640)");
}

#[test]
fn checksum_catches_a_same_size_same_mtime_change_the_quick_check_misses() {
    let env = TestEnv::new();
    let src = env.write("src/f.txt", "version one");
    set_mtime(&src, past());
    env.once_ok(&[]);

    fs::write(&src, "version two").unwrap();
    set_mtime(&src, past());
    // Default, without a stored cache entry (which would see the ctime
    // move): equal size and mtime count as equal bytes.
    fs::remove_dir_all(env.state_home()).unwrap();
    env.once_ok(&[]);
    assert_eq!(fs::read(env.path("dst/f.txt")).unwrap(), b"version one");
    assert!(summaries(&env.log_text(), 1)[1].contains(" 0 updated,"));

    env.once_ok(&["--checksum"]);
    assert_eq!(fs::read(env.path("dst/f.txt")).unwrap(), b"version two");
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_action(&log, 1, "updated f.txt (11 bytes)");
    assert!(
        log.contains(", checksum"),
        "the started line should say checksum"
    );
}

#[test]
fn file_replaced_by_a_folder_and_back_is_mirrored() {
    let env = TestEnv::new();
    env.write("src/x", "a file first");
    env.symlink("src/y", "x");
    env.once_ok(&[]);

    fs::remove_file(env.path("src/x")).unwrap();
    env.write("src/x/inner/f.txt", "now a folder");
    fs::remove_file(env.path("src/y")).unwrap();
    env.write("src/y/g.txt", "link became a folder");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_action(&log, 1, "removed file x");
    assert_action(&log, 1, "created folder x");
    assert_action(&log, 1, "copied x/inner/f.txt (12 bytes)");
    assert_action(&log, 1, "removed link y");

    fs::remove_dir_all(env.path("src/x")).unwrap();
    env.write("src/x", "a file again");
    fs::remove_dir_all(env.path("src/y")).unwrap();
    env.symlink("src/y", "x");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_action(&log, 1, "removed file x/inner/f.txt");
    assert_action(&log, 1, "removed folder x/inner");
    assert_action(&log, 1, "removed folder x");
    assert_action(&log, 1, "removed folder y");
    assert_eq!(count(&log, "] pair 1: copied x (12 bytes)"), 2, "{log}");
}

#[test]
fn unreadable_source_file_is_logged_its_replica_copy_kept_and_once_exits_1() {
    let prefix = match permission_prefix() {
        Ok(p) => p,
        Err(why) => {
            missing_prerequisite(&format!(
                "cannot make a file unreadable to foldersync: {why}"
            ));
            return;
        }
    };
    let env = TestEnv::new();
    let secret = env.write("src/secret.txt", "old");
    env.write("src/other.txt", "other");
    env.once_ok(&[]);

    fs::write(&secret, "new and longer").unwrap();
    chmod(&secret, 0o000);
    env.write("src/fresh.txt", "fresh");
    let args = ["--once", "src", "dst", "1", "log.txt"];
    let out = run_prefixed(&env, &prefix, &os(&args));
    chmod(&secret, 0o644);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(fs::read(env.path("dst/secret.txt")).unwrap(), b"old");
    assert_eq!(fs::read(env.path("dst/fresh.txt")).unwrap(), b"fresh");
    let log = env.log_text();
    assert!(
        actions(&log, 1)
            .iter()
            .any(|l| l.starts_with("error secret.txt: open: ") && l.contains("denied")),
        "{log}"
    );
    assert!(summaries(&log, 1)[1].contains(" 1 errors"), "{log}");

    // Readable again: the next pass is clean and exits 0.
    let out = run_prefixed(&env, &prefix, &os(&args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn missing_source_root_at_pass_time_logs_an_error_and_deletes_nothing() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("src/sub/b.txt", "b");
    let mut session = start_hourly(&env);
    wait_log(&env.log(), "pass finished", 1);
    let before = snapshot(&env.dst());
    let times = dir_mtimes(&env.dst());

    fs::rename(env.src(), env.path("src.gone")).unwrap();
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass failed", 1);
    assert_eq!(snapshot(&env.dst()), before);
    assert_eq!(dir_mtimes(&env.dst()), times);
    let log = env.log_text();
    assert!(
        actions(&log, 1)
            .iter()
            .any(|l| l.starts_with("error source folder ")
                && l.contains("unavailable")
                && l.contains("nothing changed in the replica")),
        "{log}"
    );
    assert_no_action(&log, 1, "removed");
    quit(session);
}

#[test]
fn stray_temporary_files_are_removed_but_a_source_file_named_like_one_is_synced() {
    let env = TestEnv::new();
    env.write("src/sub/a.txt", "a");
    env.write("src/.foldersync-123-4.tmp", "the user's own file");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());

    // Left by an interrupted copy.
    env.write("dst/.foldersync-4242-7.tmp", "half a cop");
    env.write("dst/sub/.foldersync-1-0.tmp", "half");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_action(
        &log,
        1,
        "removed stale temporary file .foldersync-4242-7.tmp",
    );
    assert_action(
        &log,
        1,
        "removed stale temporary file sub/.foldersync-1-0.tmp",
    );
    assert_no_action(
        &log,
        1,
        "removed stale temporary file .foldersync-123-4.tmp",
    );

    // The user's file changes like any other file.
    env.write("src/.foldersync-123-4.tmp", "changed by the user");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_action(
        &env.log_text(),
        1,
        "updated .foldersync-123-4.tmp (19 bytes)",
    );
    assert_eq!(
        temp_files(&env.dst()),
        [env.path("dst/.foldersync-123-4.tmp")],
        "only the user's file is left"
    );
}

#[test]
fn dry_run_logs_every_action_and_changes_nothing() {
    let env = TestEnv::new();
    env.write("src/same.txt", "same");
    env.write("src/stale.txt", "old");
    env.write("src/mode.txt", "mode");
    env.write("src/gone.txt", "gone");
    env.mkdir("src/olddir");
    env.write("src/was_dir/inner.txt", "a folder now replaced by a file");
    env.mkdir("src/folder_mode");
    env.once_ok(&[]);

    env.write("src/stale.txt", "new bytes");
    fs::remove_dir_all(env.path("src/was_dir")).unwrap();
    env.write("src/was_dir", "a file");
    chmod(&env.path("src/folder_mode"), 0o750);
    env.write("src/new.txt", "new");
    env.write("src/newdir/inner.txt", "inner");
    env.symlink("src/link", "same.txt");
    chmod(&env.path("src/mode.txt"), 0o600);
    fs::remove_file(env.path("src/gone.txt")).unwrap();
    fs::remove_dir(env.path("src/olddir")).unwrap();
    let before = snapshot(&env.dst());
    let times = dir_mtimes(&env.dst());
    let out = env.once(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        snapshot(&env.dst()),
        before,
        "a dry run changed the replica"
    );
    assert_eq!(
        dir_mtimes(&env.dst()),
        times,
        "a dry run changed folder mtimes"
    );
    let log = env.log_text();
    for line in [
        "[dry run] updated stale.txt (9 bytes)",
        "[dry run] copied new.txt (3 bytes)",
        "[dry run] created folder newdir",
        "[dry run] copied newdir/inner.txt (5 bytes)",
        "[dry run] linked link -> same.txt",
        "[dry run] touched mode.txt (mode 600)",
        "[dry run] removed file gone.txt",
        "[dry run] removed folder olddir (and everything in it)",
        // What the real pass would also say: the folder in a file's way,
        // and a folder's new mode.
        "[dry run] removed folder was_dir (and everything in it)",
        "[dry run] copied was_dir (6 bytes)",
        "[dry run] touched folder_mode (mode 750)",
    ] {
        assert_action(&log, 1, line);
    }
    assert!(
        summaries(&log, 1)[1].starts_with("[dry run] pass finished in "),
        "{log}"
    );

    // No replica at all: a dry run does not even create the folder.
    let empty = TestEnv::new();
    empty.write("src/a.txt", "a");
    empty.once_ok(&["-n"]);
    assert!(!empty.dst().exists(), "a dry run created the replica");
    assert_action(&empty.log_text(), 1, "[dry run] created folder .");
    assert_action(&empty.log_text(), 1, "[dry run] copied a.txt (1 bytes)");
}

#[test]
fn every_action_is_one_log_line_with_a_relative_path_and_each_pass_a_summary() {
    let env = TestEnv::new();
    env.write("src/a.txt", "alpha");
    env.write("src/d/b.txt", "beta");
    env.symlink("src/l", "a.txt");
    env.once_ok(&[]);
    env.write("src/a.txt", "ALPHA!");
    set_mtime(&env.path("src/d/b.txt"), past());
    fs::remove_file(env.path("src/l")).unwrap();
    env.write("dst/d/extra/x.txt", "x");
    env.once_ok(&[]);
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());

    let log = env.log_text();
    let root = env.root().to_str().unwrap();
    let lines = actions(&log, 1);
    let want = [
        // first pass
        "created folder .",
        "copied a.txt (5 bytes)",
        "created folder d",
        "linked l -> a.txt",
        "copied d/b.txt (4 bytes)",
        // second pass
        "removed link l",
        "updated a.txt (6 bytes)",
        "removed file d/extra/x.txt",
        "removed folder d/extra",
        "touched d/b.txt (mtime)",
    ];
    let got: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            let skipped = ["started", "pass ", "stopped", "cache holds", "digest cache"];
            !skipped.iter().any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(got, want, "log:\n{log}");
    for l in &lines {
        assert!(
            l.starts_with("started") || !l.contains(root),
            "absolute path: {l}"
        );
    }
    let sums = summaries(&log, 1);
    assert_eq!(sums.len(), 3, "{log}");
    assert!(
        sums[0].contains(": 4 checked, 2 copied, 0 updated,"),
        "{}",
        sums[0]
    );
    assert!(
        sums[0].ends_with(
            " 1 linked, 2 folders created, 0 files and 0 folders removed, 0 skipped, 0 errors, 9 bytes written"
        ),
        "{}",
        sums[0]
    );
    assert!(sums[1].contains(" 1 updated, 1 touched,"), "{}", sums[1]);
    assert!(
        sums[1].contains(" 2 files and 1 folders removed,"),
        "{}",
        sums[1]
    );
    assert!(
        sums[2].contains(" 0 copied, 0 updated, 0 touched, 0 linked"),
        "{}",
        sums[2]
    );
}

#[test]
fn log_file_is_appended_to_and_never_truncated() {
    let env = TestEnv::new();
    fs::write(env.log(), "notes written before\n").unwrap();
    env.write("src/a.txt", "a");
    env.once_ok(&[]);
    let first = env.log_text();
    assert!(first.starts_with("notes written before\n"), "{first}");
    env.write("src/b.txt", "b");
    env.once_ok(&[]);
    let second = env.log_text();
    assert!(
        second.starts_with(&first),
        "the first run's lines are gone:\n{second}"
    );
    assert_eq!(summaries(&second, 1).len(), 2);
    assert_action(&second, 1, "copied b.txt (1 bytes)");
}

#[test]
fn control_characters_in_names_are_escaped_in_the_log() {
    // Control characters of every kind in names: all synced, all escaped.
    let env = TestEnv::new();
    let names: Vec<OsString> = [
        &b"tab\there"[..],
        b"cr\rhere",
        b"esc\x1b[31m",
        b"back\\slash",
    ]
    .iter()
    .map(|b| OsString::from_vec(b.to_vec()))
    .collect();
    for n in &names {
        fs::write(env.src().join(n), "x").unwrap();
    }
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    for want in [
        "copied tab\\there (1 bytes)",
        "copied cr\\rhere (1 bytes)",
        "copied esc\\u{1b}[31m (1 bytes)",
        "copied back\\\\slash (1 bytes)",
    ] {
        assert_action(&log, 1, want);
    }
    assert!(!log.contains('\r') && !log.contains('\x1b'), "{log:?}");
}

#[test]
fn creating_a_folder_logs_no_touched_line() {
    let env = TestEnv::new();
    env.write("src/d/e/f.txt", "f");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_no_action(&log, 1, "touched");
    assert!(summaries(&log, 1)[0].contains(" 0 touched,"), "{log}");
}
