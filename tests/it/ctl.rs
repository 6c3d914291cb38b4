//! `foldersync ctl` against a running process (issue 25): the list, a pass
//! now, stop and start by name, in `--no-menu` and menu modes; the clear
//! one-line refusals; several processes; stale sockets; who may connect.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::*;

/// Starts `src -> dst` hourly (`extra` args first) in a runtime of its own
/// and waits for its first pass.
fn start(env: &TestEnv, run: &Runtime, extra: &[&str]) -> MenuSession {
    let mut args = extra.to_vec();
    args.extend(["src", "dst", "3600", "log.txt"]);
    let session = run.start(env.root(), args);
    run.wait_socket();
    run.wait_passes(None, "1", 1);
    session
}

/// A file written to src reaches dst only through a pass `ctl` asked for.
fn ctl_syncs(env: &TestEnv, run: &Runtime) {
    env.write("src/later.txt", "later");
    assert_eq!(run.ctl_ok(&["sync", "1"]), "Pair 1: pass started.\n");
    wait_for(
        PATIENCE,
        || read_text(&env.dst().join("later.txt")) == "later",
        || format!("no pass copied later.txt: {:?}", run.pairs(None)),
    );
}

/// `ctl stop` and `ctl start` by name, with the list saying so between.
fn ctl_stops_and_starts(run: &Runtime) {
    assert_eq!(run.ctl_ok(&["stop", "1"]), "Pair 1 stopped.\n");
    assert_eq!(run.state("1"), "stopped");
    let listing = run.ctl_ok(&["status"]);
    assert!(
        listing.contains("Pair 1: ") && listing.contains("state: stopped"),
        "{listing}"
    );
    let again = run.ctl(&["stop", "1"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr_of(&again),
        "foldersync: cannot stop: there is no running pair 1\n"
    );
    assert_eq!(run.ctl_ok(&["start", "1"]), "Pair 1 started again.\n");
    assert_ne!(run.state("1"), "stopped");
}

#[test]
fn ctl_lists_syncs_stops_and_starts_a_no_menu_process() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let run = Runtime::new();
    let mut session = start(&env, &run, &["--no-menu"]);
    let pairs = run.pairs(None);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0]["last_pass"]["result"], "ok");
    assert_eq!(pairs[0]["last_pass"]["counts"]["copied"], 1);
    ctl_syncs(&env, &run);
    ctl_stops_and_starts(&run);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    // The socket goes with its process.
    assert_eq!(fs::read_dir(run.sockets()).unwrap().count(), 0);
}

#[test]
fn ctl_and_the_menu_steer_the_same_pairs() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let run = Runtime::new();
    let mut session = start(&env, &run, &[]);
    ctl_syncs(&env, &run);
    // What ctl stopped, the menu's list shows stopped.
    assert_eq!(run.ctl_ok(&["stop", "1"]), "Pair 1 stopped.\n");
    let before = session.stdout().len();
    session.send("1");
    wait_for(
        PATIENCE,
        || session.stdout()[before..].contains("state: stopped"),
        || {
            format!(
                "the menu's list does not say stopped:\n{}",
                session.stdout()
            )
        },
    );
    assert_eq!(run.ctl_ok(&["start", "1"]), "Pair 1 started again.\n");
    run.wait_passes(None, "1", 3);
    // What the menu stops, ctl sees stopped.
    session.send("4");
    session.send("1");
    session.wait_stdout("Pair 1 stopped.", 1, PATIENCE);
    assert_eq!(run.state("1"), "stopped");
    quit(session);
}

#[test]
fn ctl_refuses_in_one_line_an_unknown_pair_no_process_and_a_bad_choice() {
    let run = Runtime::new();
    let none = run.ctl(&["status"]);
    assert_eq!(none.status.code(), Some(1));
    let said = stderr_of(&none);
    assert!(
        said.starts_with("foldersync: no foldersync is running") && said.lines().count() == 1,
        "{said}"
    );
    let env = TestEnv::new();
    let _session = start(&env, &run, &["--no-menu"]);
    let unknown = run.ctl(&["sync", "docs"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        stderr_of(&unknown),
        "foldersync: there is no pair \"docs\" (the pairs: 1)\n"
    );
    let held = run.ctl(&["approve", "1"]);
    assert_eq!(held.status.code(), Some(1));
    assert_eq!(
        stderr_of(&held),
        "foldersync: cannot approve: pair 1 holds no deletions\n"
    );
}

#[test]
fn with_two_processes_ctl_wants_the_config_that_names_one() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("src2/b.txt", "b");
    fs::write(env.path("two.pairs"), "src2 dst2 3600 log2.txt\n").unwrap();
    let run = Runtime::new();
    let _one = start(&env, &run, &["--no-menu"]);
    let _two = run.start(env.root(), ["--no-menu", "--pairs", "two.pairs"]);
    let two = env.path("two.pairs");
    let two = two.to_str().unwrap();
    run.wait_passes(Some(two), "1", 1);
    let both = run.ctl(&["status"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(
        stderr_of(&both).contains("2 foldersync processes are running")
            && stderr_of(&both).contains("name one with --config FILE"),
        "{}",
        stderr_of(&both)
    );
    let listed = run.ctl_ok(&["--config", two, "status"]);
    assert!(listed.contains("/src2 -> "), "{listed}");
    let missing = run.ctl(&["--config", "/nonexistent.toml", "status"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr_of(&missing).contains("/nonexistent.toml: "));
}

#[test]
fn the_socket_of_a_killed_process_is_not_a_running_one_and_is_replaced() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let mut killed = start(&env, &run, &["--no-menu"]);
    let stale = run.sockets().join(format!("{}.sock", killed.child.id()));
    signal(killed.child.id(), "KILL");
    killed.wait_exit(PATIENCE);
    assert!(stale.exists(), "SIGKILL leaves the socket behind");
    let none = run.ctl(&["status"]);
    assert_eq!(none.status.code(), Some(1), "{}", stderr_of(&none));
    assert!(stderr_of(&none).contains("no foldersync is running"));
    let _next = start(&env, &run, &["--no-menu"]);
    assert!(!stale.exists(), "the next process removed the stale socket");
    run.ctl_ok(&["status"]);
}

#[test]
fn only_the_owner_and_root_reach_the_socket() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let _session = start(&env, &run, &["--no-menu"]);
    let folder = fs::metadata(run.sockets()).unwrap();
    assert_eq!(folder.mode() & 0o777, 0o700);
    let socket = fs::read_dir(run.sockets())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);
    if !rustix::process::geteuid().is_root() {
        return missing_prerequisite("the test must run as root to act as another user");
    }
    let nobody = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--",
    ];
    if !std::process::Command::new("setpriv")
        .args(&nobody[1..])
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
    {
        return missing_prerequisite("setpriv cannot run a command as nobody");
    }
    // Let the other user through the runtime folder (not ours).
    fs::set_permissions(run.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let refused = run.ctl_as(&nobody, &["status"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr_of(&refused);
    assert!(
        said.contains("Permission denied") && said.lines().count() == 1,
        "{said}"
    );
    // With the folder and socket opened up by mistake, the process still
    // refuses a user who is neither its own nor root.
    fs::set_permissions(run.sockets(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let refused = run.ctl_as(&nobody, &["status"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr_of(&refused);
    assert!(
        said.starts_with("foldersync: permission denied: this foldersync runs as user 0")
            && said.lines().count() == 1,
        "{said}"
    );
    run.ctl_ok(&["status"]);
}

#[test]
fn ctl_add_starts_a_pair_as_the_menu_does_and_refuses_a_bad_one() {
    let env = TestEnv::new();
    env.write("src2/b.txt", "b");
    let run = Runtime::new();
    let _session = start(&env, &run, &["--no-menu"]);
    let src2 = env.path("src2");
    let dst2 = env.path("dst2");
    let log2 = env.path("log2.txt");
    let said = run.ctl_ok(&[
        "add",
        src2.to_str().unwrap(),
        dst2.to_str().unwrap(),
        "1h",
        log2.to_str().unwrap(),
    ]);
    assert_eq!(
        said,
        format!(
            "Started pair 2: {} -> {} every 60 min.\n",
            src2.display(),
            dst2.display()
        )
    );
    run.wait_passes(None, "2", 1);
    assert_eq!(read_text(&dst2.join("b.txt")), "b");
    // Into the first pair's replica: refused, as the menu refuses it.
    let inner = env.dst().join("inner");
    let log3 = env.path("log3.txt");
    let refused = run.ctl(&[
        "add",
        src2.to_str().unwrap(),
        inner.to_str().unwrap(),
        "1h",
        log3.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr_of(&refused);
    assert!(
        said.starts_with("foldersync: not added: ")
            && said.contains(&env.dst().display().to_string())
            && said.lines().count() == 1,
        "{said}"
    );
    assert_eq!(run.pairs(None).len(), 2);
}
