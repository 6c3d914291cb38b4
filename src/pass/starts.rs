//! Where a pass starts and how far down it goes: the whole tree for a full
//! pass; for a watched pair, the folders its events named, each alone
//! (a file in it changed) or with everything below it (it was made or
//! moved in, so nothing below it has been seen).

/// One place a pass starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Start {
    /// The folder, relative to the pair's roots; empty for the top one.
    pub rel: Vec<u8>,
    /// Everything below the folder; or (`false`) its own entries only, the
    /// folders in it entered only when the replica lacks them (then all of
    /// them is new).
    pub deep: bool,
}

impl Start {
    /// A full pass.
    pub fn everything() -> Start {
        Start::tree(Vec::new())
    }

    /// `rel` and everything below it.
    pub fn tree(rel: Vec<u8>) -> Start {
        Start { rel, deep: true }
    }

    /// `rel`'s own entries.
    pub fn folder(rel: Vec<u8>) -> Start {
        Start { rel, deep: false }
    }

    /// Whether a pass from `self` does all that one from `other` would.
    fn covers(&self, other: &Start) -> bool {
        if self.rel == other.rel {
            return self.deep || !other.deep;
        }
        self.deep && is_below(&other.rel, &self.rel)
    }
}

/// Whether `path` lies below the folder `top` (not `top` itself).
fn is_below(path: &[u8], top: &[u8]) -> bool {
    top.is_empty() && !path.is_empty()
        || path.len() > top.len() && path.starts_with(top) && path[top.len()] == b'/'
}

/// `starts` without those another one covers, sorted by path.
pub fn fewest(mut starts: Vec<Start>) -> Vec<Start> {
    // For one path the deep start comes first and covers the other.
    starts.sort_by(|a, b| a.rel.cmp(&b.rel).then(b.deep.cmp(&a.deep)));
    starts.dedup();
    // Only a deep start covers other paths; there are few of them (folders
    // made or moved in), so checking each against them all stays cheap.
    let mut trees: Vec<Start> = Vec::new();
    let mut kept = Vec::with_capacity(starts.len());
    for start in starts {
        if trees.iter().any(|t| t.covers(&start)) {
            continue;
        }
        if start.deep {
            trees.push(start.clone());
        }
        kept.push(start);
    }
    kept
}

/// The starts as the summary line names them: the first few, then how
/// many more.
pub(super) fn describe(starts: &[Start]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = starts
        .iter()
        .take(SHOWN)
        .map(|s| crate::logging::display_path(&s.rel))
        .collect();
    if starts.len() > SHOWN {
        names.push(format!("{} more folders", starts.len() - SHOWN));
    }
    match names.len() {
        0 => String::new(),
        1 => names.remove(0),
        _ => {
            let last = names.pop().expect("two or more");
            format!("{} and {last}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(p: &str) -> Start {
        Start::tree(p.as_bytes().to_vec())
    }
    fn folder(p: &str) -> Start {
        Start::folder(p.as_bytes().to_vec())
    }

    #[test]
    fn a_tree_covers_what_is_below_it_and_a_folder_only_itself() {
        let got = fewest(vec![
            folder("a/b"),
            tree("a"),
            folder("a"),
            folder("ab"),
            folder("ab"),
            folder("ab/c"),
            tree("x/y"),
            folder("x"),
            tree("x/y/z"),
            folder("a-b"),
        ]);
        assert_eq!(
            got,
            vec![
                tree("a"),
                folder("a-b"),
                folder("ab"),
                folder("ab/c"),
                folder("x"),
                tree("x/y")
            ]
        );
        assert_eq!(
            fewest(vec![folder("c"), tree(""), folder("")]),
            vec![tree("")]
        );
        assert_eq!(
            fewest(vec![folder("c"), folder("")]),
            vec![folder(""), folder("c")],
            "a folder's own entries do not cover a folder in it"
        );
    }

    #[test]
    fn the_summary_names_a_few_starts() {
        assert_eq!(describe(&[folder("d1")]), "d1");
        assert_eq!(describe(&[folder(""), tree("d1")]), ". and d1");
        assert_eq!(
            describe(&[folder("a"), folder("b"), folder("c")]),
            "a, b and c"
        );
        assert_eq!(
            describe(&[
                folder("a"),
                folder("b"),
                folder("c"),
                folder("d"),
                folder("e")
            ]),
            "a, b, c and 2 more folders"
        );
    }
}
