//! Running under systemd (issue 25): the notify messages, captured on a
//! datagram socket passed in `NOTIFY_SOCKET`, and the journal's priority
//! prefixes when `JOURNAL_STREAM` names stderr.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::*;

/// Every message that arrives on `socket`, gathered by a thread until the
/// socket is shut down.
fn gather(socket: UnixDatagram) -> (Arc<Mutex<Vec<String>>>, thread::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&got);
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Arc::strong_count(&into) == 1 {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    (got, reader)
}

#[test]
fn notify_says_ready_status_after_each_pass_watchdog_and_stopping() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let sockets = tempfile::tempdir().unwrap();
    let path = sockets.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let (got, reader) = gather(socket);
    let run = Runtime::new();
    let mut env_vars = run.env().to_vec();
    let path_text = path.to_str().unwrap().to_string();
    env_vars.push(("NOTIFY_SOCKET", &path_text));
    env_vars.push(("WATCHDOG_USEC", "200000"));
    let mut session = MenuSession::start_with_env(
        env.root(),
        ["--no-menu", "src", "dst", "3600", "log.txt"],
        &env_vars,
    );
    let seen = |want: &str| got.lock().unwrap().iter().any(|m| m.contains(want));
    let all = || got.lock().unwrap().join("|");
    wait_for(
        PATIENCE,
        || seen("READY=1"),
        || format!("no READY=1: {}", all()),
    );
    wait_for(
        PATIENCE,
        || {
            seen(
                "STATUS=1 of 1 pairs running, 0 syncing, 0 with errors, 0 deletions held; last good pass",
            )
        },
        || format!("no status after the first pass: {}", all()),
    );
    wait_for(
        PATIENCE,
        || seen("WATCHDOG=1"),
        || format!("no WATCHDOG=1: {}", all()),
    );
    // A second pass: a second status.
    let statuses = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("STATUS=1 of 1"))
            .count()
    };
    let before = statuses();
    run.wait_socket();
    run.ctl_ok(&["sync", "1"]);
    wait_for(
        PATIENCE,
        || statuses() > before,
        || format!("no status after pass 2: {}", all()),
    );
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
    assert!(seen("STOPPING=1"), "{}", all());
    let messages = got.lock().unwrap().clone();
    let ready = messages.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = messages
        .iter()
        .position(|m| m.contains("STOPPING=1"))
        .unwrap();
    assert!(
        ready < stopping && stopping == messages.len() - 1,
        "{messages:?}"
    );
    drop(got);
    reader.join().unwrap();
}

#[test]
fn on_the_journal_lines_carry_priorities_and_no_time() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("dst/extra.txt", "x");
    let elsewhere = tempfile::tempdir().unwrap();
    let stderr_path = elsewhere.path().join("stderr.txt");
    let stderr = File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let out = Command::new(bin())
        .args(["--once", "--max-delete", "0", "src", "dst", "1", "log.txt"])
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .status()
        .unwrap();
    let text = fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(out.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("<6>pair 1: started: ")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("<3>pair 1: ")), "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with('<') && !l.contains(" [INFO ] ")),
        "{text}"
    );
    // Another stderr than the journal's: the usual lines.
    let out = Command::new(bin())
        .args(["--once", "src", "dst", "1", "log.txt"])
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stderr_of(&out);
    assert!(text.contains(" [INFO ] pair 1: started: "), "{text}");
    assert!(!text.contains("<6>"), "{text}");
}
