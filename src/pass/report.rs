//! Report: every outcome of a pass becomes one log line (and one count),
//! here; the pass's summary line too.

use std::io;
use std::sync::Arc;

use log::{debug, error, info, warn};

use crate::excludes::{IGNORE_FILE, Matcher};
use crate::fsops::{Meta, OpError};
use crate::logging::display_path;
use crate::mounts::Caps;
use crate::status::{Counts, Outcome, PassReport};

use super::deletions::Held;
use super::starts::{self, Start};
use crate::pair::PairContext;

use super::walk::Walker;

impl PairContext<'_> {
    pub(super) fn prefix(&self) -> &'static str {
        if self.options.dry_run {
            "[dry run] "
        } else {
            ""
        }
    }

    /// One action, one log line: verb, path relative to the pair's root,
    /// detail.
    pub(super) fn action(&self, verb: &str, rel: &[u8], detail: std::fmt::Arguments<'_>) {
        info!(target: self.target, "pair {}: {}{verb} {}{detail}", self.id, self.prefix(), display_path(rel));
    }

    pub(super) fn warn_line(&self, msg: std::fmt::Arguments<'_>) {
        warn!(target: self.target, "pair {}: {msg}", self.id);
    }

    pub(super) fn log_info(&self, msg: std::fmt::Arguments<'_>) {
        info!(target: self.target, "pair {}: {msg}", self.id);
    }

    pub(super) fn log_debug(&self, msg: std::fmt::Arguments<'_>) {
        debug!(target: self.target, "pair {}: {msg}", self.id);
    }
}

/// Something a pass did (or, in a dry run, would have done) to one entry:
/// each becomes exactly one log line and one count, in [`Walker::done`].
pub(super) enum Done<'t> {
    CreatedFolder,
    /// A file's bytes brought over: `new` when the replica had no file
    /// there; `written` is false in a dry run.
    Copied {
        new: bool,
        size: u64,
        written: bool,
    },
    /// Mode or mtime set, bytes unchanged; says which.
    Touched(std::fmt::Arguments<'t>),
    /// A symlink made, with its target.
    Linked {
        target: &'t [u8],
    },
    /// Another name of an already synced file, with that file's path.
    HardLinked {
        leader: &'t [u8],
    },
    RemovedFile,
    RemovedLink,
    /// A folder removed; `whole` when it is said once for everything in
    /// it (a dry run).
    RemovedFolder {
        whole: bool,
    },
    /// A leftover of an interrupted copy: ours, so not counted.
    RemovedStaleTemporary,
    /// A source entry that is not synced, and why.
    Skipped(&'t str),
    /// Likewise, but for a reason said once for the pair already (a
    /// replica file system without symlinks): at debug level.
    SkippedAsSaid(&'t str),
    /// A source entry an exclude pattern leaves out: the user asked for
    /// it, so at debug level and not counted.
    Excluded,
}

impl Walker<'_, '_> {
    /// A file that changed while it was copied: an error (the replica is
    /// not yet right), said as a warning since nothing failed.
    pub(super) fn changed_while_copied(&mut self, rel: &[u8]) {
        self.counts.errors += 1;
        self.ctx.warn_line(format_args!(
            "error {}: changed while being copied; the replica keeps its previous version, the next pass copies it again",
            display_path(rel)
        ));
    }

    /// Logs and counts one thing done: the only place where a pass's
    /// actions become log lines and counts.
    pub(super) fn done(&mut self, rel: &[u8], what: Done<'_>) {
        let c = &mut self.counts;
        let ctx = self.ctx;
        match what {
            Done::CreatedFolder => {
                c.created_dirs += 1;
                ctx.action("created folder", rel, format_args!(""));
            }
            Done::Copied { new, size, written } => {
                if new {
                    c.copied += 1;
                } else {
                    c.updated += 1;
                }
                if written {
                    c.bytes += size;
                }
                let verb = if new { "copied" } else { "updated" };
                ctx.action(verb, rel, format_args!(" ({size} bytes)"));
            }
            Done::Touched(which) => {
                c.touched += 1;
                ctx.action("touched", rel, format_args!(" ({which})"));
            }
            Done::Linked { target } => {
                c.linked += 1;
                let shown = display_path(target);
                ctx.action("linked", rel, format_args!(" -> {shown}"));
            }
            Done::HardLinked { leader } => {
                c.linked += 1;
                let shown = display_path(leader);
                ctx.action("linked", rel, format_args!(" => {shown} (hard link)"));
            }
            Done::RemovedFile => {
                c.removed_files += 1;
                ctx.action("removed file", rel, format_args!(""));
            }
            Done::RemovedLink => {
                c.removed_files += 1;
                ctx.action("removed link", rel, format_args!(""));
            }
            Done::RemovedFolder { whole } => {
                c.removed_dirs += 1;
                let detail = if whole { " (and everything in it)" } else { "" };
                ctx.action("removed folder", rel, format_args!("{detail}"));
            }
            Done::RemovedStaleTemporary => {
                ctx.action("removed stale temporary file", rel, format_args!(""));
            }
            Done::Skipped(why) => {
                c.skipped += 1;
                ctx.warn_line(format_args!("skipped {} ({why})", display_path(rel)));
            }
            Done::SkippedAsSaid(why) => {
                c.skipped += 1;
                ctx.log_debug(format_args!("skipped {} ({why})", display_path(rel)));
            }
            Done::Excluded => {
                let prefix = ctx.prefix();
                ctx.log_debug(format_args!("{prefix}excluded {}", display_path(rel)));
            }
        }
    }

    pub(super) fn error(&mut self, rel: &[u8], op: &str, e: &io::Error, consequence: &str) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {}: {op}: {e}; {consequence}", self.ctx.id, display_path(rel));
    }

    pub(super) fn op_error(&mut self, rel: &[u8], e: &OpError) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {}: {e}", self.ctx.id, display_path(rel));
    }

    /// Like [`Walker::op_error`], for work on one source file, unless the
    /// file [vanished](Walker::vanished) before its open.
    pub(super) fn file_failed(&mut self, rel: &[u8], e: &OpError) {
        if !(e.op == "open" && self.vanished(rel, &e.err, "")) {
            self.op_error(rel, e);
        }
    }

    /// Whether `e` says the entry at `rel` was removed (from the source,
    /// or `side`) since its folder was listed; then it is said at debug
    /// level, as no error: the removal's own pass (or the next full one)
    /// follows.
    pub(super) fn vanished(&mut self, rel: &[u8], e: &io::Error, side: &str) -> bool {
        let gone = e.kind() == io::ErrorKind::NotFound;
        if gone {
            self.ctx
                .log_debug(format_args!("{} vanished{side}", display_path(rel)));
        }
        gone
    }

    pub(super) fn error_line(&mut self, msg: std::fmt::Arguments<'_>) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {msg}", self.ctx.id);
    }
}

/// The patterns for a pass, with the pattern files read again if one
/// changed.
pub(super) struct Refreshed {
    pub matcher: Arc<Matcher>,
    /// Errors to count: one when a pattern file cannot be used (then the
    /// previous patterns stay in force: syncing what the user meant to
    /// exclude could not be undone).
    pub errors: u64,
    /// The patterns changed: what they select may have changed anywhere.
    pub changed: bool,
}

/// The patterns for this pass ([`Refreshed`]).
pub(super) fn refresh_excludes(ctx: &PairContext<'_>) -> Refreshed {
    let mut excludes = ctx.excludes.lock().expect("excludes poisoned");
    let (errors, changed) = match excludes.refresh() {
        Ok(false) => (0, false),
        Ok(true) => {
            let n = excludes.matcher().len();
            ctx.log_info(format_args!(
                "{IGNORE_FILE} or --exclude-from file read again: {n} exclude patterns in force"
            ));
            (0, true)
        }
        Err(e) => {
            error!(
                target: ctx.target,
                "pair {}: error {e}; the previous exclude patterns stay in force",
                ctx.id
            );
            (1, false)
        }
    };
    Refreshed {
        matcher: excludes.matcher(),
        errors,
        changed,
    }
}

/// The pass's summary line.
///
/// A pass that found nothing to do logs its summary at debug level: the log
/// file still gets it, but a console left open on the menu is not filled
/// with a line every interval (use `-v` to see them).
pub(super) fn log_summary(ctx: &PairContext<'_>, r: &PassReport, starts: &[Start]) {
    let c = &r.counts;
    let how = match r.outcome {
        Outcome::Finished => "finished",
        Outcome::Stopped => "stopped",
        Outcome::Failed => "failed",
    };
    // A subtree's pass says which: the full pass's line stays as it was.
    let how = if starts == [Start::everything()] {
        format!("pass {how}")
    } else {
        format!("pass over {} {how}", starts::describe(starts))
    };
    let quiet = Counts {
        checked: c.checked,
        skipped: c.skipped,
        ..Counts::default()
    };
    let level = if r.outcome == Outcome::Finished && *c == quiet {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        target: ctx.target,
        level,
        "pair {}: {}{how} in {:.3} s: {} checked, {} copied, {} updated, {} touched, {} linked, {} folders created, {} files and {} folders removed, {} skipped, {} errors, {} bytes written",
        ctx.id,
        ctx.prefix(),
        r.duration.as_secs_f64(),
        c.checked,
        c.copied,
        c.updated,
        c.touched,
        c.linked,
        c.created_dirs,
        c.removed_files,
        c.removed_dirs,
        c.skipped,
        c.errors,
        c.bytes
    );
}

/// Says which removals a pass held back, and how to let them through.
pub(super) fn log_held(ctx: &PairContext<'_>, limit: u64, held: &Held) {
    let mut shown: Vec<String> = held
        .named
        .iter()
        .map(|(path, entries)| match entries {
            1 => display_path(path).to_string(),
            n => format!("{} (a folder of {n} entries)", display_path(path)),
        })
        .collect();
    let unnamed = held.removals.saturating_sub(held.named.len() as u64);
    if unnamed > 0 {
        shown.push(format!("and {unnamed} more"));
    }
    error!(
        target: ctx.target,
        "pair {}: error {}this pass would remove {} entries, more than --max-delete {limit}: {}; none were removed. \
         Approve them for one pass with menu option 6, or run with a higher --max-delete",
        ctx.id,
        ctx.prefix(),
        held.entries,
        shown.join(", ")
    );
}

/// Says which attributes of a replica file differ from its source.
pub(super) fn attr_change(s: &Meta, d: &Meta, caps: &Caps) -> String {
    match (
        !caps.same_mtime(s.mtime, d.mtime),
        !caps.same_mode(s.mode, d.mode),
    ) {
        (true, true) => format!("mtime, mode {:o}", s.mode),
        (false, true) => format!("mode {:o}", s.mode),
        _ => "mtime".into(),
    }
}
