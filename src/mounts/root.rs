//! Which mount a root is on, and the watch that refuses a root that
//! vanished or moved to another file system since an earlier pass.

use std::fmt;

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
    pub(super) seen: Option<Seen>,
}

pub(super) struct Seen {
    pub(super) dev: u64,
    pub(super) mount: Option<MountInfo>,
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
    pub fn what(&self) -> String {
        match self {
            RootChange::Missing => "was there at an earlier pass and is now missing".into(),
            RootChange::OtherDevice { before, now } => {
                format!("is now on another file system ({now}) than at an earlier pass ({before})")
            }
        }
    }

    /// The log line of a change the user confirmed.
    pub(super) fn accepted(&self, side: &str) -> String {
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
    /// A watch on a folder last seen on device `dev`, as `mount`: a disk
    /// mounted inside a two-way side (see `crate::twoway::nested`).
    pub fn seen_on(dev: u64, mount: Option<MountInfo>) -> RootWatch {
        RootWatch {
            seen: Some(Seen { dev, mount }),
        }
    }

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
