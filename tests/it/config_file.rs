//! The TOML config file (issue 25): `--check-config` reports each problem
//! as `FILE:LINE:COLUMN: reason` and creates nothing; a run takes each
//! pair's own options and names.

use std::fs;

use crate::support::*;

/// Two valid pairs, `docs` (src -> dst) and `pics` (src2 -> dst2), the
/// top level excluding `*.tmp`.
const GOOD: &str = r#"interval = "1h"
log = "sync.log"
exclude = ["*.tmp"]

[[pair]]
name = "docs"
source = "src"
replica = "dst"

[[pair]]
name = "pics"
source = "src2"
replica = "dst2"
exclude = []
max_delete = 5
"#;

fn env_with(config: &str) -> TestEnv {
    let env = TestEnv::new();
    env.mkdir("src2");
    env.write("sync.toml", config);
    env
}

/// `--check-config sync.toml` on `config`: exit 2 and exactly `want` (the
/// file's path before it) on stderr, nothing created.
#[track_caller]
fn refused(config: &str, want: &str) {
    let env = env_with(config);
    let before = snapshot(env.root());
    let file = env.path("sync.toml");
    let out = env.run([std::ffi::OsStr::new("--check-config"), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let root = env.root().display().to_string();
    let want = want
        .replace("SELFDIR", &root)
        .replace("SELF", &file.display().to_string());
    assert_eq!(stderr_of(&out), format!("{}:{want}\n", file.display()));
    assert_eq!(
        snapshot(env.root()),
        before,
        "--check-config created something"
    );
}

#[test]
fn a_good_config_checks_out_and_creates_nothing() {
    let env = env_with(GOOD);
    let before = snapshot(env.root());
    let out = env.run(["--check-config", "sync.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "sync.toml: valid, 2 pairs: docs, pics\n");
    assert_eq!(snapshot(env.root()), before);
}

#[test]
fn config_errors_name_their_line_and_column() {
    refused(
        &GOOD.replace("max_delete = 5", "max_delte = 5"),
        "15:1: unknown field `max_delte`, expected one of `name`, `source`, `replica`, `interval`, `log`, `two_way`, `watch`, `exclude`, `exclude_from`, `delete_excluded`, `max_delete`, `checksum`, `fsync`, `jobs`, `cache_limit`, `allow_empty_source`, `pair`",
    );
    refused(
        &GOOD.replace("max_delete = 5", "max_delete = -5"),
        "15:14: invalid value: integer `-5`, expected u64",
    );
    refused(
        &GOOD.replace("max_delete = 5", "jobs = 0"),
        "15:8: invalid value: integer `0`, expected a nonzero usize",
    );
    refused(
        &GOOD.replace("interval = \"1h\"", "interval = \"1 fortnight\""),
        "1:12: interval \"1 fortnight\" is not a number of seconds",
    );
    refused(
        &GOOD.replace("name = \"pics\"", "name = \"docs\""),
        "11:8: the pair name \"docs\" is taken already (at SELF:6:8); names must be unique",
    );
}

#[test]
fn what_the_command_line_refuses_the_config_refuses_at_its_field() {
    refused(
        &GOOD.replace("source = \"src2\"", "source = \"missing\""),
        "12:10: source SELFDIR/missing: No such file or directory (os error 2)",
    );
    refused(
        &GOOD.replace("replica = \"dst2\"", "replica = \"dst\""),
        "10:1: two pairs write into the same replica SELFDIR/dst",
    );
    refused(
        &GOOD.replace("replica = \"dst2\"", "replica = \"src2/inside\""),
        "13:11: replica SELFDIR/src2/inside is inside the source folder SELFDIR/src2",
    );
    refused(
        &GOOD.replace("source = \"src2\"\n", ""),
        "10:1: this [[pair]] has no `source`",
    );
    refused(
        &format!("source = \"src\"\n{GOOD}"),
        "1:10: `source` belongs in a [[pair]] table, not at the top level",
    );
    refused(
        &GOOD.replace("max_delete = 5", "cache_limit = \"5 XB\""),
        "15:15: size \"5 XB\": unknown unit \" XB\" (use K, M, G or T)",
    );
}

#[test]
fn each_pair_runs_with_its_own_options_and_name() {
    let env = env_with(GOOD);
    env.write("src/keep.txt", "k");
    env.write("src/junk.tmp", "j");
    env.write("src2/junk.tmp", "j");
    let out = env.run(["--once", "--config", "sync.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // docs takes the top level's exclude; pics its own empty list.
    assert!(env.path("dst/keep.txt").exists());
    assert!(!env.path("dst/junk.tmp").exists());
    assert!(env.path("dst2/junk.tmp").exists());
    // And a running one is steered by name.
    let run = Runtime::new();
    let _session = run.start(env.root(), ["--no-menu", "--config", "sync.toml"]);
    run.wait_passes(None, "pics", 1);
    let listing = run.ctl_ok(&["status"]);
    assert!(listing.contains("Pair 1 (docs): "), "{listing}");
    env.write("src2/new.txt", "n");
    assert_eq!(run.ctl_ok(&["sync", "pics"]), "Pair 2: pass started.\n");
    wait_for(
        PATIENCE,
        || env.path("dst2/new.txt").exists(),
        || format!("ctl sync pics copied nothing: {listing}"),
    );
    let file = fs::canonicalize(env.path("sync.toml")).unwrap();
    run.ctl_ok(&["--config", file.to_str().unwrap(), "status"]);
}
