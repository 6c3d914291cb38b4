//! What a pair learns about the file systems under its roots and keeps
//! across passes: the device each root was on (so an unmounted share is
//! noticed, not refilled on the local disk) and what the replica's file
//! system can hold (so a NAS mount with whole-second times is not
//! "touched" in full on every pass).
//!
//! The worker owns a [`Mounts`] for the life of the pair and hands it to
//! each pass through its context.

use std::fmt;
use std::os::fd::BorrowedFd;

use crate::cache::Stamp;
use crate::fsops::{self, LinkProbe, LinkTimes, OpError, Time};
use crate::state::RootRecord;

/// What a pair remembers between passes (and, through
/// [`crate::state`], across restarts: the roots' devices).
#[derive(Default)]
pub struct Mounts {
    /// Where the replica root was at its first good pass.
    pub replica: RootWatch,
    /// Where the source root was at its first good pass.
    pub source: RootWatch,
    /// The user confirmed that the roots moved (menu, `--new-device`): the
    /// next pass takes the devices it finds, and a good pass remembers
    /// them.
    pub accept_new: bool,
    /// Why this pass refused a root's device, for the pair's status;
    /// cleared by the worker before each pass.
    pub refused: Option<String>,
    /// The source's device as this walk found it, remembered if it ends
    /// well.
    source_dev: Option<u64>,
    /// Devices accepted in this walk, for the log.
    accepted: Vec<String>,
    /// What the replica's file system keeps; `None` until a probe worked.
    pub caps: Option<Caps>,
    /// The replica's file system type (`/proc/self/mountinfo`), looked up
    /// at the first pass and after a remount.
    pub replica_fstype: Option<String>,
}

impl Mounts {
    /// How replica metadata is compared: as probed, or exactly until then.
    pub fn caps(&self) -> Caps {
        self.caps.unwrap_or(Caps::EXACT)
    }

    /// Whether the replica is reached over a network, where every call
    /// waits for a server and more of them in flight pay.
    pub fn replica_on_network(&self) -> bool {
        self.replica_fstype.as_deref().is_some_and(is_network)
    }

    /// A pair's memory as kept in its state by earlier runs.
    pub fn restore(records: &[RootRecord]) -> Mounts {
        let mut mounts = Mounts::default();
        for r in records {
            let mount = match (&r.fstype, &r.mount_source) {
                (Some(fstype), Some(source)) => Some(MountInfo {
                    fstype: fstype.clone(),
                    source: source.clone(),
                }),
                _ => None,
            };
            let watch = RootWatch {
                seen: Some(Seen { dev: r.dev, mount }),
            };
            match r.side.as_str() {
                SOURCE => mounts.source = watch,
                REPLICA => mounts.replica = watch,
                // A later version's side (two-way sync): not ours.
                _ => {}
            }
        }
        mounts
    }

    /// What to keep in the pair's state: the roots remembered so far.
    pub fn records(&self) -> Vec<RootRecord> {
        [(SOURCE, &self.source), (REPLICA, &self.replica)]
            .into_iter()
            .filter_map(|(side, watch)| {
                let seen = watch.seen.as_ref()?;
                Some(RootRecord {
                    side: side.into(),
                    dev: seen.dev,
                    fstype: seen.mount.as_ref().map(|m| m.fstype.clone()),
                    mount_source: seen.mount.as_ref().map(|m| m.source.clone()),
                })
            })
            .collect()
    }

    /// Checks the open source root, on device `dev`, against its first
    /// good pass. `Err` says why the pass must not run.
    pub fn check_source(&mut self, dev: u64) -> Result<(), String> {
        // The first check of a walk: what an earlier one found is stale.
        self.source_dev = None;
        self.accepted.clear();
        match self.source.check(dev) {
            Ok(_) => {}
            Err(change) if self.accept_new => self.accepted.push(change.accepted("source")),
            Err(change) => return Err(self.refuse("source", change)),
        }
        self.source_dev = Some(dev);
        Ok(())
    }

    /// Whether a missing replica root, whose parent folder is on
    /// `parent_dev`, may be created (see [`RootWatch::check_missing`]); a
    /// change the user confirmed is.
    pub fn check_replica_missing(&mut self, parent_dev: Option<u64>) -> Result<(), String> {
        match self.replica.check_missing(parent_dev) {
            Ok(()) => Ok(()),
            Err(change) if self.accept_new => {
                self.accepted.push(change.accepted("replica"));
                Ok(())
            }
            Err(change) => Err(self.refuse("replica", change)),
        }
    }

    /// What the user is told once the pass takes devices they confirmed:
    /// one line per root, then none until they confirm again.
    pub fn take_accepted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.accepted)
    }

    /// After a good walk: remembers where the roots were (the replica's
    /// device when it was open), and ends a confirmation.
    pub fn passed(&mut self, replica_dev: Option<u64>) {
        if let Some(dev) = replica_dev {
            self.replica.remember(dev);
        }
        if let Some(dev) = self.source_dev.take() {
            self.source.remember(dev);
        }
        self.accept_new = false;
    }

    /// Records a refusal for the pair's status; returns the message.
    fn refuse(&mut self, side: &str, change: RootChange) -> String {
        self.refused = Some(format!(
            "{side} folder {}",
            match change {
                RootChange::Missing => "missing",
                RootChange::OtherDevice { .. } => "on another device",
            }
        ));
        change.to_string()
    }
}

/// The sides of a one-way pair, as the state names them.
const SOURCE: &str = "source";
const REPLICA: &str = "replica";

/// What [`Mounts::check_replica`] found.
pub struct Replica {
    /// The device the root is on, to remember after a good pass.
    pub dev: u64,
    /// How to compare replica metadata in this pass.
    pub caps: Caps,
    /// What to tell the user.
    pub notes: Vec<Note>,
}

/// Something a replica check found worth a log line.
pub enum Note {
    /// What the file system cannot hold, learnt just now (so said once
    /// per pair): "is on a file system (fuse.sshfs) that keeps ...".
    Limits(String),
    /// The share was mounted again, under a new device number.
    Remounted,
    /// The probe failed; metadata is compared exactly, and the probe
    /// tried again next pass.
    Unprobed(OpError),
}

impl Mounts {
    /// Checks that an open replica root is on the file system it was on at
    /// earlier passes, and the first time (when `probe` allows writing a
    /// temporary file and link there: not in a dry run) learns what that
    /// file system keeps. `Err` says why the pass must not run.
    pub fn check_replica(&mut self, root: BorrowedFd<'_>, probe: bool) -> Result<Replica, String> {
        let dev = fsops::device(root).map_err(|e| format!("unavailable: {e}"))?;
        let mut notes = Vec::new();
        let (remounted, moved) = match self.replica.check(dev) {
            Ok(remounted) => (remounted, false),
            Err(change) if self.accept_new => {
                self.accepted.push(change.accepted("replica"));
                // Another file system: learn what it keeps.
                self.caps = None;
                (false, true)
            }
            Err(change) => return Err(self.refuse("replica", change)),
        };
        if remounted {
            notes.push(Note::Remounted);
        }
        if remounted || moved || self.replica_fstype.is_none() {
            self.replica_fstype = mount_of(dev).map(|m| m.fstype);
        }
        if self.caps.is_none() && probe {
            match self::probe(root) {
                Ok((caps, links)) => {
                    self.caps = Some(caps);
                    let limits = caps.limits(links);
                    if !limits.is_empty() {
                        notes.push(Note::Limits(format!(
                            "is on a file system ({}) that keeps {}; the replica is exact in \
                             everything else",
                            self.replica_fstype.as_deref().unwrap_or("of unknown type"),
                            limits.join(", ")
                        )));
                    }
                }
                Err(e) => notes.push(Note::Unprobed(e)),
            }
        }
        Ok(Replica {
            dev,
            caps: self.caps(),
            notes,
        })
    }
}

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
fn mtime_step(set: i64, read: i64) -> u64 {
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

/// A mounted file system as `/proc/self/mountinfo` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// `ext4`, `tmpfs`, `fuse.sshfs`, `nfs4`, `cifs`...
    pub fstype: String,
    /// What was mounted: a device, `user@host:/path`, `//server/share`.
    pub source: String,
}

/// The file system mounted with device number `dev`, if the kernel lists
/// one (bind mounts of it share its type and source).
pub fn mount_of(dev: u64) -> Option<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = format!(
        "{}:{}",
        rustix::fs::major(dev as _),
        rustix::fs::minor(dev as _)
    );
    text.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != want {
            return None;
        }
        let (_, rest) = line.split_once(" - ")?;
        let mut rest = rest.split(' ');
        Some(MountInfo {
            fstype: rest.next()?.to_string(),
            source: rest.next()?.to_string(),
        })
    })
}

/// Whether a file system type is reached over a network, where every
/// call waits for a server and more calls in flight pay.
pub fn is_network(fstype: &str) -> bool {
    matches!(
        fstype,
        "nfs" | "nfs4" | "cifs" | "smb3" | "smbfs" | "9p" | "ceph" | "afs" | "glusterfs"
    ) || fstype.starts_with("fuse.sshfs")
        || fstype.starts_with("fuse.rclone")
}

/// One root of a pair (replica, or source) as it was at the pair's first
/// good pass: on which device, and which mount that was. A root that was
/// there and is now missing, or now sits on another file system, is far
/// more often an unmounted share (the mountpoint left as a plain folder)
/// than a move the user meant, so the pass refuses it instead of filling
/// the local disk.
#[derive(Default)]
pub struct RootWatch {
    seen: Option<Seen>,
}

struct Seen {
    dev: u64,
    mount: Option<MountInfo>,
}

/// Why a root may not be used in this pass.
#[derive(Debug)]
pub enum RootChange {
    /// It was there at an earlier pass and is gone.
    Missing,
    /// It is on another file system than at its first good pass.
    OtherDevice { before: String, now: String },
}

impl RootChange {
    /// What changed, without the advice (for a change the user confirmed).
    fn what(&self) -> String {
        match self {
            RootChange::Missing => "was there at an earlier pass and is now missing".into(),
            RootChange::OtherDevice { before, now } => {
                format!("is now on another file system ({now}) than at an earlier pass ({before})")
            }
        }
    }

    /// The log line of a change the user confirmed.
    fn accepted(&self, side: &str) -> String {
        format!(
            "{side} folder {}: taken as confirmed, and remembered from this pass on",
            self.what()
        )
    }
}

impl fmt::Display for RootChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (an unmounted share or disk?): nothing created, copied or deleted in this \
             pass. Once it is back, the next pass syncs as usual; if the change is meant, \
             confirm with menu option 7 (Accept a pair's new device) or run with --new-device",
            self.what()
        )
    }
}

impl RootWatch {
    /// Whether a root that cannot be found may be created: when no earlier
    /// pass saw it, or when its parent folder, on `parent_dev`, is on the
    /// file system the root was on (the folder was deleted, not unmounted
    /// with its disk).
    pub fn check_missing(&self, parent_dev: Option<u64>) -> Result<(), RootChange> {
        match (&self.seen, parent_dev) {
            (None, _) => Ok(()),
            (Some(_), Some(dev)) if self.check(dev).is_ok() => Ok(()),
            (Some(_), _) => Err(RootChange::Missing),
        }
    }

    /// Whether the root, now on device `dev`, is where it was. A new
    /// device number for the same mount (same type, same source: the
    /// share was mounted again, by hand or by an automounter) is accepted;
    /// returns `true` then, so the caller can say so.
    pub fn check(&self, dev: u64) -> Result<bool, RootChange> {
        let Some(seen) = &self.seen else {
            return Ok(false);
        };
        if seen.dev == dev {
            return Ok(false);
        }
        let now = mount_of(dev);
        if seen.mount.is_some() && seen.mount == now {
            return Ok(true);
        }
        Err(RootChange::OtherDevice {
            before: describe(seen.dev, seen.mount.as_ref()),
            now: describe(dev, now.as_ref()),
        })
    }

    /// Records the root's device after a good pass (and its new one after
    /// a remount of the same share).
    pub fn remember(&mut self, dev: u64) {
        if self.seen.as_ref().is_none_or(|s| s.dev != dev) {
            self.seen = Some(Seen {
                dev,
                mount: mount_of(dev),
            });
        }
    }
}

fn describe(dev: u64, mount: Option<&MountInfo>) -> String {
    let numbers = format!(
        "device {}:{}",
        rustix::fs::major(dev as _),
        rustix::fs::minor(dev as _)
    );
    match mount {
        Some(m) => format!("{} {}, {numbers}", m.fstype, m.source),
        None => numbers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_learnt_from_one_probe() {
        let set = 1_000_000_001_123_456_789;
        assert_eq!(mtime_step(set, set), 1);
        assert_eq!(mtime_step(set, 1_000_000_001_123_456_700), 100);
        assert_eq!(mtime_step(set, 1_000_000_001_000_000_000), 1_000_000_000);
        // Rounded up to the next second.
        assert_eq!(mtime_step(set, 1_000_000_002_000_000_000), 1_000_000_000);
        // FAT: two seconds, the odd one dropped.
        assert_eq!(mtime_step(set, 1_000_000_000_000_000_000), 2_000_000_000);
    }

    #[test]
    fn whole_seconds_compare_within_the_second() {
        let caps = Caps {
            mtime_step_ns: 1_000_000_000,
            ..Caps::EXACT
        };
        let t = |sec, nsec| Time { sec, nsec };
        assert!(caps.same_mtime(t(100, 900_000_000), t(100, 0)));
        assert!(caps.same_mtime(t(100, 0), t(100, 999_999_999)));
        assert!(!caps.same_mtime(t(101, 500_000_000), t(100, 0)));
        assert!(!Caps::EXACT.same_mtime(t(100, 1), t(100, 0)));
        // Before 1970 too.
        assert!(caps.same_mtime(t(-5, 500_000_000), t(-5, 0)));
    }

    #[test]
    fn modes_and_link_times_count_as_equal_where_they_cannot_be_set() {
        let caps = Caps {
            modes: false,
            link_times: false,
            ..Caps::EXACT
        };
        assert!(caps.same_mode(0o600, 0o755));
        assert!(!Caps::EXACT.same_mode(0o600, 0o755));
        let t = |sec| Time { sec, nsec: 0 };
        assert!(caps.same_link_mtime(t(1), t(2)));
        assert!(!Caps::EXACT.same_link_mtime(t(1), t(2)));
    }

    #[test]
    fn network_file_systems_are_told_apart() {
        for t in ["fuse.sshfs", "nfs", "nfs4", "cifs", "smb3"] {
            assert!(is_network(t), "{t}");
        }
        for t in ["ext4", "tmpfs", "btrfs", "fuse.ntfs-3g", "fuseblk"] {
            assert!(!is_network(t), "{t}");
        }
    }

    #[test]
    fn a_root_seen_once_may_not_vanish_or_move() {
        let mut watch = RootWatch::default();
        assert!(
            watch.check_missing(None).is_ok(),
            "a first pass may create it"
        );
        assert!(matches!(watch.check(7), Ok(false)));
        watch.remember(7);
        assert!(matches!(
            watch.check_missing(None),
            Err(RootChange::Missing)
        ));
        assert!(
            watch.check_missing(Some(7)).is_ok(),
            "deleted, its parent still on its file system"
        );
        assert!(matches!(
            watch.check_missing(Some(u64::MAX - 2)),
            Err(RootChange::Missing)
        ));
        assert!(matches!(watch.check(7), Ok(false)));
        // Device numbers no mount has: not the same mount.
        let mut other = RootWatch::default();
        other.remember(u64::MAX - 1);
        assert!(matches!(
            other.check(u64::MAX - 2),
            Err(RootChange::OtherDevice { .. })
        ));
    }
}
