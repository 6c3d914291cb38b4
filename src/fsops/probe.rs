//! What a folder's file system keeps, found out by trying it on files and
//! links of our own.

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{self as rfs, Mode};

use super::*;

/// The device a file or folder is on (`st_dev`), to notice a root that
/// moved to another file system between passes (an unmounted share).
pub fn device(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rfs::fstat(fd)?.st_dev)
}

/// What a probe file in a folder showed about its file system.
pub struct FileProbe {
    /// The mtime set on the probe file, and what a stat read back.
    pub mtime_set: Time,
    pub mtime_read: Time,
    /// Whether a chmod was kept; `false` when it failed or was ignored.
    pub modes: bool,
}

/// An mtime with every sub-second digit set and an odd second, so a file
/// system that keeps less (whole seconds, FAT's two) shows it.
const PROBE_MTIME: Time = Time {
    sec: 1_000_000_001,
    nsec: 123_456_789,
};

/// Learns what a folder's file system keeps of a file's mtime and mode:
/// creates a temporary file there, sets both, stats it by name (as a
/// listing does) and removes it.
pub fn probe_file(dir: BorrowedFd<'_>) -> Result<FileProbe, OpError> {
    let (fd, name) = create_named(dir)?;
    let result = (|| {
        rfs::futimens(&fd, &times(PROBE_MTIME)).op("probe: set mtime")?;
        const MODE: u32 = 0o604;
        let chmod_ok = rfs::fchmod(&fd, Mode::from_raw_mode(MODE)).is_ok();
        let read = stat_at(dir, &name).op("probe: stat")?;
        Ok(FileProbe {
            mtime_set: PROBE_MTIME,
            mtime_read: read.mtime,
            modes: chmod_ok && read.mode == MODE,
        })
    })();
    drop(fd);
    let removed = remove_file(dir, &name).map_err(|e| OpError {
        op: "probe: remove temporary file",
        err: e.err,
    });
    let probe = result?;
    removed?;
    Ok(probe)
}

/// What a folder's file system does with a symlink's own time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTimes {
    /// Set on the link itself, as asked.
    Kept,
    /// Not possible there (the call fails or changes nothing).
    Unsupported,
    /// Applied to the link's target instead (sshfs): setting one would
    /// write outside the replica.
    FollowTheLink,
    /// The file system holds no symlinks at all.
    NoSymlinks,
}

/// What a probe link in a folder showed about its file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProbe {
    pub times: LinkTimes,
    /// An absolute link target reads back as written (Debian's sshfs
    /// refuses to show targets that are absolute or hold `..`, others
    /// rewrite them).
    pub targets: bool,
}

/// Learns how a folder's file system treats symlinks: makes a dangling
/// link of ours there (a temporary name, pointing at an absolute path
/// under another temporary name that does not exist), reads its target
/// back and sets its time without following it. A file system that
/// follows the link anyway fails with ENOENT; nothing outside is touched,
/// since there is no target. The link is removed afterwards.
pub fn probe_links(dir: BorrowedFd<'_>) -> Result<LinkProbe, OpError> {
    use rustix::io::Errno;
    let target = CString::new(format!("/{}/missing", random_name().to_string_lossy()))
        .expect("temp name has no NUL byte");
    let name = loop {
        let name = random_name();
        match rfs::symlinkat(&target, dir, &name) {
            Ok(()) => break name,
            Err(Errno::EXIST) => continue,
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {
                return Ok(LinkProbe {
                    times: LinkTimes::NoSymlinks,
                    targets: false,
                });
            }
            Err(e) => return Err(e).op("probe: create link"),
        }
    };
    let targets = read_link(dir, &name).is_ok_and(|t| t == target);
    let times = match set_link_mtime(dir, &name, PROBE_MTIME) {
        Err(e) if e.err.kind() == io::ErrorKind::NotFound => Ok(LinkTimes::FollowTheLink),
        Err(e)
            if matches!(
                e.err.raw_os_error().map(Errno::from_raw_os_error),
                Some(Errno::OPNOTSUPP | Errno::NOSYS | Errno::PERM | Errno::INVAL)
            ) =>
        {
            Ok(LinkTimes::Unsupported)
        }
        Err(e) => Err(e),
        // Accepted: did it take? (Read back to the second, the coarsest
        // any file system with symlinks keeps.)
        Ok(()) => stat_at(dir, &name).op("probe: stat link").map(|m| {
            match m.mtime.sec == PROBE_MTIME.sec {
                true => LinkTimes::Kept,
                false => LinkTimes::Unsupported,
            }
        }),
    };
    let removed = remove_file(dir, &name).map_err(|e| OpError {
        op: "probe: remove temporary link",
        err: e.err,
    });
    let times = times?;
    removed?;
    Ok(LinkProbe { times, targets })
}
