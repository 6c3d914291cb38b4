//! Excluded entries meeting others in two-way sync. An excluded entry is
//! never deleted, moved or replaced by a pass: where a change from the
//! other side would need that, the side holding the excluded data keeps
//! the name, and the other side's entry is kept beside it as a conflict
//! copy (a folder deleted on the other side is made there again).

use std::cmp::Ordering;

use super::row::{Action, Row, Side, What, is_under, tree_order};

/// What each side's scan left out, by path, in tree order. Excluded
/// folders are not entered, so only the outermost excluded entries are
/// here.
#[derive(Default, Debug)]
pub struct Excluded {
    pub a: Vec<(Box<[u8]>, What)>,
    pub b: Vec<(Box<[u8]>, What)>,
}

impl Excluded {
    /// From both scans' lists, in any order.
    pub fn new(mut a: Vec<(Box<[u8]>, What)>, mut b: Vec<(Box<[u8]>, What)>) -> Excluded {
        a.sort_unstable_by(|x, y| tree_order(&x.0, &y.0));
        b.sort_unstable_by(|x, y| tree_order(&x.0, &y.0));
        Excluded { a, b }
    }

    fn of(&self, side: Side) -> &[(Box<[u8]>, What)] {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// What side `side` holds, excluded, at `path`.
    pub fn at(&self, side: Side, path: &[u8]) -> Option<What> {
        let list = self.of(side);
        list.binary_search_by(|(p, _)| tree_order(p, path))
            .ok()
            .map(|i| list[i].1)
    }

    /// The first excluded entry inside the folder `path` on `side`.
    pub fn first_under(&self, side: Side, path: &[u8]) -> Option<&[u8]> {
        let list = self.of(side);
        // In tree order a folder's contents come right after it.
        let i = list.partition_point(|(p, _)| tree_order(p, path) != Ordering::Greater);
        list.get(i)
            .map(|(p, _)| &p[..])
            .filter(|p| is_under(p, path) && *p != path)
    }
}

/// `action`, planned at `row` without regard to excluded entries, made
/// to leave them alone: a copy onto an excluded entry, or the removal or
/// replacement of a folder that holds excluded entries, becomes
/// [`Action::Excluded`] with the side holding them.
pub fn keep(row: &Row, action: Action, ex: &Excluded) -> Action {
    let is_dir = |side: Side| row.seen(side).is_some_and(|s| s.what == What::Dir);
    match action {
        Action::Copy { to } if row.seen(to).is_none() && ex.at(to, &row.path).is_some() => {
            Action::Excluded { holder: to }
        }
        Action::Copy { to } | Action::Delete { on: to }
            if is_dir(to) && !is_dir(to.other()) && ex.first_under(to, &row.path).is_some() =>
        {
            Action::Excluded { holder: to }
        }
        action => action,
    }
}

/// Whether an [`Action::Excluded`] at `row` cannot be settled by a
/// conflict copy: the other side holds a folder there, which is not moved
/// aside; then nothing is done at or below the path.
pub fn blocks(row: &Row) -> bool {
    match row.action {
        Action::Excluded { holder } => row
            .seen(holder.other())
            .is_some_and(|s| s.what == What::Dir),
        _ => false,
    }
}

/// Leaves alone everything below a path that [`blocks`].
pub fn keep_below_blocked(rows: &mut [Row]) {
    let mut blocked: Option<Box<[u8]>> = None;
    for row in rows.iter_mut() {
        if let Some(b) = &blocked {
            if is_under(&row.path, b) {
                row.action = Action::Keep;
                continue;
            }
            blocked = None;
        }
        if blocks(row) {
            blocked = Some(row.path.clone());
        }
    }
}
