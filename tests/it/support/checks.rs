//! Helpers for cli.rs, sync.rs and menu.rs, on top of `tests/common` (which
//! other branches share and which stays as it is).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{MenuSession, TestEnv, bin, run_with_timeout, snapshot};

/// How long a wait for something the program will surely do may take before
/// the test gives up. Generous: CI machines are noisy.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The limit for "quits quickly" checks (the spec asks for well under a
/// second; CI machines are noisy).
pub const QUICK: Duration = Duration::from_secs(3);

/// How often `needle` occurs in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// A file's text, empty when it does not exist.
pub fn read_text(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until the file at `path` contains `text` at least `n` times.
pub fn wait_log(path: &Path, text: &str, n: usize) {
    wait_for(
        PATIENCE,
        || count(&read_text(path), text) >= n,
        || {
            format!(
                "{} never had {n}x {text:?}:\n{}",
                path.display(),
                read_text(path)
            )
        },
    );
}

/// The lines of a log file that record pair `id`'s actions, without their
/// timestamp and level: `copied a.txt (5 bytes)`.
pub fn actions(log: &str, id: usize) -> Vec<String> {
    let tag = format!("] pair {id}: ");
    log.lines()
        .filter_map(|l| l.split_once(&tag).map(|(_, rest)| rest.to_string()))
        .collect()
}

/// The summary lines (`pass finished in ...`) of pair `id`.
pub fn summaries(log: &str, id: usize) -> Vec<String> {
    actions(log, id)
        .into_iter()
        .filter(|l| l.contains("pass finished in ") || l.contains("pass stopped in "))
        .collect()
}

/// Asserts that a log line equal to `line` (after `pair N: `) exists.
#[track_caller]
pub fn assert_action(log: &str, id: usize, line: &str) {
    assert!(
        actions(log, id).iter().any(|l| l == line),
        "no log line {line:?} for pair {id} in:\n{log}"
    );
}

/// Asserts that no log line of pair `id` starts with `prefix`.
#[track_caller]
pub fn assert_no_action(log: &str, id: usize, prefix: &str) {
    let found: Vec<_> = actions(log, id)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect();
    assert!(
        found.is_empty(),
        "unexpected log lines starting {prefix:?}: {found:?}"
    );
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs foldersync with `args` in the env root (stdin closed), with a
/// command `prefix` such as `setpriv ...` in front.
pub fn run_prefixed(env: &TestEnv, prefix: &[OsString], args: &[&OsStr]) -> Output {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    cmd.args(args)
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null());
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

/// Turns strings into the `&OsStr` arguments `run_prefixed` takes.
pub fn os<'a>(args: &'a [&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(OsStr::new).collect()
}

/// A command prefix under which file permission bits apply to foldersync,
/// so that a `chmod 000` file is really unreadable: none when the tests do
/// not run as root; as root, `setpriv` dropping the capabilities that let
/// root ignore permissions. `Err` says why that is impossible here.
pub fn permission_prefix() -> Result<Vec<OsString>, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(Vec::new());
    }
    let prefix: Vec<OsString> = [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search",
        "--",
    ]
    .map(OsString::from)
    .to_vec();
    // Probe: the prefix must work, and must make a mode 000 file unreadable.
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let probe = dir.path().join("probe");
    fs::write(&probe, "x").map_err(|e| format!("write probe: {e}"))?;
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000))
        .map_err(|e| format!("chmod probe: {e}"))?;
    let run = |prog: &str, arg: Option<&Path>| {
        Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg(prog)
            .args(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    match (run("true", None), run("cat", Some(&probe))) {
        (Ok(t), Ok(c)) if t.success() && !c.success() => Ok(prefix),
        (Ok(t), _) if !t.success() => {
            Err("running as root and `setpriv --bounding-set` is not permitted here".into())
        }
        (Err(e), _) => Err(format!("running as root and setpriv cannot run: {e}")),
        _ => Err("running as root and setpriv does not make a mode 000 file unreadable".into()),
    }
}

/// Every path below `root` whose file name looks like one of foldersync's
/// temporary files (`.foldersync-*.tmp`).
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let name = entry.file_name();
            let bytes = name.as_bytes();
            if bytes.starts_with(b".foldersync-") && bytes.ends_with(b".tmp") {
                found.push(entry.path());
            }
            if entry.file_type().expect("file type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// Asks the menu for a pass of pair `id` now, retrying while the pair is
/// still finishing its previous pass (it says "syncing already" then).
pub fn sync_now(session: &mut MenuSession, id: usize) {
    let started = format!("Pair {id}: pass started.");
    let busy = format!("pair {id} is syncing already");
    let before = count(&session.stdout(), &started);
    for _ in 0..200 {
        let busy_before = count(&session.stdout(), &busy);
        session.send("5");
        session.send(&id.to_string());
        wait_for(
            PATIENCE,
            || {
                let out = session.stdout();
                count(&out, &started) > before || count(&out, &busy) > busy_before
            },
            || format!("no answer to sync now:\n{}", session.stdout()),
        );
        if count(&session.stdout(), &started) > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("pair {id} stayed busy:\n{}", session.stdout());
}

/// Runs foldersync with `args` and checks the bad-input contract: exit
/// status 2, exactly one line on stderr that starts with `foldersync: ` and
/// contains `want`, and the env folder exactly as it was.
#[track_caller]
pub fn assert_refused(env: &TestEnv, args: &[&str], want: &str) {
    let before = snapshot(env.root());
    let out = env.run(args);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "args {args:?}, stderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "args {args:?}: want one line, got:\n{err}");
    assert!(
        lines[0].starts_with("foldersync: ") && lines[0].contains(want),
        "args {args:?}: want a line naming {want:?}, got:\n{err}"
    );
    assert_eq!(
        snapshot(env.root()),
        before,
        "args {args:?} created or changed something"
    );
}

/// A path's inode number, symlinks not followed.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).expect("lstat").ino()
}

/// Starts foldersync with the menu on a pipe, syncing src to dst every
/// hour: only "sync now" can explain a second pass.
pub fn start_hourly(env: &TestEnv) -> MenuSession {
    let (s, d, l) = (env.src(), env.dst(), env.log());
    MenuSession::start(
        env.root(),
        [
            s.as_os_str(),
            d.as_os_str(),
            OsStr::new("3600"),
            l.as_os_str(),
        ],
    )
}

/// Chooses "Quit safely" and checks the exit status.
pub fn quit(mut session: MenuSession) {
    session.send("3");
    let status = session.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", session.stderr());
}

/// Polls `done` every 10 ms until it holds; panics with `why()` after
/// `limit`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            panic!("{}", why());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A test whose prerequisite this machine lacks (a tmpfs mount, `setpriv`,
/// FUSE) says so and returns, except in CI (`CI=true`), where every
/// guarantee must be proven: there it fails.
#[track_caller]
pub fn missing_prerequisite(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("prerequisite missing in CI (.ci/run must provide it): {why}");
    }
    println!("not run here (it would fail in CI): {why}");
}
