//! Two-way passes edited between their plan and their apply, made
//! deterministic by the debug-only `FOLDERSYNC_TEST_PAUSE_TWOWAY` hook:
//! what changed after it was examined is neither propagated nor recorded,
//! and the next pass brings it over (issue 13). Regression tests for what
//! `two_way_model.rs` found.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub(crate) fn two_way_once(env: &TestEnv) -> std::process::Output {
    once_quick(env, &["--two-way"])
}

/// Runs one two-way pass paused after its plan; `during` edits the sides
/// meanwhile. Returns the pass's output.
pub(crate) fn paused_pass(env: &TestEnv, during: impl FnOnce()) -> std::process::Output {
    paused_at(env, "FOLDERSYNC_TEST_PAUSE_TWOWAY", during)
}

/// Runs one two-way pass paused where the debug-only `hook` variable says
/// (the first time it gets there); `during` runs meanwhile.
pub(crate) fn paused_at(env: &TestEnv, hook: &str, during: impl FnOnce()) -> std::process::Output {
    let flag = env.path("paused");
    let mut child = Command::new(bin())
        .args(["--once", "--two-way"])
        .args([env.src(), env.dst()])
        .arg("1")
        .arg(env.log())
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .env(hook, &flag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foldersync");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the pass never paused"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    during();
    fs::remove_file(&flag).unwrap();
    child.wait_with_output().unwrap()
}

/// A synced pair holding `anchor.txt`, so neither side is ever empty.
pub(crate) fn synced_env() -> TestEnv {
    let env = fast_env();
    fs::write(env.src().join("anchor.txt"), "anchor").unwrap();
    assert!(two_way_once(&env).status.success());
    env
}

/// Regression: a file deleted in the source after the scan, before its
/// copy, failed the pass (exit 1, "error … open: No such file") instead of
/// being skipped for the next pass.
#[test]
fn a_file_deleted_during_the_pass_is_skipped_not_an_error() {
    let env = synced_env();
    fs::write(env.src().join("new"), "x").unwrap();
    let out = paused_pass(&env, || fs::remove_file(env.src().join("new")).unwrap());
    assert!(
        out.status.success(),
        "{}: {}",
        describe(&out.status),
        env.log_text()
    );
    assert!(
        env.log_text()
            .contains("skipped new: changed in the source during the pass")
    );
    assert!(!env.dst().join("new").exists());
    assert!(two_way_once(&env).status.success());
    assert!(!env.src().join("new").exists() && !env.dst().join("new").exists());
}

/// Regression: a link retargeted in the source after the scan got the
/// scanned target in the replica, was recorded with the new one, and the
/// next pass took the replica's old target for an edit and put it back
/// in the source: the user's retarget was lost.
#[test]
fn a_link_retargeted_during_the_pass_keeps_its_new_target() {
    let env = synced_env();
    symlink("mid", env.src().join("l")).unwrap();
    let out = paused_pass(&env, || {
        fs::remove_file(env.src().join("l")).unwrap();
        symlink("new", env.src().join("l")).unwrap();
    });
    assert!(out.status.success(), "{}", env.log_text());
    assert!(two_way_once(&env).status.success());
    for side in [env.src(), env.dst()] {
        assert_eq!(
            fs::read_link(side.join("l")).unwrap().to_str(),
            Some("new"),
            "{}",
            env.log_text()
        );
    }
}

/// An edit on both sides during a pass is a conflict for the next pass,
/// not a loss.
#[test]
fn edits_on_both_sides_during_the_pass_are_kept_by_the_next() {
    let env = synced_env();
    fs::write(env.src().join("f.txt"), "one").unwrap();
    assert!(two_way_once(&env).status.success());
    fs::write(env.src().join("f.txt"), "source edit").unwrap();
    let out = paused_pass(&env, || {
        fs::write(env.src().join("f.txt"), "source again").unwrap();
        fs::write(env.dst().join("f.txt"), "replica edit").unwrap();
    });
    assert!(out.status.success(), "{}", env.log_text());
    assert!(two_way_once(&env).status.success());
    let (a, b) = (snapshot(&env.src()), snapshot(&env.dst()));
    let texts: Vec<Vec<u8>> = a
        .values()
        .filter_map(|n| match n {
            Node::File { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect();
    assert!(texts.contains(&b"source again".to_vec()), "{texts:?}");
    assert!(texts.contains(&b"replica edit".to_vec()), "{texts:?}");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
}

/// Regression: a folder replaced by a file in the source after the scan
/// made the copies of what it held fail (error, exit 1: "open folder: Not
/// a directory") instead of being skipped for the next pass.
#[test]
fn a_folder_replaced_during_the_pass_skips_its_contents_not_an_error() {
    let env = synced_env();
    fs::create_dir(env.src().join("d")).unwrap();
    fs::write(env.src().join("d/f"), "inside").unwrap();
    let out = paused_pass(&env, || {
        fs::remove_dir_all(env.src().join("d")).unwrap();
        fs::write(env.src().join("d"), "now a file").unwrap();
    });
    assert!(
        out.status.success(),
        "{}: {}",
        describe(&out.status),
        env.log_text()
    );
    assert!(!env.log_text().contains("[ERROR]"), "{}", env.log_text());
    assert!(two_way_once(&env).status.success());
    let (a, b) = (snapshot(&env.src()), snapshot(&env.dst()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let kept = |t: &std::collections::BTreeMap<Vec<u8>, Node>| {
        t.values()
            .any(|n| matches!(n, Node::File { bytes, .. } if bytes == b"now a file"))
    };
    assert!(kept(&a) && kept(&b), "{}", env.log_text());
}

/// Regression (found by `two_way_model.rs`): a folder the pass made was
/// private (0700) until its contents were in; a pass killed meanwhile left
/// it so, newer than the source's, and the next pass took that mode for a
/// user's edit and copied 0700 back to the source.
#[test]
fn a_pass_killed_while_filling_a_new_folder_leaves_its_mode() {
    let env = synced_env();
    let dir = env.src().join("d");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    fs::write(dir.join("big"), Rng::new(7).bytes(48 << 20)).unwrap();
    let mut child = spawn_once(&env, &["--two-way"]);
    let made = env.dst().join("d");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !made.exists() && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::yield_now();
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(two_way_once(&env).status.success(), "{}", env.log_text());
    use std::os::unix::fs::PermissionsExt;
    for side in [env.src(), env.dst()] {
        let mode = fs::metadata(side.join("d")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{}: {}", side.display(), env.log_text());
    }
}
