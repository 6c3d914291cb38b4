//! Doing what the planner decided, path by path in tree order, and
//! recording each result in the archive once it is done.
//!
//! Right before anything is replaced, renamed or removed on either side,
//! the entry there is stat-ed again and must be exactly what the scan saw
//! (or still absent); a copy's source must still be what was examined
//! when its bytes are in place. Anything else was changed by someone
//! during the pass: it is left as it is, not recorded, and the next pass
//! sees it.
//!
//! A folder's removal, and a file or link replacing a folder, wait until
//! everything inside has been dealt with (they are *after* actions, run
//! when the walk leaves the folder).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use crate::fsops::{self, Buffers, Copied, Meta, Op};
use crate::mounts::Caps;
use crate::pair::PairContext;
use crate::status::Counts;

use super::archive::Archive;
use super::conflict;
use super::excluded::Excluded;
use super::report::{Did, Log};
use super::row::{Action, Record, Row, Seen, Side, Stamp, What, is_under, parent};

mod conflicts;
mod entries;
mod excluded;
mod folders;
mod record;

/// Mtimes this close to the pass's start (or later) are racy: an edit in
/// the same timestamp tick (whole seconds on some mounts) would not change
/// them.
const RACY_WINDOW_SECS: i64 = 2;

/// The pass's hands on both sides.
pub struct Apply<'p> {
    pub ctx: &'p PairContext<'p>,
    /// `None` for a replica a dry run did not create.
    pub roots: [Option<&'p OwnedFd>; 2],
    pub caps: [Caps; 2],
    pub archive: &'p mut Archive<'p>,
    pub log: Log<'p>,
    /// When the pass started: for racy entries and conflict names.
    pub started: SystemTime,
    /// Whether each side's file system keeps inode numbers (see
    /// [`super::scan::stable_inodes`]); where not, they are recorded as 0.
    pub stable_inodes: [bool; 2],
    /// What each side's scan left out, to name it in the log.
    pub excluded: Excluded,
    bufs: Buffers,
    /// The last folder opened on each side, by path.
    open: [Option<(Vec<u8>, OwnedFd)>; 2],
    /// Folders whose contents are done, waiting for their after action.
    after: Vec<(Box<[u8]>, After)>,
}

/// What happens to a folder once everything inside is done.
enum After {
    /// Removed (the other side deleted it).
    RemoveDir { on: Side },
    /// Removed, then replaced by the other side's file or link.
    ReplaceDir { row: Box<Row>, on: Side },
    /// A folder made this pass gets its mode, and is recorded.
    Finish { row: Box<Row>, on: Side },
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

fn name_of(path: &[u8]) -> CString {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    CString::new(name).expect("names from a listing hold no NUL")
}

impl<'p> Apply<'p> {
    pub fn new(
        ctx: &'p PairContext<'p>,
        roots: [Option<&'p OwnedFd>; 2],
        caps: [Caps; 2],
        archive: &'p mut Archive<'p>,
        log: Log<'p>,
    ) -> Apply<'p> {
        Apply {
            ctx,
            roots,
            caps,
            archive,
            log,
            started: SystemTime::now(),
            stable_inodes: [true, true],
            excluded: Excluded::default(),
            bufs: Buffers::default(),
            open: [None, None],
            after: Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.log.counts
    }

    /// Does one row's action (after the folders it left behind are done).
    pub fn row(&mut self, row: &Row) {
        self.leave_folders(Some(&row.path));
        let path = &row.path[..];
        match row.action {
            Action::Keep => {}
            Action::Record => match (&row.a, &row.b) {
                // As far as both file systems can tell (a share may keep
                // whole seconds).
                (Some(a), Some(b))
                    if a.what == What::File
                        && !self.caps.iter().any(|c| c.same_mtime(a.mtime, b.mtime)) =>
                {
                    self.align_mtime(row)
                }
                (a, b) => self.record(path, a.as_ref(), b.as_ref()),
            },
            Action::Forget => self.forget(path),
            Action::Copy { to } => self.copy(row, to),
            Action::Delete { on } => self.delete(row, on),
            Action::Conflict { winner } => self.conflict(row, winner),
            Action::Excluded { holder } => self.excluded(row, holder),
        }
    }

    /// Runs the after actions of every folder still open.
    pub fn finish(&mut self) {
        self.leave_folders(None);
        if let Err(e) = self.archive.flush() {
            self.log.state_error(&e);
        }
    }

    /// Runs the after actions of the folders that `next` is not inside
    /// (all of them at the end, `None`).
    fn leave_folders(&mut self, next: Option<&[u8]>) {
        while let Some((path, _)) = self.after.last() {
            if next.is_some_and(|next| is_under(next, path) && next != &path[..]) {
                break;
            }
            let (path, after) = self.after.pop().expect("just looked");
            match after {
                After::RemoveDir { on } => {
                    self.remove_dir(&path, on);
                }
                After::ReplaceDir { row, on } => {
                    if self.remove_dir(&path, on) {
                        let seen = row.seen(on.other()).expect("what replaces it").clone();
                        self.put_entry(&row, on, &seen, None);
                    }
                }
                After::Finish { row, on } => {
                    let mode = row.seen(on.other()).map_or(0o755, |s| s.mode);
                    match self.set_dir_mode(&path, on, mode) {
                        Ok(()) => self.record_now(&path, None),
                        Err(e) => self.op_failed(&path, on, &e),
                    }
                }
            }
        }
    }

    /// The open folder `dir` (a relative path) on `side`; opened from the
    /// nearest folder already open, never following a symlink.
    fn dir(&mut self, side: Side, dir: &[u8]) -> io::Result<BorrowedFd<'_>> {
        let i = idx(side);
        let reuse = matches!(&self.open[i], Some((p, _)) if p.as_slice() == dir);
        if !reuse {
            let (mut fd, rest): (OwnedFd, &[u8]) = match &self.open[i] {
                Some((p, fd)) if !p.is_empty() && dir.len() > p.len() && is_under(dir, p) => {
                    (fd.try_clone()?, &dir[p.len() + 1..])
                }
                _ => match self.roots[i] {
                    Some(root) => (root.try_clone()?, dir),
                    None => return Err(io::ErrorKind::NotFound.into()),
                },
            };
            for name in rest.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
                let name = CString::new(name).map_err(io::Error::other)?;
                fd = fsops::open_dir_at(fd.as_fd(), &name)?;
            }
            self.open[i] = Some((dir.to_vec(), fd));
        }
        Ok(self.open[i].as_ref().expect("opened above").1.as_fd())
    }

    /// An operation on `path` failed. When what it needed is gone (a
    /// folder above it removed or replaced during the pass), someone
    /// changed it after the scan: skipped for the next pass, as every
    /// change during a pass is, not an error.
    fn op_failed(&mut self, path: &[u8], side: Side, e: &fsops::OpError) {
        if gone(&e.err) {
            self.log.changed_meanwhile(path, side);
        } else {
            self.log.op_error(path, side, e);
        }
    }

    /// Forgets open folders on `side` (one was removed or renamed).
    fn reopen(&mut self, side: Side) {
        self.open[idx(side)] = None;
    }

    /// The entry at `path` on `side` now, `None` when absent.
    /// A folder above it that is gone, or is no folder any more (replaced
    /// during the pass), leaves nothing at `path` either.
    fn stat(&mut self, side: Side, path: &[u8]) -> io::Result<Option<Meta>> {
        let name = name_of(path);
        let dir = match self.dir(side, parent(path)) {
            Ok(dir) => dir,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match fsops::stat_at(dir, &name) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the entry at `path` on `side` is still what the scan saw
    /// (`None`: still absent). Says so in the log when it is not.
    fn unchanged(&mut self, side: Side, path: &[u8], seen: Option<&Seen>) -> bool {
        if self.ctx.options.dry_run {
            // Nothing was changed, so nothing to check against.
            return true;
        }
        let now = match self.stat(side, path) {
            Ok(now) => now,
            Err(e) => {
                self.log.io_error(path, side, "stat", &e);
                return false;
            }
        };
        let same = match (now, seen) {
            (None, None) => true,
            (Some(m), Some(s)) => matches_seen(&m, s),
            _ => false,
        };
        if !same {
            self.log.changed_meanwhile(path, side);
        }
        same
    }

    fn copy(&mut self, row: &Row, to: Side) {
        let from = to.other();
        let src = row.seen(from).expect("a copy has a source").clone();
        let dst = row.seen(to);
        match (src.what, dst.map(|d| d.what)) {
            (What::Dir, Some(What::Dir)) => {
                if !self.unchanged(to, &row.path, dst) {
                    return;
                }
                match self.set_dir_mode(&row.path, to, src.mode) {
                    Ok(()) => {
                        self.log.did(&row.path, to, Did::Mode(src.mode));
                        self.record_now(&row.path, None);
                    }
                    Err(e) => self.op_failed(&row.path, to, &e),
                }
            }
            (What::Dir, _) => {
                // The entry it replaces was unchanged (else this would
                // be a conflict): it goes.
                if dst.is_some() && !self.remove_entry(row, to) {
                    return;
                }
                self.make_dir(row, to);
            }
            (_, Some(What::Dir)) => {
                // After everything inside the folder is removed.
                self.after.push((
                    row.path.clone(),
                    After::ReplaceDir {
                        row: Box::new(row.clone()),
                        on: to,
                    },
                ));
            }
            // The bytes were read and are the same: the mode alone.
            (What::File, Some(What::File)) if mode_only(row, from) && row.same == Some(true) => {
                self.set_file_mode(row, to, &src)
            }
            _ => self.put_entry(row, to, &src, dst),
        }
    }

    fn delete(&mut self, row: &Row, on: Side) {
        let seen = row.seen(on).expect("a deletion has something to delete");
        if seen.what == What::Dir {
            self.after.push((row.path.clone(), After::RemoveDir { on }));
        } else if self.remove_entry(row, on) {
            self.forget(&row.path);
        }
    }
}

/// Whether side `from`'s file differs from the archive in its mode alone
/// (same size, mtime and inode), so its bytes are the ones both sides
/// held at the last sync.
fn mode_only(row: &Row, from: Side) -> bool {
    let (Some(rec), Some(seen)) = (&row.rec, row.seen(from)) else {
        return false;
    };
    let stamp = match from {
        Side::A => rec.a,
        Side::B => rec.b,
    };
    rec.what == What::File
        && seen.size == rec.size
        && seen.mtime.nanos() == stamp.mtime
        && seen.ino == stamp.ino
        && seen.mode != stamp.mode
}

/// Whether an error says the entry, or a folder above it, is not there
/// (any more) or is no folder.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Whether `meta`, stat-ed now, is the entry the scan saw as `seen`. A
/// file's ctime counts: a rewrite that put the old mtime back moved it.
fn matches_seen(meta: &Meta, seen: &Seen) -> bool {
    matches_seen_but_ctime(meta, seen)
        && (seen.what != What::File || meta.ctime.nanos() == seen.ctime)
}

/// [`matches_seen`] where the ctime moved by our own doing (a rename).
fn matches_seen_but_ctime(meta: &Meta, seen: &Seen) -> bool {
    let Some(what) = What::of(meta.kind) else {
        return false;
    };
    // An inode of 0 was not kept (see `super::scan::stable_inodes`).
    what == seen.what
        && (seen.ino == 0 || meta.ino == seen.ino)
        && match what {
            What::File => {
                meta.size == seen.size && meta.mtime == seen.mtime && meta.mode == seen.mode
            }
            What::Dir => true,
            What::Link => meta.size == seen.target.as_ref().map_or(0, |t| t.len() as u64),
        }
}
