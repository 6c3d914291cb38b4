//! The reference model of issue 13's two-way rules, for
//! `two_way_model.rs`: from what both sides held after the last sync and
//! what they hold now, what both must hold after a pass. Written from the
//! issue's words ("What a pass does"), path by path, then folders: a
//! folder stays wherever something inside it stays. Kept apart from the
//! program's planner on purpose: a shared mistake would prove nothing.

use std::collections::BTreeMap;

use crate::support::Node;

pub type Tree = BTreeMap<Vec<u8>, Node>;

/// What both sides must agree on after a pass: a folder (and its mode), a
/// file's bytes and mode, a link's target. Mtimes may differ: two sides
/// that made the same edit keep their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(Vec<u8>),
}

pub fn content(n: &Node) -> Content {
    match n {
        Node::Dir { mode } => Content::Dir(*mode),
        Node::File { bytes, mode, .. } => Content::File(bytes.clone(), *mode),
        Node::Symlink { target, .. } => Content::Link(target.clone()),
        Node::Other => panic!("special file in a two-way model tree"),
    }
}

pub fn contents(t: &Tree) -> BTreeMap<Vec<u8>, Content> {
    t.iter().map(|(k, n)| (k.clone(), content(n))).collect()
}

/// Whether a side's entry was changed since the last sync: created,
/// deleted, another type, other bytes, mode or mtime (a touch is an edit),
/// a link's other target, a folder's other mode.
fn changed(base: Option<&Node>, now: Option<&Node>) -> bool {
    match (base, now) {
        (None, None) => false,
        (Some(Node::File { .. }), Some(Node::File { .. })) => base != now,
        (Some(Node::Symlink { target: x, .. }), Some(Node::Symlink { target: y, .. })) => x != y,
        (Some(Node::Dir { mode: x }), Some(Node::Dir { mode: y })) => x != y,
        _ => true,
    }
}

fn mtime(n: &Node) -> (i64, i64) {
    match n {
        Node::File { mtime, .. } | Node::Symlink { mtime, .. } => *mtime,
        _ => (0, 0),
    }
}

/// What a pass must leave: entries under their names, and conflict copies
/// (the path whose copy it is, and what it holds) under names that carry
/// the pass's time.
#[derive(Debug, Default)]
pub struct Expected {
    pub named: BTreeMap<Vec<u8>, Content>,
    pub asides: Vec<(Vec<u8>, Content)>,
}

/// The rules. `base`: each side after the last sync; `now`: each side
/// before this pass.
pub fn expect(base: [&Tree; 2], now: [&Tree; 2]) -> Expected {
    let mut out = Expected::default();
    let paths: std::collections::BTreeSet<&Vec<u8>> = base[0]
        .keys()
        .chain(now[0].keys())
        .chain(now[1].keys())
        .collect();
    for p in paths {
        let (a, b) = (now[0].get(p), now[1].get(p));
        let ea = changed(base[0].get(p), a);
        let eb = changed(base[1].get(p), b);
        let (keep, aside) = match (ea, eb, a, b) {
            // Unchanged: as it is (both sides agree since the last sync).
            (false, false, a, _) => (a, None),
            // Changed (or deleted) on one side only: that side's version.
            (true, false, a, _) => (a, None),
            (false, true, _, b) => (b, None),
            // Deleted on one side, changed on the other: the change wins.
            (true, true, x, None) | (true, true, None, x) => (x, None),
            (true, true, Some(x), Some(y)) => {
                let newer_b = mtime(y) > mtime(x);
                let (newer, older) = if newer_b { (y, x) } else { (x, y) };
                match (content(x), content(y)) {
                    // The same result on both sides (a folder is a
                    // folder): nothing to keep twice; of equal bytes with
                    // different modes, the newer's mode.
                    (Content::Dir(_), Content::Dir(_)) => (Some(newer), None),
                    (cx, cy) if cx == cy => (Some(x), None),
                    (Content::File(bx, _), Content::File(by, _)) if bx == by => (Some(newer), None),
                    // A folder against a file or link keeps the name.
                    (Content::Dir(_), _) => (Some(x), Some(y)),
                    (_, Content::Dir(_)) => (Some(y), Some(x)),
                    // A conflict: the newer keeps the name, both are kept.
                    _ => (Some(newer), Some(older)),
                }
            }
        };
        if let Some(n) = keep {
            out.named.insert(p.clone(), content(n));
        }
        if let Some(n) = aside {
            out.asides.push((p.clone(), content(n)));
        }
    }
    // A folder stays wherever something inside it stays; a file or link
    // that would have replaced it is kept beside it instead.
    let present: Vec<Vec<u8>> = out.named.keys().cloned().collect();
    for p in present {
        let mut q = p.as_slice();
        while let Some(i) = q.iter().rposition(|&c| c == b'/') {
            q = &q[..i];
            match out.named.get(q) {
                Some(Content::Dir(_)) => {}
                Some(other) => {
                    out.asides.push((q.to_vec(), other.clone()));
                    out.named.insert(q.to_vec(), Content::Dir(0o755));
                }
                None => {
                    out.named.insert(q.to_vec(), Content::Dir(0o755));
                }
            }
        }
    }
    out
}

pub fn parent(p: &[u8]) -> &[u8] {
    p.iter()
        .rposition(|&c| c == b'/')
        .map_or(&p[..0], |i| &p[..i])
}

pub fn name(p: &[u8]) -> &[u8] {
    p.iter()
        .rposition(|&c| c == b'/')
        .map_or(p, |i| &p[i + 1..])
}

/// Whether `candidate` is a conflict copy's name for `original`:
/// `STEM.conflict-YYYYMMDD-HHMMSS[-N].EXT`, where a leading dot starts no
/// extension.
pub fn is_conflict_name_of(candidate: &[u8], original: &[u8]) -> bool {
    let (stem, ext) = match original.iter().rposition(|&c| c == b'.') {
        Some(i) if i > 0 => original.split_at(i),
        _ => (original, &b""[..]),
    };
    let Some(mid) = candidate
        .strip_prefix(stem)
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_prefix(b".conflict-"))
    else {
        return false;
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let parts: Vec<&[u8]> = mid.split(|&c| c == b'-').collect();
    matches!(parts.len(), 2 | 3)
        && parts[0].len() == 8
        && parts[1].len() == 6
        && parts.iter().all(|p| digits(p))
}

/// Whether `q` is `p` or a conflict copy of it, or of one of its copies.
pub fn descends_from(q: &[u8], p: &[u8]) -> bool {
    if q == p {
        return true;
    }
    if parent(q) != parent(p) {
        return false;
    }
    // Strip conflict tags, any one at a time: a conflict copy of a
    // conflict copy has its new tag after the old one
    // (`c.conflict-T1.conflict-T2.txt` comes from `c.conflict-T1.txt`).
    strips_to(name(q), name(p))
}

/// Whether removing some of `n`'s `.conflict-TAG`s gives `want`.
fn strips_to(n: &[u8], want: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(&n[from..], b".conflict-") {
        let i = from + at;
        let tail = &n[i + b".conflict-".len()..];
        let tag_len = tail
            .iter()
            .position(|&c| c != b'-' && !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let mut shorter = n[..i].to_vec();
        shorter.extend_from_slice(&tail[tag_len..]);
        if shorter == want || strips_to(&shorter, want) {
            return true;
        }
        from = i + 1;
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a synced side holds against `want`; the problems found.
pub fn check(want: &Expected, got: &BTreeMap<Vec<u8>, Content>) -> Vec<String> {
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let mut problems = Vec::new();
    for (p, c) in &want.named {
        match got.get(p) {
            None => problems.push(format!("missing: {}", show(p))),
            Some(g) if g != c => {
                problems.push(format!("differs: {}\n  want {c:?}\n  got  {g:?}", show(p)))
            }
            _ => {}
        }
    }
    let mut extra: Vec<(&Vec<u8>, &Content)> = got
        .iter()
        .filter(|(k, _)| !want.named.contains_key(*k))
        .collect();
    for (p, c) in &want.asides {
        let found = extra.iter().position(|(q, g)| {
            parent(q) == parent(p) && is_conflict_name_of(name(q), name(p)) && *g == c
        });
        match found {
            Some(i) => {
                extra.remove(i);
            }
            None => problems.push(format!("no conflict copy of {} holding {c:?}", show(p))),
        }
    }
    for (q, c) in extra {
        problems.push(format!("unexpected: {} {c:?}", show(q)));
    }
    problems
}

/// The failing case a fresh CI run met: a conflict copy of a conflict
/// copy (`c.conflict-T1.conflict-T2.txt`) was not taken as one, and the
/// model reported its version lost.
#[test]
fn a_conflict_copy_of_a_conflict_copy_descends_from_both() {
    let nested = b"d/c.conflict-20261129-235959.conflict-20261130-000000.txt";
    assert!(descends_from(nested, b"d/c.conflict-20261129-235959.txt"));
    assert!(descends_from(nested, b"d/c.txt"));
    assert!(descends_from(
        b"b.conflict-20261130-000000.conflict-20261129-235959",
        b"b.conflict-20261129-235959"
    ));
    assert!(!descends_from(nested, b"d/other.txt"));
    assert!(!descends_from(nested, b"e/c.txt"));
}
