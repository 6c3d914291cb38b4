//! Removals a pass holds back until the user approves them: a side
//! emptied of its files, and `--max-delete`.

use super::report::Log;
use super::row::{Action, Row, Side, What};
use crate::logging::display_root;
use crate::pair::PairContext;

/// How many files the archive recorded, and how many each side holds now
/// (`.foldersyncignore` files left out: one left on an emptied side says
/// nothing about the rest).
pub(super) fn rows_files(rows: &[Row]) -> [u64; 3] {
    let mut n = [0u64; 3];
    let ignore_file =
        |p: &[u8]| p.rsplit(|&c| c == b'/').next() == Some(crate::excludes::IGNORE_FILE.as_bytes());
    for row in rows.iter().filter(|r| !ignore_file(&r.path)) {
        let file = |what: Option<What>| u64::from(what == Some(What::File));
        n[0] += file(row.rec.as_ref().map(|r| r.what));
        n[1] += file(row.a.as_ref().map(|s| s.what));
        n[2] += file(row.b.as_ref().map(|s| s.what));
    }
    n
}

/// The emptied-side guard: a side that holds none of the files the last
/// sync left (its folders may be left, as `find -type f -delete` leaves
/// them) is far more often a mistake or a half-gone disk than a wish, so
/// nothing is deleted on the other side until the user approves it (menu
/// option 6) or runs with `--allow-empty-source`. The rest of the pass
/// goes on. Returns how many removals were held.
pub(super) fn hold_wipe(
    ctx: &PairContext<'_>,
    files: &[u64; 3],
    rows: &mut [Row],
    approved: bool,
    log: &mut Log<'_>,
) -> u64 {
    let [recorded, on_a, on_b] = *files;
    if approved || ctx.options.allow_empty_source || recorded == 0 {
        return 0;
    }
    let mut held = 0;
    for (emptied, left, other) in [(Side::A, on_a, Side::B), (Side::B, on_b, Side::A)] {
        if left > 0 {
            continue;
        }
        let mut count = 0u64;
        for row in rows.iter_mut() {
            if row.action == (Action::Delete { on: other }) {
                row.action = Action::Keep;
                count += 1;
            }
        }
        if count == 0 {
            continue;
        }
        let (name, root) = match emptied {
            Side::A => ("source", &ctx.spec.source),
            Side::B => ("replica", &ctx.spec.replica),
        };
        log.pass_error(format_args!(
            "{name} folder {} holds none of the files the last sync left in it ({recorded}): were they deleted by mistake, \
             or is part of its disk gone? None of the {count} entries this would remove on the other side were removed. \
             Approve the removals with menu option 6, or run once with --allow-empty-source",
            display_root(root)
        ));
        held += count;
    }
    held
}

/// `--max-delete`: when the plan removes more entries than allowed and the
/// user has not approved them, none are removed (the rest of the pass goes
/// on) and the pass says which. Returns how many were held.
pub(super) fn hold_deletions(
    ctx: &PairContext<'_>,
    rows: &mut [Row],
    approved: bool,
    log: &mut Log<'_>,
) -> u64 {
    let Some(limit) = ctx.options.max_delete.filter(|_| !approved) else {
        return 0;
    };
    let removals: Vec<usize> = (0..rows.len())
        .filter(|&i| matches!(rows[i].action, Action::Delete { .. }))
        .collect();
    let count = removals.len() as u64;
    if count <= limit {
        return 0;
    }
    let mut named: Vec<String> = removals
        .iter()
        .take(5)
        .map(|&i| crate::logging::display_path(&rows[i].path))
        .collect();
    if count > 5 {
        named.push(format!("and {} more", count - 5));
    }
    for i in removals {
        rows[i].action = Action::Keep;
    }
    log.pass_error(format_args!(
        "this pass would remove {count} entries, more than --max-delete {limit}: {}; none were removed. \
         Approve them with menu option 6, or run once with a higher --max-delete",
        named.join(", ")
    ));
    count
}
