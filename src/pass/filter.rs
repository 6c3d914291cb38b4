//! Filter: which entries take part in a pass. Special files (FIFOs,
//! sockets, devices) are never opened or copied; a replica entry named
//! like one of our temporaries, which the source does not have, is a
//! leftover of an interrupted copy, not the user's. (Exclude patterns will
//! go here.)

use crate::fsops::{self, Kind, Meta};

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
