//! What a replica's file system keeps of times, modes and links, learnt
//! by one probe, and how replica metadata is compared accordingly.

use std::os::fd::BorrowedFd;

use crate::cache::Stamp;
use crate::fsops::{self, LinkProbe, LinkTimes, OpError, Time};

/// What a replica file system keeps of what the pass sets, and so how
/// closely replica metadata can be compared with the source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// The finest mtime step kept, in nanoseconds (1: exact; 10^9: whole
    /// seconds, as over sftp). Times closer than this count as equal, as
    /// with rsync's `--modify-window`.
    pub mtime_step_ns: u64,
    /// Permission bits can be set (not on FAT, nor on a share that ignores
    /// chmod).
    pub modes: bool,
    /// Symlinks can be created.
    pub symlinks: bool,
    /// A symlink's own mtime can be set without touching its target.
    pub link_times: bool,
    /// Every symlink target reads back as written. Where not, a replica
    /// link whose target cannot be read is judged by its length.
    pub link_targets: bool,
}

impl Caps {
    /// A file system that keeps everything (local ext4, XFS, btrfs, tmpfs).
    pub const EXACT: Caps = Caps {
        mtime_step_ns: 1,
        modes: true,
        symlinks: true,
        link_times: true,
        link_targets: true,
    };

    /// Whether two mtimes are the same as far as this file system can tell.
    pub fn same_mtime(&self, a: Time, b: Time) -> bool {
        self.same_ns(nanos(a), nanos(b))
    }

    /// Same, for times as wrapping nanoseconds (the cache's stamps).
    pub fn same_ns(&self, a: i64, b: i64) -> bool {
        a == b || a.wrapping_sub(b).unsigned_abs() < self.mtime_step_ns
    }

    /// Whether two modes count as the same: always, where modes cannot be
    /// set.
    pub fn same_mode(&self, a: u32, b: u32) -> bool {
        !self.modes || a == b
    }

    /// Whether a replica link's mtime needs setting: never where link
    /// times cannot be set safely.
    pub fn same_link_mtime(&self, a: Time, b: Time) -> bool {
        !self.link_times || self.same_mtime(a, b)
    }

    /// Whether a replica file still is as a cache stamp recorded it, its
    /// times compared at this file system's step (a share may report a
    /// time it keeps more coarsely than it first said).
    pub fn same_stamp(&self, a: &Stamp, b: &Stamp) -> bool {
        a.size == b.size
            && a.ino == b.ino
            && self.same_ns(a.mtime_ns, b.mtime_ns)
            && self.same_ns(a.ctime_ns, b.ctime_ns)
    }

    /// What the probes found, as capabilities.
    fn from_probes(file: &fsops::FileProbe, links: LinkProbe) -> Caps {
        Caps {
            mtime_step_ns: mtime_step(nanos(file.mtime_set), nanos(file.mtime_read)),
            modes: file.modes,
            symlinks: links.times != LinkTimes::NoSymlinks,
            link_times: links.times == LinkTimes::Kept,
            link_targets: links.targets,
        }
    }

    /// Whether a replica link holds the source link's target: its target
    /// as read (`None` when it could not be), or where targets cannot be
    /// read back, its length (`lstat`'s size).
    pub fn same_link_target(&self, read: Option<&[u8]>, size: u64, target: &[u8]) -> bool {
        match read {
            Some(read) if read == target => true,
            _ => !self.link_targets && size == target.len() as u64,
        }
    }

    /// What the file system cannot hold, one phrase each; empty when it
    /// keeps everything.
    pub fn limits(&self, links: LinkProbe) -> Vec<String> {
        let mut out = Vec::new();
        if self.mtime_step_ns > 1 {
            out.push(format!(
                "no times finer than {} (mtimes are compared to that)",
                show_step(self.mtime_step_ns)
            ));
        }
        if !self.modes {
            out.push("no permission modes (modes are neither set nor compared)".into());
        }
        match links.times {
            LinkTimes::NoSymlinks => {
                out.push("no symlinks (source links are skipped)".into());
            }
            LinkTimes::FollowTheLink => out.push(
                "no symlink times (setting one changes the link's target instead; \
                 link mtimes are left as the server sets them)"
                    .into(),
            ),
            LinkTimes::Unsupported => {
                out.push("no symlink times (link mtimes are left as they are)".into())
            }
            LinkTimes::Kept => {}
        }
        if self.symlinks && !self.link_targets {
            out.push(
                "no reading back of every symlink target (a replica link whose target \
                 cannot be read is judged by its length)"
                    .into(),
            );
        }
        out
    }
}

/// Learns what the file system of an open replica folder can hold, with
/// a temporary file and a dangling temporary link created in it and
/// removed again. Returns the capabilities and what the link probe saw
/// (for the log).
pub fn probe(dir: BorrowedFd<'_>) -> Result<(Caps, LinkProbe), OpError> {
    let file = fsops::probe_file(dir)?;
    let links = fsops::probe_links(dir)?;
    Ok((Caps::from_probes(&file, links), links))
}

/// A time as i64 nanoseconds, wrapping like the cache's stamps.
fn nanos(t: Time) -> i64 {
    t.sec
        .wrapping_mul(1_000_000_000)
        .wrapping_add(i64::from(t.nsec))
}

/// The step a file system keeps times at, from a time set and read back:
/// the smallest usual step (a power of ten of nanoseconds, or FAT's two
/// seconds) larger than the difference.
pub(super) fn mtime_step(set: i64, read: i64) -> u64 {
    let diff = set.wrapping_sub(read).unsigned_abs();
    let mut step = 1u64;
    while step <= diff && step < 1_000_000_000 {
        step *= 10;
    }
    if step <= diff {
        step = 2_000_000_000;
    }
    if step <= diff {
        // Not a step but a clock that drifts or ignores us: compare to the
        // whole seconds the difference spans.
        step = (diff / 1_000_000_000 + 1) * 1_000_000_000;
    }
    step
}

fn show_step(ns: u64) -> String {
    match ns {
        1_000_000_000 => "whole seconds".into(),
        n if n % 1_000_000_000 == 0 => format!("{} s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{} ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{} µs", n / 1_000),
        n => format!("{n} ns"),
    }
}
