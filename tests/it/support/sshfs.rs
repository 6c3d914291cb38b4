//! A real network share for tests: an sshd on 127.0.0.1 (a free port, a
//! throw-away host key and client key in a temp folder) and an sshfs mount
//! of a folder it serves; and a tmpfs mount for the local case. Both are
//! undone on drop. Where a prerequisite is missing the test fails when
//! `CI=true` (CI installs everything, see `.ci/run`) and otherwise says why
//! and is skipped.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long sshd and sshfs may take to come up on a busy CI machine.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Fails the test under CI, where every prerequisite must be there;
/// elsewhere prints why it is skipped. Returns `None` to skip.
pub fn or_skip<T>(what: &str, got: Result<T, String>) -> Option<T> {
    got.map_err(|reason| super::missing_prerequisite(&format!("{what}: {reason}")))
        .ok()
}

/// A child's output, read by a thread as it comes (a pipe nobody reads
/// would block the child).
struct Output {
    text: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Output {
    fn of(from: impl Read + Send + 'static) -> Output {
        let text = Arc::new(Mutex::new(String::new()));
        let into = Arc::clone(&text);
        let reader = thread::spawn(move || {
            let mut from = from;
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    return;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Output {
            text,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

/// A program by name on `PATH` or in the sbin folders (sshd must be run by
/// its absolute path).
fn find_program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` not found (Debian: apt-get install openssh-server sshfs)"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether a mount of type `fstype` sits exactly at `dir`.
pub fn mounted_at(dir: &Path, fstype: &str) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    text.lines().any(|line| {
        let point = line.split(' ').nth(4);
        let kind = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split(' ').next());
        point == Some(&*want) && kind == Some(fstype)
    })
}

/// An sshd serving `server` over sftp, and `server` mounted at `mnt`
/// with sshfs.
pub struct Share {
    /// The served folder, as the server sees it (a local path).
    pub server: PathBuf,
    /// Where it is mounted.
    pub mnt: PathBuf,
    sshd: Child,
    sshd_err: Output,
    sshfs: Option<(Child, Output)>,
    /// How it was mounted, to mount it again.
    how: Option<(PathBuf, String, u16)>,
    // Last: removed after the mount is gone.
    dir: tempfile::TempDir,
}

impl Share {
    /// Starts the server and mounts the share; `Err` says what is missing.
    pub fn start() -> Result<Share, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("/dev/fuse does not exist".into());
        }
        let sshd_bin = find_program("sshd")?;
        let sshfs_bin = find_program("sshfs")?;
        let keygen = find_program("ssh-keygen")?;
        let dir = tempfile::Builder::new()
            .prefix("fsnas")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let root = dir
            .path()
            .canonicalize()
            .map_err(|e| format!("temp dir: {e}"))?;
        for key in ["host_key", "client_key"] {
            run(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(root.join(key)))?;
        }
        fs::copy(root.join("client_key.pub"), root.join("authorized_keys"))
            .map_err(|e| format!("authorized_keys: {e}"))?;
        // sshd's privilege separation folder (it refuses to start as root
        // without it).
        if rustix::process::geteuid().is_root() {
            let _ = fs::create_dir_all("/run/sshd");
        }
        let server = root.join("server");
        let mnt = root.join("mnt");
        for d in [&server, &mnt] {
            fs::create_dir(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        let user = if rustix::process::geteuid().is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").map_err(|_| "USER is not set".to_string())?
        };
        // A port that was free a moment ago; taken meanwhile, try another.
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("free port: {e}"))?
                .port();
            let (sshd, sshd_err) = match start_sshd(&sshd_bin, &root, port) {
                Ok(started) => started,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut share = Share {
                server: server.clone(),
                mnt: mnt.clone(),
                sshd,
                sshd_err,
                sshfs: None,
                how: None,
                dir,
            };
            share.mount(&sshfs_bin, &user, port)?;
            return Ok(share);
        }
        Err(format!("sshd did not start: {last}"))
    }

    /// Unmounts the share and mounts it again: a FUSE mount made anew,
    /// with inode numbers of its own.
    pub fn remount(&mut self) -> Result<(), String> {
        self.unmount();
        let (bin, user, port) = self.how.clone().expect("mounted once");
        self.mount(&bin, &user, port)
    }

    fn mount(&mut self, sshfs_bin: &Path, user: &str, port: u16) -> Result<(), String> {
        self.how = Some((sshfs_bin.to_path_buf(), user.to_string(), port));
        let root = self.server.parent().expect("server folder has a parent");
        let options = format!(
            "IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,\
             port={port},BatchMode=yes,LogLevel=ERROR,ConnectTimeout=10",
            root.join("client_key").display()
        );
        let mut child = Command::new(sshfs_bin)
            .arg("-f")
            .args(["-o", &options])
            .arg(format!("{user}@127.0.0.1:{}", self.server.display()))
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run sshfs: {e}"))?;
        let err = Output::of(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if mounted_at(&self.mnt, "fuse.sshfs") {
                self.sshfs = Some((child, err));
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "sshfs ended ({status}) without mounting: {}\nsshd: {}",
                    err.text().trim(),
                    self.sshd_err.text().trim()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("sshfs did not mount within {START_LIMIT:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts the share (the mountpoint becomes a plain empty folder);
    /// the server keeps running.
    pub fn unmount(&mut self) {
        let Some((mut child, _err)) = self.sshfs.take() else {
            return;
        };
        let fusermount = find_program("fusermount3").or_else(|_| find_program("fusermount"));
        let done = fusermount.is_ok_and(|f| run(Command::new(f).arg("-u").arg(&self.mnt)).is_ok())
            || run(Command::new("umount").arg(&self.mnt)).is_ok();
        if !done {
            let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !mounted_at(&self.mnt, "fuse.sshfs"),
            "{} is still mounted",
            self.mnt.display()
        );
    }
}

fn start_sshd(sshd: &Path, root: &Path, port: u16) -> Result<(Child, Output), String> {
    let config = root.join("sshd_config");
    fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {root}/host_key\n\
             AuthorizedKeysFile {root}/authorized_keys\n\
             PidFile none\n\
             PermitRootLogin yes\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             Subsystem sftp internal-sftp\n",
            root = root.display()
        ),
    )
    .map_err(|e| format!("write sshd_config: {e}"))?;
    let mut child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", sshd.display()))?;
    let err = Output::of(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if err.text().contains("Server listening on") {
            return Ok((child, err));
        }
        if let Ok(Some(status)) = child.try_wait() {
            thread::sleep(Duration::from_millis(50));
            return Err(format!("sshd ended ({status}): {}", err.text().trim()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("sshd did not listen within {START_LIMIT:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.unmount();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        if let Some(reader) = self.sshd_err.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A tmpfs mounted on a folder, unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a small tmpfs on `dir`; `Err` says why that is not possible.
    pub fn mount(dir: &Path) -> Result<Tmpfs, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir))?;
        Ok(Tmpfs {
            dir: dir.to_owned(),
            mounted: true,
        })
    }

    pub fn unmount(&mut self) {
        if self.mounted {
            run(Command::new("umount").arg(&self.dir)).expect("umount tmpfs");
            self.mounted = false;
        }
    }

    /// Mounts a fresh tmpfs on the same folder again.
    pub fn remount(&mut self) {
        self.unmount();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&self.dir))
        .expect("mount tmpfs again");
        self.mounted = true;
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
