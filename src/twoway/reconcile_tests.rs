//! The two-way planner's tests, from the rules (issue 13).

use super::*;
use crate::twoway::scan::tree_order;

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
    /// A new mode only (file 0600, folder 0700).
    Mode,
    /// Replaced by an entry of another type.
    To(What),
    /// Made where the archive has nothing: variant 0, 1 or 2.
    Created(What, u8),
}

use State::*;
use What::{Dir, File, Link};

fn t(sec: i64) -> Time {
    Time { sec, nsec: 0 }
}

fn file(size: u64, mtime: i64, mode: u32, ino: u64) -> Seen {
    Seen {
        what: File,
        size,
        mtime: t(mtime),
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
        ino,
        mode: 0o777,
        target: Some(target.into()),
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
        mtime: seen.mtime,
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
