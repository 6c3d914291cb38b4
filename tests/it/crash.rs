//! A worker that panics outside a pass (issue 22): the pair says
//! `crashed: MESSAGE` in its log and in the list, the other pairs and the
//! menu run on, and menu option 5 starts it again.

use std::fs;
use std::path::PathBuf;

use crate::support::*;

/// Sends "1" and returns everything printed since.
fn list(session: &mut MenuSession) -> String {
    let before = session.stdout().len();
    // Counted before the answer can arrive: counted after, a quick answer
    // was waited for twice.
    let prompts = count(&session.stdout(), "Choose an option (1-7): ");
    session.send("1");
    session.wait_stdout("Choose an option (1-7): ", prompts + 1, PATIENCE);
    session.stdout()[before..].to_string()
}

#[test]
fn a_worker_that_panics_outside_a_pass_is_said_crashed_and_option_5_starts_it_again() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("src2/b.txt", "b");
    fs::write(env.path("pairs.txt"), "src2 dst2 3600 log2.txt\n").unwrap();
    let flag = env.path("panic-once");
    fs::write(&flag, "").unwrap();
    let mut session = MenuSession::start_with_env(
        env.root(),
        ["--pairs", "pairs.txt", "src", "dst", "3600", "log.txt"],
        &[("FOLDERSYNC_TEST_PANIC_AFTER_PASS", flag.to_str().unwrap())],
    );
    let logs = [env.log(), env.path("log2.txt")];
    let said =
        "crashed: a test panic after a pass; the other pairs run on. Menu option 5 starts it again";
    wait_for(
        PATIENCE,
        || logs.iter().any(|l| read_text(l).contains(said)),
        || {
            format!(
                "no pair said it crashed:\n{}\n{}",
                read_text(&logs[0]),
                read_text(&logs[1])
            )
        },
    );
    // Both first passes are over (the crash came after one of them).
    wait_log(&logs[0], "pass finished", 1);
    wait_log(&logs[1], "pass finished", 1);
    let crashed = if read_text(&logs[0]).contains(said) {
        1
    } else {
        2
    };
    let other = 3 - crashed;
    let dirs = |id: usize| -> (PathBuf, PathBuf) {
        match id {
            1 => (env.src(), env.dst()),
            _ => (env.path("src2"), env.path("dst2")),
        }
    };
    let listing = list(&mut session);
    assert!(
        listing.contains("crashed: a test panic after a pass; option 5 starts it again"),
        "{listing}"
    );
    // The other pair runs on.
    let (src, dst) = dirs(other);
    fs::write(src.join("later.txt"), "later").unwrap();
    session.send("5");
    session.send(&other.to_string());
    wait_for(
        PATIENCE,
        || read_text(&dst.join("later.txt")) == "later",
        || format!("the other pair stopped syncing: {}", session.stdout()),
    );
    // Option 5 starts the crashed one again: a pass now.
    let (src, dst) = dirs(crashed);
    fs::write(src.join("after.txt"), "after the crash").unwrap();
    session.send("5");
    session.send(&crashed.to_string());
    session.wait_stdout(&format!("Pair {crashed}: pass started."), 1, PATIENCE);
    wait_for(
        PATIENCE,
        || read_text(&dst.join("after.txt")) == "after the crash",
        || {
            format!(
                "the crashed pair never ran again: {}",
                read_text(&logs[crashed - 1])
            )
        },
    );
    let listing = list(&mut session);
    assert!(!listing.contains("crashed"), "{listing}");
    session.send("3");
    assert_eq!(
        session.wait_exit(PATIENCE).code(),
        Some(0),
        "{}",
        session.stderr()
    );
}
