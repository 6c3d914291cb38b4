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

/// Excluded entries are never deleted, moved or replaced (issue 19, items
/// 3 and 4): the side holding them keeps the name. Each case: the rows,
/// what A and B exclude, the actions wanted.
#[test]
fn excluded_entries_keep_their_name_against_the_other_sides_change() {
    const EXCL_A: Action = Action::Excluded { holder: Side::A };
    const EXCL_B: Action = Action::Excluded { holder: Side::B };
    type Case = (
        Vec<Row>,
        Vec<(&'static str, What)>,
        Vec<(&'static str, What)>,
        Vec<(&'static str, Action)>,
    );
    let cases: Vec<Case> = vec![
        // Item 4: B's new file meets A's excluded folder of its name.
        (
            vec![row("cache", None, Absent, Created(File, 0))],
            vec![("cache", Dir)],
            vec![],
            vec![("cache", EXCL_A)],
        ),
        // A replaced its file by an excluded folder while B edited it.
        (
            vec![row("cache", Some(File), Absent, ContentX)],
            vec![("cache", Dir)],
            vec![],
            vec![("cache", EXCL_A)],
        ),
        // ... while B left it: B's file goes, A's folder is not touched.
        (
            vec![row("cache", Some(File), Absent, Same)],
            vec![("cache", Dir)],
            vec![],
            vec![("cache", DEL_B)],
        ),
        // Item 3: A replaced folder d2 by a file; B's d2 holds only
        // excluded entries (and an unchanged file, which goes).
        (
            vec![
                row("d2", Some(Dir), To(File), Same),
                row("d2/f", Some(File), Absent, Same),
            ],
            vec![],
            vec![("d2/cache", Dir)],
            vec![("d2", EXCL_B), ("d2/f", DEL_B)],
        ),
        // A deleted a folder that holds excluded entries on B, deeper
        // down: each folder on the way is kept, the one above made again.
        (
            vec![
                row("top", Some(Dir), Absent, Same),
                row("top/d", Some(Dir), Absent, Same),
                row("top/d/f", Some(File), Absent, Same),
                row("top/g", Some(File), Absent, Same),
            ],
            vec![],
            vec![("top/d/x.tmp", File)],
            vec![
                ("top", TO_A),
                ("top/d", EXCL_B),
                ("top/d/f", DEL_B),
                ("top/g", DEL_B),
            ],
        ),
        // Excluded entries beside the folder, not in it, change nothing.
        (
            vec![
                row("d", Some(Dir), Absent, Same),
                row("d/f", Some(File), Absent, Same),
            ],
            vec![],
            vec![("d!", File), ("d.txt", File), ("dd", Dir)],
            vec![("d", DEL_B), ("d/f", DEL_B)],
        ),
        // A folder on the other side is not moved aside: it and all below
        // it are left alone.
        (
            vec![
                row("x", None, Absent, Created(Dir, 0)),
                row("x/y", None, Absent, Created(File, 0)),
                row("z", None, Absent, Created(File, 0)),
            ],
            vec![("x", File)],
            vec![],
            vec![("x", EXCL_A), ("x/y", Action::Keep), ("z", TO_A)],
        ),
        // Mirrored, A's folder holds them; and met at a first sync, a
        // folder against a file is already a conflict the folder wins.
        (
            vec![row("d", Some(Dir), Same, To(File))],
            vec![("d/cache", Dir)],
            vec![],
            vec![("d", EXCL_A)],
        ),
        (
            vec![row("d", None, Created(Dir, 0), Created(File, 0))],
            vec![("d/cache", Dir)],
            vec![],
            vec![("d", Action::Conflict { winner: Side::A })],
        ),
    ];
    for (rows, a, b, wanted) in cases {
        let shown = format!(
            "{:?} excluding {a:?} / {b:?}",
            rows.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
        assert_eq!(planned_excluding(rows, &a, &b), want(&wanted), "{shown}");
    }
}
