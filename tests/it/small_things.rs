//! Issue 25's small things, tried as a new user would: an empty line at
//! the menu's prompt asks again without the whole menu; a state folder
//! that cannot be made names the way out.

use crate::support::*;

#[test]
fn an_empty_line_at_the_menu_prompt_shows_the_prompt_again_only() {
    let env = TestEnv::new();
    let mut session = MenuSession::start(env.root(), Vec::<&str>::new());
    session.wait_stdout("Choose an option (1-7): ", 1, PATIENCE);
    session.send("");
    session.wait_stdout("Choose an option (1-7): ", 2, PATIENCE);
    session.send("1");
    session.wait_stdout("No sync pairs.", 1, PATIENCE);
    let out = session.stdout();
    assert!(!out.contains("is not a valid choice"), "{out}");
    assert_eq!(count(&out, "1. List sync pairs"), 2, "{out}");
    assert!(
        out.contains("Choose an option (1-7): Choose an option (1-7): No sync pairs."),
        "{out}"
    );
    quit(session);
}

#[test]
fn a_state_folder_that_cannot_be_made_names_the_way_out() {
    let env = TestEnv::new();
    let out = env.run([
        "--once",
        "--state-dir",
        "/proc/foldersync-state",
        "src",
        "dst",
        "1",
        "log.txt",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let said = stderr_of(&out);
    assert!(
        said.contains("state folder /proc/foldersync-state: cannot create it: ")
            && said.contains("choose another with --state-dir DIR (a systemd service: StateDirectory= in its unit)"),
        "{said}"
    );
}

#[test]
fn the_menus_add_says_a_missing_source_or_a_bad_interval_at_once_and_asks_again() {
    let env = TestEnv::new();
    env.mkdir("src2");
    let mut session = MenuSession::start(env.root(), Vec::<&str>::new());
    session.wait_stdout("Choose an option (1-7): ", 1, PATIENCE);
    session.send("2");
    session.wait_stdout("Source folder: ", 1, PATIENCE);
    session.send("nosuch");
    session.wait_stdout(
        "source nosuch: No such file or directory (os error 2); answer again (empty cancels).\nSource folder: ",
        1,
        PATIENCE,
    );
    session.send("src2");
    session.wait_stdout("Replica folder: ", 1, PATIENCE);
    session.send("dst2");
    session.wait_stdout("Interval in seconds (e.g. 10, 0.5, 5m): ", 1, PATIENCE);
    session.send("0");
    session.wait_stdout(
        "interval \"0\" must be more than zero seconds; answer again (empty cancels).\nInterval in seconds",
        1,
        PATIENCE,
    );
    session.send("10");
    session.wait_stdout("Log file: ", 1, PATIENCE);
    session.send("log2.txt");
    session.send("");
    session.send("");
    session.wait_stdout("Started pair 1: ", 1, PATIENCE);
    // An empty answer to a question asked again cancels.
    session.send("2");
    session.send("nosuch");
    session.wait_stdout("source nosuch: No such file", 2, PATIENCE);
    session.send("");
    session.wait_stdout("Cancelled: nothing was added.", 1, PATIENCE);
    quit(session);
}
