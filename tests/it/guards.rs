//! The guards that keep a pass from destroying data by accident: the
//! missing-mount guard, `--max-delete`, and pairs that would write into
//! each other's trees. (Read-only entries: tests/faults.rs.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::*;
use crate::support::{PATIENCE, wait_log};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_empty_source_does_not_wipe_a_full_replica() {
    let env = TestEnv::new();
    env.write("src/keep.txt", "precious");
    env.write("src/sub/more.txt", "more");
    env.once_ok(&[]);
    let before = snapshot(&env.dst());

    // The disk holding the source is unmounted: its mount point is empty.
    fs::remove_dir_all(env.src()).unwrap();
    fs::create_dir(env.src()).unwrap();
    let out = env.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        snapshot(&env.dst()),
        before,
        "the replica must be untouched"
    );
    let log = env.log_text();
    assert!(
        log.contains("is empty but its replica holds 2 entries"),
        "{log}"
    );
    assert!(log.contains("--allow-empty-source"), "{log}");
    assert!(!log.contains("pair 1: removed"), "{log}");

    // Said on purpose: the replica follows.
    env.once_ok(&["--allow-empty-source"]);
    assert!(snapshot(&env.dst()).is_empty());
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn an_empty_source_onto_an_empty_replica_is_fine() {
    let env = TestEnv::new();
    env.once_ok(&[]);
    env.once_ok(&[]);
    assert!(snapshot(&env.dst()).is_empty());
}

#[test]
fn max_delete_holds_every_removal_when_a_pass_would_remove_more() {
    let env = TestEnv::new();
    for i in 0..10 {
        env.write(format!("src/f{i}"), format!("{i}"));
    }
    env.write("src/stay", "stay");
    env.once_ok(&[]);
    for i in 0..10 {
        fs::remove_file(env.path(format!("src/f{i}"))).unwrap();
    }
    env.write("src/stay", "changed");
    let before = snapshot(&env.dst()).len();
    let out = env.once(&["--max-delete", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // None removed, not three: the replica is the old tree plus the rest
    // of the pass's work.
    assert_eq!(snapshot(&env.dst()).len(), before);
    assert_eq!(fs::read(env.path("dst/stay")).unwrap(), b"changed");
    let log = env.log_text();
    assert_eq!(log.matches("removed file").count(), 0, "{log}");
    assert!(
        log.contains(
            "error this pass would remove 10 entries, more than --max-delete 3: f0, f1, f2, f3, f4, and 5 more; none were removed"
        ),
        "{log}"
    );

    // Within the limit, one pass removes them all.
    env.once_ok(&["--max-delete", "10"]);
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn max_delete_counts_every_entry_of_a_removed_folder() {
    let env = TestEnv::new();
    env.write("src/gone/a", "a");
    env.write("src/gone/b", "b");
    env.write("src/gone/deeper/c", "c");
    env.once_ok(&[]);
    fs::remove_dir_all(env.path("src/gone")).unwrap();
    env.write("src/new", "n");
    let out = env.once(&["--max-delete", "4"]);
    assert_eq!(out.status.code(), Some(1));
    let log = env.log_text();
    assert!(
        log.contains(
            "would remove 5 entries, more than --max-delete 4: gone (a folder of 5 entries); none"
        ),
        "{log}"
    );
    assert_eq!(log.matches("removed ").count(), 0, "{log}");
    assert!(env.path("dst/gone/deeper/c").exists());
    // The new file is still copied: the limit holds deletions only.
    assert_eq!(fs::read(env.path("dst/new")).unwrap(), b"n");
    env.once_ok(&["--max-delete", "5"]);
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn max_delete_within_the_limit_also_makes_type_changes_in_one_pass() {
    let env = TestEnv::new();
    env.write("src/was_dir/a", "a");
    env.write("src/was_file", "f");
    env.once_ok(&[]);
    fs::remove_dir_all(env.path("src/was_dir")).unwrap();
    env.write("src/was_dir", "now a file");
    fs::remove_file(env.path("src/was_file")).unwrap();
    env.write("src/was_file/inside", "now a folder");
    let out = env.once(&["--max-delete", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn a_changed_folder_mode_is_reported_once() {
    let env = TestEnv::new();
    env.write("src/a/c.txt", "c");
    env.once_ok(&[]);
    fs::set_permissions(env.path("src/a"), fs::Permissions::from_mode(0o750)).unwrap();
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(env.log_text().matches("touched a (mode 750)").count(), 1);
}

#[test]
fn a_log_file_inside_another_pairs_replica_is_refused() {
    let env = TestEnv::new();
    env.mkdir("src2");
    env.once_ok(&[]);
    env.write("pairs.txt", "src dst 1 log.txt\nsrc2 dst2 1 dst/log2.txt\n");
    let out = env.run(["--once", "--pairs", "pairs.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("inside replica") && err.contains("log2.txt"),
        "{err}"
    );
    assert!(!env.path("dst2").exists() && !env.path("dst/log2.txt").exists());
}

#[test]
fn held_deletions_are_listed_and_approved_from_the_menu_for_one_pass() {
    let env = TestEnv::new();
    env.write("src/keep", "keep");
    for i in 0..5 {
        env.write(format!("dst/old{i}"), "from before");
    }
    let mut session = MenuSession::start(
        env.root(),
        ["--max-delete", "2", "src", "dst", "3600", "log.txt"],
    );
    wait_log(&env.log(), "pass finished", 1);
    session.send("1");
    session.wait_stdout(
        "held: 5 deletions, none made (the log says why)",
        1,
        PATIENCE,
    );
    assert!(env.path("dst/old0").exists());
    session.send("6");
    session.send("1");
    session.wait_stdout(
        "Pair 1: pass started, removing the 5 held entries.",
        1,
        PATIENCE,
    );
    wait_log(&env.log(), "pass finished", 2);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(env.log_text().matches("removed file old").count(), 5);
    // Approval is for one pass: nothing is held any more.
    session.send("6");
    session.send("1");
    session.wait_stdout("Cannot approve: pair 1 holds no deletions.", 1, PATIENCE);
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
