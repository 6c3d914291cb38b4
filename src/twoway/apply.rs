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

use crate::fsops::{self, Buffers, Copied, Meta};
use crate::mounts::Caps;
use crate::pair::PairContext;
use crate::status::Counts;

use super::archive::Archive;
use super::conflict;
use super::reconcile::{Action, Record, Row, Seen, Side, Stamp, What, parent};
use super::report::{Did, Log};
use super::scan::is_under;

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
                        Ok(()) => self.record_now(&path),
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
                        self.record_now(&row.path);
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
            (What::File, Some(What::File)) if mode_only(row, from) => {
                self.set_file_mode(row, to, &src)
            }
            _ => self.put_entry(row, to, &src, dst),
        }
    }

    /// Two files with the same bytes and different mtimes (found on a
    /// first sync, or made by the same edit on both sides): the newer
    /// mtime is only when that side got its copy, so both take the older.
    fn align_mtime(&mut self, row: &Row) {
        let (a, b) = (row.a.as_ref().expect("both"), row.b.as_ref().expect("both"));
        let (to, mtime) = if a.mtime < b.mtime {
            (Side::B, a.mtime)
        } else {
            (Side::A, b.mtime)
        };
        let dst = row.seen(to).expect("both");
        if !self.unchanged(to, &row.path, Some(dst)) {
            return;
        }
        if !self.ctx.options.dry_run {
            let caps = self.caps[idx(to)];
            let name = name_of(&row.path);
            let set = self
                .dir(to, parent(&row.path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::set_file_attrs(dir, &name, dst.mode, mtime, &caps));
            if let Err(e) = set {
                self.op_failed(&row.path, to, &e);
                return;
            }
        }
        self.log.did(&row.path, to, Did::Mtime);
        self.record_now(&row.path);
    }

    /// Gives the file at `row.path` on `to` the mode of the other side's,
    /// whose bytes are the same (only its mode changed since the last
    /// sync).
    fn set_file_mode(&mut self, row: &Row, to: Side, src: &Seen) {
        if !self.unchanged(to, &row.path, row.seen(to)) {
            return;
        }
        if !self.ctx.options.dry_run {
            let caps = self.caps[idx(to)];
            let dst = row.seen(to).expect("a file to set");
            let name = name_of(&row.path);
            let set = self
                .dir(to, parent(&row.path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::set_file_attrs(dir, &name, src.mode, dst.mtime, &caps));
            if let Err(e) = set {
                self.op_failed(&row.path, to, &e);
                return;
            }
        }
        self.log.did(&row.path, to, Did::Mode(src.mode));
        self.record_now(&row.path);
    }

    /// Makes a folder on `side` for the other side's; its mode is set and
    /// it is recorded once its contents are in.
    fn make_dir(&mut self, row: &Row, on: Side) {
        if !self.unchanged(on, &row.path, None) {
            return;
        }
        if !self.ctx.options.dry_run {
            let name = name_of(&row.path);
            // Made with its final mode when that lets us fill it: a pass
            // killed before the mode is set last would leave a private
            // folder, newer than the other side's, whose mode the next
            // pass would take for the user's and copy back.
            let mode = row.seen(on.other()).map_or(0o700, |s| s.mode);
            let first = if mode & 0o700 == 0o700 { mode } else { 0o700 };
            let made =
                self.dir(on, parent(&row.path))
                    .map_err(|e| fsops::OpError {
                        op: "open folder",
                        err: e,
                    })
                    .and_then(|dir| {
                        rustix::fs::mkdirat(dir, &name, rustix::fs::Mode::from_raw_mode(first))
                            .map_err(|e| fsops::OpError {
                                op: "create folder",
                                err: e.into(),
                            })
                    });
            if let Err(e) = made {
                self.op_failed(&row.path, on, &e);
                return;
            }
        }
        self.log.did(&row.path, on, Did::MadeDir);
        self.after.push((
            row.path.clone(),
            After::Finish {
                row: Box::new(row.clone()),
                on,
            },
        ));
    }

    fn set_dir_mode(&mut self, path: &[u8], on: Side, mode: u32) -> Result<(), fsops::OpError> {
        if self.ctx.options.dry_run {
            return Ok(());
        }
        let caps = self.caps[idx(on)];
        let name = name_of(path);
        let dir = self.dir(on, parent(path)).map_err(|e| fsops::OpError {
            op: "open folder",
            err: e,
        })?;
        let fd = fsops::open_dir_at(dir, &name).map_err(|e| fsops::OpError {
            op: "open folder",
            err: e,
        })?;
        let now = fsops::stat_fd(fd.as_fd()).map_err(|e| fsops::OpError { op: "stat", err: e })?;
        fsops::set_fd_attrs(fd.as_fd(), mode, now.mtime, &caps)
    }

    /// Puts the other side's file or link at `row.path` on `to`, where
    /// `dst` was (or nothing was), and records the path.
    fn put_entry(&mut self, row: &Row, to: Side, src: &Seen, dst: Option<&Seen>) {
        if !self.unchanged(to, &row.path, dst) {
            return;
        }
        let done = match src.what {
            // A link is made from the target the scan read: only while the
            // source still is that link.
            What::Link => {
                self.unchanged(to.other(), &row.path, Some(src))
                    && self.put_link(&row.path, to, src)
            }
            _ => self.put_file(&row.path, to, src, dst),
        };
        if done {
            self.record_now(&row.path);
        }
    }

    /// Copies the file at `path` from the other side to `to`. Whether it
    /// is there now.
    fn put_file(&mut self, path: &[u8], to: Side, src: &Seen, dst: Option<&Seen>) -> bool {
        let from = to.other();
        let did = if dst.is_some() {
            Did::Updated(src.size)
        } else {
            Did::Copied(src.size)
        };
        if self.ctx.options.dry_run {
            self.log.did(path, to, did);
            return true;
        }
        let name = name_of(path);
        let (src_dir, dst_dir) = match self.two_dirs(parent(path), from) {
            Ok(dirs) => dirs,
            Err(e) => {
                self.op_failed(
                    path,
                    to,
                    &fsops::OpError {
                        op: "open folder",
                        err: e,
                    },
                );
                return false;
            }
        };
        let caps = self.caps[idx(to)];
        // Right before the commit: the source is still what was examined,
        // and the target still what the scan saw there.
        let dst_now = |meta: Option<Meta>| match (meta, dst) {
            (None, None) => true,
            (Some(m), Some(s)) => matches_seen(&m, s),
            _ => false,
        };
        let ready = |copied: &Meta| {
            matches_seen(copied, src)
                && match fsops::stat_at(dst_dir.as_fd(), &name) {
                    Ok(m) => dst_now(Some(m)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => dst_now(None),
                    Err(_) => false,
                }
        };
        let cancel = self.ctx.cancel;
        let copied = fsops::copy_file_if(
            src_dir.as_fd(),
            dst_dir.as_fd(),
            &name,
            false,
            self.ctx.options.fsync,
            &caps,
            &ready,
            &|| cancel.is_set(),
            &mut self.bufs,
        );
        match copied {
            Ok(Copied::Done { .. }) => {
                self.log.did(path, to, did);
                self.log.counts.bytes += src.size;
                true
            }
            Ok(Copied::SourceChanged | Copied::Refused) => {
                self.log.changed_meanwhile(path, from);
                false
            }
            Ok(Copied::Cancelled) => false,
            // The source was deleted or replaced since the scan: skipped,
            // as any other change during the pass, not an error.
            Err(e) if e.op == "open" && !self.unchanged(from, path, Some(src)) => false,
            Err(e) => {
                self.op_failed(path, to, &e);
                false
            }
        }
    }

    /// Both sides' folders `dir`, `from`'s first, as handles of their own.
    fn two_dirs(&mut self, dir: &[u8], from: Side) -> io::Result<(OwnedFd, OwnedFd)> {
        let src = self.dir(from, dir)?.try_clone_to_owned()?;
        let dst = self.dir(from.other(), dir)?.try_clone_to_owned()?;
        Ok((src, dst))
    }

    fn put_link(&mut self, path: &[u8], to: Side, src: &Seen) -> bool {
        let target = src.target.as_deref().unwrap_or_default();
        if !self.ctx.options.dry_run {
            let name = name_of(path);
            let target = CString::new(target).expect("a link target holds no NUL");
            let made = self
                .dir(to, parent(path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::make_symlink(dir, &name, &target, None));
            if let Err(e) = made {
                self.op_failed(path, to, &e);
                return false;
            }
        }
        self.log.did(path, to, Did::Linked(target));
        true
    }

    fn delete(&mut self, row: &Row, on: Side) {
        let seen = row.seen(on).expect("a deletion has something to delete");
        if seen.what == What::Dir {
            self.after.push((row.path.clone(), After::RemoveDir { on }));
        } else if self.remove_entry(row, on) {
            self.forget(&row.path);
        }
    }

    /// Removes the file or link at `row.path` on `on`, if it is still what
    /// the scan saw. Whether it is gone.
    fn remove_entry(&mut self, row: &Row, on: Side) -> bool {
        let seen = row.seen(on).expect("something to remove");
        if !self.unchanged(on, &row.path, Some(seen)) {
            return false;
        }
        if !self.ctx.options.dry_run {
            let name = name_of(&row.path);
            let removed = self
                .dir(on, parent(&row.path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::remove_file(dir, &name));
            if let Err(e) = removed {
                self.op_failed(&row.path, on, &e);
                return false;
            }
        }
        self.log.did(&row.path, on, Did::Removed(seen.what));
        true
    }

    /// Removes the folder at `path` on `on`, which should be empty by now.
    /// Whether it is gone; one that still holds something (excluded
    /// entries, or new ones) stays.
    fn remove_dir(&mut self, path: &[u8], on: Side) -> bool {
        if !self.ctx.options.dry_run {
            let name = name_of(path);
            self.reopen(on);
            let removed = self
                .dir(on, parent(path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::remove_dir(dir, &name));
            match removed {
                Ok(()) => {}
                Err(e)
                    if e.err.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) =>
                {
                    self.log.kept_folder(path, on);
                    return false;
                }
                Err(e) => {
                    self.op_failed(path, on, &e);
                    return false;
                }
            }
        }
        self.log.did(path, on, Did::Removed(What::Dir));
        self.forget(path);
        true
    }

    /// Both sides changed `row.path` differently: the loser's version
    /// moves aside under a conflict name (on its side, then copied to the
    /// other), and the winner's takes the name on both sides.
    fn conflict(&mut self, row: &Row, winner: Side) {
        let loser = winner.other();
        let (Some(w), Some(l)) = (row.seen(winner).cloned(), row.seen(loser).cloned()) else {
            return;
        };
        if !self.unchanged(loser, &row.path, Some(&l)) {
            return;
        }
        let Some(aside) = self.free_conflict_name(&row.path) else {
            return;
        };
        self.log.counts.conflicts += 1;
        self.log.conflict(&row.path, winner, &aside);
        if !self.ctx.options.dry_run {
            let renamed = self
                .dir(loser, parent(&row.path))
                .map_err(|e| fsops::OpError {
                    op: "open folder",
                    err: e,
                })
                .and_then(|dir| fsops::rename_new(dir, &name_of(&row.path), &name_of(&aside)));
            if let Err(e) = renamed {
                self.op_failed(&row.path, loser, &e);
                return;
            }
        }
        // The loser's version, now under its new name, goes to the winner's
        // side as well.
        let moved = self.put_aside_copy(&aside, loser, &l);
        if moved {
            self.record_now(&aside);
        }
        // And the winner's takes the name on the loser's side.
        if w.what == What::Dir {
            self.make_dir(row, loser);
        } else {
            self.put_entry(row, loser, &w, None);
        }
    }

    /// Copies the entry `aside` on `from` (a conflict copy) to the other
    /// side, where nothing has that name.
    fn put_aside_copy(&mut self, aside: &[u8], from: Side, seen: &Seen) -> bool {
        let to = from.other();
        let mut moved = seen.clone();
        if !self.ctx.options.dry_run {
            // The rename kept the inode and mtime; its ctime changed, which
            // a copy does not look at.
            match self.stat(from, aside) {
                Ok(Some(meta)) if matches_seen(&meta, seen) => moved.ino = meta.ino,
                _ => {
                    self.log.changed_meanwhile(aside, from);
                    return false;
                }
            }
        }
        if !self.unchanged(to, aside, None) {
            return false;
        }
        match moved.what {
            What::Link => self.put_link(aside, to, &moved),
            _ => self.put_file(aside, to, &moved, None),
        }
    }

    /// A conflict name for `path` that neither side holds.
    fn free_conflict_name(&mut self, path: &[u8]) -> Option<Box<[u8]>> {
        for n in 1.. {
            let name = conflict::name(path, self.started, n);
            let free_a = matches!(self.stat(Side::A, &name), Ok(None));
            let free_b = matches!(self.stat(Side::B, &name), Ok(None));
            if free_a && free_b {
                return Some(name.into());
            }
            if n > 1000 {
                self.log.io_error(
                    path,
                    Side::A,
                    "name a conflict copy",
                    &io::Error::other("a thousand conflict names are taken"),
                );
                return None;
            }
        }
        None
    }

    /// Records `path` as both sides hold it now (after this pass's action
    /// there).
    fn record_now(&mut self, path: &[u8]) {
        if self.ctx.options.dry_run {
            return;
        }
        let (a, b) = match (self.stat(Side::A, path), self.stat(Side::B, path)) {
            (Ok(Some(a)), Ok(Some(b))) => (a, b),
            // Changed again meanwhile: the next pass sees what it is.
            _ => return,
        };
        let mut seen = |m: &Meta, side: Side| -> Option<Seen> {
            let what = match m.kind {
                fsops::Kind::File => What::File,
                fsops::Kind::Dir => What::Dir,
                fsops::Kind::Symlink => What::Link,
                fsops::Kind::Special(_) => return None,
            };
            let target = if what == What::Link {
                let name = name_of(path);
                let dir = self.dir(side, parent(path)).ok()?;
                Some(
                    fsops::read_link(dir, &name)
                        .ok()?
                        .into_bytes()
                        .into_boxed_slice(),
                )
            } else {
                None
            };
            let mut seen = seen_of(m, what, target);
            if !self.stable_inodes[idx(side)] {
                seen.ino = 0;
            }
            Some(seen)
        };
        let (Some(a), Some(b)) = (seen(&a, Side::A), seen(&b, Side::B)) else {
            return;
        };
        self.record(path, Some(&a), Some(&b));
    }

    fn record(&mut self, path: &[u8], a: Option<&Seen>, b: Option<&Seen>) {
        let (Some(a), Some(b)) = (a, b) else {
            return;
        };
        // Sides that differ (one changed again since this pass's action)
        // are not recorded: the next pass sees both changes.
        if a.what != b.what
            || (a.what == What::File && a.size != b.size)
            || (a.what == What::Link && a.target != b.target)
        {
            return;
        }
        let stamp = |s: &Seen| Stamp {
            mtime: s.mtime,
            ino: s.ino,
            mode: s.mode,
        };
        let since = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            - RACY_WINDOW_SECS;
        let rec = Record {
            what: a.what,
            size: a.size,
            target: a.target.clone(),
            a: stamp(a),
            b: stamp(b),
            racy: a.what == What::File && (a.mtime.sec >= since || b.mtime.sec >= since),
        };
        if let Err(e) = self.archive.put(path, rec) {
            self.log.state_error(&e);
        }
    }

    fn forget(&mut self, path: &[u8]) {
        if let Err(e) = self.archive.forget(path) {
            self.log.state_error(&e);
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
        && seen.mtime == stamp.mtime
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

/// What the scan would have seen of `meta`.
pub fn seen_of(meta: &Meta, what: What, target: Option<Box<[u8]>>) -> Seen {
    Seen {
        what,
        size: meta.size,
        mtime: meta.mtime,
        ino: meta.ino,
        mode: meta.mode,
        target,
    }
}

/// Whether `meta`, stat-ed now, is the entry the scan saw as `seen`.
fn matches_seen(meta: &Meta, seen: &Seen) -> bool {
    let what = match meta.kind {
        fsops::Kind::File => What::File,
        fsops::Kind::Dir => What::Dir,
        fsops::Kind::Symlink => What::Link,
        fsops::Kind::Special(_) => return false,
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
