//! Which passes may run at once: a pair never reads a folder while another
//! pair of this process writes it (the replica-dependent lock of the
//! original's roadmap), and `--once` runs a chain (A to B, then B to C) in
//! its order, so C gets B only once B is complete.
//!
//! Pairs conflict when one's source and the other's replica overlap. A pass
//! enters the gate only when no conflicting pass runs; entering takes every
//! lock at once under one mutex, so no two passes can wait on each other.
//! Other processes are kept out by [`crate::replica_lock`].

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use crate::config::{PairSpec, reads_from};
use crate::pair::Cancel;

/// The pairs of this process and which of them are in a pass.
#[derive(Default)]
pub struct Gate {
    pairs: Mutex<Pairs>,
    /// Told whenever a pass ends, a pair leaves, or a stop is asked for.
    changed: Condvar,
}

#[derive(Default)]
struct Pairs {
    members: HashMap<usize, Member>,
    /// The next waiting pass's place in line.
    next_ticket: u64,
}

struct Member {
    spec: PairSpec,
    in_pass: bool,
    /// Its place in line while it waits: a conflicting pair that waits
    /// longer goes first, so a pair whose passes run back to back cannot
    /// starve the pair chained to it.
    waiting: Option<u64>,
    /// Passes finished (or given up), for `--once` ordering.
    passes: u64,
}

/// A pass in the gate; leaving it (on drop, even by a panic) lets the
/// pairs that wait on it go.
pub struct InPass<'g> {
    gate: &'g Gate,
    id: usize,
}

impl Gate {
    /// Makes a pair known before its first pass.
    pub fn join(&self, id: usize, spec: &PairSpec) {
        let member = Member {
            spec: spec.clone(),
            in_pass: false,
            waiting: None,
            passes: 0,
        };
        self.lock().members.insert(id, member);
    }

    /// Forgets a pair that stopped: nothing waits on it any more.
    pub fn leave(&self, id: usize) {
        self.lock().members.remove(&id);
        self.changed.notify_all();
    }

    /// Wakes every waiting pass to look at its stop flags again.
    pub fn wake(&self) {
        // Taking the lock orders this after a waiter's check of its flags.
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Waits until pair `id` may run a pass, and enters. With `in_order`
    /// (`--once`), it also waits for the first pass of every pair it reads
    /// from. Returns the ids it waited for (for the log), or `None` when
    /// stopped while waiting.
    pub fn enter(
        &self,
        id: usize,
        in_order: bool,
        cancel: &Cancel,
        mut waiting: impl FnMut(&[usize]),
    ) -> Option<InPass<'_>> {
        let mut pairs = self.lock();
        let ticket = pairs.next_ticket;
        pairs.next_ticket += 1;
        if let Some(me) = pairs.members.get_mut(&id) {
            me.waiting = Some(ticket);
        }
        let mut told: Vec<usize> = Vec::new();
        loop {
            let blockers = blockers(&pairs.members, id, in_order);
            if cancel.is_set() || blockers.is_empty() {
                break;
            }
            if blockers != told {
                waiting(&blockers);
                told = blockers;
            }
            pairs = self.changed.wait(pairs).expect("gate poisoned");
        }
        let stopped = cancel.is_set();
        if let Some(me) = pairs.members.get_mut(&id) {
            me.waiting = None;
            me.in_pass = !stopped;
        }
        drop(pairs);
        // Whoever waited behind this pair's place in line may go now.
        self.changed.notify_all();
        (!stopped).then_some(InPass { gate: self, id })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pairs> {
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pairs that keep `id` from starting a pass now.
fn blockers(pairs: &HashMap<usize, Member>, id: usize, in_order: bool) -> Vec<usize> {
    let Some(me) = pairs.get(&id) else {
        return Vec::new();
    };
    let mut ids: Vec<usize> = pairs
        .iter()
        .filter(|&(&other, m)| {
            let conflict = reads_from(&me.spec, &m.spec) || reads_from(&m.spec, &me.spec);
            // Unless that pair waits for this one's first pass (`--once`).
            let ahead = m
                .waiting
                .is_some_and(|t| me.waiting.is_some_and(|mine| t < mine))
                && !(in_order && me.passes == 0 && reads_from(&m.spec, &me.spec));
            other != id
                && ((conflict && (m.in_pass || ahead))
                    || (in_order && m.passes == 0 && reads_from(&me.spec, &m.spec)))
        })
        .map(|(&other, _)| other)
        .collect();
    ids.sort_unstable();
    ids
}

impl Drop for InPass<'_> {
    fn drop(&mut self) {
        if let Some(me) = self.gate.lock().members.get_mut(&self.id) {
            me.in_pass = false;
            me.passes += 1;
        }
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    fn spec(source: &str, replica: &str) -> PairSpec {
        PairSpec {
            source: PathBuf::from(source),
            replica: PathBuf::from(replica),
            interval: Duration::from_secs(1),
            log_file: PathBuf::from("/log"),
            watch: false,
            two_way: false,
            name: None,
            options: Default::default(),
            excludes: Default::default(),
        }
    }

    #[test]
    fn a_chain_waits_for_its_upstream_and_unrelated_pairs_do_not() {
        let gate = Gate::default();
        gate.join(1, &spec("/a", "/b"));
        gate.join(2, &spec("/b/sub", "/c"));
        gate.join(3, &spec("/x", "/y"));
        let cancel = Cancel::default();
        // In order: 2 must wait for 1's first pass, 3 need not.
        assert_eq!(blockers(&gate.lock().members, 2, true), [1]);
        assert!(blockers(&gate.lock().members, 3, true).is_empty());
        let first = gate.enter(1, true, &cancel, |_| {}).expect("enters");
        // While 1 writes b, 2 may not read it, in order or not; 3 may run.
        assert_eq!(blockers(&gate.lock().members, 2, false), [1]);
        assert!(gate.enter(3, false, &cancel, |_| {}).is_some());
        let done = Arc::new(AtomicBool::new(false));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut heard = Vec::new();
                let pass = gate.enter(2, true, &cancel, |ids| heard.push(ids.to_vec()));
                assert!(done.load(Ordering::SeqCst), "2 ran before 1 finished");
                assert!(pass.is_some());
                heard
            });
            std::thread::sleep(Duration::from_millis(50));
            done.store(true, Ordering::SeqCst);
            drop(first);
            assert_eq!(waiter.join().expect("no panic"), [vec![1]]);
        });
        // 1 now waits while 2 reads its replica.
        let second = gate.enter(2, false, &cancel, |_| {}).expect("enters");
        assert_eq!(blockers(&gate.lock().members, 1, false), [2]);
        drop(second);
        assert!(blockers(&gate.lock().members, 1, false).is_empty());
    }

    #[test]
    fn a_stop_ends_the_wait_and_a_leaving_pair_frees_its_followers() {
        let gate = Gate::default();
        gate.join(1, &spec("/a", "/b"));
        gate.join(2, &spec("/b", "/c"));
        let cancel = Cancel::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.enter(2, true, &cancel, |_| {}).is_none());
            std::thread::sleep(Duration::from_millis(30));
            cancel.pair.store(true, Ordering::SeqCst);
            gate.wake();
            assert!(waiter.join().expect("no panic"), "entered though stopped");
        });
        let cancel = Cancel::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.enter(2, true, &cancel, |_| {}).is_some());
            std::thread::sleep(Duration::from_millis(30));
            gate.leave(1);
            assert!(waiter.join().expect("no panic"));
        });
    }
}
