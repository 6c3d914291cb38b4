//! A vanished mount caught by its device (issue 12): the device of each
//! pair's source and replica is remembered from the first good pass, in the
//! pair's state file, so a disk unmounted between two runs (its mountpoint
//! a plain folder, even a non-empty one) is refused, until `--new-device`.
//! The disks are tmpfs mounts (root needed: without it the test fails
//! under `CI=true`, else says why and returns).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

/// A tmpfs mounted on `dir`, or `None` (said why) when that is impossible.
fn tmpfs(dir: &Path) -> Option<Tmpfs> {
    match Tmpfs::mount(dir) {
        Ok(t) => Some(t),
        Err(why) => {
            missing_prerequisite(&format!("a tmpfs mount: {why}"));
            None
        }
    }
}

/// `foldersync --once --state-dir STATE [extra...] SRC DST 1 LOG`.
fn once(env: &TestEnv, src: &Path, dst: &Path, extra: &[&str]) -> Output {
    let (state, log) = (env.path("state"), env.log());
    let mut args: Vec<&OsStr> = vec![OsStr::new("--once"), OsStr::new("--state-dir")];
    args.push(state.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    args.extend([
        src.as_os_str(),
        dst.as_os_str(),
        OsStr::new("1"),
        log.as_os_str(),
    ]);
    env.run(args)
}

#[track_caller]
fn assert_code(out: &Output, code: i32, env: &TestEnv) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr:\n{}\nlog:\n{}",
        stderr_of(out),
        env.log_text()
    );
}

/// The pair files in a state folder.
fn pair_files(state: &Path) -> Vec<PathBuf> {
    match fs::read_dir(state) {
        Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// What the refusal of a source on another device must say.
#[track_caller]
fn assert_source_refusal(text: &str, folder: &Path) {
    let line = text
        .lines()
        .find(|l| l.contains("is now on another file system"))
        .unwrap_or_else(|| panic!("no refusal:\n{text}"));
    for want in [
        &format!("error source folder {}", folder.display()),
        "tmpfs",
        "nothing created, copied or deleted",
        "menu option 7 (Accept a pair's new device)",
        "--new-device",
    ] {
        assert!(line.contains(want), "no {want:?} in: {line}");
    }
}

/// A source disk unmounted between two cron runs leaves its mountpoint, a
/// plain folder with other files in it: the second run must not make the
/// replica a copy of that. Two processes, so the device was remembered in
/// the state file; `--new-device` then takes the new one, and remembers it.
#[test]
fn a_source_disk_unmounted_between_runs_is_refused_until_new_device() {
    let env = TestEnv::new();
    let usb = env.mkdir("usb");
    let Some(mut disk) = tmpfs(&usb) else {
        return;
    };
    for i in 0..5 {
        fs::write(usb.join(format!("photo{i}.jpg")), format!("photo {i}")).unwrap();
    }
    let dst = env.dst();
    assert_code(&once(&env, &usb, &dst, &[]), 0, &env);
    assert_mirror(&usb, &dst);
    assert_eq!(
        pair_files(&env.path("state")).len(),
        1,
        "one pair, one file"
    );
    let synced = snapshot(&dst);

    disk.unmount();
    // What the local disk holds under the mountpoint: not the photos.
    fs::write(usb.join("local-only.txt"), "not the disk").unwrap();
    fs::create_dir(usb.join("lost+found")).unwrap();

    let refused = once(&env, &usb, &dst, &[]);
    assert_code(&refused, 1, &env);
    assert_source_refusal(&stderr_of(&refused), &usb);
    assert_eq!(snapshot(&dst), synced, "the replica was changed");
    // A dry run reads the state too, and says what a run would.
    let dry = once(&env, &usb, &dst, &["--dry-run"]);
    assert_code(&dry, 1, &env);
    assert_source_refusal(&stderr_of(&dry), &usb);
    assert_eq!(snapshot(&dst), synced, "the replica was changed");

    // Meant: the user confirms; the next runs take the new device as it.
    let accepted = once(&env, &usb, &dst, &["--new-device"]);
    assert_code(&accepted, 0, &env);
    assert!(
        stderr_of(&accepted).contains("taken as confirmed"),
        "{}",
        stderr_of(&accepted)
    );
    assert_mirror(&usb, &dst);
    assert_code(&once(&env, &usb, &dst, &[]), 0, &env);
}

/// The same in a daemon: refused at every pass once the disk is gone, by
/// a restarted daemon too, synced by one started with `--new-device`.
#[test]
fn a_daemon_refuses_a_source_disk_unmounted_between_passes() {
    let env = TestEnv::new();
    let usb = env.mkdir("usb");
    let Some(mut disk) = tmpfs(&usb) else {
        return;
    };
    fs::write(usb.join("a.txt"), "on the disk").unwrap();
    let dst = env.dst();
    let (state, log) = (env.path("state"), env.log());
    let start = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("--no-menu"), OsStr::new("--state-dir")];
        args.push(state.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        args.extend([
            usb.as_os_str(),
            dst.as_os_str(),
            OsStr::new("0.2"),
            log.as_os_str(),
        ]);
        MenuSession::start(env.root(), args)
    };
    let stop = |mut session: MenuSession| {
        signal(session.child.id(), "TERM");
        let status = session.wait_exit(PATIENCE);
        assert_eq!(status.code(), Some(0), "{}", session.stderr());
    };
    let refusal = "is now on another file system";

    let session = start(&[]);
    wait_log(&env.log(), "pass finished", 1);
    assert_mirror(&usb, &dst);
    let synced = snapshot(&dst);
    disk.unmount();
    fs::write(usb.join("local-only.txt"), "not the disk").unwrap();
    wait_log(&env.log(), refusal, 2);
    stop(session);
    assert_eq!(snapshot(&dst), synced, "the replica was changed");
    assert_source_refusal(&env.log_text(), &usb);

    // Restarted: the device is remembered in the state file.
    let session = start(&[]);
    wait_log(&env.log(), refusal, 3);
    stop(session);
    assert_eq!(snapshot(&dst), synced, "the replica was changed");

    let session = start(&["--new-device"]);
    wait_for(
        PATIENCE,
        || dst.join("local-only.txt").exists() && !dst.join("a.txt").exists(),
        || format!("the confirmed source was not synced:\n{}", env.log_text()),
    );
    wait_log(&env.log(), "pass finished", 3);
    stop(session);
    assert_mirror(&usb, &dst);
    assert_eq!(count(&env.log_text(), "taken as confirmed"), 1);
}

/// A replica folder on a disk unmounted between two cron runs is not
/// created again on the local disk under the bare mountpoint; a replica
/// deleted by hand (its parent still on its file system) is.
#[test]
fn a_replica_on_a_disk_unmounted_between_runs_is_not_recreated() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let usb = env.mkdir("usb");
    let Some(mut disk) = tmpfs(&usb) else {
        return;
    };
    let dst = usb.join("backup");
    assert_code(&once(&env, &env.src(), &dst, &[]), 0, &env);
    assert_mirror(&env.src(), &dst);

    // Deleted by hand: made again.
    fs::remove_dir_all(&dst).unwrap();
    assert_code(&once(&env, &env.src(), &dst, &[]), 0, &env);
    assert_mirror(&env.src(), &dst);

    disk.unmount();
    let out = once(&env, &env.src(), &dst, &[]);
    assert_code(&out, 1, &env);
    let err = stderr_of(&out);
    assert!(
        err.contains("was there at an earlier pass and is now missing")
            && err.contains("--new-device"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&usb).unwrap().count(),
        0,
        "the run wrote into the bare mountpoint"
    );
}

/// A dry run reads the state but writes none: on a fresh state folder,
/// neither the folder nor a pair file appears.
#[test]
fn a_dry_run_writes_no_state() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let out = once(&env, &env.src(), &env.dst(), &["--dry-run"]);
    assert_code(&out, 0, &env);
    assert!(
        !env.path("state").exists(),
        "a dry run made the state folder"
    );
    // An existing, empty state folder stays empty.
    fs::create_dir(env.path("state")).unwrap();
    assert_code(&once(&env, &env.src(), &env.dst(), &["--dry-run"]), 0, &env);
    assert_eq!(pair_files(&env.path("state")), Vec::<PathBuf>::new());
    // A real run writes it.
    assert_code(&once(&env, &env.src(), &env.dst(), &[]), 0, &env);
    assert_eq!(pair_files(&env.path("state")).len(), 1);
}

/// Without `--state-dir`, the state lives in `$XDG_STATE_HOME/foldersync`,
/// made private (0700) at first use.
#[test]
fn the_state_lives_under_xdg_state_home() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.once_ok(&[]);
    let dir = env.state_home().join("foldersync");
    let mode = fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let files = pair_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("pair-") && name.ends_with(".sqlite"),
        "{name}"
    );
}

/// A `--state-dir` that is a file, or cannot be made, is bad input: exit
/// 2, nothing synced.
#[test]
fn a_state_dir_that_is_not_a_folder_is_bad_input() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let file = env.write("not-a-folder", "x");
    for (state, why) in [
        (file.clone(), "not a folder"),
        (file.join("below"), "state folder"),
    ] {
        let out = env.run([
            OsStr::new("--once"),
            OsStr::new("--state-dir"),
            state.as_os_str(),
            env.src().as_os_str(),
            env.dst().as_os_str(),
            OsStr::new("1"),
            env.log().as_os_str(),
        ]);
        assert_code(&out, 2, &env);
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("state folder {}", state.display())) && err.contains(why),
            "{err}"
        );
        assert!(!env.dst().exists(), "synced despite the bad state folder");
    }
}

/// The menu lists a refused pair with the reason, and option 7 accepts the
/// new device for the pass it starts.
#[test]
fn menu_option_7_accepts_a_new_source_device() {
    let env = TestEnv::new();
    let usb = env.mkdir("usb");
    let Some(mut disk) = tmpfs(&usb) else {
        return;
    };
    fs::write(usb.join("a.txt"), "on the disk").unwrap();
    let (dst, state, log) = (env.dst(), env.path("state"), env.log());
    let mut session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--state-dir"),
            state.as_os_str(),
            usb.as_os_str(),
            dst.as_os_str(),
            OsStr::new("3600"),
            log.as_os_str(),
        ],
    );
    wait_log(&log, "pass finished", 1);
    disk.unmount();
    fs::write(usb.join("local-only.txt"), "not the disk").unwrap();
    // Nothing was refused yet: option 7 has nothing to accept.
    session.send("7");
    session.send("1");
    session.wait_stdout("Cannot accept: ", 1, PATIENCE);
    sync_now(&mut session, 1);
    wait_log(&log, "is now on another file system", 1);
    // The refusal is logged before the pass's end reaches the list: list
    // until it shows.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !session.stdout().contains("option 7 accepts the new device") {
        assert!(
            std::time::Instant::now() < deadline,
            "the list never showed the refusal:\n{}",
            session.stdout()
        );
        session.send("1");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(dst.join("a.txt").exists(), "the replica was changed");
    session.send("7");
    session.send("1");
    session.wait_stdout("Pair 1: accepting the new device (", 1, PATIENCE);
    wait_for(
        PATIENCE,
        || dst.join("local-only.txt").exists() && !dst.join("a.txt").exists(),
        || format!("the accepted source was not synced:\n{}", env.log_text()),
    );
    // That pass is over (the root's mtime is set at its end).
    wait_log(&log, "pass finished", 2);
    session.send("3");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    assert_mirror(&usb, &dst);
}
