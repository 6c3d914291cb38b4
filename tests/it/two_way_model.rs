//! Model-based property test of two-way sync (issue 13, "Proof"): random
//! small trees and random edits on both sides between `--once --two-way`
//! passes of the real binary, some passes killed (SIGKILL after a random
//! share of a pass's length), some paused between plan and apply
//! (`FOLDERSYNC_TEST_PAUSE_TWOWAY`, debug builds) while both sides are
//! edited again. After every pass:
//!
//! * both sides are identical (names, types, bytes, modes, link targets);
//! * a pass that nobody disturbed left exactly what the reference model
//!   (`two_way_rules.rs`) says, conflict copies included, and so did a
//!   clean pass after a killed one: a kill loses nothing and makes no
//!   spurious conflict copy;
//! * every version a user wrote still exists on both sides, under its name
//!   or as a conflict copy, unless a user's later edit or deletion replaced
//!   it; right after a kill every file under a real name is one whole
//!   version, and the next finished pass leaves no temporary file.
//!
//! Deterministic: a fixed proptest seed; the kills' moments vary.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::{Just, Strategy, any, prop};
use proptest::prop_oneof;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use crate::support::*;
use crate::two_way_edits::{Op, op_strategy};
use crate::two_way_rules::{Tree, contents, descends_from, expect};

/// Cases run; about 25 s in a debug build on 2 cores.
const CASES: u32 = 200;
const SEED: [u8; 32] = *b"foldersync two-way model seed 01";

#[derive(Clone, Debug)]
pub enum Step {
    /// An edit on side A (0), side B (1) or both (2: the same edit; 3:
    /// different edits at the same place).
    Edit(u8, Op),
    Pass,
    /// A pass killed after this many thousandths of a pass's length, then
    /// a clean pass.
    Kill(u16),
    /// A pass paused between plan and apply while these edits are made,
    /// then a clean pass.
    Paused(Vec<(u8, Op)>),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let side = || {
        prop_oneof![
            3 => Just(0u8),
            3 => Just(1u8),
            1 => Just(2u8),
            3 => Just(3u8),
        ]
    };
    prop_oneof![
        12 => (side(), op_strategy()).prop_map(|(s, op)| Step::Edit(s, op)),
        3 => Just(Step::Pass),
        2 => (0u16..1200).prop_map(Step::Kill),
        1 => prop::collection::vec((side(), op_strategy()), 1..5).prop_map(Step::Paused),
    ]
}

/// Figures of the whole run.
#[derive(Default)]
struct Stats {
    passes: AtomicUsize,
    edits: AtomicUsize,
    mid_pass_edits: AtomicUsize,
    kills: AtomicUsize,
    killed_mid_pass: AtomicUsize,
    paused: AtomicUsize,
    conflicts: AtomicUsize,
    wipes_held: AtomicUsize,
}

/// Both sides, what the harness wrote there, and what the last sync left.
struct World<'a> {
    env: &'a TestEnv,
    edits: crate::two_way_edits::Sides,
    base: [Tree; 2],
    stats: &'a Stats,
    /// The last clean pass's length, for the kills' moments.
    pass_len: Duration,
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl World<'_> {
    fn roots(&self) -> [PathBuf; 2] {
        [self.env.src(), self.env.dst()]
    }

    /// Both sides now, our temporary files left out (see `clean_pass`).
    fn real(&self) -> [Tree; 2] {
        self.roots().map(|r| {
            let mut t = snapshot(&r);
            t.retain(|k, _| !is_tagged_temp_name(base_name(k)));
            t
        })
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(["--once", "--two-way"])
            .args([self.env.src(), self.env.dst()])
            .arg("1")
            .arg(self.env.log())
            .current_dir(self.env.root())
            .env("XDG_STATE_HOME", self.env.state_home())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn edit(&mut self, side: u8, op: &Op) {
        let done = match side {
            2 => self.edits.apply(0, op) | self.edits.apply(1, op),
            3 => self.edits.apply(0, op) | self.edits.apply(1, &op.varied()),
            s => self.edits.apply(s as usize, op),
        };
        if done {
            self.stats.edits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Both sides before a pass, checked against what the harness wrote.
    fn before(&self) -> Result<[Tree; 2], TestCaseError> {
        let real = self.real();
        for (i, t) in real.iter().enumerate() {
            if !self.edits.matches(i, t) {
                return Err(fail(format!("harness: side {i} is not what was written")));
            }
        }
        Ok(real)
    }

    /// A pass that nobody disturbs: both sides identical after it, and no
    /// version lost.
    fn clean_pass(&mut self) -> Result<[Tree; 2], TestCaseError> {
        let started = Instant::now();
        let before = self.real();
        let log_before = self.env.log_text().len();
        let mut out = once_quick(self.env, &["--two-way"]);
        self.pass_len = started.elapsed();
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        if !out.status.success() && wipe_refused(&self.env.log_text()[log_before..]) {
            // A side emptied of its files: nothing deleted on either side
            // until the user approves, which they do here.
            files_kept(&before, &self.real())?;
            self.stats.wipes_held.fetch_add(1, Ordering::Relaxed);
            out = once_quick(self.env, &["--two-way", "--allow-empty-source"]);
        }
        if !out.status.success() {
            return Err(fail(format!(
                "--once --two-way failed ({}):\n{}",
                describe(&out.status),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let after = self.real();
        let [a, b] = [contents(&after[0]), contents(&after[1])];
        if a != b {
            return Err(fail(format!(
                "sides differ after a pass:\n{}",
                diff(&a, &b)
            )));
        }
        // A killed pass's temporary files are removed by the next pass.
        let temps: Vec<_> = find_tagged_temps(&self.env.src())
            .into_iter()
            .chain(find_tagged_temps(&self.env.dst()))
            .map(|t| show(&t))
            .collect();
        if !temps.is_empty() {
            return Err(fail(format!(
                "a finished pass left temporary files: {temps:?}"
            )));
        }
        self.edits.safety_both(&after).map_err(fail)?;
        Ok(after)
    }

    /// Checks a clean pass's result against the rules, from `before`.
    fn exact(&mut self, before: &[Tree; 2], after: &[Tree; 2]) -> Result<(), TestCaseError> {
        let want = expect([&self.base[0], &self.base[1]], [&before[0], &before[1]]);
        let problems = crate::two_way_rules::check(&want, &contents(&after[0]));
        if !problems.is_empty() {
            let mut report = problems.join("\n");
            report.truncate(4_000);
            return Err(fail(format!(
                "the pass's result differs from the rules:\n{report}"
            )));
        }
        self.stats
            .conflicts
            .fetch_add(want.asides.len(), Ordering::Relaxed);
        self.synced(after);
        Ok(())
    }

    fn synced(&mut self, after: &[Tree; 2]) {
        self.base = after.clone();
        self.edits.reset(after);
    }

    fn pass(&mut self) -> Result<(), TestCaseError> {
        let before = self.before()?;
        let after = self.clean_pass()?;
        self.exact(&before, &after)
    }

    fn kill(&mut self, permille: u16) -> Result<(), TestCaseError> {
        let before = self.before()?;
        let delay = self.pass_len * u32::from(permille) / 1000;
        let log_before = self.env.log_text().len();
        let mut child = self
            .cmd()
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn foldersync");
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.stats.kills.fetch_add(1, Ordering::Relaxed);
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(9) => {
                self.stats.killed_mid_pass.fetch_add(1, Ordering::Relaxed);
            }
            _ if status.success() => {}
            // Held a wipe; the clean pass below approves it.
            _ if wipe_refused(&self.env.log_text()[log_before..]) => {}
            _ => {
                return Err(fail(format!(
                    "unkilled pass ended with {}",
                    describe(&status)
                )));
            }
        }
        // Every file under a real name is a whole version of before.
        let whole: BTreeSet<&Vec<u8>> = before
            .iter()
            .flat_map(|t| t.values())
            .filter_map(|n| match n {
                Node::File { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect();
        for (side, t) in self.real().iter().enumerate() {
            for (p, n) in t {
                if let Node::File { bytes, .. } = n {
                    if !is_tagged_temp_name(base_name(p)) && !whole.contains(bytes) {
                        return Err(fail(format!(
                            "after a kill, side {side}'s {} is torn",
                            show(p)
                        )));
                    }
                }
            }
        }
        let after = self.clean_pass()?;
        self.exact(&before, &after)
    }

    fn paused(&mut self, edits: &[(u8, Op)]) -> Result<(), TestCaseError> {
        let before = self.before()?;
        let flag = self.env.path("paused");
        let log_before = self.env.log_text().len();
        let child = self
            .cmd()
            .env("FOLDERSYNC_TEST_PAUSE_TWOWAY", &flag)
            .spawn()
            .expect("spawn");
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !flag.exists() {
            let ended = child.try_wait().unwrap().is_some();
            if ended && wipe_refused(&self.env.log_text()[log_before..]) {
                // A wholly empty side refused before any plan: nothing
                // changed, so the edits come between passes.
                for (side, op) in edits {
                    self.edit(*side, op);
                }
                return self.pass();
            }
            if Instant::now() > deadline || ended {
                let _ = child.kill();
                return Err(fail("the pass never paused".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for (side, op) in edits {
            self.edit(*side, op);
            self.stats.mid_pass_edits.fetch_add(1, Ordering::Relaxed);
        }
        fs::remove_file(&flag).unwrap();
        let out = child.wait_with_output().unwrap();
        self.stats.paused.fetch_add(1, Ordering::Relaxed);
        // A wipe held is no failure here: the clean pass below approves it.
        if !out.status.success() && !wipe_refused(&self.env.log_text()[log_before..]) {
            return Err(fail(format!(
                "paused pass failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        // Nothing a user wrote is lost, not even during the pass; the
        // conflict copies made are ones the rules call for.
        let mid = self.real();
        self.edits.safety_own(&mid).map_err(fail)?;
        let want = expect([&self.base[0], &self.base[1]], [&before[0], &before[1]]);
        let written = self.edits.trees();
        let known = [&before[0], &before[1], &written[0], &written[1]];
        new_copies_allowed(&known, &mid, |p| want.asides.iter().any(|(q, _)| q == p))?;
        // The edits made meanwhile go in the next pass; the archive the
        // paused pass left is not modelled, so only the weaker checks.
        self.edits.reset(&mid);
        let after = self.clean_pass()?;
        new_copies_allowed(&[&mid[0], &mid[1]], &after, |p| {
            let c = |t: &Tree| t.get(p).map(crate::two_way_rules::content);
            c(&mid[0]) != c(&mid[1])
        })?;
        self.synced(&after);
        Ok(())
    }
}

/// Whether a pass's log lines say it held a wipe: a side emptied of its
/// files, or wholly empty.
fn wipe_refused(log: &str) -> bool {
    log.contains("holds none of the files the last sync left")
        || log.contains("is empty, while the last sync left")
}

/// A pass that held a wipe removed no file on either side.
fn files_kept(before: &[Tree; 2], after: &[Tree; 2]) -> Result<(), TestCaseError> {
    for (side, (b, a)) in before.iter().zip(after).enumerate() {
        for (p, n) in b {
            if matches!(n, Node::File { .. }) && !a.contains_key(p) {
                return Err(fail(format!(
                    "a pass that held a wipe removed side {side}'s {}",
                    show(p)
                )));
            }
        }
    }
    Ok(())
}

/// Each conflict copy in `after` that none of `before` holds (both sides
/// before the pass, and what users wrote during it) must be a copy of a
/// path `allowed` says may conflict.
fn new_copies_allowed(
    before: &[&Tree],
    after: &[Tree; 2],
    allowed: impl Fn(&Vec<u8>) -> bool,
) -> Result<(), TestCaseError> {
    for q in after[0].keys().chain(after[1].keys()) {
        if before.iter().any(|t| t.contains_key(q))
            || !crate::two_way_rules::name(q)
                .windows(10)
                .any(|w| w == b".conflict-")
        {
            continue;
        }
        let from = before.iter().flat_map(|t| t.keys()).find(|p| {
            *p != q
                && descends_from(q, p)
                && crate::two_way_rules::is_conflict_name_of(
                    crate::two_way_rules::name(q),
                    crate::two_way_rules::name(p),
                )
        });
        if !from.is_some_and(&allowed) {
            return Err(fail(format!("spurious conflict copy {}", show(q))));
        }
    }
    Ok(())
}

fn diff<V: std::fmt::Debug + PartialEq>(
    a: &BTreeMap<Vec<u8>, V>,
    b: &BTreeMap<Vec<u8>, V>,
) -> String {
    let mut out = String::new();
    for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        if a.get(k) != b.get(k) {
            out += &format!(
                "{}: source {:?}, replica {:?}\n",
                show(k),
                a.get(k),
                b.get(k)
            );
        }
    }
    out.truncate(4_000);
    out
}

#[test]
fn random_edits_on_both_sides_kills_and_edits_during_passes_lose_nothing() {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 60,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let stats = Stats::default();
    let cases = AtomicUsize::new(0);
    let strategy = (
        prop::collection::vec((any::<bool>(), op_strategy()), 0..12),
        prop::collection::vec(step_strategy(), 1..24),
    );
    let started = Instant::now();
    let result = runner.run(&strategy, |(init, steps)| {
        cases.fetch_add(1, Ordering::Relaxed);
        let env = fast_env();
        fs::create_dir(env.dst()).unwrap();
        let mut world = World {
            env: &env,
            edits: crate::two_way_edits::Sides::new([env.src(), env.dst()]),
            base: [Tree::new(), Tree::new()],
            stats: &stats,
            pass_len: Duration::from_millis(50),
        };
        // Both sides start with trees of their own: the first pass is a
        // first sync (the union).
        for (side_b, op) in &init {
            world.edit(u8::from(*side_b), op);
        }
        world.pass()?;
        for step in &steps {
            match step {
                Step::Edit(side, op) => world.edit(*side, op),
                Step::Pass => world.pass()?,
                Step::Kill(permille) => world.kill(*permille)?,
                Step::Paused(edits) => world.paused(edits)?,
            }
        }
        world.pass()?;
        Ok(())
    });
    let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!(
        "two-way model: {} cases, {} edits between passes and {} during {} paused passes, {} clean passes, {} kills ({} mid-pass), {} conflict copies checked, {} wipes held, {:.1} s",
        n(&cases),
        n(&stats.edits) - n(&stats.mid_pass_edits),
        n(&stats.mid_pass_edits),
        n(&stats.paused),
        n(&stats.passes),
        n(&stats.kills),
        n(&stats.killed_mid_pass),
        n(&stats.conflicts),
        n(&stats.wipes_held),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(n(&cases), CASES as usize);
}
