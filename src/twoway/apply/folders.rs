//! Folders: made for the other side's (mode set once the contents are
//! in), and removed once emptied.

use super::*;

impl Apply<'_> {
    /// Makes a folder on `side` for the other side's; its mode is set and
    /// it is recorded once its contents are in.
    pub(super) fn make_dir(&mut self, row: &Row, on: Side) {
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
            let made = self
                .dir(on, parent(&row.path))
                .op("open folder")
                .and_then(|dir| {
                    rustix::fs::mkdirat(dir, &name, rustix::fs::Mode::from_raw_mode(first))
                        .op("create folder")
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

    pub(super) fn set_dir_mode(
        &mut self,
        path: &[u8],
        on: Side,
        mode: u32,
    ) -> Result<(), fsops::OpError> {
        if self.ctx.options.dry_run {
            return Ok(());
        }
        let caps = self.caps[idx(on)];
        let name = name_of(path);
        let dir = self.dir(on, parent(path)).op("open folder")?;
        let fd = fsops::open_dir_at(dir, &name).op("open folder")?;
        let now = fsops::stat_fd(fd.as_fd()).op("stat")?;
        fsops::set_fd_attrs(fd.as_fd(), mode, now.mtime, &caps)
    }

    /// Removes the folder at `path` on `on`, which should be empty by now.
    /// Whether it is gone; one that still holds something (excluded
    /// entries, or new ones) stays.
    pub(super) fn remove_dir(&mut self, path: &[u8], on: Side) -> bool {
        if !self.ctx.options.dry_run {
            let name = name_of(path);
            self.reopen(on);
            let removed = self
                .dir(on, parent(path))
                .op("open folder")
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
}
