//! A two-way pass's log: every action one line (and one count), saying
//! which side it changed; the pass's summary line, as a one-way pass's
//! with the conflicts added.

use std::io;

use log::{debug, error, info, warn};

use crate::fsops::OpError;
use crate::logging::display_path;
use crate::pair::PairContext;
use crate::status::{Counts, Outcome, PassReport};

use super::row::{Side, What};

/// Something done to one side.
pub enum Did<'t> {
    Copied(u64),
    Updated(u64),
    Linked(&'t [u8]),
    MadeDir,
    Mode(u32),
    Mtime,
    Removed(What),
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::A => "source",
        Side::B => "replica",
    }
}

/// The pass's log lines and counts.
pub struct Log<'p> {
    ctx: &'p PairContext<'p>,
    pub counts: Counts,
}

impl<'p> Log<'p> {
    pub fn new(ctx: &'p PairContext<'p>) -> Log<'p> {
        Log {
            ctx,
            counts: Counts::default(),
        }
    }

    fn prefix(&self) -> &'static str {
        if self.ctx.options.dry_run {
            "[dry run] "
        } else {
            ""
        }
    }

    pub fn did(&mut self, path: &[u8], on: Side, did: Did<'_>) {
        let c = &mut self.counts;
        let (verb, to, detail) = match did {
            Did::Copied(size) => {
                c.copied += 1;
                ("copied", "to", format!(" ({size} bytes)"))
            }
            Did::Updated(size) => {
                c.updated += 1;
                ("updated", "in", format!(" ({size} bytes)"))
            }
            Did::Linked(target) => {
                c.linked += 1;
                ("linked", "in", format!(" -> {}", display_path(target)))
            }
            Did::MadeDir => {
                c.created_dirs += 1;
                ("created folder", "in", String::new())
            }
            Did::Mode(mode) => {
                c.touched += 1;
                ("touched", "in", format!(" (mode {mode:04o})"))
            }
            Did::Mtime => {
                c.touched += 1;
                ("touched", "in", " (mtime)".to_string())
            }
            Did::Removed(What::Dir) => {
                c.removed_dirs += 1;
                ("removed folder", "from", String::new())
            }
            Did::Removed(_) => {
                c.removed_files += 1;
                ("removed", "from", String::new())
            }
        };
        info!(
            target: self.ctx.target,
            "pair {}: {}{verb} {} {to} the {}{detail}",
            self.ctx.id,
            self.prefix(),
            display_path(path),
            side_name(on)
        );
    }

    pub fn conflict(&mut self, path: &[u8], winner: Side, aside: &[u8]) {
        warn!(
            target: self.ctx.target,
            "pair {}: {}conflict: {} was changed on both sides; the {}'s version (newer) keeps the name, the {}'s is kept beside it as {} on both sides",
            self.ctx.id,
            self.prefix(),
            display_path(path),
            side_name(winner),
            side_name(winner.other()),
            display_path(aside)
        );
    }

    /// The other side's entry at `path` went aside as `aside`, since side
    /// `holder` holds `held` there, which a pass never replaces.
    pub fn excluded_aside(&mut self, path: &[u8], holder: Side, held: &str, aside: &[u8]) {
        warn!(
            target: self.ctx.target,
            "pair {}: {}excluded: {} in the {} is {held}, which a pass never deletes or replaces; it keeps the name, and the {}'s entry there is kept beside it as {} on both sides",
            self.ctx.id,
            self.prefix(),
            display_path(path),
            side_name(holder),
            side_name(holder.other()),
            display_path(aside)
        );
    }

    /// The folder `path`, deleted on the other side, holds excluded
    /// entries on side `holder`: made again on the other side.
    pub fn excluded_remade(&mut self, path: &[u8], holder: Side, held: &str) {
        warn!(
            target: self.ctx.target,
            "pair {}: {}excluded: {} was deleted in the {}, but in the {} it is {held}, which a pass never deletes; the folder is kept and made again in the {}",
            self.ctx.id,
            self.prefix(),
            display_path(path),
            side_name(holder.other()),
            side_name(holder),
            side_name(holder.other())
        );
    }

    /// Side `holder` excludes what is at `path`, and the other side holds
    /// a folder there: neither is touched, every pass, until the user
    /// settles it.
    pub fn excluded_blocked(&mut self, path: &[u8], holder: Side, held: &str) {
        self.counts.errors += 1;
        error!(
            target: self.ctx.target,
            "pair {}: error {} cannot be synced: in the {} it is {held}, in the {} a folder; neither is touched. Rename one of them",
            self.ctx.id,
            display_path(path),
            side_name(holder),
            side_name(holder.other())
        );
    }

    /// Someone changed `path` on `side` after the scan: left for the next
    /// pass.
    pub fn changed_meanwhile(&mut self, path: &[u8], side: Side) {
        self.counts.skipped += 1;
        info!(
            target: self.ctx.target,
            "pair {}: skipped {}: changed in the {} during the pass; the next pass looks again",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    /// A file written while it was being removed, whose name a new file
    /// took meanwhile, kept under a conflict name.
    pub fn kept_aside(&mut self, path: &[u8], side: Side, aside: &[u8]) {
        self.counts.conflicts += 1;
        warn!(
            target: self.ctx.target,
            "pair {}: {}kept {} in the {} as {}: it was written to while being removed, and a new {} took its name",
            self.ctx.id,
            self.prefix(),
            display_path(path),
            side_name(side),
            display_path(aside),
            display_path(path)
        );
    }

    /// A temporary of a killed pass removed: ours, so not counted.
    pub fn removed_stale(&mut self, path: &[u8], side: Side) {
        debug!(
            target: self.ctx.target,
            "pair {}: removed {} in the {}: a temporary file left by an interrupted pass",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    pub fn kept_folder(&mut self, path: &[u8], side: Side) {
        self.counts.skipped += 1;
        info!(
            target: self.ctx.target,
            "pair {}: kept folder {} in the {}: it still holds entries (excluded, or new since the scan)",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    pub fn op_error(&mut self, path: &[u8], side: Side, e: &OpError) {
        self.io_error(path, side, e.op, &e.err);
    }

    pub fn io_error(&mut self, path: &[u8], side: Side, op: &str, e: &io::Error) {
        self.counts.errors += 1;
        error!(
            target: self.ctx.target,
            "pair {}: error {} in the {}: {op}: {e}",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    /// The archive could not be written: what was done stays done, and the
    /// next pass finds it alike on both sides.
    pub fn state_error(&mut self, e: &str) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {e}", self.ctx.id);
    }

    /// A line about the pass as a whole (a refusal, a root that cannot be
    /// opened).
    pub fn pass_error(&mut self, msg: std::fmt::Arguments<'_>) {
        self.counts.errors += 1;
        error!(target: self.ctx.target, "pair {}: error {msg}", self.ctx.id);
    }

    pub fn info(&self, msg: std::fmt::Arguments<'_>) {
        info!(target: self.ctx.target, "pair {}: {msg}", self.ctx.id);
    }

    /// What could not be scanned: its paths are left alone on both sides.
    pub fn scan_error(&mut self, path: &[u8], side: Side, op: &str, e: &io::Error) {
        self.counts.errors += 1;
        error!(
            target: self.ctx.target,
            "pair {}: error {} in the {}: {op}: {e}; left alone on both sides",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    pub fn special(&mut self, path: &[u8], side: Side, kind: &str) {
        self.counts.skipped += 1;
        info!(
            target: self.ctx.target,
            "pair {}: skipped {} in the {}: a {kind} is never synced; the path is left alone on both sides",
            self.ctx.id,
            display_path(path),
            side_name(side)
        );
    }

    pub fn summary(&self, r: &PassReport) {
        let c = &r.counts;
        let how = match r.outcome {
            Outcome::Finished => "finished",
            Outcome::Stopped => "stopped",
            Outcome::Failed => "failed",
        };
        let quiet = Counts {
            checked: c.checked,
            ..Counts::default()
        };
        let level = if r.outcome == Outcome::Finished && *c == quiet {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            target: self.ctx.target,
            level,
            "pair {}: {}pass {how} in {:.3} s (two-way): {} checked, {} copied, {} updated, {} touched, {} linked, {} folders created, {} files and {} folders removed, {} conflicts, {} skipped, {} errors, {} bytes written",
            self.ctx.id,
            self.prefix(),
            r.duration.as_secs_f64(),
            c.checked,
            c.copied,
            c.updated,
            c.touched,
            c.linked,
            c.created_dirs,
            c.removed_files,
            c.removed_dirs,
            c.conflicts,
            c.skipped,
            c.errors,
            c.bytes
        );
    }
}
