//! Conflicts: the losing version moved aside under a conflict name on
//! its side, then copied to the other; the winner takes the name.

use super::*;
use crate::logging::display_path;

impl Apply<'_> {
    /// Both sides changed `row.path` differently: the loser's version
    /// moves aside under a conflict name (on its side, then copied to the
    /// other), and the winner's takes the name on both sides.
    pub(super) fn conflict(&mut self, row: &Row, winner: Side) {
        let loser = winner.other();
        let (Some(w), Some(l)) = (row.seen(winner).cloned(), row.seen(loser).cloned()) else {
            return;
        };
        let said = |log: &mut Log<'_>, aside: &[u8]| log.conflict(&row.path, winner, aside);
        if self.set_aside(row, loser, &l, said).is_none() {
            return;
        }
        // And the winner's takes the name on the loser's side.
        if w.what == What::Dir {
            self.make_dir(row, loser);
        } else {
            self.put_entry(row, loser, &w, None);
        }
    }

    /// Moves side `loser`'s entry `l` at `row.path` aside under a free
    /// conflict name, then copies it to the other side; `say` logs why,
    /// first. The conflict name, once the entry is moved (the name at
    /// `row.path` is then free on `loser`'s side).
    pub(super) fn set_aside(
        &mut self,
        row: &Row,
        loser: Side,
        l: &Seen,
        say: impl FnOnce(&mut Log<'_>, &[u8]),
    ) -> Option<Box<[u8]>> {
        if !self.unchanged(loser, &row.path, Some(l)) {
            return None;
        }
        let aside = self.free_conflict_name(&row.path)?;
        self.log.counts.conflicts += 1;
        say(&mut self.log, &aside);
        if !self.ctx.options.dry_run {
            let renamed = self
                .dir(loser, parent(&row.path))
                .op("open folder")
                .and_then(|dir| fsops::rename_new(dir, &name_of(&row.path), &name_of(&aside)));
            if let Err(e) = renamed {
                self.op_failed(&row.path, loser, &e);
                return None;
            }
        }
        // The loser's version, now under its new name, goes to the other
        // side as well.
        if let Some(moved) = self.put_aside_copy(&aside, loser, l) {
            self.record_now(&aside, Some((loser, &moved)));
        }
        Some(aside)
    }

    /// Copies the entry `aside` on `from` (a conflict copy) to the other
    /// side, where nothing has that name.
    /// The version it copied, when it did.
    pub(super) fn put_aside_copy(&mut self, aside: &[u8], from: Side, seen: &Seen) -> Option<Seen> {
        let to = from.other();
        let mut moved = seen.clone();
        if !self.ctx.options.dry_run {
            // The rename kept the inode and mtime and moved the ctime,
            // which is recorded as it is now.
            match self.stat(from, aside) {
                Ok(Some(meta)) if matches_seen_but_ctime(&meta, seen) => {
                    moved.ino = meta.ino;
                    moved.ctime = meta.ctime.nanos();
                }
                _ => {
                    self.log.changed_meanwhile(aside, from);
                    return None;
                }
            }
        }
        if !self.unchanged(to, aside, None) {
            return None;
        }
        let put = match moved.what {
            What::Link => self.put_link(aside, to, &moved),
            _ => self.put_file(aside, to, &moved, None),
        };
        put.then_some(moved)
    }

    /// A conflict name for `path` that neither side holds. A name that
    /// cannot be looked up (too long for the file system, say) is an
    /// error naming it and the cause, not a reason to try the next one.
    pub(super) fn free_conflict_name(&mut self, path: &[u8]) -> Option<Box<[u8]>> {
        const TRIES: u32 = 1000;
        for n in 1..=TRIES {
            let name = conflict::name(path, self.started, n);
            let mut free = true;
            for side in [Side::A, Side::B] {
                match self.stat(side, &name) {
                    Ok(None) => {}
                    Ok(Some(_)) => free = false,
                    Err(e) => {
                        let op = format!("name its conflict copy {}", display_path(&name));
                        self.log.io_error(path, side, &op, &e);
                        return None;
                    }
                }
            }
            if free {
                return Some(name.into());
            }
        }
        self.log.io_error(
            path,
            Side::A,
            "name a conflict copy",
            &io::Error::other(format!("{TRIES} conflict names are taken")),
        );
        None
    }
}
