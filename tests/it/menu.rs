//! The console menu driven through a pipe, quitting (menu, end of input,
//! signals), and the workers' schedule.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

const MENU: &str = "\n1. List sync pairs\n2. Add a sync pair\n3. Quit safely\n4. Stop a sync pair\n5. Sync a pair now\n6. Approve held deletions\n7. Accept a pair's new device\nChoose an option (1-7): ";

/// The env root as foldersync shows it (resolved).
fn shown(env: &TestEnv, rel: &str) -> PathBuf {
    env.root().canonicalize().unwrap().join(rel)
}

/// Starts foldersync in the env root with `args` (all relative paths).
fn start(env: &TestEnv, args: &[&str]) -> MenuSession {
    MenuSession::start(env.root(), args)
}

/// Writes a pairs file with one pair `src2 dst2 INTERVAL log2.txt`.
fn second_pair(env: &TestEnv, interval: &str) {
    env.mkdir("src2");
    fs::write(
        env.path("pairs.txt"),
        format!("src2 dst2 {interval} log2.txt\n"),
    )
    .unwrap();
}

/// Waits for the process to exit and checks it did so with status 0
/// within `QUICK` of `since`.
#[track_caller]
fn assert_quick_clean_exit(session: &mut MenuSession, since: Instant) {
    let status = session.wait_exit(Duration::from_secs(30));
    let took = since.elapsed();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", session.stderr());
    assert!(took < QUICK, "took {took:?} to quit");
}

/// The text of the answer to the last "1. List sync pairs".
fn last_listing(session: &MenuSession) -> String {
    let out = session.stdout();
    let before_last_menu = out.rfind(MENU).unwrap_or(out.len());
    let listing_start = out[..before_last_menu]
        .rfind("Choose an option (1-7): ")
        .map_or(0, |i| i + "Choose an option (1-7): ".len());
    out[listing_start..before_last_menu].to_string()
}

/// Sends "1" and returns the listing it prints.
fn list(session: &mut MenuSession) -> String {
    let menus = count(&session.stdout(), MENU);
    session.send("1");
    session.wait_stdout(MENU, menus + 1, PATIENCE);
    last_listing(session)
}

#[test]
fn menu_shows_five_options_and_a_bad_choice_prints_not_a_valid_choice_and_the_menu_again() {
    let env = TestEnv::new();
    let mut session = start(&env, &[]);
    session.wait_stdout(MENU, 1, PATIENCE);
    session.send("9");
    session.wait_stdout(MENU, 2, PATIENCE);
    session.send("  hello ");
    session.wait_stdout(MENU, 3, PATIENCE);
    let out = session.stdout();
    assert!(
        out.contains(&format!("{MENU}\"9\" is not a valid choice.\n{MENU}")),
        "{out}"
    );
    assert!(out.contains("\"hello\" is not a valid choice."), "{out}");
    assert!(list(&mut session).contains("No sync pairs."));
    let since = Instant::now();
    session.send("3");
    assert_quick_clean_exit(&mut session, since);
}

/// The add dialog's direction question.
const DIRECTION: &str = "Direction: one-way (the replica mirrors the source) or two-way (both are edited)? (1/2, empty: 1): ";

#[test]
fn add_asks_six_prompts_and_a_pair_with_spaces_in_its_paths_syncs() {
    let env = TestEnv::new();
    env.write("my src/sub dir/a file.txt", "spaces everywhere");
    env.mkdir("my src/empty dir");
    let mut session = start(&env, &[]);
    session.wait_stdout(MENU, 1, PATIENCE);
    session.send("2");
    session.wait_stdout("Source folder: ", 1, PATIENCE);
    session.send(&format!("  {}  ", env.path("my src").display()));
    session.wait_stdout("Replica folder: ", 1, PATIENCE);
    // Quoted, as a terminal does when a folder is dragged into it.
    session.send(&format!("\"{}\"", env.path("my dst").display()));
    session.wait_stdout("Interval in seconds (e.g. 10, 0.5, 5m): ", 1, PATIENCE);
    session.send("3600");
    session.wait_stdout("Log file: ", 1, PATIENCE);
    session.send(&env.path("my log.txt").display().to_string());
    session.wait_stdout(DIRECTION, 1, PATIENCE);
    session.send("");
    session.wait_stdout("Watch for changes? (y/N): ", 1, PATIENCE);
    session.send("");
    session.wait_stdout("Started pair 1: ", 1, PATIENCE);
    let log = env.path("my log.txt");
    wait_log(&log, "pass finished", 1);
    assert_mirror(&env.path("my src"), &env.path("my dst"));
    assert_action(&read_text(&log), 1, "copied sub dir/a file.txt (17 bytes)");

    let listing = list(&mut session);
    for want in [
        format!(
            "Pair 1: {} -> {}",
            shown(&env, "my src").display(),
            shown(&env, "my dst").display()
        ),
        format!("every 60 min, log {}", shown(&env, "my log.txt").display()),
        "state: idle, next pass in".to_string(),
        "last pass: ok".to_string(),
    ] {
        assert!(
            listing.contains(&want),
            "no {want:?} in listing:\n{listing}"
        );
    }
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn refused_pair_prints_why_and_creates_nothing() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.mkdir("src2");
    let mut session = start(&env, &["src", "dst", "3600", "log.txt"]);
    wait_log(&env.log(), "pass finished", 1);
    let before = snapshot(env.root());
    let cases = [
        (
            ["src", "src/inside", "10", "new1.txt"],
            "is inside the source folder",
        ),
        (
            ["src2", "dst", "10", "new2.txt"],
            "two pairs write into the same replica",
        ),
        (["src2", "dst/inner", "10", "new3.txt"], "of another pair"),
        (
            ["src2", ".", "10", "new4.txt"],
            "contains the source folder",
        ),
        // A missing source and a bad interval are said at once, and asked
        // again: small_things.rs.
        (["src2", "dst2", "10", "src2"], "is a folder"),
    ];
    for (n, (answers, why)) in cases.iter().enumerate() {
        session.send("2");
        for a in answers {
            session.send(a);
        }
        // One-way: the checks come after the direction.
        session.send("");
        session.wait_stdout("Not added: ", n + 1, PATIENCE);
        let out = session.stdout();
        let last = out.rsplit("Not added: ").next().unwrap();
        assert!(
            last.lines().next().unwrap().contains(why),
            "{answers:?}: want {why:?}, got:\n{out}"
        );
    }
    // An empty answer cancels.
    session.send("2");
    session.send("");
    session.wait_stdout("Cancelled: nothing was added.", 1, PATIENCE);
    let listing = list(&mut session);
    assert!(
        listing.contains("Pair 1: ") && !listing.contains("Pair 2"),
        "{listing}"
    );
    assert_eq!(
        snapshot(env.root()),
        before,
        "a refused pair created something"
    );
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn sync_now_runs_a_pass_long_before_the_interval() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut session = start(&env, &["src", "dst", "3600", "log.txt"]);
    wait_log(&env.log(), "pass finished", 1);
    env.write("src/later.txt", "written after the first pass");
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 2);
    assert_mirror(&env.src(), &env.dst());
    assert_action(&env.log_text(), 1, "copied later.txt (28 bytes)");
    assert!(session.stdout().contains("Pair 1: pass started."));
    session.send("5");
    session.send("7");
    session.wait_stdout("Cannot sync now: there is no running pair 7.", 1, PATIENCE);
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert_eq!(summaries(&env.log_text(), 1).len(), 2);
}

#[test]
fn stopping_one_pair_leaves_the_other_syncing() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    second_pair(&env, "0.2");
    let log2 = env.path("log2.txt");
    let mut session = start(
        &env,
        &["--pairs", "pairs.txt", "src", "dst", "0.2", "log.txt"],
    );
    wait_log(&env.log(), "pass finished", 1);
    wait_log(&log2, "pass finished", 1);
    session.send("4");
    session.wait_stdout("Pair number to stop: ", 1, PATIENCE);
    session.send("1");
    session.wait_stdout("Pair 1 stopped.", 1, PATIENCE);
    assert_action(&env.log_text(), 1, "stopped");

    env.write("src/after-stop.txt", "must not arrive");
    env.write("src2/after-stop.txt", "must arrive");
    let arrived = env.path("dst2/after-stop.txt");
    wait_for(
        PATIENCE,
        || fs::read(&arrived).is_ok_and(|b| b == b"must arrive"),
        || format!("pair 2 stopped syncing:\n{}", read_text(&log2)),
    );
    // Two more passes of pair 2, and pair 1 still did nothing.
    let passes = count(&read_text(&log2), "pass finished");
    wait_log(&log2, "pass finished", passes + 2);
    assert!(
        !env.path("dst/after-stop.txt").exists(),
        "pair 1 still syncs"
    );

    let listing = list(&mut session);
    let (one, two) = listing.split_once("Pair 2: ").expect("two pairs listed");
    assert!(one.contains("state: stopped"), "{listing}");
    assert!(!two.contains("state: stopped"), "{listing}");
    session.send("5");
    session.send("1");
    session.wait_stdout("Cannot sync now: there is no running pair 1.", 1, PATIENCE);
    session.send("4");
    session.send("1");
    session.wait_stdout("Cannot stop: there is no running pair 1.", 1, PATIENCE);
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn quit_exits_0_quickly_and_every_pair_logs_stopped() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    second_pair(&env, "3600");
    let mut session = start(
        &env,
        &["--pairs", "pairs.txt", "src", "dst", "3600", "log.txt"],
    );
    wait_log(&env.log(), "pass finished", 1);
    wait_log(&env.path("log2.txt"), "pass finished", 1);
    let since = Instant::now();
    session.send("3");
    assert_quick_clean_exit(&mut session, since);
    assert_action(&env.log_text(), 1, "stopped");
    assert_action(&read_text(&env.path("log2.txt")), 2, "stopped");
    assert!(session.stderr().contains("all pairs stopped"));
}

#[test]
fn end_of_input_keeps_the_pairs_running_until_sigterm() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut session = start(&env, &["src", "dst", "0.2", "log.txt"]);
    wait_log(&env.log(), "pass finished", 1);
    session.close_stdin();
    session.wait_stderr("end of input", 1, PATIENCE);
    env.write("src/late.txt", "after the end of input");
    let late = env.path("dst/late.txt");
    wait_for(
        PATIENCE,
        || fs::read(&late).is_ok_and(|b| b == b"after the end of input"),
        || format!("the pair stopped syncing:\n{}", env.log_text()),
    );
    assert!(session.child.try_wait().unwrap().is_none(), "exited early");
    let since = Instant::now();
    signal(session.child.id(), "TERM");
    assert_quick_clean_exit(&mut session, since);
    assert_action(&env.log_text(), 1, "stopped");
}

#[test]
fn sigint_and_sigterm_exit_0_and_every_worker_logs_stopped() {
    for sig in ["INT", "TERM"] {
        let env = TestEnv::new();
        env.write("src/a.txt", "a");
        second_pair(&env, "3600");
        let mut session = start(
            &env,
            &["--pairs", "pairs.txt", "src", "dst", "3600", "log.txt"],
        );
        wait_log(&env.log(), "pass finished", 1);
        wait_log(&env.path("log2.txt"), "pass finished", 1);
        let since = Instant::now();
        signal(session.child.id(), sig);
        assert_quick_clean_exit(&mut session, since);
        assert_action(&env.log_text(), 1, "stopped");
        assert_action(&read_text(&env.path("log2.txt")), 2, "stopped");
        assert!(session.stderr().contains("signal received"), "SIG{sig}");
    }
}

/// Every file below `dst` is a complete copy of its source file.
fn assert_no_partial_file(src: &Path, dst: &Path) {
    for (rel, node) in snapshot(dst) {
        if let Node::File { bytes, .. } = node {
            let rel = PathBuf::from(String::from_utf8(rel).unwrap());
            let want = fs::read(src.join(&rel)).unwrap();
            assert!(bytes == want, "{} is not a complete copy", rel.display());
        }
    }
}

#[test]
fn quitting_mid_pass_on_a_large_tree_is_quick_and_leaves_no_temporary_or_partial_file() {
    let env = TestEnv::new();
    for d in 0..20 {
        env.mkdir(format!("src/d{d:02}"));
    }
    // Four writers: creating the files is most of this test's time.
    std::thread::scope(|s| {
        for t in 0..4 {
            let env = &env;
            s.spawn(move || {
                for i in (t..20_000).step_by(4) {
                    let body = format!("file {i} {}", "x".repeat(i % 200));
                    let path = env.path(format!("src/d{:02}/f{i:05}.txt", i % 20));
                    fs::write(path, body).unwrap();
                }
            });
        }
    });
    // A few files of several chunks each, so a copy can be cut short.
    for i in 0..8 {
        fs::write(
            env.path(format!("src/d{:02}/big{i}.bin", i * 2)),
            vec![i as u8; 3 << 20],
        )
        .unwrap();
    }
    let mut session = start(&env, &["src", "dst", "3600", "log.txt"]);
    session.wait_stderr("] pair 1: copied ", 300, PATIENCE);
    let since = Instant::now();
    signal(session.child.id(), "INT");
    assert_quick_clean_exit(&mut session, since);
    println!("quit {:?} after SIGINT", since.elapsed());

    let log = env.log_text();
    assert_eq!(
        summaries(&log, 1).len(),
        1,
        "{}",
        summaries(&log, 1).join("\n")
    );
    assert!(
        summaries(&log, 1)[0].starts_with("pass stopped in "),
        "the pass was not cut short: {}",
        summaries(&log, 1)[0]
    );
    assert_action(&log, 1, "stopped");
    assert_eq!(temp_files(&env.dst()), Vec::<PathBuf>::new());
    assert_no_partial_file(&env.src(), &env.dst());

    // The same with --once, whose single pair runs on the main thread:
    // the signal still stops it at a file boundary. Exit status 130
    // (interrupted), since the replica is not complete.
    fs::remove_file(env.log()).unwrap();
    let mut once = start(&env, &["--once", "src", "dst", "3600", "log.txt"]);
    once.wait_stderr("] pair 1: copied ", 300, PATIENCE);
    let since = Instant::now();
    signal(once.child.id(), "INT");
    let status = once.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "stderr:\n{}", once.stderr());
    assert!(
        since.elapsed() < QUICK,
        "took {:?} to stop",
        since.elapsed()
    );
    let log = env.log_text();
    assert!(
        summaries(&log, 1)[0].starts_with("pass stopped in "),
        "the --once pass was not cut short: {}",
        summaries(&log, 1)[0]
    );
    assert_eq!(temp_files(&env.dst()), Vec::<PathBuf>::new());
    assert_no_partial_file(&env.src(), &env.dst());
}

#[test]
fn menu_text_goes_to_stdout_and_log_records_to_stderr() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut session = start(&env, &["src", "dst", "3600", "log.txt"]);
    wait_log(&env.log(), "pass finished", 1);
    session.wait_stderr("pair 1: pass finished", 1, PATIENCE);
    list(&mut session);
    session.send("3");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let (out, err) = (session.stdout(), session.stderr());
    assert!(out.contains(MENU) && out.contains("Pair 1: "), "{out}");
    assert!(
        out.contains("  cache: 1 file, "),
        "one file, not \"1 files\":\n{out}"
    );
    for record in ["pair 1: copied a.txt", "[INFO", "pass finished"] {
        assert!(
            !out.contains(record),
            "log record {record:?} on stdout:\n{out}"
        );
    }
    assert!(err.contains("pair 1: copied a.txt (1 bytes)"), "{err}");
    for menu in ["List sync pairs", "Choose an option", "Pair 1: "] {
        assert!(!err.contains(menu), "menu text {menu:?} on stderr:\n{err}");
    }
}

#[test]
fn passes_of_one_pair_never_overlap_and_one_longer_than_the_interval_logs_a_warning() {
    let env = TestEnv::new();
    for i in 0..300 {
        env.write(format!("src/d{}/f{i}.txt", i % 10), format!("{i}"));
    }
    let mut session = start(&env, &["--no-menu", "src", "dst", "0.001", "log.txt"]);
    wait_log(
        &env.log(),
        "longer than the 0.001 s interval; passes run back to back until they fit in it again",
        1,
    );
    wait_log(&env.log(), "pass finished", 20);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert_mirror(&env.src(), &env.dst());

    let log = env.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("[WARN ] pair 1: the pass took ")
                && l.ends_with("longer than the 0.001 s interval; passes run back to back until they fit in it again")),
        "{log}"
    );
    // Said once, and again only after passes fitted in the interval.
    assert_eq!(
        count(&log, "[WARN ] pair 1: the pass took "),
        1 + count(&log, "within the 0.001 s interval again"),
        "{log}"
    );
    // Each pass ends before the next one starts.
    let mut in_pass = false;
    let mut passes = 0;
    for line in actions(&log, 1) {
        if line == "pass started" {
            assert!(!in_pass, "a pass started during another:\n{log}");
            in_pass = true;
            passes += 1;
        } else if line.starts_with("pass finished") || line.starts_with("pass stopped") {
            assert!(in_pass, "a pass ended that never started:\n{log}");
            in_pass = false;
        } else if line.starts_with("copied") || line.starts_with("the pass took") {
            assert_eq!(
                in_pass,
                line.starts_with("copied"),
                "{line:?} out of place:\n{log}"
            );
        }
    }
    assert!(passes >= 5 && !in_pass, "{log}");
}
