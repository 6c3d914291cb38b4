//! Exclude patterns: `--exclude`, `--exclude-from`, a pair's
//! `.foldersyncignore`, `--delete-excluded`, in gitignore syntax.

use std::ffi::OsStr;
use std::fs;
use std::time::Duration;

use crate::support::*;

/// Whether `rel` (under the env root) exists, symlinks not followed.
fn exists(env: &TestEnv, rel: &str) -> bool {
    fs::symlink_metadata(env.path(rel)).is_ok()
}

/// Asserts which of `rels` the replica has after a pass.
#[track_caller]
fn assert_replica(env: &TestEnv, present: &[&str], absent: &[&str]) {
    for rel in present {
        assert!(exists(env, &format!("dst/{rel}")), "dst/{rel} missing");
    }
    for rel in absent {
        assert!(!exists(env, &format!("dst/{rel}")), "dst/{rel} was synced");
    }
}

/// The resolved path of the source's `.foldersyncignore`, as messages show it.
fn ignore_file(env: &TestEnv) -> String {
    let src = fs::canonicalize(env.src()).expect("canonical src");
    src.join(".foldersyncignore").display().to_string()
}

#[test]
fn a_star_pattern_excludes_matching_names_at_any_depth() {
    let env = TestEnv::new();
    env.write("src/a.tmp", "x");
    env.write("src/sub/deep/b.tmp", "x");
    env.write("src/a.tmp.txt", "kept");
    env.once_ok(&["--exclude", "*.tmp"]);
    assert_replica(
        &env,
        &["a.tmp.txt", "sub/deep"],
        &["a.tmp", "sub/deep/b.tmp"],
    );
}

#[test]
fn a_leading_slash_anchors_the_pattern_at_the_pair_root() {
    let env = TestEnv::new();
    env.write("src/build/out.o", "x");
    env.write("src/sub/build/kept.o", "kept");
    env.once_ok(&["--exclude", "/build/"]);
    assert_replica(&env, &["sub/build/kept.o"], &["build"]);
}

#[test]
fn a_trailing_slash_matches_folders_only() {
    let env = TestEnv::new();
    env.write("src/cache/blob", "x");
    env.write("src/sub/cache/blob", "x");
    env.write("src/other/cache", "a file named cache");
    env.once_ok(&["--exclude", "cache/"]);
    assert_replica(&env, &["other/cache", "sub"], &["cache", "sub/cache"]);
}

#[test]
fn a_double_star_matches_at_any_depth() {
    let env = TestEnv::new();
    env.write("src/logs/a", "x");
    env.write("src/a/b/logs/c", "x");
    env.write("src/a/b/logsx", "kept");
    env.once_ok(&["--exclude", "**/logs"]);
    assert_replica(&env, &["a/b/logsx"], &["logs", "a/b/logs"]);
}

#[test]
fn a_bang_pattern_re_includes_what_an_earlier_one_excluded() {
    let env = TestEnv::new();
    env.write("src/debug.log", "x");
    env.write("src/sub/keep.log", "kept");
    env.write("src/keep.log", "kept");
    env.once_ok(&["--exclude", "*.log", "--exclude", "!keep.log"]);
    assert_replica(&env, &["keep.log", "sub/keep.log"], &["debug.log"]);
}

#[test]
fn an_exclude_from_file_skips_comments_and_blank_lines() {
    let env = TestEnv::new();
    env.write("patterns.txt", "# a.txt\n\n  \n*.bak\n");
    env.write("src/a.txt", "kept: only named in a comment");
    env.write("src/# a.txt", "kept: a comment is not a pattern");
    env.write("src/old.bak", "x");
    env.once_ok(&["--exclude-from", "patterns.txt"]);
    assert_replica(&env, &["a.txt", "# a.txt"], &["old.bak"]);
}

#[test]
fn a_foldersyncignore_at_the_source_root_adds_patterns_and_is_synced_itself() {
    let env = TestEnv::new();
    env.write("src/.foldersyncignore", "secret/\n/notes.txt\n");
    env.write("src/secret/key", "x");
    env.write("src/notes.txt", "x");
    env.write("src/sub/notes.txt", "kept: the pattern is anchored");
    env.write("src/a.tmp", "x");
    env.once_ok(&["--exclude", "*.tmp"]);
    assert_replica(
        &env,
        &[".foldersyncignore", "sub/notes.txt"],
        &["secret", "notes.txt", "a.tmp"],
    );
    assert_eq!(
        fs::read(env.path("dst/.foldersyncignore")).unwrap(),
        b"secret/\n/notes.txt\n"
    );
}

#[test]
fn what_the_replica_holds_at_an_excluded_path_is_left_alone() {
    let env = TestEnv::new();
    env.write("src/node_modules/pkg/index.js", "new");
    env.write("src/a.txt", "a");
    env.write("dst/node_modules/old/index.js", "the replica's own");
    env.write("dst/x.tmp", "the replica's own");
    env.write("dst/extra.txt", "not excluded: removed");
    env.once_ok(&["--exclude", "node_modules/", "--exclude", "*.tmp"]);
    assert_replica(
        &env,
        &["a.txt", "node_modules/old/index.js", "x.tmp"],
        &["node_modules/pkg", "extra.txt"],
    );
    let log = env.log_text();
    assert_action(&log, 1, "removed file extra.txt");
    assert_no_action(&log, 1, "removed folder node_modules");
    assert_no_action(&log, 1, "removed file x.tmp");
    // Nothing to do the second time either.
    env.once_ok(&["--exclude", "node_modules/", "--exclude", "*.tmp"]);
    assert_replica(&env, &["node_modules/old/index.js", "x.tmp"], &[]);
}

#[test]
fn delete_excluded_removes_them_within_max_delete() {
    let env = TestEnv::new();
    env.write("src/node_modules/pkg/index.js", "x");
    env.write("src/a.txt", "a");
    env.write("dst/node_modules/old/index.js", "x");
    env.write("dst/x.tmp", "x");
    let args = ["--exclude", "node_modules/", "--exclude", "*.tmp"];
    let mut held = args.to_vec();
    held.extend(["--delete-excluded", "--max-delete", "2"]);
    // node_modules (a folder of two entries, three in all) and x.tmp.
    let out = env.once(&held);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_replica(&env, &["node_modules/old/index.js", "x.tmp", "a.txt"], &[]);
    assert!(env.log_text().contains("more than --max-delete 2"));

    let mut free = args.to_vec();
    free.push("--delete-excluded");
    env.once_ok(&free);
    assert_replica(&env, &["a.txt"], &["node_modules", "x.tmp"]);
    let log = env.log_text();
    assert_action(&log, 1, "removed folder node_modules");
    assert_action(&log, 1, "removed file x.tmp");
}

#[test]
fn an_excluded_folder_is_never_entered() {
    let prefix = match permission_prefix() {
        Ok(p) => p,
        Err(why) => {
            missing_prerequisite(&format!(
                "cannot make a folder unreadable to foldersync: {why}"
            ));
            return;
        }
    };
    let env = TestEnv::new();
    env.write("src/locked/inner/file", "x");
    env.write("src/a.txt", "a");
    let locked = env.path("src/locked");
    chmod(&locked, 0o000);
    // The folder really is unreadable: not excluded, it is an error.
    let plain = run_prefixed(
        &env,
        &prefix,
        &os(&["--once", "src", "dst", "1", "log.txt"]),
    );
    let excluded = run_prefixed(
        &env,
        &prefix,
        &os(&[
            "--once",
            "--exclude",
            "locked/",
            "src",
            "dst",
            "1",
            "log2.txt",
        ]),
    );
    chmod(&locked, 0o755);
    assert_eq!(plain.status.code(), Some(1), "{}", stderr_of(&plain));
    assert_eq!(excluded.status.code(), Some(0), "{}", stderr_of(&excluded));
    let log = read_text(&env.path("log2.txt"));
    assert_no_action(&log, 1, "error");
    assert!(summaries(&log, 1)[0].contains(", 0 errors"), "{log}");
    assert!(exists(&env, "dst/a.txt"));
}

#[test]
fn dry_run_says_what_is_left_out_at_verbose() {
    let env = TestEnv::new();
    env.write("src/a.tmp", "x");
    env.write("src/node_modules/pkg/index.js", "x");
    let out = env.once_ok(&[
        "-n",
        "-v",
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules",
    ]);
    let err = stderr_of(&out);
    assert!(err.contains("pair 1: [dry run] excluded a.tmp"), "{err}");
    assert!(
        err.contains("pair 1: [dry run] excluded node_modules"),
        "{err}"
    );
    assert!(!err.contains("node_modules/pkg"), "{err}");
    assert!(!exists(&env, "dst"));
    // Without -v the console does not list them.
    let quiet = env.once_ok(&["-n", "--exclude", "*.tmp"]);
    assert!(!stderr_of(&quiet).contains("excluded"));
}

/// Asserts exit 2 with one `foldersync: ` line starting with `start`, and
/// nothing created.
#[track_caller]
fn assert_bad_input(env: &TestEnv, args: &[&str], start: &str) {
    let out = env.once(args);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with(&format!("foldersync: {start}")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!exists(env, "dst"), "replica created");
    assert!(!exists(env, "log.txt"), "log created");
}

#[test]
fn a_bad_pattern_file_is_bad_input_naming_file_and_line() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("patterns.txt", "# fine\n*.tmp\nfoo[ab\n");
    assert_bad_input(
        &env,
        &["--exclude-from", "patterns.txt"],
        "patterns.txt:3: bad pattern \"foo[ab\"",
    );
    assert_bad_input(&env, &["--exclude-from", "missing.txt"], "missing.txt: ");
    assert_bad_input(
        &env,
        &["--exclude", "{a,b"],
        "--exclude: bad pattern \"{a,b\"",
    );
}

#[test]
fn a_bad_foldersyncignore_at_start_is_bad_input_naming_file_and_line() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("src/.foldersyncignore", "*.tmp\n\nx[\n");
    let start = format!("{}:3: bad pattern \"x[\"", ignore_file(&env));
    assert_bad_input(&env, &[], &start);
}

#[test]
fn a_changed_foldersyncignore_applies_from_the_next_pass_and_a_broken_one_keeps_the_last() {
    let env = TestEnv::new();
    let ignore = env.write("src/.foldersyncignore", "*.tmp\n");
    env.write("src/a.tmp", "x");
    env.write("src/a.txt", "a");
    let (s, d, l) = (env.src(), env.dst(), env.log());
    let mut session = MenuSession::start(
        env.root(),
        [
            s.as_os_str(),
            d.as_os_str(),
            OsStr::new("3600"),
            l.as_os_str(),
        ],
    );
    wait_log(&env.log(), "pass finished", 1);
    assert_replica(&env, &["a.txt"], &["a.tmp"]);

    fs::write(&ignore, "*.txt\n").unwrap();
    env.write("src/b.txt", "b");
    env.write("src/b.tmp", "b");
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 2);
    assert_replica(&env, &["b.tmp", "a.tmp", "a.txt"], &["b.txt"]);
    wait_log(
        &env.log(),
        ".foldersyncignore or --exclude-from file read again: 1 exclude patterns",
        1,
    );

    fs::write(&ignore, "*.txt\nbad[\n").unwrap();
    env.write("src/c.txt", "c");
    env.write("src/c.tmp", "c");
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 3);
    // The previous patterns (*.txt) still apply, and the pass has an error.
    assert_replica(&env, &["c.tmp"], &["c.txt"]);
    let log = env.log_text();
    let line = format!("error {}:2: bad pattern \"bad[\"", ignore_file(&env));
    assert!(
        actions(&log, 1)
            .iter()
            .any(|a| a.starts_with(&line)
                && a.ends_with("the previous exclude patterns stay in force")),
        "{log}"
    );
    assert!(
        summaries(&log, 1).last().unwrap().contains(", 1 errors"),
        "{log}"
    );

    session.send("3");
    let status = session.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", session.stderr());
}

#[test]
fn the_menu_list_shows_how_many_patterns_a_pair_uses() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("src/.foldersyncignore", "*.tmp\n# a comment\n");
    let mut session = MenuSession::start(
        env.root(),
        ["--exclude", "cache/", "src", "dst", "3600", "log.txt"],
    );
    wait_log(&env.log(), "pass finished", 1);
    session.send("1");
    session.wait_stdout("  excludes: 2 patterns\n", 1, PATIENCE);
    session.send("3");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}
