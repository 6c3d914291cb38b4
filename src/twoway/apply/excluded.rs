//! Excluded entries met by the other side's change (see
//! [`crate::twoway::excluded`]): the side holding them keeps the name,
//! the other side's entry goes aside as a conflict copy.

use super::*;

impl Apply<'_> {
    /// Side `holder` excludes what is at `row.path` (or, its folder there
    /// holds excluded entries) and the other side's change would delete
    /// or replace it.
    pub(super) fn excluded(&mut self, row: &Row, holder: Side) {
        let other = holder.other();
        let held = self.excluded_there(holder, &row.path);
        match row.seen(other).cloned() {
            Some(o) if o.what == What::Dir => {
                // Not moved aside: a whole tree under a conflict name would
                // surprise more than it helps. The user settles it.
                self.log.excluded_blocked(&row.path, holder, &held);
            }
            Some(o) => {
                let say = |log: &mut Log<'_>, aside: &[u8]| {
                    log.excluded_aside(&row.path, holder, &held, aside)
                };
                if self.set_aside(row, other, &o, say).is_none() {
                    return;
                }
                if row.seen(holder).is_some_and(|s| s.what == What::Dir) {
                    self.make_dir(row, other);
                } else {
                    self.forget(&row.path);
                }
            }
            None => {
                self.log.excluded_remade(&row.path, holder, &held);
                self.make_dir(row, other);
            }
        }
    }

    /// What `side` excludes at `path` or inside it, for the log: `an
    /// excluded folder`, or `excluded entries (d2/cache)`.
    fn excluded_there(&self, side: Side, path: &[u8]) -> String {
        match self.excluded.at(side, path) {
            Some(What::Dir) => "an excluded folder".into(),
            Some(What::Link) => "an excluded symlink".into(),
            Some(What::File) => "an excluded file".into(),
            None => match self.excluded.first_under(side, path) {
                Some(inside) => format!(
                    "a folder holding excluded entries ({})",
                    crate::logging::display_path(inside)
                ),
                None => "excluded entries".into(),
            },
        }
    }
}
