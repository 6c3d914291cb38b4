//! Filter: which entries take part in a pass. Special files (FIFOs,
//! sockets, devices) are never opened or copied; a replica entry named
//! like one of our temporaries, which the source does not have, is a
//! leftover of an interrupted copy, not the user's. Exclude patterns
//! ([`crate::excludes`]) take entries out of a folder's listings before
//! anything else looks at them.

use crate::fsops::{self, Entry, Kind, Meta, join_rel};

use super::report::Done;
use super::walk::Walker;

impl Walker<'_, '_> {
    /// Takes what the patterns exclude out of a folder's two listings. Out
    /// of the source's, it is neither synced nor, for a folder, entered; out
    /// of the replica's, it is left alone, as rsync does. With
    /// `--delete-excluded` the replica's stay in and, the source's being
    /// out, are removed as extras (within `--max-delete`).
    pub(super) fn leave_out(&mut self, rel: &[u8], src: &mut Vec<Entry>, dst: &mut Vec<Entry>) {
        let excludes = &self.shared.excludes;
        if excludes.is_empty() {
            return;
        }
        let excluded = |e: &Entry| {
            let is_dir = e.meta.as_ref().is_ok_and(|m| m.kind == Kind::Dir);
            excludes.excludes(&join_rel(rel, e.name.to_bytes()), is_dir)
        };
        let mut out = Vec::new();
        src.retain(|e| {
            let keep = !excluded(e);
            if !keep {
                out.push(join_rel(rel, e.name.to_bytes()));
            }
            keep
        });
        for path in out {
            self.done(&path, Done::Excluded);
        }
        if !self.ctx.options.delete_excluded {
            dst.retain(|e| !excluded(e));
        }
    }
}

/// Whether a source entry of this kind is synced; `Err` names what it is
/// when it is skipped.
pub(super) fn takes_part(kind: Kind) -> Result<(), &'static str> {
    match kind {
        Kind::Special(what) => Err(what),
        _ => Ok(()),
    }
}

/// Whether a replica entry the source does not have is a temporary file
/// or link of ours left by an interrupted copy or probe.
pub(super) fn is_stale_temporary(name: &[u8], meta: &Meta) -> bool {
    matches!(meta.kind, Kind::File | Kind::Symlink) && fsops::is_temp_name(name)
}
