//! Two-way losses found by hostile testing (issue 19): an edit hidden
//! behind the old size and mtime, user files named like our temporaries,
//! a side emptied of its files, a writer racing a deletion. Each test
//! failed on the code before its fix.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::*;
use crate::two_way::conflict_copies;
use crate::two_way_pause::{paused_at, paused_pass, synced_env, two_way_once};

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

/// The pair's state file (the only one in the state folder).
fn state_file(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.state_home().join("foldersync");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

#[test]
fn user_files_named_like_temporaries_are_synced_both_ways() {
    let env = synced_env();
    let names = [
        ("src", ".foldersync-0123456789abcdef.tmp"),
        ("dst", ".foldersync-1234-5.tmp"),
        ("src", ".foldersync-00000000000000fe-0123456789abcdef.tmp"),
    ];
    for (side, name) in names {
        fs::write(env.path(side).join(name), format!("the user's {name}")).unwrap();
    }
    ok(&env);
    for (_, name) in names {
        for side in [env.src(), env.dst()] {
            assert_eq!(
                read_text(&side.join(name)),
                format!("the user's {name}"),
                "{name}: {}",
                env.log_text()
            );
        }
    }
    // And they stay on the next pass.
    ok(&env);
    assert_eq!(
        read_text(&env.dst().join(names[0].1)),
        format!("the user's {}", names[0].1)
    );
}

#[test]
fn only_temporaries_of_a_tag_this_pair_recorded_are_removed() {
    let env = synced_env();
    let state = state_file(&env);
    let conn = rusqlite::Connection::open(&state).unwrap();
    let tags: i64 = conn
        .query_row("SELECT count(*) FROM temp_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tags, 0, "a finished pass forgets its tags");
    // As a pass killed while a temporary had a name would leave it.
    conn.execute("INSERT INTO temp_tags (tag) VALUES (255)", [])
        .unwrap();
    drop(conn);
    let ours = ".foldersync-00000000000000ff-0123456789abcdef.tmp";
    let theirs = ".foldersync-00000000000000fe-0123456789abcdef.tmp";
    fs::write(env.dst().join(ours), "half a copy").unwrap();
    fs::write(env.src().join(theirs), "a user's file").unwrap();
    ok(&env);
    assert!(!env.dst().join(ours).exists() && !env.src().join(ours).exists());
    assert!(
        env.log_text().contains(&format!(
            "removed {ours} in the replica: a temporary file left by an interrupted pass"
        )),
        "{}",
        env.log_text()
    );
    assert_eq!(read_text(&env.dst().join(theirs)), "a user's file");
    let conn = rusqlite::Connection::open(&state).unwrap();
    let tags: i64 = conn
        .query_row("SELECT count(*) FROM temp_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tags, 0);
}

/// Deletes every file below `root`, leaving its folders and links, as
/// `find ROOT -type f -delete` does.
fn delete_files(root: &Path) {
    for entry in fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            delete_files(&entry.path());
        } else if kind.is_file() {
            fs::remove_file(entry.path()).unwrap();
        }
    }
}

#[test]
fn a_side_emptied_of_its_files_does_not_wipe_the_other() {
    let env = synced_env();
    for f in ["d1/a", "d1/deep/b", "d2/c", ".foldersyncignore"] {
        env.write(format!("src/{f}"), "kept");
    }
    ok(&env);
    assert_eq!(read_text(&env.dst().join("d1/deep/b")), "kept");
    delete_files(&env.dst());
    // Folders and the ignore file left: no root is empty, yet no file is.
    env.write("dst/.foldersyncignore", "kept");
    let out = two_way_once(&env);
    assert!(!out.status.success(), "{}", env.log_text());
    assert_eq!(read_text(&env.src().join("anchor.txt")), "anchor");
    for f in ["d1/a", "d1/deep/b", "d2/c"] {
        assert_eq!(read_text(&env.src().join(f)), "kept", "{f}");
    }
    assert!(
        env.log_text().contains(&format!(
            "replica folder {} holds none of the files the last sync left in it (4)",
            env.dst().display()
        )),
        "{}",
        env.log_text()
    );
    // Said again on the next pass, until approved.
    assert!(!two_way_once(&env).status.success());
    assert!(env.src().join("d1/a").exists());
    // Meant: --allow-empty-source lets it through for one run.
    let out = once_quick(&env, &["--two-way", "--allow-empty-source"]);
    assert!(out.status.success(), "{}", env.log_text());
    assert!(!env.src().join("d1/a").exists() && !env.src().join("anchor.txt").exists());
}

#[test]
fn a_file_written_to_while_it_is_being_deleted_is_kept() {
    let env = synced_doc();
    fs::remove_file(env.src().join("doc.txt")).unwrap();
    // Appended after the pass's last look at it, before the removal.
    let out = paused_at(&env, "FOLDERSYNC_TEST_PAUSE_REMOVE", || {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(env.dst().join("doc.txt"))
            .unwrap();
        f.write_all(b" and more").unwrap();
    });
    assert!(out.status.success(), "{}", env.log_text());
    assert_eq!(read_text(&env.dst().join("doc.txt")), "version 0 and more");
    assert!(
        env.log_text()
            .contains("skipped doc.txt: changed in the replica during the pass"),
        "{}",
        env.log_text()
    );
    // The edit beats the deletion.
    ok(&env);
    assert_eq!(read_text(&env.src().join("doc.txt")), "version 0 and more");
    assert_no_temps(&env.src());
    assert_no_temps(&env.dst());
}

#[test]
fn a_pass_that_ends_early_leaves_no_tag_behind() {
    let env = synced_env();
    // The replica gone while the archive has entries: refused after the
    // pass recorded its tag, on every pass.
    fs::rename(env.dst(), env.path("elsewhere")).unwrap();
    for _ in 0..3 {
        assert!(!two_way_once(&env).status.success());
    }
    let conn = rusqlite::Connection::open(state_file(&env)).unwrap();
    let tags: i64 = conn
        .query_row("SELECT count(*) FROM temp_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tags, 0, "failing passes add no tags");
}
