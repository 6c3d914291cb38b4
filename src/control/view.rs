//! A pair as `ctl status --json` gives it: what the list shows, as data.

use std::time::Instant;

use serde_json::{Value, json};

use crate::daemon::supervisor::PairView;
use crate::status::{Counts, Outcome, State, WatchStatus};
use crate::ui::render::state_line;

/// Every pair, in the order of the list.
pub fn pairs(views: &[PairView]) -> Value {
    let now = Instant::now();
    Value::Array(views.iter().map(|v| pair(v, now)).collect())
}

fn pair(v: &PairView, now: Instant) -> Value {
    let s = &v.status;
    let state = match s.state {
        State::Starting => "starting",
        State::Syncing { .. } => "syncing",
        State::Waiting { .. } => "waiting",
        State::Idle { .. } => "idle",
        State::Stopped => "stopped",
        State::Crashed => "crashed",
    };
    let last = s.last.map(|l| {
        json!({
            "result": match l.outcome {
                Outcome::Finished if l.counts.errors == 0 => "ok",
                Outcome::Finished => "errors",
                Outcome::Stopped => "stopped",
                Outcome::Failed => "failed",
            },
            "seconds": l.duration.as_secs_f64(),
            "counts": counts(&l.counts),
            "held_deletions": l.held_deletions,
        })
    });
    let watch = match &s.watch {
        None => Value::Null,
        Some(WatchStatus::On(folders)) => json!({ "on": true, "folders": folders }),
        Some(WatchStatus::FellBack(why)) => json!({ "on": false, "fell_back": why }),
        Some(WatchStatus::Off(why)) => json!({ "on": false, "off": why }),
    };
    json!({
        "id": v.id,
        "name": v.name(),
        "source": v.spec.source.to_string_lossy(),
        "replica": v.spec.replica.to_string_lossy(),
        "two_way": v.spec.two_way,
        "interval_seconds": v.spec.interval.as_secs_f64(),
        "log": v.spec.log_file.to_string_lossy(),
        "state": state,
        "state_text": state_line(s, now),
        "last_pass": last,
        "device_refused": s.device_refused,
        "crashed": s.crashed,
        "passes": s.passes,
        "totals": counts(&s.totals),
        "watch": watch,
    })
}

fn counts(c: &Counts) -> Value {
    json!({
        "checked": c.checked,
        "copied": c.copied,
        "updated": c.updated,
        "removed": c.removed_files + c.removed_dirs,
        "errors": c.errors,
        "conflicts": c.conflicts,
        "bytes": c.bytes,
    })
}
