//! Fault tests: a full disk, a file growing while it is copied, a source
//! root that disappears, symlinks in the replica that point outside it,
//! FIFOs, hostile file names, read-only entries, and trees that are very
//! deep, very wide or longer than PATH_MAX.
//!
//! These tests run as root on CI. Root ignores permission bits, so the
//! read-only tests prove that modes are mirrored exactly and that read-only
//! replica entries are replaced and removed, not that the program works
//! around EACCES as an ordinary user would have to.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, Mode, OFlags};

use crate::support::*;

/// `foldersync --once [extra...] SRC DST 1 LOG` in the env root.
fn once_between(env: &TestEnv, src: &Path, dst: &Path, extra: &[&str]) -> Output {
    run_quick(
        Command::new(bin())
            .arg("--once")
            .args(extra)
            .arg(src)
            .arg(dst)
            .arg("1")
            .arg(env.log())
            .current_dir(env.root())
            .env("XDG_STATE_HOME", env.state_home())
            .stdin(Stdio::null()),
        Duration::from_secs(60),
    )
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_panic(out: &Output) {
    let err = stderr_of(out);
    assert!(!err.contains("panicked"), "the binary panicked:\n{err}");
}

/// Every file below `root` (relative path -> node), following nothing.
fn files_of(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    snapshot(root)
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .collect()
}

// ---------------------------------------------------------------- disk full

#[test]
fn disk_full_fails_cleanly_then_recovers_after_remount() {
    let env = fast_env();
    let mut rng = Rng::new(0xD15C);
    env.write("src/a_small.txt", "small one");
    for name in ["b_big.bin", "c_big.bin", "d_big.bin"] {
        env.write(format!("src/{name}"), rng.bytes(900 * 1024));
    }
    env.write("src/e_small.txt", "small two");
    env.write("src/sub/f_big.bin", rng.bytes(700 * 1024));
    env.write("src/sub/g_small.txt", "small three");
    let mnt = env.mkdir("small");
    let guard = match TmpfsMount::mount(&mnt, "2m") {
        Ok(guard) => guard,
        Err(reason) => {
            missing_prerequisite(&format!("cannot mount tmpfs: {reason}"));
            return;
        }
    };
    let replica = mnt.join("replica");

    let out = once_between(&env, &env.src(), &replica, &[]);
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a pass that ran out of space must exit 1:\n{}",
        stderr_of(&out)
    );
    let log = env.log_text();
    let enospc: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .collect();
    assert!(!enospc.is_empty(), "no ENOSPC error logged:\n{log}");
    let source_files = files_of(&env.src());
    for line in &enospc {
        assert!(line.contains("[ERROR]"), "not an error record: {line}");
        let named = source_files
            .keys()
            .any(|k| line.contains(&format!("error {}: ", show(k))));
        assert!(named, "the error does not name a source file: {line}");
    }
    // No temp file, and every file under a real name is whole.
    assert_no_temps(&mnt);
    let copied = files_of(&replica);
    for (rel, node) in &copied {
        assert_eq!(
            source_files.get(rel),
            Some(node),
            "{} in the replica is not its source file",
            show(rel)
        );
    }
    assert!(
        copied.len() < source_files.len(),
        "everything fit: the disk was not full"
    );
    println!(
        "disk full: {} of {} files copied, {} ENOSPC errors logged",
        copied.len(),
        source_files.len(),
        enospc.len()
    );

    guard.remount("64m");
    let out = once_between(&env, &env.src(), &replica, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_mirror(&env.src(), &replica);
    assert_no_temps(&mnt);
    drop(guard);
}

// ------------------------------------------------- a file growing mid-copy

/// Appends `chunk` to `path` every millisecond until `stop`; returns the
/// number of appends. 4 MB/s at most, well below the copy speed, so a copy
/// always reaches the end of the file.
fn spawn_appender(
    path: PathBuf,
    chunk: Vec<u8>,
    stop: Arc<AtomicBool>,
    appends: Arc<AtomicUsize>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        while !stop.load(Ordering::SeqCst) {
            f.write_all(&chunk).unwrap();
            appends.fetch_add(1, Ordering::SeqCst);
            // Often enough that a copy of the file (a few ms: the kernel
            // copies it) always sees one, even on a loaded machine.
            thread::sleep(Duration::from_micros(100));
        }
    })
}

/// Runs one `--once` while a thread appends to `src/grow.bin`; checks that
/// the replica keeps `previous` (its version before the pass, `None` when
/// absent) and that the pass reported the change. Returns the appends made
/// during the pass.
fn pass_while_growing(env: &TestEnv, chunk: &[u8], previous: Option<&Node>) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let appends = Arc::new(AtomicUsize::new(0));
    let writer = spawn_appender(
        env.path("src/grow.bin"),
        chunk.to_vec(),
        Arc::clone(&stop),
        Arc::clone(&appends),
    );
    // Let the writer get going so the file is growing when the copy starts.
    while appends.load(Ordering::SeqCst) < 3 {
        thread::sleep(Duration::from_millis(1));
    }
    let log_len = env.log_text().len();
    let at_start = appends.load(Ordering::SeqCst);
    let out = once_quick(env, &[]);
    let during = appends.load(Ordering::SeqCst) - at_start;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_no_panic(&out);

    let log = env.log_text()[log_len..].to_string();
    let got = snapshot(&env.dst()).remove(&b"grow.bin"[..]);
    let final_bytes = fs::read(env.path("src/grow.bin")).unwrap();
    // Whatever the replica holds under the real name is a whole version:
    // the initial bytes plus a whole number of appended chunks.
    if let Some(Node::File { bytes, .. }) = &got {
        let initial = final_bytes.len() % chunk.len();
        assert!(
            final_bytes.starts_with(bytes) && (bytes.len() - initial) % chunk.len() == 0,
            "the replica holds a torn version ({} bytes)",
            bytes.len()
        );
    }
    // copy_file discards the temp when size/mtime/ctime moved during the
    // copy: the old replica stays, the pass counts an error, exits 1.
    assert!(
        log.contains("error grow.bin: changed while being copied"),
        "the growing file was not reported ({during} appends during the pass):\n{log}"
    );
    assert!(
        !log.contains("copied grow.bin") && !log.contains("updated grow.bin"),
        "the growing file was recorded as synced:\n{log}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a pass with a changed-while-copied file must exit 1"
    );
    assert_eq!(
        got.as_ref(),
        previous,
        "the replica did not keep its previous version"
    );
    assert!(during > 0, "the writer never ran during the pass");
    assert_no_temps(env.root());
    during
}

#[test]
fn file_growing_during_its_copy_is_not_recorded_as_synced() {
    let env = fast_env();
    let mut rng = Rng::new(0x6120);
    // Big, so its copy lasts long enough to overlap appends for sure.
    env.write("src/grow.bin", rng.bytes(48 * 1024 * 1024 + 123));
    env.write("src/other.txt", "steady");
    let chunk = rng.bytes(4096);

    // No replica copy yet: it must stay absent.
    let first = pass_while_growing(&env, &chunk, None);
    let other = snapshot(&env.dst()).remove(&b"other.txt"[..]);
    assert_eq!(other, snapshot(&env.src()).remove(&b"other.txt"[..]));

    // Writer stopped: the next pass mirrors exactly.
    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());

    // Growing again: the replica keeps the previous whole version.
    let previous = snapshot(&env.dst()).remove(&b"grow.bin"[..]);
    let second = pass_while_growing(&env, &chunk, previous.as_ref());
    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    println!("growing file: {first} and {second} appends raced two passes; both detected");
}

// ------------------------------------------------ the source root goes away

#[test]
fn replica_is_untouched_while_the_source_root_is_missing() {
    let env = fast_env();
    env.write("src/a.txt", "alpha");
    env.write("src/sub/b.txt", "beta");
    set_mtime(&env.path("src/a.txt"), past());
    once_quick_ok(&env, &[]);
    let before = snapshot(&env.dst());
    let before_mtimes = dir_mtimes(&env.dst());

    let mut child = Command::new(bin())
        .args(["--no-menu", "-q"])
        .arg(env.src())
        .arg(env.dst())
        .arg("0.2")
        .arg(env.log())
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = |what: &str| env.log_text().matches(what).count();
    let finished = count("pass finished");
    wait_for(
        Duration::from_secs(10),
        || count("pass finished") >= finished + 2,
        || format!("no passes:\n{}", env.log_text()),
    );
    fs::rename(env.src(), env.path("src.away")).unwrap();
    let unavailable = count("unavailable");
    wait_for(
        Duration::from_secs(10),
        || count("unavailable") >= unavailable + 3,
        || format!("the missing source was not reported:\n{}", env.log_text()),
    );
    assert_eq!(snapshot(&env.dst()), before, "the replica was touched");
    assert_eq!(dir_mtimes(&env.dst()), before_mtimes);
    let log = env.log_text();
    assert!(
        log.contains("nothing changed in the replica"),
        "the error does not say the replica was left alone:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.contains("pair 1: removed")),
        "something was removed:\n{log}"
    );

    kill(child.id(), rustix::process::Signal::TERM);
    let status = wait_child(&mut child, Duration::from_secs(5), "SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", describe(&status));
}

// ---------------------------------------------- symlinks pointing outside

/// An `outside` folder with files the program must never touch.
fn make_outside(env: &TestEnv) -> PathBuf {
    env.write("outside/x.txt", "outside x");
    env.write("outside/y.txt", "outside y");
    env.write("outside/deeper/z.txt", "outside z");
    env.path("outside")
}

fn outside_state(dir: &Path) -> Tree {
    (snapshot(dir), dir_mtimes(dir))
}

#[test]
fn replica_symlink_in_place_of_a_source_folder_is_replaced_not_followed() {
    let env = fast_env();
    let outside = make_outside(&env);
    let untouched = outside_state(&outside);
    env.write("src/sub/x.txt", "source x");
    env.write("src/sub/new.txt", "source new");
    env.write("src/sub/deeper/z.txt", "source z");
    env.write("src/y.txt", "source y");
    env.mkdir("dst");
    symlink(&outside, env.path("dst/sub")).unwrap();
    // A replica symlink where the source has a file: replaced, the file it
    // points to untouched.
    symlink(outside.join("y.txt"), env.path("dst/y.txt")).unwrap();

    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    assert!(fs::symlink_metadata(env.path("dst/sub")).unwrap().is_dir());
    assert_eq!(outside_state(&outside), untouched, "outside was changed");
    let log = env.log_text();
    assert!(log.contains("removed link sub"), "{log}");
}

#[test]
fn replica_extra_symlink_to_an_outside_folder_is_removed_as_a_link() {
    let env = fast_env();
    let outside = make_outside(&env);
    let untouched = outside_state(&outside);
    env.write("src/a.txt", "a");
    env.mkdir("dst");
    symlink(&outside, env.path("dst/extra_link")).unwrap();
    symlink(outside.join("x.txt"), env.path("dst/extra_file_link")).unwrap();

    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(outside_state(&outside), untouched, "outside was changed");
    let log = env.log_text();
    assert!(log.contains("removed link extra_link"), "{log}");
    assert!(log.contains("removed link extra_file_link"), "{log}");
}

#[test]
fn replica_extra_folder_holding_a_symlink_to_outside_is_removed() {
    let env = fast_env();
    let outside = make_outside(&env);
    let untouched = outside_state(&outside);
    env.write("src/a.txt", "a");
    env.write("dst/extra_dir/own.txt", "own");
    symlink(&outside, env.path("dst/extra_dir/to_outside")).unwrap();
    env.mkdir("dst/extra_dir/nested");
    symlink(&outside, env.path("dst/extra_dir/nested/to_outside")).unwrap();

    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    assert!(!env.path("dst/extra_dir").exists());
    assert_eq!(outside_state(&outside), untouched, "outside was changed");
}

// --------------------------------------------------------------------- FIFO

fn mkfifo(path: &Path) {
    rfs::mkfifoat(rfs::CWD, path, Mode::from_raw_mode(0o644))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

#[test]
fn fifo_in_the_source_is_skipped_with_a_warning_and_never_blocks() {
    let env = fast_env();
    env.write("src/a.txt", "alpha");
    env.write("src/sub/b.txt", "beta");
    env.write("src/c.txt", "gamma");
    mkfifo(&env.path("src/pipe"));
    mkfifo(&env.path("src/sub/pipe2"));
    // FIFOs in the replica too: one where the source has a file, one extra.
    env.mkdir("dst");
    mkfifo(&env.path("dst/c.txt"));
    mkfifo(&env.path("dst/extra_pipe"));

    let started = Instant::now();
    let out = once_quick(&env, &[]); // hangs are caught by its 60 s guard
    let took = started.elapsed();
    assert_no_panic(&out);
    assert!(
        out.status.success(),
        "{}: {}",
        describe(&out.status),
        stderr_of(&out)
    );
    assert!(took < Duration::from_secs(5), "the pass took {took:?}");
    assert_mirror(&env.src(), &env.dst());
    assert!(fs::symlink_metadata(env.path("dst/pipe")).is_err());
    let log = env.log_text();
    for name in ["pipe", "sub/pipe2"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("skipped {name} (fifo)")))
            .unwrap_or_else(|| panic!("no warning for {name}:\n{log}"));
        assert!(line.contains("[WARN ]"), "{line}");
    }
}

// ------------------------------------------------------- hostile file names

/// The file names and, for each, how the log must show it: control
/// characters escaped as Rust does, backslashes doubled, bytes that are not
/// UTF-8 as `\xNN`.
fn hostile_names() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            b"x\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important".to_vec(),
            r"x\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important",
        ),
        (b"cr\rline".to_vec(), r"cr\rline"),
        (b"tab\there".to_vec(), r"tab\there"),
        (b"esc\x1b[31mred".to_vec(), r"esc\u{1b}[31mred"),
        (b"bell\x07".to_vec(), r"bell\u{7}"),
        (b"del\x7f".to_vec(), r"del\u{7f}"),
        (b"bad\xff\xfe.bin".to_vec(), r"bad\xff\xfe.bin"),
        (b"back\\slash".to_vec(), r"back\\slash"),
        (b"nel\xc2\x85".to_vec(), r"nel\u{85}"),
    ]
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// Checks that every line of a log stream is a record of its own.
fn assert_one_record_per_line(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            is_record_start(line),
            "{what}: a line that is not a record (forged or broken): {line:?}"
        );
        assert!(
            !line.starts_with("2026-01-01 00:00:00.000"),
            "{what}: forged record: {line:?}"
        );
        assert!(
            record_body(line) != "[INFO ] pair 1: removed file important",
            "{what}: forged record: {line:?}"
        );
        assert!(
            !line.chars().any(|c| c.is_control()),
            "{what}: a raw control character in {line:?}"
        );
    }
}

#[test]
fn hostile_file_names_are_synced_and_logged_escaped() {
    let env = fast_env();
    let names = hostile_names();
    // Not removed below: a source emptied completely is refused by the
    // empty-source guard.
    env.write("src/keep.txt", "kept");
    for (i, (name, _)) in names.iter().enumerate() {
        fs::write(env.src().join(os(name)), format!("content {i}")).unwrap();
    }
    let dir = env.src().join(os(b"dir\nname"));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(os(b"in\x01side")), "inside").unwrap();
    symlink(
        OsStr::from_bytes(b"t\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important"),
        env.src().join("link"),
    )
    .unwrap();

    let out = once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    let first_stderr = stderr_of(&out);

    // Remove them all from the source: the removals are logged too.
    for (name, _) in &names {
        fs::remove_file(env.src().join(os(name))).unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_file(env.src().join("link")).unwrap();
    let out = once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());

    let bytes = fs::read(env.log()).unwrap();
    let log = String::from_utf8(bytes).expect("the log is not valid UTF-8");
    assert_one_record_per_line("log file", &log);
    assert_one_record_per_line("console", &first_stderr);
    assert_one_record_per_line("console", &stderr_of(&out));
    let records = log.lines().count();
    assert_eq!(
        records,
        log.matches('\n').count(),
        "the log does not end every record with a newline"
    );
    for (_, shown) in &names {
        assert_eq!(
            log.matches(&format!("copied {shown} (")).count(),
            1,
            "copy of {shown} not logged once:\n{log}"
        );
        assert_eq!(
            log.lines()
                .filter(|l| l.ends_with(&format!("removed file {shown}")))
                .count(),
            1,
            "removal of {shown} not logged once:\n{log}"
        );
    }
    assert!(log.contains(r"copied dir\nname/in\u{1}side ("), "{log}");
    assert!(
        log.contains(
            r"linked link -> t\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important"
        ),
        "{log}"
    );
    println!(
        "hostile names: {} names, {records} log lines, every line one record",
        names.len() + 2
    );
}

/// The source and replica roots are named by the user, but a pairs file
/// or a script can hand over any name: the log lines that show them must
/// escape them like the paths inside the tree.
#[test]
fn hostile_root_folder_names_are_logged_escaped() {
    let env = fast_env();
    let forged = "\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important";
    let src = env.path(format!("src{forged}"));
    let dst = env.path(format!("dst{forged}"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    let mut child = Command::new(bin())
        .arg("--no-menu")
        .arg(&src)
        .arg(&dst)
        .arg("0.1")
        .arg(env.log())
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = |what: &str| env.log_text().matches(what).count();
    wait_for(
        Duration::from_secs(10),
        || count("pass finished") >= 1,
        || format!("no pass:\n{}", env.log_text()),
    );
    assert_mirror(&src, &dst);
    // The source root goes away: the error line names it.
    fs::rename(&src, env.path("gone")).unwrap();
    wait_for(
        Duration::from_secs(10),
        || count("unavailable") >= 1,
        || format!("the missing source was not reported:\n{}", env.log_text()),
    );
    kill(child.id(), rustix::process::Signal::TERM);
    let status = wait_child(&mut child, Duration::from_secs(5), "SIGTERM");
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();

    let log = env.log_text();
    assert_one_record_per_line("log file", &log);
    assert_one_record_per_line("console", &stderr);
    assert!(
        log.contains(r"src\n2026-01-01 00:00:00.000 [INFO ] pair 1: removed file important -> "),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(r"src\n2026-01-01") && l.contains("unavailable")),
        "{log}"
    );
}

// --------------------------------------------------------- read-only entries

#[test]
fn read_only_entries_are_replaced_removed_and_mirrored_with_their_modes() {
    let env = fast_env();
    // Source: read-only files and folders that must arrive with these modes.
    env.write("src/ro_file.txt", "read only");
    env.write("src/ro_dir/a.txt", "new a");
    env.write("src/ro_dir/b.txt", "new b");
    env.write("src/ro_dir2/sub/c.txt", "c");
    env.write("src/replace_me.txt", "new content");
    chmod(&env.path("src/ro_file.txt"), 0o444);
    chmod(&env.path("src/ro_dir/a.txt"), 0o400);
    chmod(&env.path("src/ro_dir2/sub/c.txt"), 0o444);
    chmod(&env.path("src/ro_dir2/sub"), 0o555);
    chmod(&env.path("src/ro_dir"), 0o555);
    chmod(&env.path("src/ro_dir2"), 0o500);
    // Replica: read-only entries to be replaced or removed.
    env.write("dst/replace_me.txt", "old content, read only");
    env.write("dst/extra_ro.txt", "extra");
    env.write("dst/extra_ro_dir/f.txt", "f");
    env.write("dst/extra_ro_dir/sub/g.txt", "g");
    env.write("dst/ro_dir/a.txt", "old a, another size");
    env.write("dst/ro_dir/stale.txt", "stale");
    for f in [
        "replace_me.txt",
        "extra_ro.txt",
        "extra_ro_dir/f.txt",
        "extra_ro_dir/sub/g.txt",
        "ro_dir/a.txt",
        "ro_dir/stale.txt",
    ] {
        chmod(&env.path(format!("dst/{f}")), 0o444);
    }
    for d in ["extra_ro_dir/sub", "extra_ro_dir", "ro_dir"] {
        chmod(&env.path(format!("dst/{d}")), 0o555);
    }

    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    let mode = |rel: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(env.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("dst/ro_file.txt"), 0o444);
    assert_eq!(mode("dst/ro_dir/a.txt"), 0o400);
    assert_eq!(mode("dst/ro_dir"), 0o555);
    assert_eq!(mode("dst/ro_dir2"), 0o500);
    assert_eq!(mode("dst/ro_dir2/sub"), 0o555);
    assert!(!env.path("dst/extra_ro_dir").exists());
    assert!(!env.path("dst/extra_ro.txt").exists());

    // A second pass has nothing to do.
    let log_len = env.log_text().len();
    once_quick_ok(&env, &[]);
    assert_mirror(&env.src(), &env.dst());
    let tail = env.log_text()[log_len..].to_string();
    assert!(tail.contains(" 0 copied, 0 updated, 0 touched"), "{tail}");
}

/// Runs `--once` as an ordinary user: as uid/gid 65534 (nobody) after
/// handing the whole env to that user when the tests run as root, as the
/// current user otherwise.
fn once_as_ordinary_user(env: &TestEnv) -> Output {
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let mut cmd = Command::new(bin());
    cmd.arg("--once")
        .arg(env.src())
        .arg(env.dst())
        .arg("1")
        .arg(env.log())
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null());
    if rustix::process::geteuid().is_root() {
        for rel in std::iter::once(Vec::new()).chain(snapshot(env.root()).into_keys()) {
            std::os::unix::fs::lchown(env.root().join(rel_path(&rel)), Some(NOBODY), Some(NOBODY))
                .unwrap();
        }
        cmd.uid(NOBODY).gid(NOBODY);
    }
    run_quick(&mut cmd, Duration::from_secs(60))
}

/// Read-only replica entries, synced by an ordinary user who owns the
/// replica: files inside a read-only replica folder must still be
/// replaced and removed (the owner may make the folder writable for the
/// time it takes, as rsync does).
#[test]
fn read_only_replica_folders_are_fixed_by_an_ordinary_user() {
    let env = fast_env();
    env.write("src/ro_dir/a.txt", "new a");
    env.write("dst/ro_dir/a.txt", "old a, another size");
    env.write("dst/ro_dir/stale.txt", "stale");
    env.write("dst/extra_ro_dir/f.txt", "f");
    for f in ["ro_dir/a.txt", "ro_dir/stale.txt", "extra_ro_dir/f.txt"] {
        chmod(&env.path(format!("dst/{f}")), 0o444);
    }
    chmod(&env.path("dst/ro_dir"), 0o555);
    chmod(&env.path("dst/extra_ro_dir"), 0o555);
    let out = once_as_ordinary_user(&env);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&out.status),
        env.log_text()
    );
    assert_mirror(&env.src(), &env.dst());
}

/// A read-only source folder that the program itself mirrored (it sets the
/// replica folder's mode to 0555 at the end of the pass) must still be
/// updated by the next pass when run by an ordinary user.
#[test]
fn mirrored_read_only_folder_is_updated_by_an_ordinary_user() {
    let env = fast_env();
    env.write("src/ro_dir/a.txt", "first a");
    chmod(&env.path("src/ro_dir/a.txt"), 0o444);
    chmod(&env.path("src/ro_dir"), 0o555);
    let out = once_as_ordinary_user(&env);
    assert!(out.status.success(), "first pass:\n{}", env.log_text());
    assert_mirror(&env.src(), &env.dst());

    chmod(&env.path("src/ro_dir"), 0o755);
    chmod(&env.path("src/ro_dir/a.txt"), 0o644);
    fs::write(env.path("src/ro_dir/a.txt"), "second version of a").unwrap();
    env.write("src/ro_dir/b.txt", "new b");
    chmod(&env.path("src/ro_dir/a.txt"), 0o444);
    chmod(&env.path("src/ro_dir"), 0o555);
    let out = once_as_ordinary_user(&env);
    assert!(
        out.status.success(),
        "second pass: {}\n{}",
        describe(&out.status),
        env.log_text()
    );
    assert_mirror(&env.src(), &env.dst());
}

// ------------------------------------------------------ deep, wide, long

/// Creates `levels` nested folders named `name` below `top` with
/// fd-relative calls (the full path passes PATH_MAX), a file every
/// `every` levels and one at the bottom. Returns the bottom folder's
/// handle.
fn build_chain(top: &Path, name: &str, levels: usize, every: usize) -> OwnedFd {
    let mut fd = rfs::open(
        top,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    for level in 0..levels {
        if level % every == 0 {
            write_at(&fd, &format!("file{level}.txt"), format!("level {level}"));
        }
        rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)).unwrap();
        fd = rfs::openat(
            &fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
    }
    write_at(&fd, "bottom.txt", "the bottom");
    fd
}

fn write_at(dir: &OwnedFd, name: &str, content: impl AsRef<[u8]>) {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    fs::File::from(fd).write_all(content.as_ref()).unwrap();
}

/// Removes a tree of any depth (fd-relative), so the temp dir's own
/// cleanup never meets a path longer than PATH_MAX.
fn remove_deep(path: &Path) {
    let status = Command::new("rm").arg("-rf").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn tree_3000_levels_deep_syncs() {
    raise_nofile();
    let env = fast_env();
    env.write("src/top.txt", "top");
    drop(build_chain(&env.path("src"), "d", 3000, 250));
    let out = once_quick(&env, &[]);
    assert_no_panic(&out);
    assert!(
        out.status.success(),
        "{}: {}",
        describe(&out.status),
        stderr_of(&out).chars().take(2000).collect::<String>()
    );
    assert_fd_mirror(&env.src(), &env.dst());
    let (tree, _) = fd_snapshot(&env.dst());
    let dirs = tree
        .values()
        .filter(|n| matches!(n, Node::Dir { .. }))
        .count();
    assert_eq!(dirs, 3000);
    // And the next pass finds nothing to do.
    let log_len = env.log_text().len();
    once_quick_ok(&env, &[]);
    let tail = env.log_text()[log_len..].to_string();
    assert!(tail.contains(" 0 copied, 0 updated"), "{tail}");
    remove_deep(&env.src());
    remove_deep(&env.dst());
}

/// A pass keeps a folder handle per level of the path it is in, so a tree
/// deeper than the open-file limit cannot be synced whole: it must be
/// reported (EMFILE) and the rest kept consistent, never a crash; and
/// with the limit back, the next pass completes the mirror.
#[test]
fn tree_deeper_than_the_open_file_limit_is_reported_not_crashed() {
    use std::os::unix::process::CommandExt;
    let env = fast_env();
    env.write("src/top.txt", "top");
    drop(build_chain(&env.path("src"), "d", 600, 100));
    let mut cmd = Command::new(bin());
    cmd.arg("--once")
        .arg(env.src())
        .arg(env.dst())
        .arg("1")
        .arg(env.log())
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null());
    // SAFETY: setrlimit is a plain system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = rustix::process::Rlimit {
                current: Some(256),
                maximum: Some(256),
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    let out = run_quick(&mut cmd, Duration::from_secs(60));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out.status));
    let log = env.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("[ERROR]") && l.contains("Too many open files")),
        "EMFILE not reported"
    );
    assert_no_temps(env.root());
    // Every file that did arrive is whole.
    let (src, _) = fd_snapshot(&env.src());
    let (dst, _) = fd_snapshot(&env.dst());
    let mut arrived = 0;
    for (rel, node) in &dst {
        if let Node::File { .. } = node {
            assert_eq!(src.get(rel), Some(node), "{}", short(rel));
            arrived += 1;
        }
    }
    assert!((1..7).contains(&arrived), "{arrived} of 7 files arrived");

    once_quick_ok(&env, &[]);
    assert_fd_mirror(&env.src(), &env.dst());
    remove_deep(&env.src());
    remove_deep(&env.dst());
}

#[test]
fn folder_with_50000_entries_syncs() {
    const N: usize = 50_000;
    let env = fast_env();
    let wide = env.mkdir("src/wide");
    for i in 0..N {
        fs::write(wide.join(format!("f{i:05}")), (i % 7).to_string()).unwrap();
    }
    // -q: 50,000 console lines would double the pass's time; the log file
    // still gets every record.
    let out = once_quick(&env, &["-q"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let count = fs::read_dir(env.path("dst/wide")).unwrap().count();
    assert_eq!(count, N);
    let log = env.log_text();
    assert!(
        log.contains(&format!("{} checked, {N} copied", N + 1)),
        "{}",
        log.lines().last().unwrap_or("")
    );
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn entry_whose_path_exceeds_path_max_still_syncs() {
    let env = fast_env();
    env.write("src/plain.txt", "plain");
    // 20 levels of 250-byte names: the leaf's path is over 5,000 bytes.
    let name = "n".repeat(250);
    let bottom = build_chain(&env.path("src"), &name, 20, 1000);
    write_at(&bottom, &"L".repeat(255), "longest name");
    drop(bottom);
    let out = once_quick(&env, &[]);
    assert_no_panic(&out);
    // fsops works relative to folder handles, so the long path syncs.
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_fd_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("bottom.txt ("))
        .expect("bottom.txt copied");
    assert!(
        line.len() > 4096,
        "the log line does not hold the full path"
    );
    remove_deep(&env.src());
    remove_deep(&env.dst());
}

#[test]
fn a_worker_that_panics_ends_its_pass_with_an_error_and_the_program_stays_usable() {
    let env = TestEnv::new();
    for d in 0..30 {
        for f in 0..20 {
            env.write(format!("src/d{d}/f{f}.txt"), format!("{d} {f}"));
        }
    }
    env.write("src/d17/boom/inside.txt", "the folder that panics");
    for jobs in ["1", "4"] {
        let out = run_with_timeout(
            Command::new(bin())
                .args(["--once", "-j", jobs, "src", "dst", "1", "log.txt"])
                .env("FOLDERSYNC_TEST_PANIC", "boom")
                .current_dir(env.root())
                .env("XDG_STATE_HOME", env.state_home()),
            Duration::from_secs(30),
        );
        let log = env.log_text();
        assert_eq!(
            out.status.code(),
            Some(1),
            "-j {jobs}: {}\n{log}",
            stderr_of(&out)
        );
        assert!(
            log.contains(
                "error internal: a worker of this pass panicked (test panic in folder d17/boom)"
            ),
            "{log}"
        );
    }
    // A daemon goes on after such a pass, and quits when asked.
    let (s, d, l) = (env.src(), env.dst(), env.log());
    let mut session = MenuSession::start_with_env(
        env.root(),
        [
            OsStr::new("--no-menu"),
            s.as_os_str(),
            d.as_os_str(),
            OsStr::new("0.2"),
            l.as_os_str(),
        ],
        &[("FOLDERSYNC_TEST_PANIC", "boom")],
    );
    wait_for(
        Duration::from_secs(30),
        || {
            env.log_text()
                .matches("a worker of this pass panicked")
                .count()
                >= 4
        },
        || {
            format!(
                "the daemon stopped passing after a panic:\n{}",
                env.log_text()
            )
        },
    );
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
