//! The `--once` progress line at a terminal: entries checked, files and
//! bytes copied and the rate, redrawn in place on stderr while the passes
//! run, then replaced by one summary line.
//!
//! It reads the same status the menu's list shows, on the main thread, so
//! the pass itself knows nothing of it. Off a terminal it is never shown.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::render::{changes, human_bytes, rate};
use crate::daemon::supervisor::{PairView, Supervisor};
use crate::logging::Logs;
use crate::status::{Counts, Outcome, State};

/// How often the line is redrawn: often enough to look alive, rarely
/// enough to cost nothing next to the pass.
const TICK: Duration = Duration::from_millis(100);

/// Shows the progress line until every pair has stopped, then the summary.
/// Console records meanwhile print above the line.
pub fn show(supervisor: &Supervisor, logs: &Logs) {
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let above = bar.clone();
    logs.set_console_sink(Some(Box::new(move |line: String| {
        above.println(line.trim_end_matches('\n'));
    })));
    loop {
        let views = supervisor.views();
        if views
            .iter()
            .all(|v| matches!(v.status.state, State::Stopped | State::Crashed))
        {
            logs.set_console_sink(None);
            bar.finish_and_clear();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", summary(&views, started.elapsed()));
            return;
        }
        bar.set_message(line(&views, started.elapsed()));
        bar.tick();
        std::thread::sleep(TICK);
    }
}

/// The live line: what every pair's pass did so far.
fn line(views: &[PairView], took: Duration) -> String {
    let (mut files, mut copied, mut bytes) = (0, 0, 0);
    for v in views {
        match (v.status.state, &v.status.last) {
            (
                State::Syncing {
                    files: f,
                    copied: c,
                    bytes: b,
                    ..
                },
                _,
            ) => {
                files += f;
                copied += c;
                bytes += b;
            }
            (_, Some(last)) => {
                files += last.counts.checked;
                copied += last.counts.copied + last.counts.updated;
                bytes += last.counts.bytes;
            }
            _ => {}
        }
    }
    format!(
        "{files} checked, {copied} files copied, {} written, {}",
        human_bytes(bytes),
        rate(files, took.as_secs_f64())
    )
}

/// The closing line: how the passes ended and what they did.
fn summary(views: &[PairView], took: Duration) -> String {
    let mut counts = Counts::default();
    let mut how = "finished";
    for last in views.iter().filter_map(|v| v.status.last.as_ref()) {
        counts.add(&last.counts);
        how = match (how, last.outcome) {
            ("failed", _) | (_, Outcome::Failed) => "failed",
            ("stopped", _) | (_, Outcome::Stopped) => "stopped",
            _ => how,
        };
    }
    let who = match views {
        [one] => format!("pair {}: pass", one.id),
        many => format!("{} pairs: passes", many.len()),
    };
    format!(
        "{who} {how} in {:.2} s: {} checked, {} ({})",
        took.as_secs_f64(),
        counts.checked,
        changes(&counts),
        rate(counts.checked, took.as_secs_f64())
    )
}
