//! `foldersync attach` on a real pseudo-terminal (issue 25): the numbered
//! menu of a running `--no-menu` process, its log lines above the prompt,
//! its actions done by the process; Ctrl-D and option 3 detach and leave
//! it running; option 8, confirmed, stops it.

use crate::console::PtySession;
use crate::support::*;

const PROMPT: &str = "Choose an option (1-8): ";

/// A `--no-menu` process syncing src to dst hourly, and `attach` to it on
/// a terminal.
fn attached(env: &TestEnv, run: &Runtime) -> (MenuSession, PtySession) {
    env.write("src/a.txt", "a");
    let service = run.start(env.root(), ["--no-menu", "src", "dst", "3600", "log.txt"]);
    run.wait_socket();
    run.wait_passes(None, "1", 1);
    let term = PtySession::start(env.root(), &["attach"], &run.env());
    term.wait_prompt(PROMPT);
    (service, term)
}

#[test]
fn attach_drives_the_running_process_and_ctrl_d_leaves_it_running() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let (mut service, mut term) = attached(&env, &run);
    term.wait_screen("8. Stop the service and every pair", 1);
    term.type_keys("1\r");
    term.wait_screen("Pair 1: ", 1);
    // A pass asked for here runs there, and its summary scrolls above
    // the prompt.
    env.write("src/b.txt", "b");
    term.type_keys("5\r");
    term.wait_prompt("Pair number to sync now: ");
    term.type_keys("1\r");
    term.wait_screen("Pair 1: pass started.", 1);
    wait_for(
        PATIENCE,
        || env.dst().join("b.txt").exists(),
        || format!("no pass copied b.txt:\n{}", term.screen()),
    );
    term.wait_screen("pair 1: pass finished", 1);
    term.wait_prompt(PROMPT);
    assert!(
        term.last_line().starts_with(PROMPT.trim_end()),
        "{}",
        term.screen()
    );
    // Ctrl-D detaches: attach exits 0 and the service runs on.
    term.type_keys("\x04");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen());
    assert!(term.terminal_is_cooked());
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the service stopped"
    );
    run.ctl_ok(&["status"]);
    signal(service.child.id(), "TERM");
    assert_eq!(service.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn option_3_detaches_and_option_8_stops_the_service_once_confirmed() {
    let env = TestEnv::new();
    let run = Runtime::new();
    let (mut service, mut term) = attached(&env, &run);
    term.type_keys("3\r");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen());
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the service stopped"
    );
    let term = PtySession::start(env.root(), &["attach"], &run.env());
    term.wait_prompt(PROMPT);
    // Not confirmed: nothing stops.
    term.type_keys("8\r");
    term.wait_prompt("Stop foldersync and every pair it runs? (y/N): ");
    term.type_keys("\r");
    term.wait_screen("Not stopped.", 1);
    term.wait_prompt(PROMPT);
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the service stopped"
    );
    term.type_keys("8\r");
    term.wait_prompt("Stop foldersync and every pair it runs? (y/N): ");
    term.type_keys("y\r");
    assert_eq!(service.wait_exit(PATIENCE).code(), Some(0));
    let mut term = term;
    assert_eq!(term.wait_exit(), 0, "{}", term.screen());
}

#[test]
fn attach_with_no_process_says_so_in_one_line() {
    let run = Runtime::new();
    let env = TestEnv::new();
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("attach")
        .current_dir(env.root())
        .env("XDG_RUNTIME_DIR", run.dir.path())
        .stdin(std::process::Stdio::null());
    let out = run_with_timeout(&mut cmd, PATIENCE);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr_of(&out);
    assert!(
        said.starts_with("foldersync: no foldersync is running") && said.lines().count() == 1,
        "{said}"
    );
}
