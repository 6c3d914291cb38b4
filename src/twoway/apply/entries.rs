//! Files and links: putting one side's on the other (re-checked right
//! before the commit), a mode or mtime set alone, a removal.

use super::*;
use crate::fsops::Removal;

impl Apply<'_> {
    /// Two files with the same bytes and different mtimes (found on a
    /// first sync, or made by the same edit on both sides): the newer
    /// mtime is only when that side got its copy, so both take the older.
    pub(super) fn align_mtime(&mut self, row: &Row) {
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
                .op("open folder")
                .and_then(|dir| fsops::set_file_attrs(dir, &name, dst.mode, mtime, &caps));
            if let Err(e) = set {
                self.op_failed(&row.path, to, &e);
                return;
            }
        }
        self.log.did(&row.path, to, Did::Mtime);
        let other = row.seen(to.other()).expect("both");
        self.record_now(&row.path, Some((to.other(), other)));
    }

    /// Gives the file at `row.path` on `to` the mode of the other side's,
    /// whose bytes are the same (only its mode changed since the last
    /// sync).
    pub(super) fn set_file_mode(&mut self, row: &Row, to: Side, src: &Seen) {
        if !self.unchanged(to, &row.path, row.seen(to)) {
            return;
        }
        if !self.ctx.options.dry_run {
            let caps = self.caps[idx(to)];
            let dst = row.seen(to).expect("a file to set");
            let name = name_of(&row.path);
            let set = self
                .dir(to, parent(&row.path))
                .op("open folder")
                .and_then(|dir| fsops::set_file_attrs(dir, &name, src.mode, dst.mtime, &caps));
            if let Err(e) = set {
                self.op_failed(&row.path, to, &e);
                return;
            }
        }
        self.log.did(&row.path, to, Did::Mode(src.mode));
        self.record_now(&row.path, Some((to.other(), src)));
    }

    /// Puts the other side's file or link at `row.path` on `to`, where
    /// `dst` was (or nothing was), and records the path.
    pub(super) fn put_entry(&mut self, row: &Row, to: Side, src: &Seen, dst: Option<&Seen>) {
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
            self.record_now(&row.path, Some((to.other(), src)));
        }
    }

    /// Copies the file at `path` from the other side to `to`. Whether it
    /// is there now.
    pub(super) fn put_file(
        &mut self,
        path: &[u8],
        to: Side,
        src: &Seen,
        dst: Option<&Seen>,
    ) -> bool {
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
    pub(super) fn two_dirs(&mut self, dir: &[u8], from: Side) -> io::Result<(OwnedFd, OwnedFd)> {
        let src = self.dir(from, dir)?.try_clone_to_owned()?;
        let dst = self.dir(from.other(), dir)?.try_clone_to_owned()?;
        Ok((src, dst))
    }

    pub(super) fn put_link(&mut self, path: &[u8], to: Side, src: &Seen) -> bool {
        let target: &[u8] = src.target.as_deref().map_or(&[], Vec::as_slice);
        if !self.ctx.options.dry_run {
            let name = name_of(path);
            let target = CString::new(target).expect("a link target holds no NUL");
            let made = self
                .dir(to, parent(path))
                .op("open folder")
                .and_then(|dir| fsops::make_symlink(dir, &name, &target, None));
            if let Err(e) = made {
                self.op_failed(path, to, &e);
                return false;
            }
        }
        self.log.did(path, to, Did::Linked(target));
        true
    }

    /// Removes the file or link at `row.path` on `on`, if it is still what
    /// the scan saw. Whether it is gone.
    pub(super) fn remove_entry(&mut self, row: &Row, on: Side) -> bool {
        let seen = row.seen(on).expect("something to remove");
        if !self.unchanged(on, &row.path, Some(seen)) {
            return false;
        }
        removal_test_hook();
        if !self.ctx.options.dry_run {
            let name = name_of(&row.path);
            let removed = self
                .dir(on, parent(&row.path))
                .op("open folder")
                .and_then(|dir| {
                    fsops::remove_file_if(dir, &name, &|now| matches_seen_but_ctime(now, seen))
                });
            match removed {
                Ok(Removal::Removed) => {}
                Ok(Removal::PutBack) => {
                    self.log.changed_meanwhile(&row.path, on);
                    return false;
                }
                Ok(Removal::Aside(tmp)) => {
                    self.keep_aside(&row.path, on, &tmp);
                    return false;
                }
                Err(e) => {
                    self.op_failed(&row.path, on, &e);
                    return false;
                }
            }
        }
        self.log.did(&row.path, on, Did::Removed(seen.what));
        true
    }

    /// A file about to be removed changed under its temporary name while
    /// a new one took its name: it is kept under a conflict name, which
    /// the next pass brings to the other side.
    fn keep_aside(&mut self, path: &[u8], on: Side, tmp: &std::ffi::CStr) {
        let Some(aside) = self.free_conflict_name(path) else {
            return;
        };
        let renamed = self
            .dir(on, parent(path))
            .op("open folder")
            .and_then(|dir| fsops::rename_new(dir, tmp, &name_of(&aside)));
        match renamed {
            Ok(()) => self.log.kept_aside(path, on, &aside),
            Err(e) => self.op_failed(&aside, on, &e),
        }
    }

    /// Removes a leftover temporary file or link of a killed pass (its
    /// tag says it was this pair's). The pair holds both folders' locks,
    /// so no pass of ours is writing it. Whether it is gone.
    pub fn remove_stale(&mut self, side: Side, path: &[u8]) -> bool {
        if self.ctx.options.dry_run {
            return true;
        }
        let name = name_of(path);
        let removed = self
            .dir(side, parent(path))
            .op("open folder")
            .and_then(|dir| fsops::remove_file(dir, &name));
        match removed {
            Ok(()) => self.log.removed_stale(path, side),
            Err(e) if gone(&e.err) => {}
            Err(e) => {
                self.op_failed(path, side, &e);
                return false;
            }
        }
        true
    }
}

/// Debug builds only: with `FOLDERSYNC_TEST_PAUSE_REMOVE` set to a path,
/// each removal of a file or link waits, once its last look found it
/// unchanged, until the file written there is removed (60 s at most), so
/// a test can write to it in the window a deletion has.
fn removal_test_hook() {
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("FOLDERSYNC_TEST_PAUSE_REMOVE") {
        let flag = std::path::PathBuf::from(flag);
        if std::fs::write(&flag, b"paused").is_ok() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while flag.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}
