//! Random edits into a watched pair (issue 14, "Proof"): rounds of random
//! edits of every kind a watch must see (files written, rewritten,
//! removed, renamed; folders made with content, removed, renamed, moved
//! in and out; modes and mtimes of files and folders; symlinks), and
//! after each round the replica must become an exact copy, folder mtimes
//! included, with the interval at 1 h: by the watch's passes alone (which
//! enter only new folders), never by a full pass.
//!
//! Deterministic edits: a fixed seed per case (splitmix64); which edits
//! land in one pass varies with timing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use crate::watch::{start_watched, stop_quickly};

const CASES: u64 = 10;
const ROUNDS: usize = 6;

/// splitmix64: small, deterministic, good enough to pick edits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// A file no edit touches: a source emptied by the edits would meet the
/// empty-source guard, which is not what this test is about.
const KEEP: &str = "keep.txt";

/// The source's folders (the top one as "") and files but [`KEEP`], as
/// paths below it.
fn tree(src: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs = vec![PathBuf::new()];
    let mut files = Vec::new();
    for (rel, node) in snapshot(src) {
        let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&rel));
        match node {
            Node::Dir { .. } => dirs.push(rel),
            Node::File { .. } if rel != Path::new(KEEP) => files.push(rel),
            _ => {}
        }
    }
    (dirs, files)
}

/// A name not taken yet in `dir`.
fn fresh_name(rng: &mut Rng, dir: &Path, stem: &str) -> PathBuf {
    loop {
        let path = dir.join(format!("{stem}{}", rng.below(1000)));
        if fs::symlink_metadata(&path).is_err() {
            return path;
        }
    }
}

/// One random edit in `src` (`outside` is a folder beside it, for moves
/// in and out).
fn edit(rng: &mut Rng, src: &Path, outside: &Path) {
    let (dirs, files) = tree(src);
    let dir = src.join(rng.pick(&dirs).expect("the top folder"));
    let file = rng.pick(&files).map(|f| src.join(f));
    match rng.below(15) {
        0 | 1 => {
            let path = fresh_name(rng, &dir, "f");
            fs::write(path, format!("new {}", rng.next())).expect("write");
        }
        2 | 3 => {
            if let Some(file) = file {
                fs::write(file, format!("rewritten {}", rng.next())).expect("rewrite");
            }
        }
        4 => {
            if let Some(file) = file {
                fs::remove_file(file).expect("rm");
            }
        }
        5 => {
            // An editor's save, or a rename into another folder.
            if let Some(file) = file {
                let to = fresh_name(rng, &dir, "r");
                fs::rename(file, to).expect("rename file");
            }
        }
        6 => {
            // Folders made with files in them at once (`mkdir -p`).
            let top = fresh_name(rng, &dir, "n");
            let deep = top.join("a").join("b");
            fs::create_dir_all(&deep).expect("mkdir -p");
            fs::write(deep.join("deep.txt"), "deep").expect("write");
            fs::write(top.join("top.txt"), "top").expect("write");
        }
        7 => {
            if dir != src {
                fs::remove_dir_all(&dir).expect("rm -r");
            }
        }
        8 => {
            // A folder renamed, maybe into another one (not into itself).
            let to_dir = src.join(rng.pick(&dirs).expect("a folder"));
            if dir != src && !to_dir.starts_with(&dir) {
                let to = fresh_name(rng, &to_dir, "m");
                fs::rename(&dir, to).expect("rename folder");
            }
        }
        9 => {
            // A folder moved in from outside, with content.
            let made = outside.join(format!("in{}", rng.next()));
            fs::create_dir_all(made.join("sub")).expect("mkdir");
            fs::write(made.join("sub/in.txt"), "moved in").expect("write");
            fs::rename(made, fresh_name(rng, &dir, "i")).expect("move in");
        }
        10 => {
            if dir != src {
                fs::rename(&dir, outside.join(format!("out{}", rng.next()))).expect("move out");
            }
        }
        11 => {
            let target = file.as_ref().filter(|_| rng.below(2) == 0).unwrap_or(&dir);
            let mode = [0o755, 0o750, 0o700, 0o644, 0o600][rng.below(5)];
            let mode = if target.is_dir() {
                mode | 0o700
            } else {
                mode & 0o666 | 0o600
            };
            chmod(target, mode);
        }
        12 => {
            let target = file.as_ref().filter(|_| rng.below(2) == 0).unwrap_or(&dir);
            let sec = 1_600_000_000 + rng.below(100_000_000) as i64;
            set_mtime_exact(target, sec, rng.below(1_000_000_000) as u32);
        }
        13 => {
            // An empty folder replaced by one moved in (`rename` may
            // replace an empty folder): the same name on both sides, and
            // nothing inside it sent an event. Or, with no empty folder
            // yet, one made for a later round.
            let empty: Vec<&PathBuf> = dirs
                .iter()
                .filter(|d| !d.as_os_str().is_empty())
                .filter(|d| fs::read_dir(src.join(d)).is_ok_and(|mut l| l.next().is_none()))
                .collect();
            match rng.pick(&empty) {
                Some(old) => {
                    let made = outside.join(format!("new{}", rng.next()));
                    fs::create_dir_all(made.join("sub")).expect("mkdir");
                    fs::write(made.join("sub/replaced.txt"), "replaced").expect("write");
                    fs::rename(made, src.join(old)).expect("move over an empty folder");
                }
                None => fs::create_dir(fresh_name(rng, &dir, "e")).expect("mkdir"),
            }
        }
        _ => {
            let link = fresh_name(rng, &dir, "l");
            std::os::unix::fs::symlink(format!("target{}", rng.below(10)), link).expect("ln -s");
        }
    }
}

/// Every folder's mtime below and including `root`; `Err` while the tree
/// changes under the walk.
fn try_dir_mtimes(root: &Path) -> std::io::Result<BTreeMap<PathBuf, (i64, i64)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let meta = fs::symlink_metadata(root.join(&rel))?;
        out.insert(rel.clone(), (meta.mtime(), meta.mtime_nsec()));
        for entry in fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(rel.join(entry.file_name()));
            }
        }
    }
    Ok(out)
}

fn mirrored(env: &TestEnv) -> bool {
    let same = |a: &Path, b: &Path| match (try_snapshot(a), try_snapshot(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let same_times = |a: &Path, b: &Path| match (try_dir_mtimes(a), try_dir_mtimes(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same(&env.src(), &env.dst()) && same_times(&env.src(), &env.dst())
}

#[test]
fn random_edits_reach_the_replica_by_the_watch_alone() {
    let (mut edits_made, mut passes) = (0, 0);
    for case in 0..CASES {
        let mut rng = Rng(0x5eed_0014 + case);
        let env = TestEnv::new();
        let outside = env.path("outside");
        fs::create_dir_all(&outside).expect("mkdir");
        for i in 0..3 {
            env.write(format!("src/d{i}/f.txt"), format!("{i}"));
            env.write(format!("src/d{i}/s/g.txt"), format!("g{i}"));
        }
        env.write("src/top.txt", "top");
        env.write(format!("src/{KEEP}"), "kept");
        let session = start_watched(&env, "1h", &[]);
        for round in 0..ROUNDS {
            let edits = 1 + rng.below(5);
            for _ in 0..edits {
                edit(&mut rng, &env.src(), &outside);
            }
            edits_made += edits;
            wait_for(
                PATIENCE,
                || mirrored(&env),
                || {
                    format!(
                        "case {case}, round {round}: the replica never matched the source\n\
                         source: {:#?}\nreplica: {:#?}\nfolder mtimes: {:#?} / {:#?}\n{}",
                        try_snapshot(&env.src()),
                        try_snapshot(&env.dst()),
                        try_dir_mtimes(&env.src()),
                        try_dir_mtimes(&env.dst()),
                        env.log_text()
                    )
                },
            );
        }
        let log = env.log_text();
        assert_eq!(
            count(&log, "pass finished in"),
            1,
            "case {case}: only the first pass is full:\n{log}"
        );
        assert_eq!(count(&log, "ERROR"), 0, "case {case}:\n{log}");
        passes += count(&log, "pass over ");
        stop_quickly(&env, session);
    }
    println!(
        "{CASES} cases, {} rounds, {edits_made} edits: mirrored by {passes} watch passes, no full pass",
        CASES as usize * ROUNDS
    );
}
