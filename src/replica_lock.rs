//! Keeps other processes out of a replica while a pair writes it, in two
//! layers, both advisory `flock`s that the kernel releases when the holder
//! dies:
//!
//! - During a pass, the replica folder's own handle is locked (exclusive;
//!   shared for a dry run) and every folder above it shared, so a second
//!   foldersync whose replica is the same, nests inside it or around it,
//!   even in another container on the same volume, skips its pass. Nothing
//!   is added to the replica, and nothing stays open on it between passes,
//!   so a USB disk can still be unmounted while the daemon waits.
//! - For the pair's whole life, the same locks on small files named after
//!   the folders' paths in a shared lock folder (`/run/lock/foldersync`),
//!   so two daemons given the same replica do not take turns undoing each
//!   other's work, each pass complete and each one wrong.
//!
//! Inside one process [`crate::daemon::gate`] orders the pairs; this is for
//! two cron runs that overlap, or two daemons given nesting replicas.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// A pair's hold on its replica.
#[derive(Default)]
pub struct ReplicaLock {
    /// Locks on the folders themselves, for one pass.
    pass: Mutex<Held>,
    /// Locks on the folders' lock files, for the pair's life.
    claim: Mutex<Held>,
    /// The last refusal logged, so a daemon kept out says it once, not
    /// every pass.
    refused: Mutex<Option<String>>,
}

#[derive(Default)]
struct Held {
    /// Shared locks on the folders above the replica (or their lock
    /// files).
    ancestors: Option<Vec<OwnedFd>>,
    /// The replica folder (or its lock file), exclusive (shared for a dry
    /// run), with its device and inode: a replica folder replaced since is
    /// locked anew.
    replica: Option<(OwnedFd, (u64, u64))>,
}

/// How a folder is locked: its own handle, or its lock file.
#[derive(Clone, Copy)]
enum Layer {
    Folder,
    Claim,
}

impl Layer {
    /// The handle to lock for `dir`; `None` when there is none to take
    /// (a folder that cannot be opened cannot be locked by anyone else
    /// either; no lock folder can be written here).
    fn open(self, dir: &Path) -> Option<OwnedFd> {
        match self {
            Layer::Folder => open_dir(dir).ok(),
            Layer::Claim => open_claim(dir),
        }
    }
}

impl ReplicaLock {
    /// Locks the folders above `replica` (before the replica folder is
    /// created, when it does not exist yet). `Err` says who holds them.
    pub fn hold_ancestors(&self, replica: &Path) -> Result<(), String> {
        lock_ancestors(&self.claim, Layer::Claim, replica)?;
        lock_ancestors(&self.pass, Layer::Folder, replica)
    }

    /// Locks the replica folder `root` (open at `replica`), exclusively, or
    /// shared for a dry run. `Err` says who holds it.
    pub fn hold(&self, root: &OwnedFd, replica: &Path, dry_run: bool) -> Result<(), String> {
        self.hold_ancestors(replica)?;
        let id = identity(root).map_err(|e| format!("replica {}: {e}", replica.display()))?;
        lock_replica(&self.claim, Layer::Claim, replica, None, dry_run)?;
        lock_replica(&self.pass, Layer::Folder, replica, Some(id), dry_run)
    }

    /// Lets go of the folders themselves at the end of a pass, so nothing
    /// stays open on the replica's file system while the pair waits.
    pub fn end_pass(&self) {
        *self.pass.lock().unwrap_or_else(|e| e.into_inner()) = Held::default();
    }

    /// Whether `refusal` differs from the last one said (and remembers it);
    /// `None` clears it once the lock is held.
    pub fn is_news(&self, refusal: Option<&str>) -> bool {
        let mut last = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let news = refusal.is_some() && last.as_deref() != refusal;
        *last = refusal.map(str::to_owned);
        news
    }
}

/// Takes shared locks on the folders above `replica` in `layer`, once.
fn lock_ancestors(held: &Mutex<Held>, layer: Layer, replica: &Path) -> Result<(), String> {
    let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
    if held.ancestors.is_some() {
        return Ok(());
    }
    let mut fds = Vec::new();
    for dir in replica.ancestors().skip(1) {
        if dir.parent().is_none() {
            break; // `/` itself: every replica is below it.
        }
        let Some(fd) = layer.open(dir) else { continue };
        match rfs::flock(&fd, FlockOperation::NonBlockingLockShared) {
            Ok(()) => fds.push(fd),
            Err(Errno::WOULDBLOCK) => {
                return Err(format!(
                    "replica {} lies inside {}, which {} is syncing into",
                    replica.display(),
                    dir.display(),
                    holder(&fd, true)
                ));
            }
            Err(_) => {} // A file system without flock: nothing to see.
        }
    }
    held.ancestors = Some(fds);
    Ok(())
}

/// Locks the replica in `layer`; `id` is the identity of the folder the
/// pass opened, which the locked handle must share.
fn lock_replica(
    held: &Mutex<Held>,
    layer: Layer,
    replica: &Path,
    id: Option<(u64, u64)>,
    dry_run: bool,
) -> Result<(), String> {
    let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, locked)) = &held.replica {
        if id.is_none_or(|id| id == *locked) {
            return Ok(());
        }
    }
    held.replica = None;
    let Some(fd) = layer.open(replica) else {
        return match layer {
            Layer::Claim => Ok(()),
            Layer::Folder => Err(format!("replica {}: cannot be opened", replica.display())),
        };
    };
    let found = identity(&fd).map_err(|e| format!("replica {}: {e}", replica.display()))?;
    if id.is_some_and(|id| id != found) {
        return Err(format!(
            "replica {} was replaced while being opened",
            replica.display()
        ));
    }
    let operation = if dry_run {
        FlockOperation::NonBlockingLockShared
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rfs::flock(&fd, operation) {
        Ok(()) | Err(Errno::NOLCK | Errno::OPNOTSUPP | Errno::INVAL) => {}
        Err(Errno::WOULDBLOCK) => {
            return Err(format!(
                "replica {} is in use by {} (a replica nested inside it or around it, or the same one)",
                replica.display(),
                holder(&fd, false)
            ));
        }
        Err(e) => return Err(format!("replica {}: lock: {e}", replica.display())),
    }
    held.replica = Some((fd, found));
    Ok(())
}

/// The shared folder of lock files: `/run/lock/foldersync`, or one in the
/// temporary folder where `/run/lock` cannot be written.
fn claim_folder() -> Option<&'static Path> {
    static FOLDER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOLDER
        .get_or_init(|| {
            let candidates = [
                PathBuf::from("/run/lock/foldersync"),
                std::env::temp_dir().join("foldersync-locks"),
            ];
            candidates.into_iter().find(|dir| {
                use std::os::unix::fs::PermissionsExt;
                // Everyone's: a lock file is made by whoever comes first.
                if std::fs::create_dir(dir).is_ok() {
                    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
                }
                rfs::access(dir.as_path(), rfs::Access::WRITE_OK).is_ok()
            })
        })
        .as_deref()
}

/// Opens (creating it) the lock file that stands for the folder `dir`: its
/// name is a hash of the path, its content the path, for whoever looks.
fn open_claim(dir: &Path) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = dir.as_os_str().as_bytes();
    // FNV-1a: stable across builds, so every version finds the same file.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let file = claim_folder()?.join(format!("{hash:016x}.lock"));
    let flags = OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rfs::open(
        &file,
        flags | OFlags::RDWR | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .or_else(|_| rfs::open(&file, flags | OFlags::RDONLY, Mode::empty()))
    .ok()?;
    if rfs::fstat(&fd).is_ok_and(|st| st.st_size == 0) {
        let _ = rustix::io::write(&fd, &[bytes, b"\n"].concat());
    }
    Some(fd)
}

fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn identity(fd: &OwnedFd) -> rustix::io::Result<(u64, u64)> {
    let st = rfs::fstat(fd)?;
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Who holds a lock on `fd`'s folder, as far as `/proc/locks` tells:
/// "another foldersync (PID 123)", or "another process". With
/// `writers_only`, only an exclusive holder counts.
fn holder(fd: &OwnedFd, writers_only: bool) -> String {
    let pid = identity(fd).ok().and_then(|(dev, ino)| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        lock_holder(&locks, dev, ino, writers_only)
    });
    match pid {
        Some(pid) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let who = comm.trim();
            if who.is_empty() {
                format!("another process (PID {pid})")
            } else {
                format!("another {who} (PID {pid})")
            }
        }
        None => "another process".into(),
    }
}

/// The PID of a `flock` holder of the file `(dev, ino)` in the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`, the
/// device as hexadecimal major:minor).
fn lock_holder(locks: &str, dev: u64, ino: u64, writers_only: bool) -> Option<u32> {
    let major = rustix::fs::major(dev as _);
    let minor = rustix::fs::minor(dev as _);
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, mode, pid, file) = match fields.as_slice() {
            [_, kind, _, mode, pid, file, ..] => (*kind, *mode, *pid, *file),
            _ => return None,
        };
        if kind != "FLOCK" || (writers_only && mode != "WRITE") {
            return None;
        }
        let mut parts = file.split(':');
        let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
        let min = u32::from_str_radix(parts.next()?, 16).ok()?;
        let i: u64 = parts.next()?.parse().ok()?;
        ((maj, min, i) == (major, minor, ino))
            .then(|| pid.parse().ok())
            .flatten()
            .filter(|&p| p != std::process::id() && p != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let dev = rustix::fs::makedev(0xfd, 1);
        let text = "1: POSIX  ADVISORY  WRITE 11 fd:01:77 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 22 fd:01:77 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 33 fd:01:77 0 EOF\n";
        assert_eq!(lock_holder(text, dev as u64, 77, false), Some(22));
        assert_eq!(lock_holder(text, dev as u64, 77, true), Some(33));
        assert_eq!(lock_holder(text, dev as u64, 78, false), None);
    }

    #[test]
    fn a_second_holder_is_refused_and_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = dir.path().join("r");
        std::fs::create_dir(&replica).expect("mkdir");
        let first = ReplicaLock::default();
        let root = open_dir(&replica).expect("open");
        first.hold(&root, &replica, false).expect("first lock");
        let second = ReplicaLock::default();
        let err = second.hold(&root, &replica, false).unwrap_err();
        assert!(err.contains("is in use by"), "{err}");
        // Nested inside a locked replica: caught on the way down.
        let inner = replica.join("inner");
        std::fs::create_dir(&inner).expect("mkdir");
        let err = ReplicaLock::default().hold_ancestors(&inner).unwrap_err();
        assert!(err.contains("lies inside"), "{err}");
        drop(first);
        second
            .hold(&root, &replica, false)
            .expect("free once dropped");
    }
}
