//! The planner's state table, tested exhaustively (issue 13, "Proof"):
//! every archive entry (none, file, folder, symlink) × every state of side
//! A × every state of side B × the byte comparison's result where the
//! planner asks for one, each checked against [`rule`], a restatement of
//! the "What a pass does" written from the states' names, not
//! from the code's `change`. Then `plan` on folders with contents: what
//! must survive inside a folder decides the folder's fate.

use super::*;
use crate::fsops::Time;
use crate::twoway::row::tree_order;

/// One side's state against the archive, as the issue names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Absent,
    /// Exactly as the archive has it.
    Same,
    /// New content: a file of 20 bytes (mtime 200), or link target `x`.
    ContentX,
    /// Other new content: a file of the same 20 bytes' size but newer
    /// (mtime 300), so only reading tells X and Y apart; link target `y`.
    ContentY,
    /// New content of another size (30 bytes, mtime 250).
    Longer,
    /// A new mtime (150) only: same size, same mode.
    Touched,
    /// A new ctime only: size, mtime, inode and mode as recorded (the
    /// bytes rewritten and the mtime put back, or a hard link made).
    Ctime,
    /// A new mode only (file 0600, folder 0700).
    Mode,
    /// Replaced by an entry of another type.
    To(What),
    /// Made where the archive has nothing: variant 0, 1 or 2.
    Created(What, u8),
}

use State::*;
use What::{Dir, File, Link};

/// The states that make sense for a side, given the archive entry's type.
fn states(rec: Option<What>) -> Vec<State> {
    match rec {
        None => vec![
            Absent,
            Created(File, 0),
            Created(File, 1),
            Created(File, 2),
            Created(Dir, 0),
            Created(Dir, 1),
            Created(Link, 0),
            Created(Link, 1),
        ],
        Some(File) => vec![
            Absent,
            Same,
            ContentX,
            ContentY,
            Longer,
            Touched,
            Ctime,
            Mode,
            To(Dir),
            To(Link),
        ],
        Some(Dir) => vec![Absent, Same, Mode, To(File), To(Link)],
        Some(Link) => vec![Absent, Same, ContentX, ContentY, To(File), To(Dir)],
    }
}

fn t(sec: i64) -> Time {
    Time { sec, nsec: 0 }
}

fn file(size: u64, mtime: i64, mode: u32, ino: u64) -> Seen {
    Seen {
        what: File,
        size,
        mtime: t(mtime),
        ctime: t(mtime).nanos(),
        ino,
        mode,
        target: None,
    }
}

fn dir(mode: u32, mtime: i64, ino: u64) -> Seen {
    Seen {
        what: Dir,
        size: 4096,
        mtime: t(mtime),
        ctime: t(mtime).nanos(),
        ino,
        mode,
        target: None,
    }
}

fn link(target: &[u8], mtime: i64, ino: u64) -> Seen {
    Seen {
        what: Link,
        size: target.len() as u64,
        mtime: t(mtime),
        ctime: t(mtime).nanos(),
        ino,
        mode: 0o777,
        target: Some(Box::new(target.to_vec())),
    }
}

/// The archive entry of each type: a 10-byte file (mtime 100, mode 0644),
/// a folder (0755), a link to `t`; side A's inode 1, side B's 2.
fn record(what: What, racy: bool) -> Record {
    let seen = match what {
        File => file(10, 100, 0o644, 0),
        Dir => dir(0o755, 100, 0),
        Link => link(b"t", 100, 0),
    };
    let stamp = |ino| Stamp {
        mtime: seen.mtime.nanos(),
        ctime: seen.ctime,
        ino,
        mode: seen.mode,
    };
    Record {
        what,
        size: seen.size,
        target: seen.target.clone(),
        a: stamp(1),
        b: stamp(2),
        racy,
    }
}

/// What the scan sees on `side` in `state`.
fn seen(rec: Option<&Record>, side: Side, state: State) -> Option<Seen> {
    let ino = if side == Side::A { 1 } else { 2 };
    let new_ino = ino + 10;
    let what = rec.map(|r| r.what);
    Some(match (state, what) {
        (Absent, _) => return None,
        (Same, Some(File)) => file(10, 100, 0o644, ino),
        (Same, Some(Dir)) => dir(0o755, 100, ino),
        (Same, Some(Link)) => link(b"t", 100, ino),
        (ContentX, Some(File)) => file(20, 200, 0o644, ino),
        (ContentY, Some(File)) => file(20, 300, 0o644, ino),
        (Longer, Some(File)) => file(30, 250, 0o644, ino),
        (Touched, Some(File)) => file(10, 150, 0o644, ino),
        (Ctime, Some(File)) => Seen {
            ctime: t(170).nanos(),
            ..file(10, 100, 0o644, ino)
        },
        (Mode, Some(File)) => file(10, 100, 0o600, ino),
        (Mode, Some(Dir)) => dir(0o700, 120, ino),
        (ContentX, Some(Link)) => link(b"x", 200, new_ino),
        (ContentY, Some(Link)) => link(b"y", 300, new_ino),
        (To(File), _) | (Created(File, 0), _) => file(20, 200, 0o644, new_ino),
        (Created(File, 1), _) => file(20, 300, 0o600, new_ino),
        (Created(File, _), _) => file(30, 250, 0o644, new_ino),
        (To(Dir), _) | (Created(Dir, 0), _) => dir(0o755, 200, new_ino),
        (Created(Dir, _), _) => dir(0o700, 300, new_ino),
        (To(Link), _) | (Created(Link, 0), _) => link(b"x", 200, new_ino),
        (Created(Link, _), _) => link(b"y", 300, new_ino),
        (state, what) => panic!("no state {state:?} for an archive entry {what:?}"),
    })
}

/// One case of the table.
struct Case {
    rec: Option<Record>,
    sa: State,
    sb: State,
    a: Option<Seen>,
    b: Option<Seen>,
    /// The comparison's result, when the planner asked for one.
    same: Option<bool>,
}

/// Whether the user did something to this side since the last sync.
fn edited(s: State) -> bool {
    !matches!(s, Absent | Same)
}

/// Whether the planner should read both files before deciding: the
/// issue's rules need to know whether two edits (or two first-seen files)
/// are the same result, and a racy entry's or `--checksum`'s unchanged
/// stamps must be confirmed; a size difference settles it unread.
fn compare_needed(c: &Case, racy: bool, checksum: bool) -> bool {
    let (Some(a), Some(b)) = (&c.a, &c.b) else {
        return false;
    };
    if a.what != File || b.what != File || a.size != b.size {
        return false;
    }
    let (ea, eb) = (edited(c.sa), edited(c.sb));
    // Only the ctime or the mode moved: the stamps cannot vouch for the
    // bytes, which an unedited other side can.
    let unsure = |s| matches!(s, Ctime | Mode) && c.rec.as_ref().is_some_and(|r| r.what == File);
    (ea && eb)
        || (!ea && !eb && (racy || checksum))
        || (unsure(c.sa) && !eb)
        || (unsure(c.sb) && !ea)
}

/// The rules, per path:
///
/// - gone from both sides: the archive entry is dropped;
/// - on one side only: new there, or changed there while the other side
///   deleted it: copied to the other side (the change wins); unchanged
///   there while the other side deleted it: deleted;
/// - on both, unchanged on both: nothing, unless reading the bytes found
///   a difference the stamps hid (then nobody knows who edited: both are
///   kept, a conflict) or confirmed a racy entry (recorded again);
/// - changed on one side only: copied to the other;
/// - changed on both to the same result: recorded, nothing copied; the
///   same bytes with different modes take the newer side's mode;
/// - changed on both differently: a conflict, the newer (by mtime, the
///   source on a tie) keeps the name. A folder against a file or link
///   always keeps the name: only files and links are moved aside.
fn rule(c: &Case) -> Action {
    let had = c.rec.is_some();
    let racy = c.rec.as_ref().is_some_and(|r| r.racy);
    let (a, b) = match (&c.a, &c.b) {
        (None, None) if had => return Action::Forget,
        (None, None) => return Action::Keep,
        (Some(_), None) if !had || edited(c.sa) => return Action::Copy { to: Side::B },
        (Some(_), None) => return Action::Delete { on: Side::A },
        (None, Some(_)) if !had || edited(c.sb) => return Action::Copy { to: Side::A },
        (None, Some(_)) => return Action::Delete { on: Side::B },
        (Some(a), Some(b)) => (a, b),
    };
    let newer = if b.mtime > a.mtime { Side::B } else { Side::A };
    match (edited(c.sa), edited(c.sb)) {
        (false, false) => match c.same {
            Some(false) => Action::Conflict { winner: newer },
            Some(true) if racy => Action::Record,
            _ => Action::Keep,
        },
        // Only the ctime moved and the bytes are still the other side's.
        (false, true) | (true, false)
            if matches!((c.sa, c.sb), (Ctime, Same) | (Same, Ctime)) && c.same == Some(true) =>
        {
            Action::Record
        }
        (false, true) => Action::Copy { to: Side::A },
        (true, false) => Action::Copy { to: Side::B },
        (true, true) if a.what == Dir && b.what != Dir => Action::Conflict { winner: Side::A },
        (true, true) if b.what == Dir && a.what != Dir => Action::Conflict { winner: Side::B },
        (true, true) => {
            let same_result = a.what == b.what
                && match a.what {
                    File => c.same == Some(true),
                    Link => a.target == b.target,
                    Dir => true,
                };
            if !same_result {
                Action::Conflict { winner: newer }
            } else if a.what == Link || a.mode == b.mode {
                Action::Record
            } else {
                Action::Copy { to: newer.other() }
            }
        }
    }
}

/// What `change` must say of a side in `state`.
fn change_of(had: bool, state: State) -> Change {
    match state {
        Absent if had => Change::Deleted,
        Absent => Change::Absent,
        Same => Change::Same,
        Ctime => Change::Touched,
        Created(..) => Change::Created,
        _ => Change::Changed,
    }
}

fn row_of(c: &Case) -> Row {
    Row {
        path: b"p".as_slice().into(),
        rec: c.rec.clone(),
        a: c.a.clone(),
        b: c.b.clone(),
        same: c.same,
        action: Action::Keep,
    }
}

#[test]
fn every_archive_entry_and_side_state_is_decided_as_the_rules_say() {
    let recs = [
        (None, false),
        (Some(File), false),
        (Some(File), true),
        (Some(Dir), false),
        (Some(Link), false),
    ];
    let mut checked = 0;
    let mut compared = 0;
    let mut failures = Vec::new();
    for (what, racy) in recs {
        let rec = what.map(|w| record(w, racy));
        for &sa in &states(what) {
            for &sb in &states(what) {
                for checksum in [false, true] {
                    let mut case = Case {
                        a: seen(rec.as_ref(), Side::A, sa),
                        b: seen(rec.as_ref(), Side::B, sb),
                        rec: rec.clone(),
                        sa,
                        sb,
                        same: None,
                    };
                    for (side, state, s) in [(Side::A, sa, &case.a), (Side::B, sb, &case.b)] {
                        assert_eq!(
                            change(case.rec.as_ref(), s.as_ref(), side),
                            change_of(what.is_some(), state),
                            "change of {state:?} on {side:?} against {what:?}"
                        );
                    }
                    let needed = compare_needed(&case, racy, checksum);
                    assert_eq!(
                        needs_compare(&row_of(&case), checksum),
                        needed,
                        "needs_compare: archive {what:?} (racy {racy}), A {sa:?}, B {sb:?}, checksum {checksum}"
                    );
                    let results: &[Option<bool>] = if needed {
                        compared += 1;
                        &[Some(true), Some(false)]
                    } else {
                        &[None]
                    };
                    for &same in results {
                        case.same = same;
                        let want = rule(&case);
                        let mut rows = [row_of(&case)];
                        plan(&mut rows);
                        let dir_a = case.a.as_ref().is_some_and(|s| s.what == Dir);
                        let dir_b = case.b.as_ref().is_some_and(|s| s.what == Dir);
                        let decided = (dir_a == dir_b).then(|| decide(&rows[0]));
                        if rows[0].action != want || decided.is_some_and(|d| d != want) {
                            failures.push(format!(
                                "archive {what:?} (racy {racy}), A {sa:?}, B {sb:?}, same {same:?}: \
                                 want {want:?}, plan {:?}, decide {decided:?}",
                                rows[0].action
                            ));
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ from the rules:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 8² + 2 × 10² + 5² + 6² combinations, twice (--checksum or not), and
    // the compared ones twice more.
    assert!(checked >= 2 * (64 + 200 + 25 + 36), "{checked} cases");
    assert!(compared > 0);
}

/// A row for `plan`: the archive's type (`None`: not recorded) and each
/// side's state.
fn row(path: &str, rec: Option<What>, sa: State, sb: State) -> Row {
    let rec = rec.map(|w| record(w, false));
    Row {
        path: path.as_bytes().into(),
        a: seen(rec.as_ref(), Side::A, sa),
        b: seen(rec.as_ref(), Side::B, sb),
        rec,
        same: None,
        action: Action::Keep,
    }
}

/// Plans `rows` (put in tree order first) and returns each path's action.
fn planned(mut rows: Vec<Row>) -> Vec<(String, Action)> {
    rows.sort_by(|x, y| tree_order(&x.path, &y.path));
    plan(&mut rows);
    rows.into_iter()
        .map(|r| (String::from_utf8(r.path.into()).unwrap(), r.action))
        .collect()
}

fn want(rows: &[(&str, Action)]) -> Vec<(String, Action)> {
    let mut out: Vec<(String, Action)> = rows.iter().map(|(p, a)| (p.to_string(), *a)).collect();
    out.sort_by(|x, y| tree_order(x.0.as_bytes(), y.0.as_bytes()));
    out
}

const TO_A: Action = Action::Copy { to: Side::A };
const TO_B: Action = Action::Copy { to: Side::B };
const DEL_A: Action = Action::Delete { on: Side::A };
const DEL_B: Action = Action::Delete { on: Side::B };

#[test]
fn a_folder_deleted_on_one_side_keeps_what_the_other_changed_inside() {
    // A deleted d; B changed d/sub/edited and made d/new, and left the rest.
    let got = planned(vec![
        row("d", Some(Dir), Absent, Same),
        row("d/same", Some(File), Absent, Same),
        row("d/new", None, Absent, Created(File, 0)),
        row("d/sub", Some(Dir), Absent, Same),
        row("d/sub/edited", Some(File), Absent, ContentX),
        row("d/sub/same", Some(File), Absent, Same),
        row("d/gone", Some(Dir), Absent, Same),
        row("d/gone/same", Some(File), Absent, Same),
        row("d/gone/link", Some(Link), Absent, Same),
    ]);
    assert_eq!(
        got,
        want(&[
            ("d", TO_A),
            ("d/same", DEL_B),
            ("d/new", TO_A),
            ("d/sub", TO_A),
            ("d/sub/edited", TO_A),
            ("d/sub/same", DEL_B),
            ("d/gone", DEL_B),
            ("d/gone/same", DEL_B),
            ("d/gone/link", DEL_B),
        ])
    );
    // Nothing changed inside: the whole folder goes.
    let got = planned(vec![
        row("d", Some(Dir), Same, Absent),
        row("d/x", Some(File), Same, Absent),
        row("d/e", Some(Dir), Same, Absent),
    ]);
    assert_eq!(got, want(&[("d", DEL_A), ("d/x", DEL_A), ("d/e", DEL_A)]));
}

#[test]
fn a_folder_replaced_by_a_file_loses_to_changes_inside_it() {
    // A replaced folder d by a file; nothing changed inside on B: the file
    // replaces the folder on B, whose contents go.
    let got = planned(vec![
        row("d", Some(Dir), To(File), Same),
        row("d/x", Some(File), Absent, Same),
        row("d/e", Some(Dir), Absent, Same),
    ]);
    assert_eq!(got, want(&[("d", TO_B), ("d/x", DEL_B), ("d/e", DEL_B)]));
    // B changed d/x: the folder keeps the name with the changed file in
    // it, A's file is kept beside it, unchanged d/y goes.
    let got = planned(vec![
        row("d", Some(Dir), To(File), Same),
        row("d/x", Some(File), Absent, ContentX),
        row("d/y", Some(File), Absent, Same),
    ]);
    assert_eq!(
        got,
        want(&[
            ("d", Action::Conflict { winner: Side::B }),
            ("d/x", TO_A),
            ("d/y", DEL_B),
        ])
    );
    // The same with a new file inside on B.
    let got = planned(vec![
        row("d", Some(Dir), To(Link), Same),
        row("d/n", None, Absent, Created(File, 0)),
    ]);
    assert_eq!(
        got,
        want(&[("d", Action::Conflict { winner: Side::B }), ("d/n", TO_A)])
    );
}

#[test]
fn a_file_replaced_by_a_folder_is_propagated_or_conflicts() {
    // A replaced file d by a folder with a file in it; B left d alone.
    let got = planned(vec![
        row("d", Some(File), To(Dir), Same),
        row("d/n", None, Created(File, 0), Absent),
    ]);
    assert_eq!(got, want(&[("d", TO_B), ("d/n", TO_B)]));
    // B edited d meanwhile: the folder keeps the name, B's file is kept
    // beside it.
    let got = planned(vec![
        row("d", Some(File), To(Dir), ContentX),
        row("d/n", None, Created(File, 0), Absent),
    ]);
    assert_eq!(
        got,
        want(&[("d", Action::Conflict { winner: Side::A }), ("d/n", TO_B)])
    );
    // B deleted d: the folder is restored there.
    let got = planned(vec![row("d", Some(File), To(Dir), Absent)]);
    assert_eq!(got, want(&[("d", TO_B)]));
}

/// Regression: a folder whose mode was changed on one side was deleted
/// (or replaced by a file) when the other side deleted (or replaced) it,
/// though a change wins over a deletion and a change on both sides keeps
/// both.
#[test]
fn a_folder_whose_mode_changed_survives_the_other_sides_deletion_or_replacement() {
    let got = planned(vec![
        row("d", Some(Dir), Mode, Absent),
        row("d/x", Some(File), Same, Absent),
    ]);
    assert_eq!(got, want(&[("d", TO_B), ("d/x", DEL_A)]));
    let got = planned(vec![
        row("d", Some(Dir), To(File), Mode),
        row("d/x", Some(File), Absent, Same),
    ]);
    assert_eq!(
        got,
        want(&[("d", Action::Conflict { winner: Side::B }), ("d/x", DEL_B)])
    );
}

/// A pass holds a `Seen` for every entry of both sides and a `Record` for
/// every entry of the archive: their sizes are most of its memory (the
/// two-way benchmark's target is half of Unison's peak).
#[test]
fn the_per_entry_values_stay_small() {
    assert!(
        std::mem::size_of::<Seen>() <= 56,
        "{}",
        std::mem::size_of::<Seen>()
    );
    assert!(
        std::mem::size_of::<Record>() <= 96,
        "{}",
        std::mem::size_of::<Record>()
    );
}

/// Excluded entries meeting others: the same helpers, in a file of their
/// own.
#[path = "excluded_tests.rs"]
mod excluded;
