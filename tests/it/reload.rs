//! Reloading the config (issue 25): `ctl reload` and SIGHUP start added
//! pairs, stop removed ones, restart changed ones and leave the others
//! running; a config that does not validate is refused whole.

use crate::support::*;

/// A `[[pair]]` table `name`: `src-NAME -> dst-NAME`, its own log.
fn table(name: &str, interval: &str) -> String {
    format!(
        "[[pair]]\nname = \"{name}\"\nsource = \"src-{name}\"\nreplica = \"dst-{name}\"\ninterval = \"{interval}\"\nlog = \"{name}.log\"\n\n"
    )
}

/// How many times pair `name`'s log says it started.
fn starts(env: &TestEnv, name: &str) -> usize {
    count(&read_text(&env.path(format!("{name}.log"))), ": started: ")
}

fn names(run: &Runtime) -> Vec<String> {
    run.pairs(None)
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// keep, gone and changed running hourly under `--no-menu --config`.
fn start(env: &TestEnv, run: &Runtime) -> MenuSession {
    for name in ["keep", "gone", "changed", "added"] {
        env.write(format!("src-{name}/{name}.txt"), name);
    }
    let config = [
        table("keep", "1h"),
        table("gone", "1h"),
        table("changed", "1h"),
    ]
    .concat();
    env.write("sync.toml", config);
    let session = run.start(env.root(), ["--no-menu", "--config", "sync.toml"]);
    for name in ["keep", "gone", "changed"] {
        run.wait_passes(None, name, 1);
    }
    session
}

#[test]
fn ctl_reload_adds_removes_and_changes_pairs_and_leaves_the_others_running() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let mut session = start(&env, &run);
    let keep_id = run.pairs(None)[0]["id"].clone();
    let config = [
        table("keep", "1h"),
        table("changed", "2h"),
        table("added", "1h"),
    ]
    .concat();
    env.write("sync.toml", config);
    assert_eq!(
        run.ctl_ok(&["reload"]),
        "reloaded: 1 added, 1 removed, 1 changed, 1 unchanged\n"
    );
    assert_eq!(names(&run), ["keep", "changed", "added"]);
    // The changed pair started again with its new interval; keep did not.
    let pairs = run.pairs(None);
    assert_eq!(pairs[1]["interval_seconds"], 7200.0);
    assert_eq!(pairs[0]["id"], keep_id);
    assert_eq!(starts(&env, "keep"), 1);
    assert_eq!(starts(&env, "changed"), 2);
    assert!(read_text(&env.path("gone.log")).contains(": stopped"));
    // The added pair runs its first pass; keep still answers.
    wait_for(
        PATIENCE,
        || env.path("dst-added/added.txt").exists(),
        || format!("the added pair copied nothing: {:?}", run.pairs(None)),
    );
    env.write("src-keep/later.txt", "later");
    run.ctl_ok(&["sync", "keep"]);
    wait_for(
        PATIENCE,
        || env.path("dst-keep/later.txt").exists(),
        || format!("keep stopped syncing: {:?}", run.pairs(None)),
    );
    assert_eq!(starts(&env, "keep"), 1);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn a_bad_config_is_refused_whole_and_sighup_reloads_a_good_one() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let mut session = start(&env, &run);
    // A good new pair beside a bad key: nothing of it is taken.
    let bad = [
        table("keep", "1h"),
        table("added", "1h"),
        "colour = \"blue\"\n".into(),
    ]
    .concat();
    env.write("sync.toml", &bad);
    let out = run.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr_of(&out);
    assert!(
        said.starts_with(&format!(
            "foldersync: reload refused, the running pairs carry on: sync.toml:{}:1: unknown field `colour`",
            bad.lines().count()
        )) && said.lines().count() == 1,
        "{said}"
    );
    session.wait_stderr(
        "[ERROR] reload refused, the running pairs carry on",
        1,
        PATIENCE,
    );
    assert_eq!(names(&run), ["keep", "gone", "changed"]);
    // One the running pairs refuse: added writing into keep's replica.
    let overlap = [table("keep", "1h"), table("added", "1h")]
        .concat()
        .replace("replica = \"dst-added\"", "replica = \"dst-keep/inner\"");
    env.write("sync.toml", overlap);
    let out = run.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(names(&run), ["keep", "gone", "changed"]);
    // SIGHUP reads the file again, as ExecReload does.
    env.write(
        "sync.toml",
        [table("keep", "1h"), table("added", "1h")].concat(),
    );
    signal(session.child.id(), "HUP");
    session.wait_stderr(
        "reloaded: 1 added, 2 removed, 0 changed, 1 unchanged",
        1,
        PATIENCE,
    );
    assert_eq!(names(&run), ["keep", "added"]);
    assert_eq!(starts(&env, "keep"), 1);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}
