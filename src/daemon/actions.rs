//! What a person can ask of one pair, from the menu or through `ctl`: both
//! come here, so both call the same supervisor functions and say the same.

use crate::config::{PairSpec, RawPair, validate_pair};
use crate::daemon::supervisor::Supervisor;
use crate::daemon::worker::format_interval;
use crate::status::State;

/// One request about one pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Stop,
    /// Start a stopped (or crashed) pair again.
    Start,
    SyncNow,
    ApproveDeletions,
    AcceptNewDevice,
}

impl Action {
    /// Does it to pair `id`: the sentence to show, or why it cannot be
    /// done (a sentence too).
    pub fn perform(self, supervisor: &mut Supervisor, id: usize) -> Result<String, String> {
        match self {
            Action::Stop => supervisor
                .stop(id)
                .map(|()| format!("Pair {id} stopped."))
                .map_err(|e| format!("Cannot stop: {e}.")),
            Action::Start => supervisor
                .start(id)
                .map(|()| format!("Pair {id} started again."))
                .map_err(|e| format!("Cannot start: {e}.")),
            Action::SyncNow => supervisor
                .sync_now(id)
                .map(|()| format!("Pair {id}: pass started."))
                .map_err(|e| format!("Cannot sync now: {e}.")),
            Action::ApproveDeletions => supervisor
                .approve_deletions(id)
                .map(|n| format!("Pair {id}: pass started, removing the {n} held entries."))
                .map_err(|e| format!("Cannot approve: {e}.")),
            Action::AcceptNewDevice => supervisor
                .accept_new_devices(id)
                .map(|what| {
                    format!("Pair {id}: accepting the new device ({what}); a pass starts now.")
                })
                .map_err(|e| format!("Cannot accept: {e}.")),
        }
    }
}

/// Checks a pair the menu is adding (its options the command line's) as
/// the command line would, and against the running pairs.
pub fn check_pair(supervisor: &Supervisor, raw: RawPair) -> Result<PairSpec, String> {
    let (options, excludes) = supervisor.defaults();
    let raw = RawPair {
        options,
        excludes,
        ..raw
    };
    // A source in a running pair's replica may not exist yet.
    let upstream: Vec<_> = supervisor
        .views()
        .into_iter()
        .filter(|v| !matches!(v.status.state, State::Stopped))
        .map(|v| v.spec.replica)
        .collect();
    let spec = validate_pair(&raw, &upstream)?;
    supervisor.check(&spec)?;
    Ok(spec)
}

/// Checks a source the menu's add was just given: a folder, or one a
/// running pair will create in its replica (a chain).
pub fn check_source(supervisor: &Supervisor, source: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("source {}: not a folder", source.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let resolved = crate::config::resolve(source)
                .map_err(|e| format!("source {}: {e}", source.display()))?;
            let chained = supervisor.views().into_iter().any(|v| {
                !matches!(v.status.state, State::Stopped) && resolved.starts_with(&v.spec.replica)
            });
            if chained {
                Ok(())
            } else {
                Err(format!("source {}: {e}", source.display()))
            }
        }
        Err(e) => Err(format!("source {}: {e}", source.display())),
    }
}

/// Checks and starts a pair the menu adds: what to show, or why not.
pub fn add_pair(supervisor: &mut Supervisor, raw: RawPair) -> Result<String, String> {
    let spec = check_pair(supervisor, raw).map_err(|e| format!("Not added: {e}."))?;
    let shown = format!(
        "{} {} {} every {}{}",
        spec.source.display(),
        spec.arrow(),
        spec.replica.display(),
        format_interval(spec.interval),
        if spec.watch { ", watched" } else { "" }
    );
    match supervisor.add(spec) {
        Ok(id) => Ok(format!("Started pair {id}: {shown}.")),
        Err(e) => Err(format!("Not added: {e}.")),
    }
}
