//! Watch mode: a watched pair syncs the folders its source's events name,
//! without a full pass; the full pass still runs every INTERVAL; where
//! watching fails or cannot work, full passes carry on, said once.

use std::ffi::OsStr;
use std::fs;
use std::time::{Duration, Instant};

use crate::support::*;

/// A daemon watching `src`, and its first full pass done.
pub(crate) fn start_watched(env: &TestEnv, interval: &str, vars: &[(&str, &str)]) -> MenuSession {
    let session = MenuSession::start_with_env(
        env.root(),
        ["--no-menu", "--watch", "src", "dst", interval, "log.txt"],
        vars,
    );
    wait_log(&env.log(), "pass finished in", 1);
    session
}

/// Waits until the replica is an exact copy of the source.
pub(crate) fn wait_mirror(env: &TestEnv, what: &str) {
    wait_for(
        PATIENCE,
        // The daemon may be writing the replica meanwhile: an entry gone
        // between listing and reading means "not yet".
        || match (try_snapshot(&env.src()), try_snapshot(&env.dst())) {
            (Ok(src), Ok(dst)) => src == dst,
            _ => false,
        },
        || format!("{what} never reached the replica:\n{}", env.log_text()),
    );
}

pub(crate) fn stop_quickly(env: &TestEnv, mut session: MenuSession) {
    let asked = Instant::now();
    signal(session.child.id(), "TERM");
    let status = session.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", env.log_text());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        asked.elapsed()
    );
}

#[test]
fn watched_changes_reach_the_replica_without_a_full_pass() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    env.write("src/d1/b.txt", "b");
    env.write("src/d2/c.txt", "c");
    let session = start_watched(&env, "1h", &[]);
    assert_action(&env.log_text(), 1, "watching the source for changes");

    env.write("src/d1/new.txt", "new");
    wait_mirror(&env, "a new file");
    env.write("src/d1/a.txt", "edited, and longer");
    wait_mirror(&env, "an edited file");
    fs::remove_file(env.path("src/d1/b.txt")).expect("rm");
    wait_mirror(&env, "a deleted file");
    for i in 0..5 {
        env.write(format!("src/d2/sub/deep/f{i}.txt"), format!("{i}"));
    }
    wait_mirror(&env, "a new folder with files");
    fs::rename(env.path("src/d2/sub"), env.path("src/d2/moved")).expect("rename");
    wait_mirror(&env, "a renamed folder");
    env.write("src/d2/moved/deep/f9.txt", "inside the moved folder");
    wait_mirror(&env, "a file in a renamed folder");
    // An editor's save: a temporary file renamed over the old one.
    env.write("src/d1/.a.txt.swp", "saved by an editor");
    fs::rename(env.path("src/d1/.a.txt.swp"), env.path("src/d1/a.txt")).expect("rename");
    wait_mirror(&env, "an editor-style save");

    let log = env.log_text();
    assert_eq!(count(&log, "pass finished in"), 1, "one full pass:\n{log}");
    assert!(count(&log, "pass over d1 ") >= 3, "{log}");
    assert!(count(&log, "pass over d2") >= 2, "{log}");
    stop_quickly(&env, session);
}

/// The `N checked` of the last summary line that says `pass over WHAT `.
fn last_checked(log: &str, what: &str) -> usize {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("pass over {what} ")))
        .unwrap_or_else(|| panic!("no pass over {what}:\n{log}"));
    let before = line.split(" checked").next().expect("a count");
    let n = before.rsplit(' ').next().expect("a number");
    n.parse().unwrap_or_else(|_| panic!("no count in {line}"))
}

#[test]
fn a_change_in_a_folder_checks_its_entries_not_the_folders_below_it() {
    let env = TestEnv::new();
    env.write("src/top.txt", "top");
    for d in ["d1", "d2", "d3"] {
        for i in 0..30 {
            env.write(format!("src/{d}/sub/f{i}.txt"), format!("{d} {i}"));
        }
    }
    let session = start_watched(&env, "1h", &[]);

    env.write("src/top.txt", "edited");
    wait_mirror(&env, "an edit in the top folder");
    // The summary comes after the work.
    wait_log(&env.log(), "pass over . ", 1);
    // top.txt and the three folders: nothing below them.
    assert_eq!(last_checked(&env.log_text(), "."), 4);

    // A folder's new mode is its parent's event: set, and not entered.
    let passes = count(&env.log_text(), "pass over ");
    chmod(&env.path("src/d2"), 0o750);
    wait_for(
        PATIENCE,
        || {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(env.path("dst/d2")).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o750)
        },
        || format!("the mode never reached the replica:\n{}", env.log_text()),
    );
    wait_log(&env.log(), "pass over ", passes + 1);
    assert_eq!(last_checked(&env.log_text(), "."), 4);

    // A new folder is synced all the way down, made in one go (`mkdir
    // -p` and files before its watch is added) or moved in.
    fs::create_dir_all(env.path("src/d1/n1/n2/n3")).expect("mkdir");
    env.write("src/d1/n1/n2/n3/deep.txt", "deep");
    env.write("src/d1/n1/n.txt", "n");
    wait_mirror(&env, "new folders");
    let outside = env.path("elsewhere");
    fs::create_dir_all(outside.join("m/m2")).expect("mkdir");
    fs::write(outside.join("m/m2/moved.txt"), "moved in").expect("write");
    fs::rename(outside.join("m"), env.path("src/d3/sub/m")).expect("rename");
    wait_mirror(&env, "a folder moved in");

    let log = env.log_text();
    assert_eq!(count(&log, "pass finished in"), 1, "one full pass:\n{log}");
    stop_quickly(&env, session);
}

#[test]
fn a_burst_of_new_files_is_coalesced_into_few_passes() {
    let env = TestEnv::new();
    env.write("src/d1/keep.txt", "k");
    let session = start_watched(&env, "1h", &[]);
    env.mkdir("src/d1/burst");
    wait_mirror(&env, "a new folder");
    let before = count(&env.log_text(), "pass over ");
    for i in 0..2000 {
        fs::write(env.path(format!("src/d1/burst/f{i:04}")), format!("{i}")).expect("write");
    }
    wait_mirror(&env, "2,000 new files");
    let log = env.log_text();
    let passes = count(&log, "pass over ") - before;
    println!("{passes} passes for 2,000 files");
    assert!(passes < 200, "{passes} passes for 2,000 files:\n{log}");
    assert_eq!(count(&log, "pass finished in"), 1, "{log}");
    stop_quickly(&env, session);
}

#[test]
fn stopping_a_watched_pair_from_the_menu_is_quick_and_ends_its_watch() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    let mut session = MenuSession::start(env.root(), ["--watch", "src", "dst", "1h", "log.txt"]);
    wait_log(&env.log(), "pass finished in", 1);
    let asked = Instant::now();
    session.send("4");
    session.wait_stdout("Pair number to stop: ", 1, PATIENCE);
    session.send("1");
    session.wait_stdout("Pair 1 stopped.", 1, PATIENCE);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    env.write("src/d1/after-stop.txt", "must not arrive");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!env.path("dst/d1/after-stop.txt").exists());
    session.send("3");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn a_watched_pair_still_runs_the_full_pass_every_interval() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    let session = start_watched(&env, "0.3", &[]);
    // No event reports a change in the replica: only the full pass does.
    fs::write(env.path("dst/d1/a.txt"), "changed in the replica").expect("write");
    wait_mirror(&env, "the full pass's repair");
    wait_log(&env.log(), "pass finished in", 3);
    stop_quickly(&env, session);
}

#[test]
fn a_watch_that_cannot_be_added_falls_back_to_full_passes_and_says_so_once() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    let session = start_watched(&env, "0.3", &[("FOLDERSYNC_TEST_WATCH_FAIL", "1")]);
    env.write("src/d1/new.txt", "new");
    wait_mirror(&env, "a new file, by a full pass");
    wait_log(&env.log(), "pass finished in", 3);
    let log = env.log_text();
    assert_eq!(count(&log, "the source cannot be watched"), 1, "{log}");
    assert!(log.contains("fs.inotify.max_user_watches"), "{log}");
    assert_eq!(count(&log, "pass over "), 0, "{log}");
    assert_eq!(count(&log, "watching the source"), 0, "{log}");
    stop_quickly(&env, session);
}

#[test]
fn a_source_on_sshfs_is_not_watched_and_full_passes_still_sync_it() {
    let Some(share) = or_skip("an sshfs share", Share::start()) else {
        return;
    };
    let env = TestEnv::new();
    fs::create_dir_all(share.server.join("s/d1")).expect("mkdir");
    fs::write(share.server.join("s/d1/a.txt"), "a").expect("write");
    let source = share.mnt.join("s");
    let session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            OsStr::new("--watch"),
            source.as_os_str(),
            OsStr::new("dst"),
            OsStr::new("0.3"),
            OsStr::new("log.txt"),
        ],
    );
    // Written on the server: the mount would never hear of it.
    fs::write(share.server.join("s/d1/new.txt"), "new").expect("write");
    wait_for(
        PATIENCE,
        || fs::read(env.path("dst/d1/new.txt")).is_ok_and(|b| b == b"new"),
        || format!("never synced:\n{}", env.log_text()),
    );
    wait_log(&env.log(), "pass finished in", 3);
    let log = env.log_text();
    assert_eq!(count(&log, "the source cannot be watched"), 1, "{log}");
    assert!(log.contains("FUSE"), "{log}");
    stop_quickly(&env, session);
    drop(share);
}

#[test]
fn a_pairs_file_line_may_end_with_watch_and_nothing_else() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    env.write("pairs.txt", "src dst 1h log.txt watch\n");
    let session = MenuSession::start(env.root(), ["--no-menu", "--pairs", "pairs.txt"]);
    wait_log(&env.log(), "pass finished in", 1);
    env.write("src/d1/new.txt", "new");
    wait_mirror(&env, "a new file in a pair watched from the pairs file");
    assert_eq!(count(&env.log_text(), "pass finished in"), 1);
    stop_quickly(&env, session);

    env.write("bad.txt", "src dst 1h log.txt wacth\n");
    let out = env.run(["--once", "--pairs", "bad.txt"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("bad.txt:1: after the four fields only the words watch and two-way"),
        "{err}"
    );
}

/// Adds `src dst 1h log.txt` from the piped menu, answering the watch
/// question with `watch`, and returns the menu's answer.
fn add_from_menu(session: &mut MenuSession, watch: &str, n: usize) -> String {
    session.send("2");
    for answer in ["src", "dst", "1h", "log.txt", ""] {
        session.send(answer);
    }
    session.wait_stdout("Watch for changes? (y/N): ", n, PATIENCE);
    session.send(watch);
    wait_for(
        PATIENCE,
        || {
            session.stdout().matches("Started pair").count()
                + session.stdout().matches("Not added").count()
                >= n
        },
        || format!("no answer to the add:\n{}", session.stdout()),
    );
    let out = session.stdout();
    let at = out.rfind("Watch for changes? (y/N): ").unwrap_or(0);
    out[at..].lines().next().unwrap_or_default().to_string()
}

/// Lists the pairs until `want` shows, and returns the listing.
pub(crate) fn list_until(session: &mut MenuSession, want: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        session.send("1");
        std::thread::sleep(Duration::from_millis(100));
        let out = session.stdout();
        if out.contains(want) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the list never showed {want:?}:\n{out}"
        );
    }
}

#[test]
fn the_menu_asks_whether_to_watch_and_the_list_shows_the_folders_watched() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    env.write("src/d2/sub/b.txt", "b");
    let mut session = MenuSession::start(env.root(), Vec::<&str>::new());
    // Neither yes nor no: nothing is added, nothing created.
    let before = snapshot(env.root());
    let answer = add_from_menu(&mut session, "maybe", 1);
    assert!(
        answer.contains("Not added: \"maybe\" is not an answer"),
        "{answer}"
    );
    assert_eq!(
        snapshot(env.root()),
        before,
        "a refused pair created something"
    );

    let answer = add_from_menu(&mut session, "Y", 2);
    assert!(
        answer.contains("Started pair 1: ") && answer.contains("watched"),
        "{answer}"
    );
    wait_log(&env.log(), "pass finished in", 1);
    // src, d1, d2, d2/sub; then a new folder is counted too.
    let out = list_until(&mut session, "  watch: on, 4 folders watched\n");
    assert!(!out.contains("Pair 2"), "{out}");
    env.write("src/d3/c.txt", "c");
    wait_mirror(&env, "a new folder");
    list_until(&mut session, "  watch: on, 5 folders watched\n");
    // Made at once (notify walks d4, as the count does), moved in from
    // outside with a folder inside, moved out with one inside.
    env.write("src/d4/x/y/f.txt", "f");
    list_until(&mut session, "  watch: on, 8 folders watched\n");
    env.write("outside/m/n/f.txt", "m");
    fs::rename(env.path("outside/m"), env.path("src/m")).expect("move in");
    list_until(&mut session, "  watch: on, 10 folders watched\n");
    fs::rename(env.path("src/d2"), env.path("outside/d2")).expect("move out");
    list_until(&mut session, "  watch: on, 8 folders watched\n");
    // Renamed, then a folder made inside: one more, none lost.
    fs::rename(env.path("src/d3"), env.path("src/d3b")).expect("rename");
    env.mkdir("src/d3b/z");
    wait_mirror(&env, "folders moved in, out and renamed");
    list_until(&mut session, "  watch: on, 9 folders watched\n");
    stop_quickly(&env, session);
}

#[test]
fn an_unwatched_pair_from_the_menu_shows_no_watch_and_a_failed_watch_shows_why() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut session = MenuSession::start(env.root(), Vec::<&str>::new());
    let answer = add_from_menu(&mut session, "", 1);
    assert!(
        answer.contains("every 60 min.") && !answer.contains("watched"),
        "{answer}"
    );
    wait_log(&env.log(), "pass finished in", 1);
    let out = list_until(&mut session, "last pass: ok");
    assert!(!out.contains("watch:"), "{out}");
    stop_quickly(&env, session);

    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut session = MenuSession::start_with_env(
        env.root(),
        Vec::<&str>::new(),
        &[("FOLDERSYNC_TEST_WATCH_FAIL", "1")],
    );
    add_from_menu(&mut session, "yes", 1);
    list_until(
        &mut session,
        "  watch: off (fell back to full passes: the kernel's limit of watches is reached",
    );
    stop_quickly(&env, session);
}

/// The kernel's event queue length (`fs.inotify.max_queued_events`), or
/// why a test cannot overflow it here.
fn queue_length() -> Result<usize, String> {
    let path = "/proc/sys/fs/inotify/max_queued_events";
    let text = fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let n: usize = text
        .trim()
        .parse()
        .map_err(|e| format!("{path} holds {text:?}: {e}"))?;
    // Raised far above its default (16,384), it would take too long to fill.
    if n > 1_000_000 {
        return Err(format!("{path} is {n}: too many events to make"));
    }
    Ok(n)
}

#[test]
fn a_real_queue_overflow_brings_a_full_pass_said_once_and_watching_goes_on() {
    let queue = match queue_length() {
        Ok(n) => n,
        Err(why) => return missing_prerequisite(&why),
    };
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    env.write("src/d2/b.txt", "b");
    let session = start_watched(&env, "1h", &[]);
    let pid = session.child.id();
    for round in 1..=2 {
        // Stopped, the daemon reads no events, and each new file is one at
        // least in a folder watched from the start: more files than the
        // queue holds overflow it, with no sysctl touched.
        signal(pid, "STOP");
        for i in 0..=queue {
            fs::File::create(env.path(format!("src/d1/r{round}-{i:05}"))).expect("create");
        }
        signal(pid, "CONT");
        wait_mirror(&env, "files made while events were lost");
        // The first pass, then one full pass per overflow at least.
        wait_log(&env.log(), "pass finished in", 1 + round);
    }
    let log = env.log_text();
    assert_eq!(
        count(&log, "warning: the kernel dropped change events"),
        1,
        "said once:\n{}",
        log.lines()
            .filter(|l| !l.contains("copied"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Still watching: a change goes by a pass over its folder alone.
    let passes = count(&log, "pass over d2 finished in");
    env.write("src/d2/after.txt", "after the overflow");
    wait_mirror(&env, "a file after the overflows");
    wait_log(&env.log(), "pass over d2 finished in", passes + 1);
    assert_eq!(count(&env.log_text(), "the source cannot be watched"), 0);
    stop_quickly(&env, session);
}

/// A watched pair whose daemon runs under a watch limit of `watches` in a
/// user namespace of its own; `None` (after [`missing_prerequisite`])
/// where that cannot be had.
fn start_limited(env: &TestEnv, watches: usize) -> Option<MenuSession> {
    let prefix = watch_limit_prefix(watches)
        .map_err(|why| missing_prerequisite(&why))
        .ok()?;
    Some(MenuSession::start_under(
        env.root(),
        &prefix,
        ["--no-menu", "--watch", "src", "dst", "0.3", "log.txt"],
        &[],
    ))
}

/// The log says once that the pair fell back for the watch limit, and
/// later changes still reach the replica by the full passes.
fn assert_fell_back_for_the_limit(env: &TestEnv) {
    let full = count(&env.log_text(), "pass finished in");
    env.write("src/d1/later.txt", "after the fallback");
    wait_mirror(env, "a file after the fallback");
    wait_log(&env.log(), "pass finished in", full + 2);
    let log = env.log_text();
    assert_eq!(count(&log, "the source cannot be watched"), 1, "{log}");
    assert!(
        log.contains("the kernel's limit of watches is reached"),
        "{log}"
    );
}

#[test]
fn a_real_watch_limit_reached_at_start_falls_back_to_full_passes_said_once() {
    let env = TestEnv::new();
    for d in ["d1", "d2/sub", "d3"] {
        env.write(format!("src/{d}/a.txt"), d);
    }
    // Five folders, two watches allowed.
    let Some(session) = start_limited(&env, 2) else {
        return;
    };
    wait_log(&env.log(), "pass finished in", 1);
    assert_fell_back_for_the_limit(&env);
    assert_eq!(count(&env.log_text(), "watching the source"), 0);
    assert_eq!(count(&env.log_text(), "pass over "), 0);
    stop_quickly(&env, session);
}

#[test]
fn a_real_watch_limit_reached_while_watching_falls_back_to_full_passes_said_once() {
    let env = TestEnv::new();
    env.write("src/d1/a.txt", "a");
    // src and d1 are watched; the third new folder finds no watch left.
    let Some(session) = start_limited(&env, 4) else {
        return;
    };
    wait_log(&env.log(), "watching the source for changes", 1);
    wait_log(&env.log(), "pass finished in", 1);
    for i in 0..6 {
        env.write(format!("src/new{i}/f.txt"), format!("{i}"));
    }
    wait_mirror(&env, "new folders, past the limit");
    wait_log(&env.log(), "the source cannot be watched", 1);
    assert_fell_back_for_the_limit(&env);
    stop_quickly(&env, session);
}
