//! Input and signals a hostile or careless user can throw at foldersync:
//! pairs files that are not files, intervals below a millisecond, sources on
//! kernel pseudo file systems, a closed terminal (SIGHUP).

use std::ffi::OsStr;
use std::fs;
use std::time::Duration;

use crate::support::*;

#[test]
fn pairs_file_that_is_a_device_a_fifo_a_folder_or_huge_is_refused() {
    let env = TestEnv::new();
    // Endless: read whole, it ate 2 GB in 5 s.
    assert_refused(
        &env,
        &["--once", "--pairs", "/dev/zero"],
        "pairs file /dev/zero: not a regular file",
    );
    // No writer: reading it hung forever.
    let fifo = env.path("pairs.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    assert_refused(
        &env,
        &["--once", "--pairs", "pairs.fifo"],
        "pairs file pairs.fifo: not a regular file",
    );
    env.mkdir("pairs.d");
    assert_refused(
        &env,
        &["--once", "--pairs", "pairs.d"],
        "pairs file pairs.d: is a folder",
    );
    let line = "# a comment line, repeated until the file is over a mebibyte\n";
    env.write("huge.pairs", line.repeat((1 << 20) / line.len() + 1));
    assert_refused(
        &env,
        &["--once", "--pairs", "huge.pairs"],
        "too big for a pairs file (at most 1 MiB)",
    );
}

#[test]
fn interval_below_a_millisecond_is_refused_like_zero() {
    let env = TestEnv::new();
    env.mkdir("src");
    for interval in ["0.0009", "0.0000001", "1e-9"] {
        assert_refused(
            &env,
            &["--once", "src", "dst", interval, "log.txt"],
            "is shorter than a millisecond",
        );
    }
}

#[test]
fn source_on_procfs_or_sysfs_is_refused() {
    let env = TestEnv::new();
    for (source, kind) in [("/proc/self", "procfs"), ("/sys/kernel", "sysfs")] {
        assert_refused(
            &env,
            &["--once", source, "dst", "10", "log.txt"],
            &format!("is on {kind}"),
        );
    }
}

#[test]
fn hangup_quits_safely_like_sigterm() {
    let env = TestEnv::new();
    // Big enough that the pass is still copying when the hangup comes.
    for i in 0..40 {
        env.write(format!("src/f{i}.bin"), vec![i as u8; 4 << 20]);
    }
    let (s, d, l) = (env.src(), env.dst(), env.log());
    let mut session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            OsStr::new("--jobs"),
            OsStr::new("1"),
            s.as_os_str(),
            d.as_os_str(),
            OsStr::new("3600"),
            l.as_os_str(),
        ],
    );
    wait_log(&l, "copied f", 1);
    signal(session.child.id(), "HUP");
    let status = session.wait_exit(Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(0),
        "a hangup must quit safely:\n{}",
        session.stderr()
    );
    let log = env.log_text();
    assert_action(&log, 1, "stopped");
    assert!(
        temp_files(&d).is_empty(),
        "temporary files left: {:?}",
        temp_files(&d)
    );
    // Whatever was copied is whole.
    for entry in fs::read_dir(&d).expect("replica") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        assert_eq!(
            fs::read(&path).expect("replica file"),
            fs::read(s.join(&name)).expect("source file"),
            "{}",
            path.display()
        );
    }
}

/// A distinct 4 MiB content for file `i` of kind `k`, big enough that
/// copies are still in flight when others start.
fn content(k: u8, i: usize) -> Vec<u8> {
    let mut bytes = vec![k; 4 << 20];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    bytes
}

#[test]
fn source_files_named_like_our_temporaries_are_copied_exactly_even_as_pid_1() {
    let env = TestEnv::new();
    for i in 0..40 {
        // As PID 1 (a container), these were the very names of the
        // program's own temporaries: old-style and new-style alike.
        env.write(format!("src/.foldersync-1-{i}.tmp"), content(1, i));
        env.write(format!("src/{i:02}.data"), content(2, i));
    }
    env.write("src/.foldersync-0123456789abcdef.tmp", "random form");
    let probe = std::process::Command::new("unshare")
        .args(["-pf", "--mount-proc", "true"])
        .status();
    let prefix: Vec<&str> = if probe.is_ok_and(|s| s.success()) {
        vec!["unshare", "-pf", "--mount-proc"]
    } else {
        missing_prerequisite("unshare -pf --mount-proc (root) to run foldersync as PID 1");
        return;
    };
    for round in 0..3 {
        let _ = fs::remove_dir_all(env.dst());
        let mut args: Vec<std::ffi::OsString> = prefix.iter().map(Into::into).collect();
        args.push(bin().into());
        for a in ["--once", "-j", "8", "src", "dst", "10", "log.txt"] {
            args.push(a.into());
        }
        let mut cmd = std::process::Command::new(&args[0]);
        cmd.args(&args[1..])
            .current_dir(env.root())
            .env("XDG_STATE_HOME", env.state_home())
            .stdin(std::process::Stdio::null());
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            stderr_of(&out)
        );
        assert_mirror(&env.src(), &env.dst());
        // A second pass changes nothing: a user's file is never taken for
        // a stale temporary of ours.
        let second = env.once_ok(&[]);
        let err = stderr_of(&second);
        assert!(!err.contains("removed"), "round {round}: {err}");
        assert_mirror(&env.src(), &env.dst());
    }
}
