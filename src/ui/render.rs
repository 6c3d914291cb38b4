//! The text of the list (menu option 1): each pair, its state and what its
//! passes did.

use std::time::Instant;

use crate::daemon::supervisor::PairView;
use crate::daemon::worker::format_interval;
use crate::status::{Counts, Outcome, PairStatus, State, WatchStatus};

/// The listing of every pair.
pub fn list(views: &[PairView]) -> String {
    if views.is_empty() {
        return "No sync pairs. Choose 2 to add one.\n".into();
    }
    let now = Instant::now();
    let mut text = String::new();
    for v in views {
        let s = &v.status;
        text += &format!(
            "Pair {}{}: {} {} {}{}\n  every {}, log {}\n  state: {}\n",
            v.id,
            v.spec
                .name
                .as_ref()
                .map_or(String::new(), |n| format!(" ({n})")),
            v.spec.source.display(),
            v.spec.arrow(),
            v.spec.replica.display(),
            if v.spec.two_way { " (two-way)" } else { "" },
            format_interval(v.spec.interval),
            v.spec.log_file.display(),
            state_line(s, now)
        );
        if let Some(last) = &s.last {
            let result = match last.outcome {
                Outcome::Finished if last.counts.errors == 0 => "ok".to_string(),
                Outcome::Finished => format!("finished with {} errors", last.counts.errors),
                Outcome::Stopped => "stopped before the end".to_string(),
                Outcome::Failed => "failed".to_string(),
            };
            text += &format!(
                "  last pass: {result} in {:.2} s, {} checked, {}\n",
                last.duration.as_secs_f64(),
                last.counts.checked,
                changes(&last.counts)
            );
            if let Some(refused) = &s.device_refused {
                text += &format!("  refused: {refused}; option 7 accepts the new device\n");
            }
            if last.held_deletions > 0 {
                text += &format!(
                    "  held: {} deletions, none made (the log says why); option 6 approves them\n",
                    last.held_deletions
                );
            }
        }
        let t = &s.totals;
        text += &format!(
            "  since start: {} {}, {} copied, {} updated, {} removed, {} written{}\n",
            s.passes,
            if s.passes == 1 { "pass" } else { "passes" },
            t.copied,
            t.updated,
            t.removed_files + t.removed_dirs,
            human_bytes(t.bytes),
            if v.spec.two_way {
                format!(", {} conflicts (both versions kept)", t.conflicts)
            } else {
                String::new()
            }
        );
        // A two-way pair keeps its archive on disk, not this cache.
        if !v.spec.two_way {
            text += &format!(
                "  cache: {} {}, {}{}\n",
                s.cache_entries,
                if s.cache_entries == 1 {
                    "file"
                } else {
                    "files"
                },
                human_bytes(s.cache_bytes as u64),
                if s.cache_evicted > 0 {
                    format!(", {} evicted to stay under --cache-limit", s.cache_evicted)
                } else {
                    String::new()
                }
            );
        }
        if s.exclude_patterns > 0 {
            let n = s.exclude_patterns;
            let what = if n == 1 { "pattern" } else { "patterns" };
            text += &format!("  excludes: {n} {what}\n");
        }
        match &s.watch {
            Some(WatchStatus::On(n)) => {
                let what = if *n == 1 { "folder" } else { "folders" };
                text += &format!("  watch: on, {} {what} watched\n", thousands(*n));
            }
            Some(WatchStatus::FellBack(why)) => {
                text += &format!("  watch: off (fell back to full passes: {why})\n");
            }
            Some(WatchStatus::Off(why)) => text += &format!("  watch: off ({why})\n"),
            None => {}
        }
    }
    text
}

pub fn state_line(s: &PairStatus, now: Instant) -> String {
    let failed = s.last.as_ref().is_some_and(|l| !l.is_clean());
    match s.state {
        State::Starting => "starting".into(),
        State::Syncing {
            since,
            files,
            copied,
            bytes,
        } => {
            let took = now.saturating_duration_since(since).as_secs_f64();
            // The last complete pass checked about as many entries as this
            // one will: a fair estimate of the total.
            let total = s
                .last
                .filter(|l| l.outcome == Outcome::Finished)
                .map(|l| l.counts.checked);
            format!(
                "syncing for {took:.1} s: {files} entries checked ({}){}, {copied} files copied, {} written so far",
                rate(files, took),
                total.map_or(String::new(), |t| format!(
                    ", {} of the last pass's {t}",
                    percent(files, t)
                )),
                human_bytes(bytes)
            )
        }
        State::Idle { next } if failed => format!(
            "last pass failed; next pass in {:.0} s",
            next.saturating_duration_since(now).as_secs_f64().ceil()
        ),
        State::Idle { next } => format!(
            "idle, next pass in {:.0} s",
            next.saturating_duration_since(now).as_secs_f64().ceil()
        ),
        State::Waiting { on } => {
            format!(
                "waiting for pair {on}, whose pass writes what this pair reads or reads what it writes"
            )
        }
        State::Stopped => "stopped".into(),
        State::Crashed => format!(
            "crashed: {}; option 5 starts it again",
            s.crashed.as_deref().unwrap_or("unknown cause")
        ),
    }
}

/// What a pass changed, naming only what happened.
pub fn changes(c: &Counts) -> String {
    let items = [
        (c.copied, "copied"),
        (c.updated, "updated"),
        (c.touched, "touched"),
        (c.linked, "linked"),
        (c.created_dirs, "folders created"),
        (c.removed_files + c.removed_dirs, "removed"),
        (c.conflicts, "conflicts"),
        (c.errors, "errors"),
    ];
    let mut parts: Vec<String> = items
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if c.bytes > 0 {
        parts.push(format!("{} written", human_bytes(c.bytes)));
    }
    if parts.is_empty() {
        "nothing to change".into()
    } else {
        parts.join(", ")
    }
}

/// Bytes in binary units: `512 B`, `4.1 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with thousands separated: `1,234`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Entries a second, whole numbers: `3750/s`.
pub fn rate(files: u64, secs: f64) -> String {
    if secs < 0.05 {
        return "-/s".into();
    }
    format!("{:.0}/s", files as f64 / secs)
}

/// How far `done` is into `total`, kept below 100% until the pass ends: the
/// total is an estimate and the tree may have grown.
fn percent(done: u64, total: u64) -> String {
    if total == 0 {
        return "99%".into();
    }
    format!("{}%", (done.saturating_mul(100) / total).min(99))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PassReport;
    use std::time::Duration;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn counts_have_thousands_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn a_running_pass_shows_its_rate_and_a_percentage_of_the_last_pass() {
        let now = Instant::now();
        let mut s = PairStatus {
            state: State::Syncing {
                since: now - Duration::from_secs(2),
                files: 500,
                copied: 7,
                bytes: 2048,
            },
            ..PairStatus::default()
        };
        let first = state_line(&s, now);
        assert_eq!(
            first,
            "syncing for 2.0 s: 500 entries checked (250/s), 7 files copied, 2.0 KiB written so far"
        );
        s.last = Some(PassReport {
            outcome: Outcome::Finished,
            counts: Counts {
                checked: 2000,
                ..Counts::default()
            },
            duration: Duration::from_secs(8),
            held_deletions: 0,
        });
        assert!(
            state_line(&s, now).contains("(250/s), 25% of the last pass's 2000, 7 files"),
            "{}",
            state_line(&s, now)
        );
        assert_eq!(percent(3000, 2000), "99%");
    }
}
