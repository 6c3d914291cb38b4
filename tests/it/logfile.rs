//! The log file while running: rotated or deleted logs are recreated at
//! their path; a log that cannot be written is reported on the console and
//! syncing goes on.

use std::fs;
use std::time::Duration;

use crate::support::*;

const PATIENCE: Duration = Duration::from_secs(20);

fn start_service(env: &TestEnv) -> MenuSession {
    let (s, d, l) = (env.src(), env.dst(), env.log());
    MenuSession::start(
        env.root(),
        [
            "--no-menu".as_ref(),
            s.as_os_str(),
            d.as_os_str(),
            "0.2".as_ref(),
            l.as_os_str(),
        ],
    )
}

fn wait_file_contains(path: &std::path::Path, text: &str) {
    wait_for(
        PATIENCE,
        || fs::read_to_string(path).is_ok_and(|t| t.contains(text)),
        || format!("{} never had {text:?}", path.display()),
    );
}

#[test]
fn a_rotated_log_file_is_recreated_at_its_path() {
    let env = TestEnv::new();
    env.write("src/first.txt", "1");
    let mut session = start_service(&env);
    wait_file_contains(&env.log(), "copied first.txt");

    // logrotate's default: rename the file away, expect a new one.
    fs::rename(env.log(), env.path("log.txt.1")).unwrap();
    env.write("src/second.txt", "2");
    wait_file_contains(&env.log(), "copied second.txt");
    let old = fs::read_to_string(env.path("log.txt.1")).unwrap();
    assert!(old.contains("copied first.txt"), "{old}");

    // Deleted outright: recreated too.
    fs::remove_file(env.log()).unwrap();
    env.write("src/third.txt", "3");
    wait_file_contains(&env.log(), "copied third.txt");

    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    assert!(
        fs::read_to_string(env.log())
            .unwrap()
            .contains("pair 1: stopped")
    );
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn an_unwritable_log_file_is_reported_and_syncing_goes_on() {
    let env = TestEnv::new();
    env.write("src/first.txt", "1");
    let mut session = start_service(&env);
    wait_file_contains(&env.log(), "copied first.txt");

    // The log's path becomes a folder: it can no longer be opened.
    fs::remove_file(env.log()).unwrap();
    fs::create_dir(env.log()).unwrap();
    env.write("src/second.txt", "2");
    session.wait_stderr("cannot write log file", 1, PATIENCE);
    wait_for(
        PATIENCE,
        || env.path("dst/second.txt").exists(),
        || "second.txt was never synced".into(),
    );
    assert!(session.stderr().contains("syncing goes on"));
    // The pass that copied it is over (folder mtimes are set at its end):
    // a stop in between would leave the root's mtime to the next pass.
    session.wait_stderr("pass finished", 2, PATIENCE);

    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn a_pass_with_nothing_to_do_keeps_the_console_quiet_but_not_the_log() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let first = env.once_ok(&[]);
    assert!(String::from_utf8_lossy(&first.stderr).contains("pass finished"));
    let idle = env.once_ok(&[]);
    let console = String::from_utf8_lossy(&idle.stderr);
    assert!(!console.contains("pass finished"), "{console}");
    assert_eq!(env.log_text().matches("pass finished").count(), 2);
    let verbose = env.once_ok(&["-v"]);
    assert!(String::from_utf8_lossy(&verbose.stderr).contains("pass finished"));
}
