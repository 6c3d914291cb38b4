//! The guards that keep a pass from destroying data by accident: the
//! missing-mount guard, `--max-delete`, and pairs that would write into
//! each other's trees. (Read-only entries: tests/faults.rs.)

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

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
fn max_delete_stops_removals_past_the_limit() {
    let env = TestEnv::new();
    for i in 0..10 {
        env.write(format!("src/f{i}"), format!("{i}"));
    }
    env.write("src/stay", "stay");
    env.once_ok(&[]);
    for i in 0..10 {
        fs::remove_file(env.path(format!("src/f{i}"))).unwrap();
    }
    let out = env.once(&["--max-delete", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let left = snapshot(&env.dst());
    assert_eq!(left.len(), 11 - 3, "{:?}", left.keys());
    let log = env.log_text();
    assert_eq!(log.matches("removed file").count(), 3, "{log}");
    assert_eq!(log.matches("--max-delete 3 reached").count(), 1, "{log}");

    // A later pass with room finishes the job.
    env.once_ok(&["--max-delete", "100"]);
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
    let out = env.once(&["--max-delete", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let log = env.log_text();
    assert_eq!(log.matches("removed ").count(), 2, "{log}");
    // The new file is still copied: the limit stops deletions only.
    assert_eq!(fs::read(env.path("dst/new")).unwrap(), b"n");
    env.once_ok(&[]);
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
