//! Two-way losses found by hostile testing (issue 19): an edit hidden
//! behind the old size and mtime, user files named like our temporaries,
//! a side emptied of its files, a writer racing a deletion. Each test
//! failed on the code before its fix.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::*;
use crate::two_way_pause::{paused_pass, synced_env, two_way_once};

/// Rewrites the file at `path` with `bytes` of its size and puts its
/// mtime back, as an editor or a tool that restores mtimes does: only
/// the ctime tells.
fn rewrite_keeping_stamps(path: &Path, bytes: &str) {
    let before = fs::symlink_metadata(path).unwrap();
    assert_eq!(before.len(), bytes.len() as u64, "same size");
    fs::write(path, bytes).unwrap();
    set_mtime_exact(path, before.mtime(), before.mtime_nsec() as u32);
    let after = fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (before.len(), before.mtime(), before.mtime_nsec())
    );
}

/// A synced pair holding `doc.txt` ("version 0") with an old mtime, so
/// its archive entry is not racy and only the stamps speak for it.
fn synced_doc() -> TestEnv {
    let env = synced_env();
    let doc = env.src().join("doc.txt");
    fs::write(&doc, "version 0").unwrap();
    set_mtime(&doc, past());
    ok(&env);
    assert_eq!(read_text(&env.dst().join("doc.txt")), "version 0");
    env
}

#[track_caller]
fn ok(env: &TestEnv) {
    let out = two_way_once(env);
    assert!(
        out.status.success(),
        "{}: {}",
        describe(&out.status),
        env.log_text()
    );
}

/// The names in `dir` that start with `stem.conflict-`.
fn conflict_copies(dir: &Path, stem: &str) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{stem}.conflict-")))
        .collect();
    found.sort();
    found
}

/// What `doc.txt` and its conflict copies hold on one side, sorted.
fn versions(dir: &Path) -> Vec<String> {
    let mut names = conflict_copies(dir, "doc");
    names.push("doc.txt".into());
    let mut held: Vec<String> = names.iter().map(|n| read_text(&dir.join(n))).collect();
    held.sort();
    held
}

#[test]
fn an_edit_that_keeps_size_and_mtime_reaches_the_other_side() {
    let env = synced_doc();
    rewrite_keeping_stamps(&env.src().join("doc.txt"), "version A");
    ok(&env);
    assert_eq!(read_text(&env.dst().join("doc.txt")), "version A");
    // And the stamps recorded after it settle the next pass.
    ok(&env);
    assert_eq!(read_text(&env.src().join("doc.txt")), "version A");
}

#[test]
fn an_edit_that_keeps_size_and_mtime_survives_an_edit_on_the_other_side() {
    let env = synced_doc();
    rewrite_keeping_stamps(&env.src().join("doc.txt"), "version A");
    fs::write(env.dst().join("doc.txt"), "B's longer edit").unwrap();
    ok(&env);
    let want = vec!["B's longer edit".to_string(), "version A".to_string()];
    assert_eq!(versions(&env.src()), want, "{}", env.log_text());
    assert_eq!(versions(&env.dst()), want);
}

#[test]
fn an_edit_that_keeps_size_and_mtime_survives_a_deletion_on_the_other_side() {
    let env = synced_doc();
    rewrite_keeping_stamps(&env.src().join("doc.txt"), "version A");
    fs::remove_file(env.dst().join("doc.txt")).unwrap();
    ok(&env);
    assert_eq!(read_text(&env.src().join("doc.txt")), "version A");
    assert_eq!(read_text(&env.dst().join("doc.txt")), "version A");
}

#[test]
fn an_edit_that_keeps_size_and_mtime_during_the_pass_is_not_overwritten() {
    let env = synced_doc();
    fs::write(env.dst().join("doc.txt"), "B's longer edit").unwrap();
    // Planned: B's edit copied over A's unchanged file. A is rewritten
    // under its old stamps before the copy.
    let out = paused_pass(&env, || {
        rewrite_keeping_stamps(&env.src().join("doc.txt"), "version A")
    });
    assert!(out.status.success(), "{}", env.log_text());
    assert_eq!(read_text(&env.src().join("doc.txt")), "version A");
    assert!(
        env.log_text()
            .contains("skipped doc.txt: changed in the source during the pass"),
        "{}",
        env.log_text()
    );
    ok(&env);
    let want = vec!["B's longer edit".to_string(), "version A".to_string()];
    assert_eq!(versions(&env.src()), want, "{}", env.log_text());
    assert_eq!(versions(&env.dst()), want);
}

#[test]
fn a_change_of_the_ctime_alone_copies_nothing() {
    let env = synced_doc();
    let doc = env.src().join("doc.txt");
    // A hard link made and removed: the ctime moves, the bytes do not.
    fs::hard_link(&doc, env.root().join("outside")).unwrap();
    fs::remove_file(env.root().join("outside")).unwrap();
    let before = actions(&env.log_text(), 1).len();
    ok(&env);
    let mut lines = actions(&env.log_text(), 1).split_off(before);
    lines.retain(|l| !l.starts_with("started: ") && !l.starts_with("pass ") && l != "stopped");
    assert!(lines.is_empty(), "{lines:#?}");
    assert_eq!(read_text(&env.dst().join("doc.txt")), "version 0");
}
