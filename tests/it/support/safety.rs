//! Helpers shared by the reliability tests (kill points, model, faults,
//! input fuzzing, stress): a seeded PRNG, a fast temp env, temp-name
//! detection, a tree walker that works below PATH_MAX, log-line checks and a
//! tmpfs mount guard. Used only by those test files; `tests/common` stays
//! the shared harness.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};

use super::{Node, TestEnv, bin};

/// SplitMix64: small, fast, and the same sequence on every machine, so every
/// "random" choice in these tests is reproducible from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A uniform pick from a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A `TestEnv` on a RAM-backed file system (`/dev/shm`) when there is one:
/// the root disk of these machines is mounted with `discard`, which makes
/// creating and deleting many files ten times slower than the program's own
/// work. Falls back to the default temp folder.
#[allow(clippy::unnecessary_cast)] // statfs field types differ by target
pub fn fast_env() -> TestEnv {
    let shm = Path::new("/dev/shm");
    let usable = rfs::statfs(shm).is_ok_and(|s| {
        s.f_type as i64 == 0x0102_1994 /* TMPFS_MAGIC */
            && (s.f_bavail as u64) * (s.f_bsize as u64) > 2 << 30
    }) && rfs::access(shm, rfs::Access::WRITE_OK).is_ok();
    let mut builder = tempfile::Builder::new();
    builder.prefix("fssafety");
    let dir = if usable {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("temp dir");
    fs::create_dir(dir.path().join("src")).expect("mkdir src");
    TestEnv { dir }
}

/// The program's temporary-file naming rules, restated independently of
/// `src/fsops/temp.rs`: `.foldersync-<16 hex digits>.tmp` now, with a
/// two-way pass's tag `.foldersync-<16 hex>-<16 hex>.tmp`, and
/// `.foldersync-<pid>-<n>.tmp` from earlier versions.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name
        .strip_prefix(b".foldersync-")
        .and_then(|r| r.strip_suffix(b".tmp"))
    else {
        return false;
    };
    let hex16 = |s: &[u8]| s.len() == 16 && s.iter().all(u8::is_ascii_hexdigit);
    if hex16(rest)
        || (rest.len() == 33 && rest[16] == b'-' && hex16(&rest[..16]) && hex16(&rest[17..]))
    {
        return true;
    }
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
}

/// Whether a name is a two-way pass's temporary: the tagged form
/// `.foldersync-<16 hex tag>-<16 hex>.tmp`. Other names of a temporary's
/// form in a two-way pair's folders are the user's.
pub fn is_tagged_temp_name(name: &[u8]) -> bool {
    is_temp_name(name) && name.len() == b".foldersync-".len() + 33 + b".tmp".len()
}

/// Every tagged temporary (see [`is_tagged_temp_name`]) below `root`.
pub fn find_tagged_temps(root: &Path) -> Vec<Vec<u8>> {
    find_temps(root)
        .into_iter()
        .filter(|t| is_tagged_temp_name(base_name(t)))
        .collect()
}

/// The last component of a relative path given as bytes.
pub fn base_name(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[i + 1..],
        None => rel,
    }
}

/// Every entry anywhere below `root` whose name looks like one of our
/// temporary files (any kind of entry, so a temp symlink counts too).
/// Works below PATH_MAX (fd-relative walk).
pub fn find_temps(root: &Path) -> Vec<Vec<u8>> {
    let (tree, _) = fd_snapshot_opts(root, false);
    tree.into_keys()
        .filter(|k| is_temp_name(base_name(k)))
        .collect()
}

/// Lossy text of a relative path, for messages.
pub fn show(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

/// Sets an entry's mtime exactly (seconds, nanoseconds) without following a
/// symlink and without touching its atime.
pub fn set_mtime_exact(path: &Path, sec: i64, nsec: u32) {
    let ts = Timestamps {
        last_access: rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: rfs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        },
    };
    rfs::utimensat(rfs::CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// Sets a path's permission bits (follows nothing: for files and folders).
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Raises this process's open-file soft limit to the hard limit (the deep
/// tree walk below keeps a handle per pending level).
pub fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// A tree snapshot: entries (as `common::snapshot`) and folder mtimes (as
/// `common::dir_mtimes`, the root under the empty key).
pub type Tree = (BTreeMap<Vec<u8>, Node>, BTreeMap<Vec<u8>, (i64, i64)>);

/// A folder still to be read: its parent's handle and its name.
struct Pending {
    parent: Arc<OwnedFd>,
    name: CString,
    rel: Vec<u8>,
}

fn open_dir_at(parent: impl AsFd, name: &CStr) -> OwnedFd {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open folder {name:?}: {e}"))
}

/// Like `common::snapshot` plus folder mtimes (like `common::dir_mtimes`,
/// root included under the empty key), but every call is relative to an
/// open folder handle, so it works for trees whose paths exceed PATH_MAX.
pub fn fd_snapshot(root: &Path) -> Tree {
    fd_snapshot_opts(root, true)
}

#[allow(clippy::unnecessary_cast)]
fn fd_snapshot_opts(root: &Path, read_bytes: bool) -> Tree {
    let mut tree = BTreeMap::new();
    let mut mtimes = BTreeMap::new();
    let root_fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", root.display()));
    let st = rfs::fstat(&root_fd).expect("fstat root");
    mtimes.insert(Vec::new(), (st.st_mtime as i64, st.st_mtime_nsec as i64));
    let mut stack: Vec<(Arc<OwnedFd>, Vec<u8>)> = vec![(Arc::new(root_fd), Vec::new())];
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let (dir, rel) = match stack.pop() {
            Some(d) => d,
            None => match pending.pop() {
                Some(p) => {
                    let fd = open_dir_at(p.parent.as_fd(), &p.name);
                    drop(p.parent);
                    (Arc::new(fd), p.rel)
                }
                None => break,
            },
        };
        let mut names = Vec::new();
        for item in rfs::Dir::read_from(dir.as_fd()).expect("read dir") {
            let item = item.expect("dir entry");
            let name = item.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        for name in names {
            let child = if rel.is_empty() {
                name.to_bytes().to_vec()
            } else {
                [&rel[..], b"/", name.to_bytes()].concat()
            };
            let st = rfs::statat(dir.as_fd(), &name, AtFlags::SYMLINK_NOFOLLOW)
                .unwrap_or_else(|e| panic!("stat {}: {e}", show(&child)));
            let mode = (st.st_mode as u32) & 0o7777;
            let node = match FileType::from_raw_mode(st.st_mode as _) {
                FileType::Directory => {
                    mtimes.insert(child.clone(), (st.st_mtime as i64, st.st_mtime_nsec as i64));
                    pending.push(Pending {
                        parent: Arc::clone(&dir),
                        name: name.clone(),
                        rel: child.clone(),
                    });
                    Node::Dir { mode }
                }
                FileType::RegularFile => {
                    let mut bytes = Vec::new();
                    if read_bytes {
                        let fd = rfs::openat(
                            dir.as_fd(),
                            &name,
                            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .unwrap_or_else(|e| panic!("open {}: {e}", show(&child)));
                        fs::File::from(fd)
                            .read_to_end(&mut bytes)
                            .expect("read file");
                    }
                    Node::File {
                        bytes,
                        mode,
                        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
                    }
                }
                FileType::Symlink => Node::Symlink {
                    target: rfs::readlinkat(dir.as_fd(), &name, Vec::new())
                        .expect("readlink")
                        .into_bytes(),
                    mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
                },
                _ => Node::Other,
            };
            tree.insert(child, node);
        }
    }
    (tree, mtimes)
}

/// Asserts that two trees are equal entry by entry (kinds, bytes, modes,
/// file and folder mtimes), working below PATH_MAX. Special files in the
/// source are expected to be absent from the replica.
pub fn assert_fd_mirror(src: &Path, dst: &Path) {
    let (mut want, want_mtimes) = fd_snapshot(src);
    want.retain(|_, n| *n != Node::Other);
    let (got, got_mtimes) = fd_snapshot(dst);
    if want != got {
        let mut report = String::new();
        for (k, v) in &want {
            match got.get(k) {
                None => report += &format!("missing in replica: {}\n", short(k)),
                Some(g) if g != v => report += &format!("differs: {}\n", short(k)),
                _ => {}
            }
        }
        for k in got.keys().filter(|k| !want.contains_key(*k)) {
            report += &format!("extra in replica: {}\n", short(k));
        }
        report.truncate(20_000);
        panic!("replica is not a mirror of the source:\n{report}");
    }
    assert!(want_mtimes == got_mtimes, "folder mtimes differ");
}

/// A long path shortened for a message: its start and end.
pub fn short(rel: &[u8]) -> String {
    let s = show(rel);
    if s.len() <= 200 {
        return s;
    }
    let head: String = s.chars().take(80).collect();
    let tail: String = s
        .chars()
        .rev()
        .take(80)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}...({} bytes)...{tail}", rel.len())
}

/// Whether a log line starts like a record: `YYYY-MM-DD HH:MM:SS.mmm [`.
pub fn is_record_start(line: &str) -> bool {
    let b = line.as_bytes();
    let pattern = b"dddd-dd-dd dd:dd:dd.ddd [";
    b.len() >= pattern.len()
        && pattern.iter().zip(b).all(|(&p, &c)| match p {
            b'd' => c.is_ascii_digit(),
            p => p == c,
        })
}

/// The part of a record after its timestamp: `[INFO ] pair 1: ...`.
pub fn record_body(line: &str) -> &str {
    &line[24..]
}

/// Starts `foldersync --once [extra...] src dst 1 log.txt` in the env root
/// with stdin closed and output discarded (for runs that are killed).
pub fn spawn_once(env: &TestEnv, extra: &[&str]) -> Child {
    Command::new(bin())
        .arg("--once")
        .args(extra)
        .args([
            env.src().as_os_str(),
            env.dst().as_os_str(),
            OsStr::new("1"),
            env.log().as_os_str(),
        ])
        .current_dir(env.root())
        .env("XDG_STATE_HOME", env.state_home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn foldersync")
}

/// Exit status as a short text, for messages.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{status}"),
    }
}

/// Runs `cp -a from to` (copies a tree with modes and mtimes).
pub fn cp_a(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp")
        .success();
    assert!(ok, "cp -a {} {} failed", from.display(), to.display());
}

/// A tmpfs mounted on a folder for the life of the guard; unmounted on drop
/// (lazily, so a test that panics with a file still open cannot leave it
/// mounted).
pub struct TmpfsMount {
    pub dir: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. "2m") on `dir`. The error is the
    /// reason it could not be done (not root, no permission in this
    /// container, no `mount` command).
    pub fn mount(dir: &Path, size: &str) -> Result<TmpfsMount, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not running as root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed ({}): {}",
                describe(&out.status),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TmpfsMount {
            dir: dir.to_owned(),
        })
    }

    /// Changes the size of the mounted tmpfs.
    pub fn remount(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Waits for a child with a hang guard: kills it and panics after `limit`.
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: no exit within {limit:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `rel` as an `OsStr` path.
pub fn rel_path(rel: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(rel))
}

/// Runs a command to its end with stdout and stderr captured; kills it and
/// panics after `limit` (a hang guard). Unlike `common::run_with_timeout`,
/// whose watchdog polls every 50 ms, this returns as soon as the child has
/// exited, which matters for tests that run the binary hundreds of times.
pub fn run_quick(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foldersync");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(_) => {
            kill(pid, rustix::process::Signal::KILL);
            let _ = waiter.join();
            panic!("{cmd:?}: no exit within {limit:?} (hang)");
        }
    };
    waiter.join().unwrap();
    out.expect("wait foldersync")
}

/// Sends a signal to a process this test started.
pub fn kill(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, sig);
}

/// `foldersync --once [extra...] src dst 1 log.txt` in the env root, stdin
/// closed, with a 60 s hang guard.
pub fn once_quick(env: &TestEnv, extra: &[&str]) -> std::process::Output {
    run_quick(
        Command::new(bin())
            .arg("--once")
            .args(extra)
            .args([
                env.src().as_os_str(),
                env.dst().as_os_str(),
                OsStr::new("1"),
                env.log().as_os_str(),
            ])
            .current_dir(env.root())
            .env("XDG_STATE_HOME", env.state_home())
            .stdin(Stdio::null()),
        Duration::from_secs(60),
    )
}

/// Like [`once_quick`], asserting exit status 0.
pub fn once_quick_ok(env: &TestEnv, extra: &[&str]) -> std::process::Output {
    let out = once_quick(env, extra);
    assert!(
        out.status.success(),
        "foldersync --once failed: {}\nstderr:\n{}",
        describe(&out.status),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts that no temporary file of ours is left anywhere below `root`.
pub fn assert_no_temps(root: &Path) {
    let temps: Vec<String> = find_temps(root).iter().map(|t| show(t)).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
}
