//! The users of `two_way_model.rs`: random edits on either side of a
//! two-way pair, what each side should hold after them, and the ledger of
//! every version of a file a user wrote, for the safety property (a
//! version stays on both sides until a user's own edit or deletion
//! replaces it).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use proptest::prelude::{Strategy, any};
use proptest::prop_oneof;

use crate::support::*;
use crate::two_way_rules::{Tree, descends_from};

/// A file no edit touches, so neither side is ever empty (an empty side
/// is refused by the unmounted-disk guard, a different property).
const ANCHOR: &[u8] = b"anchor.txt";
/// Names of files and folders; the last two are named like temporaries of
/// ours (not of a two-way pass: those carry the pass's tag), which are the
/// user's and synced like any other.
const NAMES: [&str; 8] = [
    "a",
    "b",
    "c.txt",
    "d e",
    "caf\u{e9}",
    ".hidden",
    ".foldersync-0123456789abcdef.tmp",
    ".foldersync-12-3.tmp",
];
const TARGETS: [&str; 4] = ["a", "../b", "/nonexistent/x", "dangling"];
const FILE_MODES: [u32; 4] = [0o644, 0o600, 0o755, 0o640];

#[derive(Clone, Debug)]
pub enum Op {
    NewFile {
        dir: usize,
        name: usize,
        len: usize,
        seed: u64,
    },
    NewDir {
        dir: usize,
        name: usize,
    },
    /// New bytes of another size.
    Rewrite {
        file: usize,
        len: usize,
        seed: u64,
    },
    /// One byte changed, the size kept, a new mtime.
    SameSize {
        file: usize,
        seed: u64,
    },
    /// One byte changed, the size and the mtime kept (a tool that puts
    /// the mtime back): only the ctime tells.
    SameStamps {
        file: usize,
        seed: u64,
    },
    /// A new mtime only.
    Touch {
        file: usize,
    },
    Chmod {
        file: usize,
        mode: usize,
    },
    /// A file, link or whole folder.
    Delete {
        entry: usize,
    },
    /// Every file on the side, its folders and links left (`find -type f
    /// -delete`): the emptied-side guard holds the other side's removals
    /// until the user approves.
    DeleteAllFiles,
    FileToDir {
        file: usize,
        len: usize,
        seed: u64,
    },
    DirToFile {
        dir: usize,
        len: usize,
        seed: u64,
    },
    NewSymlink {
        dir: usize,
        name: usize,
        target: usize,
    },
    Retarget {
        link: usize,
        target: usize,
    },
}

impl Op {
    /// Another edit at the same place: other bytes, mode or target, so
    /// that both sides changed differently (a conflict).
    pub fn varied(&self) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::NewFile { len, seed, .. }
            | Op::Rewrite { len, seed, .. }
            | Op::FileToDir { len, seed, .. }
            | Op::DirToFile { len, seed, .. } => {
                *len += 1;
                *seed ^= 0x5555;
            }
            Op::SameSize { seed, .. } | Op::SameStamps { seed, .. } => *seed ^= 0x5555,
            Op::Chmod { mode, .. } => *mode = (*mode + 1) % FILE_MODES.len(),
            Op::NewSymlink { target, .. } | Op::Retarget { target, .. } => {
                *target = (*target + 1) % TARGETS.len()
            }
            Op::NewDir { .. } | Op::Touch { .. } | Op::Delete { .. } | Op::DeleteAllFiles => {}
        }
        op
    }
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..3_000,
        1 => 250_000usize..600_000, // across the copy chunk; kills land in it
    ]
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    let i = || 0..64usize;
    let names = || 0..NAMES.len();
    prop_oneof![
        4 => (i(), names(), len_strategy(), any::<u64>())
            .prop_map(|(dir, name, len, seed)| Op::NewFile { dir, name, len, seed }),
        1 => (i(), names()).prop_map(|(dir, name)| Op::NewDir { dir, name }),
        3 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(file, len, seed)| Op::Rewrite { file, len, seed }),
        2 => (i(), any::<u64>()).prop_map(|(file, seed)| Op::SameSize { file, seed }),
        1 => (i(), any::<u64>()).prop_map(|(file, seed)| Op::SameStamps { file, seed }),
        1 => i().prop_map(|file| Op::Touch { file }),
        1 => (i(), 0..FILE_MODES.len()).prop_map(|(file, mode)| Op::Chmod { file, mode }),
        2 => i().prop_map(|entry| Op::Delete { entry }),
        1 => proptest::strategy::Just(Op::DeleteAllFiles),
        1 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(file, len, seed)| Op::FileToDir { file, len, seed }),
        1 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(dir, len, seed)| Op::DirToFile { dir, len, seed }),
        1 => (i(), names(), 0..TARGETS.len())
            .prop_map(|(dir, name, target)| Op::NewSymlink { dir, name, target }),
        1 => (i(), 0..TARGETS.len()).prop_map(|(link, target)| Op::Retarget { link, target }),
    ]
}

/// A version of a file a user wrote: its bytes, where, on which side.
struct Version {
    bytes: Vec<u8>,
    path: Vec<u8>,
    side: usize,
}

/// Both sides as the edits left them, and the ledger.
pub struct Sides {
    roots: [PathBuf; 2],
    cur: [Tree; 2],
    clock: i64,
    ledger: Vec<Version>,
}

fn join(dir: &[u8], name: &str) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

/// A tree with links' mtimes left out: the harness does not set them.
fn normal(t: &Tree) -> Tree {
    t.iter()
        .map(|(k, n)| {
            let n = match n {
                Node::Symlink { target, .. } => Node::Symlink {
                    target: target.clone(),
                    mtime: (0, 0),
                },
                n => n.clone(),
            };
            (k.clone(), n)
        })
        .collect()
}

impl Sides {
    pub fn new(roots: [PathBuf; 2]) -> Sides {
        let mut sides = Sides {
            roots,
            cur: [Tree::new(), Tree::new()],
            clock: 1_500_000_000,
            ledger: Vec::new(),
        };
        sides.write(0, ANCHOR, b"anchor".to_vec(), 0o644);
        sides
    }

    fn path(&self, side: usize, rel: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.roots[side].join(std::ffi::OsStr::from_bytes(rel))
    }

    /// Whether `real` holds what the edits wrote on `side`.
    pub fn matches(&self, side: usize, real: &Tree) -> bool {
        normal(&self.cur[side]) == normal(real)
    }

    /// What the edits left on both sides.
    pub fn trees(&self) -> [Tree; 2] {
        self.cur.clone()
    }

    /// After a pass: both sides as they are now.
    pub fn reset(&mut self, real: &[Tree; 2]) {
        self.cur = real.clone();
    }

    /// A user replaced or deleted the file holding `bytes`.
    fn supersede(&mut self, bytes: &[u8]) {
        self.ledger.retain(|v| v.bytes != bytes);
    }

    /// Supersedes everything at `rel` and below on `side`.
    fn supersede_under(&mut self, side: usize, rel: &[u8]) {
        let gone: Vec<Vec<u8>> = self.cur[side]
            .iter()
            .filter(|(k, _)| {
                k.as_slice() == rel || (k.starts_with(rel) && k.get(rel.len()) == Some(&b'/'))
            })
            .filter_map(|(_, n)| match n {
                Node::File { bytes, .. } => Some(bytes.clone()),
                _ => None,
            })
            .collect();
        for b in gone {
            self.supersede(&b);
        }
    }

    fn write(&mut self, side: usize, rel: &[u8], bytes: Vec<u8>, mode: u32) {
        self.supersede_under(side, rel);
        self.clock += 1;
        let mtime = (self.clock, (self.clock * 7_919) % 1_000_000_000);
        let p = self.path(side, rel);
        fs::write(&p, &bytes).unwrap();
        chmod(&p, mode);
        set_mtime_exact(&p, mtime.0, mtime.1 as u32);
        if !bytes.is_empty() {
            self.ledger.push(Version {
                bytes: bytes.clone(),
                path: rel.to_vec(),
                side,
            });
        }
        self.cur[side].insert(rel.to_vec(), Node::File { bytes, mode, mtime });
    }

    fn remove(&mut self, side: usize, rel: &[u8]) {
        self.supersede_under(side, rel);
        let p = self.path(side, rel);
        if matches!(self.cur[side][rel], Node::Dir { .. }) {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
        self.cur[side].retain(|k, _| {
            !(k.as_slice() == rel || (k.starts_with(rel) && k.get(rel.len()) == Some(&b'/')))
        });
    }

    fn mkdir(&mut self, side: usize, rel: &[u8]) {
        let p = self.path(side, rel);
        fs::create_dir(&p).unwrap();
        chmod(&p, 0o755);
        self.cur[side].insert(rel.to_vec(), Node::Dir { mode: 0o755 });
    }

    fn pick(&self, side: usize, idx: usize, pred: impl Fn(&Node) -> bool) -> Option<Vec<u8>> {
        let keys: Vec<&Vec<u8>> = self.cur[side]
            .iter()
            .filter(|(k, n)| k.as_slice() != ANCHOR && pred(n))
            .map(|(k, _)| k)
            .collect();
        (!keys.is_empty()).then(|| keys[idx % keys.len()].clone())
    }

    fn pick_dir(&self, side: usize, idx: usize) -> Vec<u8> {
        let mut dirs = vec![Vec::new()];
        dirs.extend(
            self.cur[side]
                .iter()
                .filter(|(k, n)| {
                    matches!(n, Node::Dir { .. }) && k.iter().filter(|&&c| c == b'/').count() < 2
                })
                .map(|(k, _)| k.clone()),
        );
        dirs[idx % dirs.len()].clone()
    }

    /// Does `op` on `side`; false when it does not apply.
    pub fn apply(&mut self, side: usize, op: &Op) -> bool {
        let file = |n: &Node| matches!(n, Node::File { .. });
        match *op {
            Op::NewFile {
                dir,
                name,
                len,
                seed,
            } => {
                let rel = join(&self.pick_dir(side, dir), NAMES[name]);
                if self.cur[side].contains_key(&rel) {
                    return false;
                }
                self.write(side, &rel, Rng::new(seed).bytes(len), 0o644);
            }
            Op::NewDir { dir, name } => {
                let rel = join(&self.pick_dir(side, dir), NAMES[name]);
                if self.cur[side].contains_key(&rel) {
                    return false;
                }
                self.mkdir(side, &rel);
            }
            Op::Rewrite { file: f, len, seed } => {
                let Some(rel) = self.pick(side, f, file) else {
                    return false;
                };
                let Node::File { bytes, mode, .. } = &self.cur[side][&rel] else {
                    unreachable!()
                };
                let (mode, len) = (*mode, if len == bytes.len() { len + 1 } else { len });
                self.write(side, &rel, Rng::new(seed).bytes(len), mode);
            }
            Op::SameSize { file: f, seed } | Op::SameStamps { file: f, seed } => {
                let Some(rel) = self.pick(
                    side,
                    f,
                    |n| matches!(n, Node::File { bytes, .. } if !bytes.is_empty()),
                ) else {
                    return false;
                };
                let Node::File { bytes, mode, mtime } = self.cur[side][&rel].clone() else {
                    unreachable!()
                };
                let mut rng = Rng::new(seed);
                let mut new = bytes;
                let at = rng.below(new.len() as u64) as usize;
                new[at] ^= 1 + rng.below(255) as u8;
                self.write(side, &rel, new, mode);
                if matches!(op, Op::SameStamps { .. }) {
                    set_mtime_exact(&self.path(side, &rel), mtime.0, mtime.1 as u32);
                    if let Some(Node::File { mtime: m, .. }) = self.cur[side].get_mut(&rel) {
                        *m = mtime;
                    }
                }
            }
            Op::Touch { file: f } => {
                let Some(rel) = self.pick(side, f, file) else {
                    return false;
                };
                self.clock += 1;
                let mtime = (self.clock, 0);
                set_mtime_exact(&self.path(side, &rel), mtime.0, 0);
                if let Some(Node::File { mtime: m, .. }) = self.cur[side].get_mut(&rel) {
                    *m = mtime;
                }
            }
            Op::Chmod { file: f, mode } => {
                let Some(rel) = self.pick(side, f, file) else {
                    return false;
                };
                // A chmod to the mode a file has moves its ctime alone,
                // which two-way sync takes for a possible edit (a conflict
                // against an edit on the other side; see two_way_losses.rs).
                if matches!(self.cur[side].get(&rel), Some(Node::File { mode: m, .. }) if *m == FILE_MODES[mode])
                {
                    return false;
                }
                chmod(&self.path(side, &rel), FILE_MODES[mode]);
                if let Some(Node::File { mode: m, .. }) = self.cur[side].get_mut(&rel) {
                    *m = FILE_MODES[mode];
                }
            }
            Op::Delete { entry } => {
                let Some(rel) = self.pick(side, entry, |_| true) else {
                    return false;
                };
                self.remove(side, &rel);
            }
            Op::DeleteAllFiles => {
                let files: Vec<Vec<u8>> = self.cur[side]
                    .iter()
                    .filter(|(_, n)| matches!(n, Node::File { .. }))
                    .map(|(p, _)| p.clone())
                    .collect();
                if files.is_empty() {
                    return false;
                }
                for rel in files {
                    self.remove(side, &rel);
                }
            }
            Op::FileToDir { file: f, len, seed } => {
                let Some(rel) = self.pick(side, f, file) else {
                    return false;
                };
                self.remove(side, &rel);
                self.mkdir(side, &rel);
                self.write(side, &join(&rel, "inner"), Rng::new(seed).bytes(len), 0o644);
            }
            Op::DirToFile { dir, len, seed } => {
                let Some(rel) = self.pick(side, dir, |n| matches!(n, Node::Dir { .. })) else {
                    return false;
                };
                self.remove(side, &rel);
                self.write(side, &rel, Rng::new(seed).bytes(len), 0o644);
            }
            Op::NewSymlink { dir, name, target } => {
                let rel = join(&self.pick_dir(side, dir), NAMES[name]);
                if self.cur[side].contains_key(&rel) {
                    return false;
                }
                symlink(TARGETS[target], self.path(side, &rel)).unwrap();
                let node = Node::Symlink {
                    target: TARGETS[target].into(),
                    mtime: (0, 0),
                };
                self.cur[side].insert(rel, node);
            }
            Op::Retarget { link, target } => {
                let Some(rel) = self.pick(side, link, |n| matches!(n, Node::Symlink { .. })) else {
                    return false;
                };
                let mut t = TARGETS[target];
                if matches!(&self.cur[side][&rel], Node::Symlink { target: old, .. } if old == t.as_bytes())
                {
                    t = TARGETS[(target + 1) % TARGETS.len()];
                }
                fs::remove_file(self.path(side, &rel)).unwrap();
                symlink(t, self.path(side, &rel)).unwrap();
                self.cur[side].insert(
                    rel,
                    Node::Symlink {
                        target: t.into(),
                        mtime: (0, 0),
                    },
                );
            }
        }
        true
    }

    fn missing(&self, real: &Tree, v: &Version) -> bool {
        !real.iter().any(|(q, n)| {
            matches!(n, Node::File { bytes, .. } if *bytes == v.bytes) && descends_from(q, &v.path)
        })
    }

    /// Every version not replaced by a user is on both sides, under its
    /// name or as a conflict copy.
    pub fn safety_both(&self, real: &[Tree; 2]) -> Result<(), String> {
        for v in &self.ledger {
            for (side, t) in real.iter().enumerate() {
                if self.missing(t, v) {
                    return Err(format!(
                        "lost: the version of {} ({} bytes) written on side {} is not on side {side}",
                        show(&v.path),
                        v.bytes.len(),
                        v.side
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every version not replaced by a user is at least on its own side
    /// (a pass edited meanwhile leaves the edits to the next pass).
    pub fn safety_own(&self, real: &[Tree; 2]) -> Result<(), String> {
        for v in &self.ledger {
            if self.missing(&real[v.side], v) {
                return Err(format!(
                    "lost during a paused pass: the version of {} ({} bytes) on side {}",
                    show(&v.path),
                    v.bytes.len(),
                    v.side
                ));
            }
        }
        Ok(())
    }
}
