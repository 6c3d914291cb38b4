//! Keeps other processes out of a replica while a pair writes it: an
//! advisory `flock` on the replica folder's handle (nothing is added to the
//! replica, and the kernel releases it when the holder dies), plus a shared
//! lock on every folder above it, so a second foldersync whose replica
//! nests inside this one, or around it, is caught too.
//!
//! Inside one process [`crate::daemon::gate`] orders the pairs; this is for two
//! cron runs that overlap, or two daemons given nesting replicas.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// A pair's hold on its replica, kept from pass to pass and released when
/// the pair stops.
#[derive(Default)]
pub struct ReplicaLock {
    held: Mutex<Held>,
    /// The last refusal logged, so a daemon kept out says it once, not
    /// every pass.
    refused: Mutex<Option<String>>,
}

#[derive(Default)]
struct Held {
    /// Shared locks on the folders above the replica.
    ancestors: Vec<OwnedFd>,
    /// The replica folder itself, exclusive (shared for a dry run), with
    /// its device and inode: a replica folder replaced since is locked anew.
    replica: Option<(OwnedFd, (u64, u64))>,
}

impl ReplicaLock {
    /// Locks the folders above `replica` (before the replica folder is
    /// created, when it does not exist yet). `Err` says who holds them.
    pub fn hold_ancestors(&self, replica: &Path) -> Result<(), String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.ancestors.is_empty() {
            return Ok(());
        }
        let mut fds = Vec::new();
        for dir in replica.ancestors().skip(1) {
            if dir.parent().is_none() {
                break; // `/` itself: every replica is below it.
            }
            // A folder above that cannot be opened cannot be locked by
            // anyone else either.
            let Ok(fd) = open_dir(dir) else { continue };
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
        held.ancestors = fds;
        Ok(())
    }

    /// Locks the replica folder `root` (open at `replica`), exclusively, or
    /// shared for a dry run. `Err` says who holds it.
    pub fn hold(&self, root: &OwnedFd, replica: &Path, dry_run: bool) -> Result<(), String> {
        self.hold_ancestors(replica)?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let id = identity(root).map_err(|e| format!("replica {}: {e}", replica.display()))?;
        if held
            .replica
            .as_ref()
            .is_some_and(|(_, locked)| *locked == id)
        {
            return Ok(());
        }
        held.replica = None;
        // Our own handle: the pass's closes at its end, the lock must not.
        let fd = open_dir(replica).map_err(|e| format!("replica {}: {e}", replica.display()))?;
        if identity(&fd).ok() != Some(id) {
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
        held.replica = Some((fd, id));
        Ok(())
    }
}

impl ReplicaLock {
    /// Whether `refusal` differs from the last one said (and remembers it);
    /// `None` clears it once the lock is held.
    pub fn is_news(&self, refusal: Option<&str>) -> bool {
        let mut last = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let news = refusal.is_some() && last.as_deref() != refusal;
        *last = refusal.map(str::to_owned);
        news
    }
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
