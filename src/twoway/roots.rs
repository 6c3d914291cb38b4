//! A two-way pass's two roots: opened, the replica created at a first
//! sync, their devices checked against earlier passes, and both locked
//! against other processes (a two-way pair writes both).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::fsops;
use crate::logging::display_root;
use crate::pair::PairContext;
use crate::replica_lock::ReplicaLock;

use super::report::Log;

/// Both roots, open and locked.
pub(super) struct Roots {
    pub a: OwnedFd,
    /// `None` only in a dry run whose replica does not exist yet.
    pub b: Option<OwnedFd>,
}

/// Opens the source, and the replica (created at a first sync); checks
/// their devices against earlier passes and locks both against other
/// processes. `had_entries`: the archive is not empty, so a missing side
/// is a vanished disk, not a new pair.
pub(super) fn open_roots(
    ctx: &PairContext<'_>,
    source_lock: &ReplicaLock,
    had_entries: bool,
    log: &mut Log<'_>,
) -> Option<Roots> {
    let spec = ctx.spec;
    let dry_run = ctx.options.dry_run;
    let a = match fsops::open_root(&spec.source).and_then(|fd| {
        let dev = fsops::stat_fd(fd.as_fd())?.dev;
        Ok((fd, dev))
    }) {
        Ok(a) => a,
        Err(e) => {
            log.pass_error(format_args!(
                "source folder {} unavailable: {e}; nothing changed on either side",
                display_root(&spec.source)
            ));
            return None;
        }
    };
    if let Err(e) = crate::mounts::lock(ctx.mounts).check_source(a.1) {
        log.pass_error(format_args!(
            "source folder {} {e}",
            display_root(&spec.source)
        ));
        return None;
    }
    let b = match fsops::open_root(&spec.replica) {
        Ok(fd) => Some(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !had_entries => {
            let parent_dev = spec
                .replica
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
            if let Err(e) = crate::mounts::lock(ctx.mounts).check_replica_missing(parent_dev) {
                log.pass_error(format_args!(
                    "replica folder {} {e}",
                    display_root(&spec.replica)
                ));
                return None;
            }
            if dry_run {
                None
            } else {
                if let Err(e) = ctx.replica_lock.hold_ancestors(&spec.replica) {
                    log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
                    return None;
                }
                match std::fs::create_dir(&spec.replica)
                    .and_then(|()| fsops::open_root(&spec.replica))
                {
                    Ok(fd) => {
                        log.info(format_args!(
                            "created replica folder {}",
                            display_root(&spec.replica)
                        ));
                        Some(fd)
                    }
                    Err(e) => {
                        log.pass_error(format_args!(
                            "cannot create replica folder {}: {e}",
                            display_root(&spec.replica)
                        ));
                        return None;
                    }
                }
            }
        }
        Err(e) => {
            let why = if e.kind() == io::ErrorKind::NotFound {
                "is missing, while the last sync left entries in it: is its disk unmounted? Nothing was deleted in the source".to_string()
            } else {
                format!("unavailable: {e}; nothing changed on either side")
            };
            log.pass_error(format_args!(
                "replica folder {} {why}",
                display_root(&spec.replica)
            ));
            return None;
        }
    };
    let locked = b
        .as_ref()
        .map_or(Ok(()), |b| ctx.replica_lock.hold(b, &spec.replica, dry_run))
        .and_then(|()| source_lock.hold(&a.0, &spec.source, dry_run));
    if let Err(e) = locked {
        log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
        return None;
    }
    Some(Roots { a: a.0, b })
}
