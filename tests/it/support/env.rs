//! Shared test harness: build trees in temp folders, run the real binary,
//! compare trees byte for byte (mtime and mode included), drive the menu
//! through a pipe.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::wait_for;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_foldersync"))
}

/// A temp folder with `src/`, a `dst/` path (not created) and a `log.txt`
/// path (not created).
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fstest")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("src")).expect("mkdir src");
        TestEnv { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn src(&self) -> PathBuf {
        self.path("src")
    }

    pub fn dst(&self) -> PathBuf {
        self.path("dst")
    }

    pub fn log(&self) -> PathBuf {
        self.path("log.txt")
    }

    /// What the runs of this env get as `XDG_STATE_HOME` (see
    /// [`state_home`]); foldersync keeps its pairs' state in `foldersync/`
    /// below it.
    pub fn state_home(&self) -> PathBuf {
        state_home(self.root())
    }

    /// Writes a file (relative to the env root), creating parent folders.
    pub fn write(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir -p");
        }
        fs::write(&p, content).expect("write file");
        p
    }

    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("mkdir -p");
        p
    }

    pub fn symlink(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir -p");
        }
        symlink(target, &p).expect("symlink");
        p
    }

    /// The log file's text (empty if it does not exist).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Runs the binary with `args` in the env root, with stdin closed.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(
            Command::new(bin())
                .args(args)
                .current_dir(self.root())
                .env("XDG_STATE_HOME", self.state_home())
                .stdin(Stdio::null()),
            Duration::from_secs(60),
        )
    }

    /// `foldersync --once [extra...] src dst 1 log.txt`.
    pub fn once(&self, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![OsStr::new("--once")];
        args.extend(extra.iter().map(OsStr::new));
        let (s, d, l) = (self.src(), self.dst(), self.log());
        args.extend([s.as_os_str(), d.as_os_str(), OsStr::new("1"), l.as_os_str()]);
        self.run(args)
    }

    /// Like [`once`], asserting exit status 0.
    pub fn once_ok(&self, extra: &[&str]) -> Output {
        let out = self.once(extra);
        assert!(
            out.status.success(),
            "foldersync --once failed: {}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.state_home());
    }
}

/// The `XDG_STATE_HOME` of the runs in folder `dir`: beside it, not in it
/// (tests compare the env's tree before and after a run), so runs never
/// write to the real home nor share a pair's state with another test.
/// Removed with the [`TestEnv`].
pub fn state_home(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".state");
    dir.with_file_name(name)
}

/// Runs a command, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foldersync");
    let id = child.id();
    let done = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&done);
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if *flag.lock().unwrap() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        unsafe_kill(id);
    });
    let out = child.wait_with_output().expect("wait foldersync");
    *done.lock().unwrap() = true;
    watchdog.join().unwrap();
    out
}

fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// Sends a signal (by name, e.g. "INT", "TERM", "KILL") to a process.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// One entry of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        bytes: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Symlink {
        target: Vec<u8>,
        mtime: (i64, i64),
    },
    Other,
}

/// Every entry below `root` (not following symlinks), keyed by relative
/// path bytes. Folder mtimes are left out (see [`dir_mtimes`]).
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    try_snapshot(root).unwrap_or_else(|e| panic!("snapshot of {}: {e}", root.display()))
}

/// [`snapshot`] of a tree that may be changing (a daemon still syncing
/// it): `Err` when an entry went away between its listing and its read,
/// so a poll can look again instead of failing.
pub fn try_snapshot(root: &Path) -> std::io::Result<BTreeMap<Vec<u8>, Node>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let child_rel = rel.join(entry.file_name());
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if ft.is_dir() {
                stack.push(child_rel.clone());
                Node::Dir { mode }
            } else if ft.is_file() {
                Node::File {
                    bytes: fs::read(&path)?,
                    mode,
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                }
            } else if ft.is_symlink() {
                Node::Symlink {
                    target: fs::read_link(&path)?.as_os_str().as_bytes().to_vec(),
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                }
            } else {
                Node::Other
            };
            out.insert(child_rel.as_os_str().as_bytes().to_vec(), node);
        }
    }
    Ok(out)
}

/// Every folder's mtime below and including `root`.
pub fn dir_mtimes(root: &Path) -> BTreeMap<Vec<u8>, (i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let meta = fs::symlink_metadata(&dir).expect("lstat dir");
        out.insert(
            rel.as_os_str().as_bytes().to_vec(),
            (meta.mtime(), meta.mtime_nsec()),
        );
        for entry in fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_dir() {
                stack.push(rel.join(entry.file_name()));
            }
        }
    }
    out
}

/// Asserts that `dst` is an exact mirror of `src`: same folders, files
/// (bytes, mode, mtime), symlinks, folder modes and folder mtimes. Special
/// files in the source are expected to be absent from the replica.
pub fn assert_mirror(src: &Path, dst: &Path) {
    let mut want = snapshot(src);
    want.retain(|_, n| *n != Node::Other);
    let got = snapshot(dst);
    if want != got {
        let mut report = String::new();
        for (k, v) in &want {
            match got.get(k) {
                None => report += &format!("missing in replica: {}\n", show(k)),
                Some(g) if g != v => {
                    report += &format!("differs: {} want {} got {}\n", show(k), brief(v), brief(g))
                }
                _ => {}
            }
        }
        for k in got.keys().filter(|k| !want.contains_key(*k)) {
            report += &format!("extra in replica: {}\n", show(k));
        }
        panic!("replica is not a mirror of the source:\n{report}");
    }
    assert_eq!(dir_mtimes(src), dir_mtimes(dst), "folder mtimes differ");
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

fn brief(n: &Node) -> String {
    match n {
        Node::File { bytes, mode, mtime } => {
            format!(
                "file({} bytes, mode {mode:o}, mtime {}.{:09})",
                bytes.len(),
                mtime.0,
                mtime.1
            )
        }
        other => format!("{other:?}"),
    }
}

/// Sets a path's mtime (not following symlinks) with `touch -h -d`.
pub fn set_mtime(path: &Path, date: &str) {
    let status = Command::new("touch")
        .args(["-h", "-d", date])
        .arg(path)
        .status()
        .expect("touch");
    assert!(status.success());
}

/// A time well in the past, so cache entries are not racy.
pub fn past() -> &'static str {
    "2020-01-02 03:04:05.123456789"
}

/// The seconds since the epoch of a file's mtime.
pub fn mtime_of(path: &Path) -> SystemTime {
    fs::symlink_metadata(path)
        .expect("lstat")
        .modified()
        .expect("mtime")
}

/// A running foldersync with its menu on a pipe.
pub struct MenuSession {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl MenuSession {
    /// Starts foldersync with `args` in `dir`, stdin, stdout and stderr on
    /// pipes.
    pub fn start<I, S>(dir: &Path, args: I) -> MenuSession
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::start_with_env(dir, args, &[])
    }

    /// Like [`MenuSession::start`], with extra environment variables.
    pub fn start_with_env<I, S>(dir: &Path, args: I, env: &[(&str, &str)]) -> MenuSession
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::start_under(dir, &[], args, env)
    }

    /// Like [`MenuSession::start_with_env`], with a command `prefix` (such
    /// as `unshare ...`) in front, which must exec foldersync: the child
    /// is then foldersync itself, for signals.
    pub fn start_under<I, S>(
        dir: &Path,
        prefix: &[OsString],
        args: I,
        env: &[(&str, &str)],
    ) -> MenuSession
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .args(args)
            .env("XDG_STATE_HOME", state_home(dir))
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn foldersync");
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            pump(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            pump(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        MenuSession {
            child,
            stdin,
            stdout,
            stderr,
            readers,
        }
    }

    /// Types one line into the menu.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(line.as_bytes()).expect("write stdin");
        stdin.write_all(b"\n").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stdout contains `text` `count` times in all; panics after
    /// `limit` with what was seen.
    pub fn wait_stdout(&self, text: &str, count: usize, limit: Duration) {
        wait_for(
            limit,
            || self.stdout().matches(text).count() >= count,
            || {
                format!(
                    "stdout never had {count}x {text:?}:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                )
            },
        );
    }

    /// Waits until stderr contains `text` `count` times in all.
    pub fn wait_stderr(&self, text: &str, count: usize, limit: Duration) {
        wait_for(
            limit,
            || self.stderr().matches(text).count() >= count,
            || format!("stderr never had {count}x {text:?}:\n{}", self.stderr()),
        );
    }

    /// Waits for the process to exit; kills it and panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    r.join().unwrap();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "foldersync did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for MenuSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}
