//! The supervisor's side of a reload ([`crate::daemon::reload`] plans
//! it): the pairs a file started, a check of new ones beside those that
//! stay, and retiring, forgetting and restarting pairs.

use crate::config::{PairSpec, check_overlaps};
use crate::daemon::worker::Trigger;

use super::{Supervisor, join};

impl Supervisor {
    /// The pairs a reload compares the file with, by number.
    pub fn reloadable(&self) -> Vec<(usize, &PairSpec)> {
        let listed = self.pairs.iter().filter(|p| p.reloadable);
        listed.map(|p| (p.id, &p.spec)).collect()
    }

    /// Whether `new` pairs may run beside the running ones but `leaving`.
    pub fn check_beside(&self, new: &[PairSpec], leaving: &[usize]) -> Result<(), String> {
        let staying: Vec<&PairSpec> = self
            .pairs
            .iter()
            .filter(|p| p.thread.is_some() && !leaving.contains(&p.id))
            .map(|p| &p.spec)
            .collect();
        check_overlaps(&staying, new)?;
        if let Some(state) = &self.state {
            for spec in new {
                crate::state::check_place(state.dir(), spec)?;
            }
        }
        Ok(())
    }

    /// Lets a pair finish its current pass (no stop flag: only a trigger
    /// after the pass ends) and waits for its thread.
    pub fn retire(&mut self, id: usize) {
        let Some(pair) = self.pairs.iter_mut().find(|p| p.id == id) else {
            return;
        };
        let _ = pair.triggers.send(Trigger::Stop);
        self.gate.wake();
        if let Some(thread) = pair.thread.take() {
            self.all_clean &= join(thread);
        }
    }

    /// Drops a retired pair from the list.
    pub fn forget(&mut self, id: usize) {
        self.pairs.retain(|p| p.id != id);
    }

    /// Starts a retired pair again with new settings, same number.
    pub fn restart_as(&mut self, id: usize, spec: PairSpec) -> Result<(), String> {
        let pair = self.pairs.iter_mut().find(|p| p.id == id);
        let pair = pair.ok_or_else(|| format!("there is no pair {id}"))?;
        self.logs
            .attach(id, &spec.log_file)
            .map_err(|e| format!("log file {}: {e}", spec.log_file.display()))?;
        pair.spec = spec;
        self.restart(id)
    }
}
