//! Disks mounted inside a side (B/photos on a disk of its own). The
//! roots' devices are checked before every pass, but a disk inside a side
//! unmounted leaves a bare, empty folder, and the pass would delete the
//! other side's copies of everything that was on it. So each pass
//! remembers the folders that are on another device than the folder they
//! are in, in the pair's state file, and the next pass checks them as a
//! root's device is checked: one now missing, or on another file system,
//! is left alone on both sides, with an error naming it, on every pass
//! until it is back or the user confirms the change (menu option 7,
//! `--new-device`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use rusqlite::{Connection, OptionalExtension, params};

use crate::logging::display_root;
use crate::mounts::{MountInfo, RootChange, RootWatch, mount_of};
use crate::pair::PairContext;

use super::archive::Archive;
use super::report::Log;
use super::row::{Side, What, is_under, parent, tree_order};
use super::scan::Scan;

/// A folder on another device than the folder it is in, at the last pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub side: Side,
    pub path: Box<[u8]>,
    pub dev: u64,
    /// Its mount as `/proc/self/mountinfo` named it: the same share
    /// mounted again under a new device number is no change.
    pub fstype: Option<String>,
    pub source: Option<String>,
}

fn side_key(side: Side) -> &'static str {
    match side {
        Side::A => "source",
        Side::B => "replica",
    }
}

/// The mounts the last pass found; `None` in a state of an earlier
/// version, which kept no list.
fn load(conn: &Connection) -> rusqlite::Result<Option<Vec<Mount>>> {
    let has = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'nested_mounts'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT side, path, dev, fstype, source FROM nested_mounts")?;
    let rows = stmt.query_map([], |r| {
        let side: String = r.get(0)?;
        Ok(Mount {
            side: if side == "source" { Side::A } else { Side::B },
            path: r.get::<_, Vec<u8>>(1)?.into(),
            dev: r.get::<_, i64>(2)? as u64,
            fstype: r.get(3)?,
            source: r.get(4)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<Mount>>>().map(Some)
}

/// Replaces the remembered mounts, in one transaction.
fn save(conn: &mut Connection, mounts: &[Mount]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS nested_mounts (
            side TEXT NOT NULL, path BLOB NOT NULL, dev INTEGER NOT NULL,
            fstype TEXT, source TEXT, PRIMARY KEY (side, path))",
        [],
    )?;
    tx.execute("DELETE FROM nested_mounts", [])?;
    for m in mounts {
        tx.execute(
            "INSERT INTO nested_mounts (side, path, dev, fstype, source) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![side_key(m.side), &m.path[..], m.dev as i64, m.fstype, m.source],
        )?;
    }
    tx.commit()
}

/// The device the folder `path` is on now as `scan` saw it; `None` when
/// it is no folder there.
fn device_now(scan: &Scan, root_dev: u64, path: &[u8]) -> Option<u64> {
    let i = scan
        .entries
        .binary_search_by(|(p, _)| tree_order(p, path))
        .ok()?;
    if scan.entries[i].1.what != What::Dir {
        return None;
    }
    // The innermost mount at or above it, else the root's device.
    let found = scan
        .mounts
        .iter()
        .filter(|(m, _)| is_under(path, m))
        .max_by_key(|(m, _)| m.len());
    Some(found.map_or(root_dev, |(_, dev)| *dev))
}

/// Whether `scan` could not read, or left out, `path` or a folder above
/// it: not judged then (the pass does nothing there anyway).
fn not_seen(scan: &Scan, path: &[u8]) -> bool {
    scan.unknown.iter().any(|u| is_under(path, u))
        || scan.excluded.iter().any(|(e, _)| is_under(path, e))
}

/// Checks the mounts the last pass found against both scans (`roots`:
/// each side's root device), and the folders the last sync left that are
/// mounts now. One that changed is marked unknown in its side's scan, so
/// the pass leaves it alone on both sides, and logged as an error; unless
/// the user confirmed new devices, when it is taken. Then remembers this
/// pass's mounts (and the refused ones, as they were) unless `dry_run`.
pub fn check(
    ctx: &PairContext<'_>,
    archive: &mut Archive<'_>,
    scans: [&mut Scan; 2],
    roots: [u64; 2],
    log: &mut Log<'_>,
) {
    let Some(conn) = archive.connection() else {
        return;
    };
    let recorded = load(conn).unwrap_or_else(|e| {
        log.state_error(&format!("reading the nested mounts: {e}"));
        None
    });
    // Without a list from an earlier pass, a mount is not known to be new.
    let known = recorded.is_some();
    let recorded = recorded.unwrap_or_default();
    // Written only when it changed: a pass that changes nothing writes
    // nothing.
    let before = recorded.clone();
    let was: HashSet<(Side, Box<[u8]>)> =
        recorded.iter().map(|m| (m.side, m.path.clone())).collect();
    let mut judge = Judge {
        ctx,
        log,
        accept: crate::mounts::lock(ctx.mounts).accept_new,
    };
    let mut keep = Vec::new();
    let [sa, sb] = scans;
    for m in recorded {
        let (scan, root_dev) = match m.side {
            Side::A => (&mut *sa, roots[0]),
            Side::B => (&mut *sb, roots[1]),
        };
        if not_seen(scan, &m.path) {
            keep.push(m);
            continue;
        }
        let watch = RootWatch::seen_on(m.dev, mount_info(&m));
        let now = device_now(scan, root_dev, &m.path);
        let change = match now {
            Some(dev) => watch.check(dev).err(),
            None => watch.check_missing(None).err(),
        };
        match change {
            Some(change) if judge.refuses(m.side, scan, &m.path, &change) => keep.push(m),
            Some(_) => {}
            // Kept as it was, mount name and all; one mounted again under
            // a new number is found anew.
            None if now == Some(m.dev) => keep.push(m),
            None => {}
        }
    }
    let refused_new = if known {
        judge_new(&mut judge, archive, [&mut *sa, &mut *sb], roots, &was)
    } else {
        Vec::new()
    };
    if ctx.options.dry_run {
        return;
    }
    add_found(&mut keep, [&*sa, &*sb], &refused_new);
    if known && keep.len() == before.len() && keep.iter().all(|k| before.contains(k)) {
        return;
    }
    if let Some(conn) = archive.connection()
        && let Err(e) = save(conn, &keep)
    {
        judge
            .log
            .state_error(&format!("saving the nested mounts: {e}"));
    }
}

/// The folders the last sync left on the device of the folder they are
/// in that are mounts now (not in `was`, the last pass's list): their old
/// contents are hidden, not deleted. Those refused.
fn judge_new(
    judge: &mut Judge<'_, '_>,
    archive: &mut Archive<'_>,
    scans: [&mut Scan; 2],
    roots: [u64; 2],
    was: &HashSet<(Side, Box<[u8]>)>,
) -> Vec<(Side, Box<[u8]>)> {
    let mut refused = Vec::new();
    for ((scan, side), root_dev) in scans.into_iter().zip([Side::A, Side::B]).zip(roots) {
        let new: Vec<(Box<[u8]>, u64)> = (scan.mounts.iter())
            .filter(|(p, _)| !was.contains(&(side, p.clone())))
            .cloned()
            .collect();
        for (path, dev) in new {
            if !archive.had_folder(&path) {
                continue;
            }
            let up = device_now(scan, root_dev, parent(&path)).unwrap_or(root_dev);
            let watch = RootWatch::seen_on(up, mount_of(up));
            if let Err(change) = watch.check(dev)
                && judge.refuses(side, scan, &path, &change)
            {
                refused.push((side, path));
            }
        }
    }
    refused
}

fn mount_info(m: &Mount) -> Option<MountInfo> {
    match (&m.fstype, &m.source) {
        (Some(fstype), Some(source)) => Some(MountInfo {
            fstype: fstype.clone(),
            source: source.clone(),
        }),
        _ => None,
    }
}

/// Says what became of a changed mount, and refuses it unless the user
/// confirmed new devices.
struct Judge<'j, 'l> {
    ctx: &'j PairContext<'j>,
    log: &'j mut Log<'l>,
    accept: bool,
}

impl Judge<'_, '_> {
    /// Whether the folder `path` on `side`, changed as `change` says, is
    /// refused: then marked unknown in `scan` and logged as an error.
    fn refuses(&mut self, side: Side, scan: &mut Scan, path: &[u8], change: &RootChange) -> bool {
        let root = match side {
            Side::A => &self.ctx.spec.source,
            Side::B => &self.ctx.spec.replica,
        };
        let name = format!(
            "{} folder {}",
            side_key(side),
            display_root(&root.join(OsStr::from_bytes(path)))
        );
        if self.accept {
            self.log.info(format_args!(
                "{name} {}: taken as confirmed, and remembered from this pass on",
                change.what()
            ));
            return false;
        }
        self.log.pass_error(format_args!(
            "{name} {} (a disk or share unmounted, or mounted, inside the {} folder {}?): it is left alone \
             on both sides, nothing below it is deleted; if the change is meant, confirm with menu option 7 \
             or run with --new-device",
            change.what(),
            side_key(side),
            display_root(root)
        ));
        crate::mounts::lock(self.ctx.mounts).refused = Some(format!("{name} on another device"));
        scan.unknown.push(path.into());
        scan.unknown.sort_by(|a, b| tree_order(a, b));
        true
    }
}

/// Adds the mounts both scans found to `keep`, but those already there
/// (kept as they were) and those `refused` as new.
fn add_found(keep: &mut Vec<Mount>, scans: [&Scan; 2], refused: &[(Side, Box<[u8]>)]) {
    for (scan, side) in scans.into_iter().zip([Side::A, Side::B]) {
        for (path, dev) in &scan.mounts {
            if keep.iter().any(|k| k.side == side && k.path == *path)
                || refused.iter().any(|(s, p)| *s == side && p == path)
            {
                continue;
            }
            let info = mount_of(*dev);
            keep.push(Mount {
                side,
                path: path.clone(),
                dev: *dev,
                fstype: info.as_ref().map(|i| i.fstype.clone()),
                source: info.map(|i| i.source),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::Time;
    use crate::twoway::row::Seen;

    fn dir() -> Seen {
        Seen {
            what: What::Dir,
            size: 0,
            mtime: Time::default(),
            ctime: 0,
            ino: 1,
            mode: 0o755,
            target: None,
        }
    }

    #[test]
    fn a_folders_device_is_its_innermost_mounts_or_the_roots() {
        let mut scan = Scan::default();
        for p in ["a", "m", "m/in", "m/n", "m/n/deep"] {
            scan.entries.push((p.as_bytes().into(), dir()));
        }
        scan.mounts = vec![(b"m".as_slice().into(), 7), (b"m/n".as_slice().into(), 9)];
        assert_eq!(device_now(&scan, 1, b"a"), Some(1));
        assert_eq!(device_now(&scan, 1, b"m"), Some(7));
        assert_eq!(device_now(&scan, 1, b"m/in"), Some(7));
        assert_eq!(device_now(&scan, 1, b"m/n/deep"), Some(9));
        assert_eq!(device_now(&scan, 1, b"gone"), None);
    }

    #[test]
    fn mounts_are_kept_and_read_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(load(&conn).unwrap(), None);
        let mounts = vec![
            Mount {
                side: Side::B,
                path: b"photos".as_slice().into(),
                dev: 42,
                fstype: Some("tmpfs".into()),
                source: Some("tmpfs".into()),
            },
            Mount {
                side: Side::A,
                path: b"x/\xff".as_slice().into(),
                dev: 7,
                fstype: None,
                source: None,
            },
        ];
        save(&mut conn, &mounts).unwrap();
        let mut got = load(&conn).unwrap().unwrap();
        got.sort_by_key(|m| m.dev);
        assert_eq!(got, vec![mounts[1].clone(), mounts[0].clone()]);
        save(&mut conn, &[]).unwrap();
        assert_eq!(load(&conn).unwrap(), Some(Vec::new()));
    }
}
