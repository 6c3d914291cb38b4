//! Reading the pairs again (SIGHUP, `ctl reload`): which pairs are new,
//! gone, changed or the same, matched by name (a config file's) or else by
//! their folders. Pure, so the rules are tested without threads; the
//! supervisor carries the plan out.

use log::{error, info};

use crate::config::PairSpec;
use crate::daemon::supervisor::Supervisor;

/// Reloads `supervisor`'s pairs from `specs` (the file read again and
/// validated): refused whole when they cannot run beside the pairs that
/// stay; else the removed and changed pairs stop after their current pass
/// and the changed and added ones start. Logs and returns what happened.
pub fn apply(
    supervisor: &mut Supervisor,
    specs: Result<Vec<PairSpec>, String>,
) -> Result<String, String> {
    let checked = specs.and_then(|specs| {
        let plan = plan(&supervisor.reloadable(), specs);
        let leaving: Vec<usize> = plan
            .removed
            .iter()
            .copied()
            .chain(plan.changed.iter().map(|(id, _)| *id))
            .collect();
        let mut joining = plan.added.clone();
        joining.extend(plan.changed.iter().map(|(_, spec)| spec.clone()));
        supervisor.check_beside(&joining, &leaving)?;
        Ok((plan, leaving))
    });
    let (plan, leaving) = checked.map_err(|e| {
        let e = format!("reload refused, the running pairs carry on: {e}");
        error!("{e}");
        e
    })?;
    for id in &leaving {
        supervisor.retire(*id);
    }
    for id in &plan.removed {
        supervisor.forget(*id);
    }
    let mut failed = Vec::new();
    for (id, spec) in &plan.changed {
        if let Err(e) = supervisor.restart_as(*id, spec.clone()) {
            failed.push(format!("pair {id}: {e}"));
        }
    }
    if let Err(e) = supervisor.add_all(plan.added.clone()) {
        failed.push(e);
    }
    let summary = plan.summary();
    if failed.is_empty() {
        info!("{summary}");
        Ok(summary)
    } else {
        let e = format!("{summary}, but: {}", failed.join("; "));
        error!("{e}");
        Err(e)
    }
}

/// What a reload does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New pairs, started.
    pub added: Vec<PairSpec>,
    /// Pairs no longer listed: they stop after their current pass.
    pub removed: Vec<usize>,
    /// Pairs listed differently: stopped after their current pass and
    /// started with their new settings.
    pub changed: Vec<(usize, PairSpec)>,
    /// Pairs listed the same: not interrupted.
    pub unchanged: Vec<usize>,
}

impl Plan {
    /// One line for the log and `ctl reload`.
    pub fn summary(&self) -> String {
        format!(
            "reloaded: {} added, {} removed, {} changed, {} unchanged",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.unchanged.len()
        )
    }
}

/// How a pair is recognised across a reload.
fn key(spec: &PairSpec) -> (Option<&str>, Option<(&std::path::Path, &std::path::Path)>) {
    match &spec.name {
        Some(name) => (Some(name), None),
        None => (None, Some((&spec.source, &spec.replica))),
    }
}

/// Compares the pairs a file gave last time (`old`, by number) with those
/// it gives now.
pub fn plan(old: &[(usize, &PairSpec)], new: Vec<PairSpec>) -> Plan {
    let mut plan = Plan::default();
    for spec in new {
        match old.iter().find(|(_, o)| key(o) == key(&spec)) {
            Some((id, o)) if **o == spec => plan.unchanged.push(*id),
            Some((id, _)) => plan.changed.push((*id, spec)),
            None => plan.added.push(spec),
        }
    }
    for (id, _) in old {
        let kept = plan.unchanged.contains(id) || plan.changed.iter().any(|(c, _)| c == id);
        if !kept {
            plan.removed.push(*id);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn spec(name: Option<&str>, source: &str, secs: u64) -> PairSpec {
        PairSpec {
            source: PathBuf::from(source),
            replica: PathBuf::from(format!("{source}-copy")),
            interval: Duration::from_secs(secs),
            log_file: PathBuf::from("/log"),
            watch: false,
            two_way: false,
            name: name.map(String::from),
            options: Default::default(),
            excludes: Default::default(),
        }
    }

    #[test]
    fn pairs_are_matched_by_name_else_by_folders() {
        let (a, b, c) = (
            spec(Some("a"), "/a", 1),
            spec(None, "/b", 1),
            spec(Some("c"), "/c", 1),
        );
        let old = [(1, &a), (2, &b), (3, &c)];
        let a2 = spec(Some("a"), "/a2", 1);
        let b2 = spec(None, "/b", 5);
        let d = spec(Some("d"), "/d", 1);
        let got = plan(&old, vec![a2.clone(), b2.clone(), d.clone()]);
        assert_eq!(
            got,
            Plan {
                added: vec![d],
                removed: vec![3],
                changed: vec![(1, a2), (2, b2)],
                unchanged: vec![],
            }
        );
        let same = plan(&old, vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(same.unchanged, vec![1, 2, 3]);
        assert_eq!(
            same.summary(),
            "reloaded: 0 added, 0 removed, 0 changed, 3 unchanged"
        );
    }
}
