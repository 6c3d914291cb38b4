//! Chains of pairs (A to B, then B to C) in one process: `--once` runs them
//! in order, a daemon never lets one pair read a folder while another
//! writes it, a chain's middle folder may be created by its first pair, and
//! pairs that feed each other in a loop are refused.

use std::ffi::OsStr;
use std::time::Duration;

use crate::support::*;

/// A tree big enough that a pass over it takes a while: many folders, many
/// small files and a few big ones.
fn fill(env: &TestEnv, root: &str) {
    for i in 0..1500 {
        env.write(
            format!("{root}/d{:02}/f{i}.txt", i % 40),
            format!("file {i}\n").repeat(1 + i % 7),
        );
    }
    for i in 0..6 {
        env.write(format!("{root}/big/b{i}.bin"), vec![i as u8; 3 << 20]);
    }
}

fn pairs_file(env: &TestEnv, lines: &[&str]) {
    env.write("pairs.txt", lines.join("\n") + "\n");
}

#[test]
fn once_runs_a_chain_in_order_even_when_listed_backwards_and_creates_its_middle() {
    let env = TestEnv::new();
    fill(&env, "a");
    // b does not exist yet: pair 2 (listed first) reads what pair 1 makes.
    pairs_file(&env, &["b/d01 c 10 log.txt", "a b 10 log.txt"]);
    for round in 0..3 {
        let out = env.run(["--once", "-j", "8", "--pairs", "pairs.txt"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            stderr_of(&out)
        );
        assert_mirror(&env.path("a"), &env.path("b"));
        assert_mirror(&env.path("a/d01"), &env.path("c"));
        let log = env.log_text();
        assert!(
            log.contains("pair 1: waiting for pair 2: its pass writes what this pair reads"),
            "{log}"
        );
        // Change the head of the chain; the next run carries it through.
        env.write(format!("a/d01/new{round}.txt"), "new");
        env.write("a/d01/f1.txt", format!("edited {round}"));
    }
}

#[test]
fn once_chain_of_three_whole_trees_ends_exact() {
    let env = TestEnv::new();
    fill(&env, "a");
    pairs_file(
        &env,
        &["c d 10 log.txt", "b c 10 log.txt", "a b 10 log.txt"],
    );
    let out = env.run(["--once", "--pairs", "pairs.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    for copy in ["b", "c", "d"] {
        assert_mirror(&env.path("a"), &env.path(copy));
    }
}

#[test]
fn a_daemon_never_runs_a_pass_while_a_chained_pair_is_in_one() {
    let env = TestEnv::new();
    fill(&env, "a");
    pairs_file(&env, &["a b 0.05 log.txt", "b c 0.05 log.txt"]);
    let mut session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            OsStr::new("--pairs"),
            OsStr::new("pairs.txt"),
        ],
    );
    wait_log(&env.log(), "pair 2: pass finished", 3);
    // Edits while both run: each pass of 2 sees b only between passes of 1.
    for i in 0..20 {
        env.write(format!("a/d{:02}/late{i}.txt", i % 40), "late");
    }
    wait_log(&env.log(), "pair 2: pass finished", 8);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(Duration::from_secs(20)).code(), Some(0));
    let log = env.log_text();
    let mut in_pass = [false; 3];
    for line in log.lines() {
        for id in [1, 2] {
            let tag = format!("] pair {id}: ");
            let Some((_, rest)) = line.split_once(&tag) else {
                continue;
            };
            if rest == "pass started" {
                let other = 3 - id;
                assert!(
                    !in_pass[other],
                    "pair {id} started a pass during one of pair {other}:\n{log}"
                );
                in_pass[id] = true;
            } else if ["pass finished", "pass stopped", "pass failed"]
                .iter()
                .any(|end| rest.starts_with(end))
            {
                in_pass[id] = false;
            }
        }
    }
    assert!(
        !log.contains("[ERROR"),
        "a chained daemon logged errors:\n{log}"
    );
}

#[test]
fn pairs_that_feed_each_other_in_a_loop_are_refused() {
    let env = TestEnv::new();
    env.write("a/x.txt", "x");
    env.write("b/y.txt", "y");
    pairs_file(&env, &["a b 10 log.txt", "b a/inner 10 log.txt"]);
    let before = snapshot(env.root());
    let out = env.run(["--once", "--pairs", "pairs.txt"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pairs sync in a loop"), "{err}");
    assert_eq!(snapshot(env.root()), before);
}

#[test]
fn a_missing_source_that_no_pair_creates_is_still_refused() {
    let env = TestEnv::new();
    env.write("a/x.txt", "x");
    pairs_file(&env, &["a b 10 log.txt", "elsewhere/sub c 10 log.txt"]);
    let out = env.run(["--once", "--pairs", "pairs.txt"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pairs.txt:2: source elsewhere/sub: No such file or directory"),
        "{err}"
    );
}

/// Starts a daemon syncing `src` to `dst` hourly, and waits for its first
/// pass; it then holds `dst` while idle.
fn daemon(env: &TestEnv, src: &str, dst: &str, log: &str) -> MenuSession {
    let session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            OsStr::new(src),
            OsStr::new(dst),
            OsStr::new("3600"),
            OsStr::new(log),
        ],
    );
    wait_log(&env.path(log), "pass finished", 1);
    session
}

#[test]
fn a_second_process_on_the_same_or_a_nested_replica_skips_its_pass_naming_the_holder() {
    let env = TestEnv::new();
    fill(&env, "a");
    env.write("other/x.txt", "another source");
    let mut holder = daemon(&env, "a", "b", "daemon.log");
    let pid = holder.child.id();
    for (source, replica, want) in [
        (
            "other",
            "b",
            format!(
                "replica {} is in use by another foldersync (PID {pid})",
                env.path("b").display()
            ),
        ),
        (
            "other",
            "b/d01",
            format!(
                "lies inside {}, which another foldersync (PID {pid}) is syncing into",
                env.path("b").display()
            ),
        ),
    ] {
        let before = snapshot(&env.path("b"));
        let out = env.run(["--once", source, replica, "10", "once.log"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
        assert!(
            err.contains("this pass is skipped, nothing changed"),
            "{err}"
        );
        assert_eq!(snapshot(&env.path("b")), before, "{replica} was changed");
    }
    // The other way round: a daemon inside, a run around it.
    env.mkdir("c");
    let mut inner = daemon(&env, "other", "c/inner", "inner.log");
    let inner_pid = inner.child.id();
    let out = env.run(["--once", "a", "c", "10", "once.log"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("(PID {inner_pid})")), "{err}");
    assert!(
        env.path("c/inner/x.txt").exists(),
        "the outer run deleted the inner replica"
    );
    // A holder that dies releases its lock with it.
    signal(pid, "KILL");
    holder.wait_exit(Duration::from_secs(10));
    env.write("other/y.txt", "now mine");
    let out = env.run(["--once", "other", "b", "10", "once.log"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_mirror(&env.path("other"), &env.path("b"));
    signal(inner_pid, "TERM");
    assert_eq!(inner.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
