//! Model-based property test: random initial trees and random sequences of
//! source mutations, interleaved with `--once` passes on the same replica.
//!
//! The test keeps a model of the source (every file's bytes, mode and
//! mtime, every folder and symlink) and checks the real source against it
//! before each pass, so the harness itself is checked too. After each pass
//! the replica must equal what the spec promises:
//!
//! * with `--checksum`: an exact mirror (`assert_mirror`);
//! * with `--dry-run`: the replica exactly as it was (entries, bytes,
//!   modes, file and folder mtimes);
//! * without it: an exact mirror, except that a file whose bytes changed
//!   while its size and mtime stayed equal to the replica's may keep the
//!   replica's bytes (with the source's mode): where the pair's stored
//!   cache has no entry for it, the program trusts size+mtime like rsync's
//!   quick check (where it has one, the moved ctime gets the file copied).
//!   The model allows exactly those files either version, no more, and the
//!   last pass of every case uses `--checksum`, which must converge to a
//!   mirror.
//!
//! Deterministic: a fixed proptest seed and a fixed case count.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::{Just, Strategy, any, prop};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use proptest::{prop_assert, prop_assert_eq, prop_oneof};

use crate::support::*;

/// Cases run; about 20 s in a debug build on 2 cores.
const CASES: u32 = 400;
const SEED: [u8; 32] = *b"foldersync model test seed 0001!";

/// A file no operation touches, so the source is never empty (a source
/// emptied while the replica is not is refused by the empty-source guard,
/// which is a different property from the one tested here).
const ANCHOR: &str = "anchor.txt";
const NAMES: [&str; 6] = ["a", "b", "c", "d e", "caf\u{e9}", ".hidden"];
const TARGETS: [&str; 5] = ["a", "../b", "/nonexistent/x", "c/d e", "dangling"];
const FILE_MODES: [u32; 5] = [0o644, 0o600, 0o755, 0o444, 0o640];
const DIR_MODES: [u32; 3] = [0o755, 0o700, 0o750];

#[derive(Clone, Debug)]
enum Op {
    NewFile {
        dir: usize,
        name: usize,
        len: usize,
        seed: u64,
    },
    NewDir {
        dir: usize,
        name: usize,
        mode: usize,
    },
    /// New bytes of a different size.
    Rewrite {
        file: usize,
        len: usize,
        seed: u64,
    },
    /// New bytes, same size, mtime set back to what it was.
    SameSizeKeepMtime {
        file: usize,
        seed: u64,
    },
    /// New bytes, same size, a new mtime.
    SameSizeNewMtime {
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
    Delete {
        entry: usize,
    },
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
    Pass {
        checksum: bool,
    },
    /// A `--dry-run` pass: must change nothing.
    DryRun,
}

/// The model of one source entry.
#[derive(Clone, Debug, PartialEq)]
enum M {
    Dir,
    File {
        bytes: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Link(String),
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..2_000,
        1 => 250_000usize..270_000, // across the 256 KiB copy chunk
    ]
}

fn create_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..64usize, 0..NAMES.len(), len_strategy(), any::<u64>())
            .prop_map(|(dir, name, len, seed)| Op::NewFile { dir, name, len, seed }),
        2 => (0..64usize, 0..NAMES.len(), 0..DIR_MODES.len())
            .prop_map(|(dir, name, mode)| Op::NewDir { dir, name, mode }),
        1 => (0..64usize, 0..NAMES.len(), 0..TARGETS.len())
            .prop_map(|(dir, name, target)| Op::NewSymlink { dir, name, target }),
    ]
}

fn step_op() -> impl Strategy<Value = Op> {
    let i = || 0..64usize;
    prop_oneof![
        4 => create_op(),
        2 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(file, len, seed)| Op::Rewrite { file, len, seed }),
        2 => (i(), any::<u64>()).prop_map(|(file, seed)| Op::SameSizeKeepMtime { file, seed }),
        1 => (i(), any::<u64>()).prop_map(|(file, seed)| Op::SameSizeNewMtime { file, seed }),
        2 => i().prop_map(|file| Op::Touch { file }),
        1 => (i(), 0..FILE_MODES.len()).prop_map(|(file, mode)| Op::Chmod { file, mode }),
        2 => i().prop_map(|entry| Op::Delete { entry }),
        1 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(file, len, seed)| Op::FileToDir { file, len, seed }),
        1 => (i(), len_strategy(), any::<u64>())
            .prop_map(|(dir, len, seed)| Op::DirToFile { dir, len, seed }),
        1 => (i(), 0..TARGETS.len()).prop_map(|(link, target)| Op::Retarget { link, target }),
        3 => any::<bool>().prop_map(|checksum| Op::Pass { checksum }),
        1 => Just(Op::DryRun),
    ]
}

/// The source model and the real source folder, changed together.
struct World<'a> {
    env: &'a TestEnv,
    model: BTreeMap<String, M>,
    clock: i64,
    passes: usize,
    dry_runs: usize,
    stale_files: usize,
    ops: usize,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl World<'_> {
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.env.src().join(rel)
    }

    fn next_mtime(&mut self) -> (i64, i64) {
        self.clock += 1;
        (self.clock, (self.clock * 7_919) % 1_000_000_000)
    }

    /// Keys of model entries matching `pred`, sorted; never the anchor.
    fn keys(&self, pred: impl Fn(&M) -> bool) -> Vec<String> {
        self.model
            .iter()
            .filter(|(k, m)| *k != ANCHOR && pred(m))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn pick(&self, idx: usize, pred: impl Fn(&M) -> bool) -> Option<String> {
        let keys = self.keys(pred);
        (!keys.is_empty()).then(|| keys[idx % keys.len()].clone())
    }

    /// A folder to create something in: the root or a model folder not
    /// too deep.
    fn pick_dir(&self, idx: usize) -> String {
        let mut dirs = vec![String::new()];
        dirs.extend(
            self.keys(|m| *m == M::Dir)
                .into_iter()
                .filter(|k| k.matches('/').count() < 3),
        );
        dirs[idx % dirs.len()].clone()
    }

    fn write_file(&mut self, rel: &str, bytes: Vec<u8>, mode: u32, mtime: (i64, i64)) {
        let p = self.path(rel);
        fs::write(&p, &bytes).unwrap();
        chmod(&p, mode);
        set_mtime_exact(&p, mtime.0, mtime.1 as u32);
        self.model
            .insert(rel.to_string(), M::File { bytes, mode, mtime });
    }

    fn new_file(&mut self, rel: &str, len: usize, seed: u64) {
        let bytes = Rng::new(seed).bytes(len);
        let mtime = self.next_mtime();
        self.write_file(rel, bytes, 0o644, mtime);
    }

    fn remove(&mut self, rel: &str) {
        let p = self.path(rel);
        match self.model[rel] {
            M::Dir => fs::remove_dir_all(&p).unwrap(),
            _ => fs::remove_file(&p).unwrap(),
        }
        let prefix = format!("{rel}/");
        self.model
            .retain(|k, _| k != rel && !k.starts_with(&prefix));
    }

    /// Applies one operation to the model and the source; false when it
    /// does not apply (nothing to pick, or the name is taken).
    fn apply(&mut self, op: &Op) -> Result<bool, TestCaseError> {
        let is_file = |m: &M| matches!(m, M::File { .. });
        match *op {
            Op::NewFile {
                dir,
                name,
                len,
                seed,
            } => {
                let rel = join(&self.pick_dir(dir), NAMES[name]);
                if self.model.contains_key(&rel) {
                    return Ok(false);
                }
                self.new_file(&rel, len, seed);
            }
            Op::NewDir { dir, name, mode } => {
                let rel = join(&self.pick_dir(dir), NAMES[name]);
                if self.model.contains_key(&rel) {
                    return Ok(false);
                }
                let p = self.path(&rel);
                fs::create_dir(&p).unwrap();
                chmod(&p, DIR_MODES[mode]);
                self.model.insert(rel, M::Dir);
            }
            Op::Rewrite { file, len, seed } => {
                let Some(rel) = self.pick(file, is_file) else {
                    return Ok(false);
                };
                let M::File { bytes, mode, .. } = &self.model[&rel] else {
                    unreachable!()
                };
                let (old_len, mode) = (bytes.len(), *mode);
                let len = if len == old_len { len + 1 } else { len };
                let mtime = self.next_mtime();
                self.write_file(&rel, Rng::new(seed).bytes(len), mode, mtime);
            }
            Op::SameSizeKeepMtime { file, seed } | Op::SameSizeNewMtime { file, seed } => {
                let Some(rel) = self.pick(
                    file,
                    |m| matches!(m, M::File { bytes, .. } if !bytes.is_empty()),
                ) else {
                    return Ok(false);
                };
                let M::File { bytes, mode, mtime } = self.model[&rel].clone() else {
                    unreachable!()
                };
                let mut rng = Rng::new(seed);
                let mut new = bytes;
                let at = rng.below(new.len() as u64) as usize;
                new[at] ^= 1 + rng.below(255) as u8;
                let mtime = if matches!(op, Op::SameSizeKeepMtime { .. }) {
                    mtime
                } else {
                    self.next_mtime()
                };
                self.write_file(&rel, new, mode, mtime);
            }
            Op::Touch { file } => {
                let Some(rel) = self.pick(file, is_file) else {
                    return Ok(false);
                };
                let mtime = self.next_mtime();
                set_mtime_exact(&self.path(&rel), mtime.0, mtime.1 as u32);
                if let Some(M::File { mtime: m, .. }) = self.model.get_mut(&rel) {
                    *m = mtime;
                }
            }
            Op::Chmod { file, mode } => {
                let Some(rel) = self.pick(file, is_file) else {
                    return Ok(false);
                };
                chmod(&self.path(&rel), FILE_MODES[mode]);
                if let Some(M::File { mode: m, .. }) = self.model.get_mut(&rel) {
                    *m = FILE_MODES[mode];
                }
            }
            Op::Delete { entry } => {
                let Some(rel) = self.pick(entry, |_| true) else {
                    return Ok(false);
                };
                self.remove(&rel);
            }
            Op::FileToDir { file, len, seed } => {
                let Some(rel) = self.pick(file, is_file) else {
                    return Ok(false);
                };
                self.remove(&rel);
                fs::create_dir(self.path(&rel)).unwrap();
                chmod(&self.path(&rel), 0o755);
                self.model.insert(rel.clone(), M::Dir);
                self.new_file(&join(&rel, "inner"), len, seed);
            }
            Op::DirToFile { dir, len, seed } => {
                let Some(rel) = self.pick(dir, |m| *m == M::Dir) else {
                    return Ok(false);
                };
                self.remove(&rel);
                self.new_file(&rel, len, seed);
            }
            Op::NewSymlink { dir, name, target } => {
                let rel = join(&self.pick_dir(dir), NAMES[name]);
                if self.model.contains_key(&rel) {
                    return Ok(false);
                }
                symlink(TARGETS[target], self.path(&rel)).unwrap();
                self.model.insert(rel, M::Link(TARGETS[target].into()));
            }
            Op::Retarget { link, target } => {
                let Some(rel) = self.pick(link, |m| matches!(m, M::Link(_))) else {
                    return Ok(false);
                };
                let mut t = TARGETS[target];
                if self.model[&rel] == M::Link(t.into()) {
                    t = TARGETS[(target + 1) % TARGETS.len()];
                }
                fs::remove_file(self.path(&rel)).unwrap();
                symlink(t, self.path(&rel)).unwrap();
                self.model.insert(rel, M::Link(t.into()));
            }
            Op::Pass { checksum } => {
                self.pass(checksum)?;
                return Ok(true);
            }
            Op::DryRun => {
                self.dry_run()?;
                return Ok(true);
            }
        }
        self.ops += 1;
        Ok(true)
    }

    /// The real source, as model entries.
    fn real_source(&self) -> BTreeMap<String, M> {
        snapshot(&self.env.src())
            .into_iter()
            .map(|(k, n)| {
                let k = String::from_utf8(k).unwrap();
                let m = match n {
                    Node::Dir { .. } => M::Dir,
                    Node::File { bytes, mode, mtime } => M::File { bytes, mode, mtime },
                    Node::Symlink { target, .. } => M::Link(String::from_utf8(target).unwrap()),
                    Node::Other => panic!("special file {k} in the model source"),
                };
                (k, m)
            })
            .collect()
    }

    /// Runs one `--once --dry-run` pass: the replica must not change.
    fn dry_run(&mut self) -> Result<(), TestCaseError> {
        let env = self.env;
        let before = (snapshot(&env.dst()), dir_mtimes(&env.dst()));
        let out = once_quick(env, &["--dry-run"]);
        prop_assert!(
            out.status.success(),
            "--once --dry-run failed ({}):\n{}",
            describe(&out.status),
            String::from_utf8_lossy(&out.stderr)
        );
        self.dry_runs += 1;
        if (snapshot(&env.dst()), dir_mtimes(&env.dst())) != before {
            return Err(TestCaseError::fail("a --dry-run pass changed the replica"));
        }
        Ok(())
    }

    /// Runs one `--once` pass and checks the replica against the model.
    fn pass(&mut self, checksum: bool) -> Result<(), TestCaseError> {
        let env = self.env;
        let real = self.real_source();
        if real != self.model {
            let keys: Vec<_> = real.keys().chain(self.model.keys()).collect();
            let diff: Vec<_> = keys
                .into_iter()
                .filter(|k| real.get(*k) != self.model.get(*k))
                .collect();
            return Err(TestCaseError::fail(format!(
                "the source does not match the model at {diff:?}"
            )));
        }
        let src = snapshot(&env.src());
        let before = if env.dst().exists() {
            snapshot(&env.dst())
        } else {
            BTreeMap::new()
        };
        let out = once_quick(env, if checksum { &["--checksum"] } else { &[] });
        prop_assert!(
            out.status.success(),
            "--once failed ({}):\n{}",
            describe(&out.status),
            String::from_utf8_lossy(&out.stderr)
        );
        self.passes += 1;

        // What the spec promises: the source, except files the quick check
        // may trust (same size, same mtime) may keep their replica bytes.
        let mut stale = Vec::new();
        let got = snapshot(&env.dst());
        let expected: BTreeMap<Vec<u8>, Node> = src
            .iter()
            .map(|(k, n)| {
                let kept = match (n, before.get(k)) {
                    (
                        Node::File { bytes, mode, mtime },
                        Some(Node::File {
                            bytes: old,
                            mtime: old_mtime,
                            ..
                        }),
                    ) if !checksum && old.len() == bytes.len() && old_mtime == mtime => {
                        let kept = Node::File {
                            bytes: old.clone(),
                            mode: *mode,
                            mtime: *mtime,
                        };
                        if got.get(k) != Some(&kept) {
                            // Not kept: then it must be the source's.
                            n.clone()
                        } else {
                            if old != bytes {
                                stale.push(show(k));
                            }
                            kept
                        }
                    }
                    _ => n.clone(),
                };
                (k.clone(), kept)
            })
            .collect();
        if got != expected {
            let mut report = String::new();
            for (k, v) in &expected {
                match got.get(k) {
                    None => report += &format!("missing: {}\n", show(k)),
                    Some(g) if g != v => {
                        report += &format!("differs: {}\n  want {v:?}\n  got  {g:?}\n", show(k))
                    }
                    _ => {}
                }
            }
            for k in got.keys().filter(|k| !expected.contains_key(*k)) {
                report += &format!("extra: {}\n", show(k));
            }
            report.truncate(4_000);
            return Err(TestCaseError::fail(format!(
                "pass {} (checksum {checksum}): replica differs from the model:\n{report}",
                self.passes
            )));
        }
        prop_assert_eq!(
            dir_mtimes(&env.src()),
            dir_mtimes(&env.dst()),
            "folder mtimes differ"
        );
        if stale.is_empty() {
            assert_mirror(&env.src(), &env.dst());
        } else {
            self.stale_files += stale.len();
        }
        Ok(())
    }
}

#[test]
fn random_mutations_and_passes_keep_the_replica_a_mirror() {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let cases = AtomicUsize::new(0);
    let passes = AtomicUsize::new(0);
    let dry_runs = AtomicUsize::new(0);
    let ops = AtomicUsize::new(0);
    let stale = AtomicUsize::new(0);
    let strategy = (
        prop::collection::vec(create_op(), 0..12),
        prop::collection::vec(step_op(), 1..30),
    );
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |(init, steps)| {
        cases.fetch_add(1, Ordering::Relaxed);
        let env = fast_env();
        let mut world = World {
            env: &env,
            model: BTreeMap::new(),
            clock: 1_500_000_000,
            passes: 0,
            dry_runs: 0,
            stale_files: 0,
            ops: 0,
        };
        world.new_file(ANCHOR, 10, 0);
        for op in &init {
            world.apply(op)?;
        }
        world.pass(false)?;
        for op in &steps {
            world.apply(op)?;
        }
        // Whatever the quick check trusted, --checksum converges.
        world.pass(true)?;
        assert_mirror(&env.src(), &env.dst());
        passes.fetch_add(world.passes, Ordering::Relaxed);
        dry_runs.fetch_add(world.dry_runs, Ordering::Relaxed);
        ops.fetch_add(world.ops, Ordering::Relaxed);
        stale.fetch_add(world.stale_files, Ordering::Relaxed);
        Ok(())
    });
    println!(
        "model: {} cases, {} passes (+{} --dry-run passes that changed nothing), {} source mutations, {} files legitimately left stale by the size+mtime quick check (all fixed by the final --checksum pass), {:.1} s",
        cases.load(Ordering::Relaxed),
        passes.load(Ordering::Relaxed),
        dry_runs.load(Ordering::Relaxed),
        ops.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(cases.load(Ordering::Relaxed), CASES as usize);
}
