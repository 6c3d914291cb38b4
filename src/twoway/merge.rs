//! The archive's entries and both scans merged into one row a path, in
//! tree order, for the planner.

use std::collections::HashSet;

use super::archive::Recorded;
use super::row::{Action, Row, parent, tree_order};
use super::scan::Scan;

/// The archive's entries and both scans, merged path by path in tree
/// order; paths under anything a scan could not read are left out, so
/// nothing is done there on either side.
///
/// The inputs are taken from their ends (the archive's straight from
/// SQLite, last first), and the scans' buffers are shrunk as the rows
/// grow, so the inputs and the rows are not all held at once (at 100,000
/// entries that was a third of the pass's peak memory).
pub(super) fn merge(recorded: &mut dyn Iterator<Item = Recorded>, sa: Scan, sb: Scan) -> Vec<Row> {
    /// Rows between two shrinks of the inputs.
    const SHRINK_EVERY: usize = 4096;
    let unknown: HashSet<Box<[u8]>> = sa.unknown.into_iter().chain(sb.unknown).collect();
    let (mut a, mut b) = (sa.entries, sb.entries);
    let mut recorded = recorded.peekable();
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    let mut taken = 0usize;
    loop {
        // The last path in tree order, and where it is.
        let last = [
            recorded.peek().map(|(p, _)| p),
            a.last().map(|(p, _)| p),
            b.last().map(|(p, _)| p),
        ]
        .into_iter()
        .flatten()
        .max_by(|x, y| tree_order(x, y))
        .cloned();
        let Some(last) = last else { break };
        let last = &last;
        let (in_rec, in_a, in_b) = (
            recorded.peek().is_some_and(|(p, _)| p == last),
            a.last().is_some_and(|(p, _)| p == last),
            b.last().is_some_and(|(p, _)| p == last),
        );
        // The path is kept from the first list that holds it.
        let mut path = None;
        let take_rec = in_rec
            .then(|| recorded.next().expect("peeked"))
            .map(|(p, r)| {
                path = Some(p);
                r
            });
        let take_a = in_a.then(|| a.pop().expect("last")).map(|(p, s)| {
            path.get_or_insert(p);
            s
        });
        let take_b = in_b.then(|| b.pop().expect("last")).map(|(p, s)| {
            path.get_or_insert(p);
            s
        });
        let path = path.expect("taken from one of them");
        taken += 1;
        if taken % SHRINK_EVERY == 0 {
            a.shrink_to_fit();
            b.shrink_to_fit();
        }
        if !unknown.is_empty() && under_unknown(&path, &unknown) {
            continue;
        }
        rows.push(Row {
            path,
            rec: take_rec,
            a: take_a,
            b: take_b,
            same: None,
            action: Action::Keep,
        });
    }
    rows.reverse();
    rows
}

/// Whether `path` or a folder above it is unknown.
fn under_unknown(path: &[u8], unknown: &HashSet<Box<[u8]>>) -> bool {
    let mut p = path;
    loop {
        if unknown.contains(p) {
            return true;
        }
        if p.is_empty() {
            return false;
        }
        p = parent(p);
    }
}
