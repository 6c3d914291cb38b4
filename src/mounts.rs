//! What a pair learns about the file systems under its roots and keeps
//! across passes: the device each root was on (so an unmounted share is
//! noticed, not refilled on the local disk) and what the replica's file
//! system can hold (so a NAS mount with whole-second times is not
//! "touched" in full on every pass).
//!
//! The worker owns a [`Mounts`] for the life of the pair and hands it to
//! each pass through its context.

use std::os::fd::BorrowedFd;

use crate::fsops::{self, OpError};
use crate::state::RootRecord;

mod caps;
mod root;

pub use caps::*;
pub use root::*;

/// A pair's mounts, recovered from a lock a panicking thread left
/// poisoned (what they hold is whole at every step): the one way every
/// direction takes them.
pub fn lock(mounts: &std::sync::Mutex<Mounts>) -> std::sync::MutexGuard<'_, Mounts> {
    mounts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::Time;

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
