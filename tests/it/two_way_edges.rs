//! Two-way pairs at their edges (issue 19): conflicts on names near the
//! file system's limit, state folders inside a synced folder, excluded
//! entries meeting entries of the same name, and disks mounted inside a
//! side.

use std::fs;
use std::path::Path;

use crate::support::*;

/// One `--once --two-way` pass of src and dst with `extra` options: its
/// exit code and the log lines it added.
fn pass_code(env: &TestEnv, extra: &[&str]) -> (Option<i32>, Vec<String>) {
    let before = actions(&env.log_text(), 1).len();
    let mut args = vec!["--two-way"];
    args.extend_from_slice(extra);
    let out = env.once(&args);
    (
        out.status.code(),
        actions(&env.log_text(), 1).split_off(before),
    )
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// The names in `dir` that start with `stem` and hold a conflict tag.
fn conflict_copies(dir: &Path, stem: &str) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(stem) && n.contains(".conflict-"))
        .collect()
}

#[test]
fn a_conflict_on_a_name_near_the_limit_gets_a_shortened_copy() {
    let env = TestEnv::new();
    // 240 bytes of UTF-8 (2-byte characters), with an extension.
    let stem = "\u{e9}".repeat(118);
    let name = format!("{stem}.txt");
    assert_eq!(name.len(), 240);
    env.write(format!("src/{name}"), "original");
    assert_eq!(pass_code(&env, &[]).0, Some(0));
    env.write(format!("src/{name}"), "source edit");
    set_mtime(&env.src().join(&name), "2020-01-01 10:00:00");
    env.write(format!("dst/{name}"), "replica edit, newer");
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("error")),
        "no error: {lines:#?}"
    );
    for side in [env.src(), env.dst()] {
        let copies = conflict_copies(&side, &stem[..20]);
        assert_eq!(copies.len(), 1, "{:?}", names(&side));
        let copy = &copies[0];
        assert!(copy.len() <= 255, "{copy}");
        assert!(copy.ends_with(".txt"), "the extension stays: {copy}");
        assert!(copy.contains(".conflict-"), "the tag stays: {copy}");
        assert_eq!(fs::read_to_string(side.join(copy)).unwrap(), "source edit");
        assert_eq!(
            fs::read_to_string(side.join(&name)).unwrap(),
            "replica edit, newer"
        );
    }
    // Settled: the next pass has nothing to do.
    let (code, again) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{again:#?}");
    assert!(
        !again.iter().any(|l| l.starts_with("conflict")
            || l.starts_with("copied")
            || l.starts_with("error")),
        "{again:#?}"
    );
}
