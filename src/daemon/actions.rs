//! What a person can ask of one pair, from the menu or through `ctl`: both
//! come here, so both call the same supervisor functions and say the same.

use crate::daemon::supervisor::Supervisor;

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
