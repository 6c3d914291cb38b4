//! The planner with excluded entries (issue 19, items 3 and 4): a copy
//! onto an excluded entry, or the removal or replacement of a folder that
//! holds excluded entries, is [`Action::Excluded`].

use super::*;
use crate::twoway::excluded::Excluded;

/// [`planned`], with what each side excludes.
fn planned_excluding(
    mut rows: Vec<Row>,
    a: &[(&str, What)],
    b: &[(&str, What)],
) -> Vec<(String, Action)> {
    let list = |l: &[(&str, What)]| l.iter().map(|(p, w)| (p.as_bytes().into(), *w)).collect();
    let excluded = Excluded::new(list(a), list(b));
    rows.sort_by(|x, y| tree_order(&x.path, &y.path));
    plan_with(&mut rows, &excluded);
    rows.into_iter()
        .map(|r| (String::from_utf8(r.path.into()).unwrap(), r.action))
        .collect()
}

const EXCL_A: Action = Action::Excluded { holder: Side::A };
const EXCL_B: Action = Action::Excluded { holder: Side::B };

/// Plans `rows` with what A and B exclude and checks the actions.
#[track_caller]
fn check(
    rows: Vec<Row>,
    a: &[(&'static str, What)],
    b: &[(&'static str, What)],
    wanted: &[(&'static str, Action)],
) {
    let shown = format!(
        "{:?} excluding {a:?} / {b:?}",
        rows.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(planned_excluding(rows, a, b), want(wanted), "{shown}");
}

// Excluded entries are never deleted, moved or replaced (issue 19, items
// 3 and 4): the side holding them keeps the name.

#[test]
fn a_file_meeting_an_excluded_folder_of_its_name_does_not_replace_it() {
    // Item 4: B's new file meets A's excluded folder of its name.
    check(
        vec![row("cache", None, Absent, Created(File, 0))],
        &[("cache", Dir)],
        &[],
        &[("cache", EXCL_A)],
    );
    // A replaced its file by an excluded folder while B edited it.
    check(
        vec![row("cache", Some(File), Absent, ContentX)],
        &[("cache", Dir)],
        &[],
        &[("cache", EXCL_A)],
    );
    // ... while B left it: B's file goes, A's folder is not touched.
    check(
        vec![row("cache", Some(File), Absent, Same)],
        &[("cache", Dir)],
        &[],
        &[("cache", DEL_B)],
    );
}

#[test]
fn a_folder_holding_excluded_entries_is_kept() {
    // Item 3: A replaced folder d2 by a file; B's d2 holds only excluded
    // entries (and an unchanged file, which goes).
    check(
        vec![
            row("d2", Some(Dir), To(File), Same),
            row("d2/f", Some(File), Absent, Same),
        ],
        &[],
        &[("d2/cache", Dir)],
        &[("d2", EXCL_B), ("d2/f", DEL_B)],
    );
    // A deleted a folder that holds excluded entries on B, deeper down:
    // each folder on the way is kept, the one above made again.
    check(
        vec![
            row("top", Some(Dir), Absent, Same),
            row("top/d", Some(Dir), Absent, Same),
            row("top/d/f", Some(File), Absent, Same),
            row("top/g", Some(File), Absent, Same),
        ],
        &[],
        &[("top/d/x.tmp", File)],
        &[
            ("top", TO_A),
            ("top/d", EXCL_B),
            ("top/d/f", DEL_B),
            ("top/g", DEL_B),
        ],
    );
    // Excluded entries beside the folder, not in it, change nothing.
    check(
        vec![
            row("d", Some(Dir), Absent, Same),
            row("d/f", Some(File), Absent, Same),
        ],
        &[],
        &[("d!", File), ("d.txt", File), ("dd", Dir)],
        &[("d", DEL_B), ("d/f", DEL_B)],
    );
}

#[test]
fn a_folder_meeting_an_excluded_file_is_left_alone() {
    // The folder is not moved aside: it and all below it are left alone.
    check(
        vec![
            row("x", None, Absent, Created(Dir, 0)),
            row("x/y", None, Absent, Created(File, 0)),
            row("z", None, Absent, Created(File, 0)),
        ],
        &[("x", File)],
        &[],
        &[("x", EXCL_A), ("x/y", Action::Keep), ("z", TO_A)],
    );
}

#[test]
fn the_holder_on_side_a_keeps_its_folder_too() {
    // Mirrored, A's folder holds them.
    check(
        vec![row("d", Some(Dir), Same, To(File))],
        &[("d/cache", Dir)],
        &[],
        &[("d", EXCL_A)],
    );
    // Met at a first sync, a folder against a file is already a conflict
    // the folder wins.
    check(
        vec![row("d", None, Created(Dir, 0), Created(File, 0))],
        &[("d/cache", Dir)],
        &[],
        &[("d", Action::Conflict { winner: Side::A })],
    );
}
