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
    let a = open_source(ctx, log)?;
    let b = open_replica(ctx, had_entries, log)?;
    let locked = b
        .as_ref()
        .map_or(Ok(()), |b| ctx.replica_lock.hold(b, &spec.replica, dry_run))
        .and_then(|()| source_lock.hold(&a, &spec.source, dry_run));
    if let Err(e) = locked {
        log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
        return None;
    }
    Some(Roots { a, b })
}

/// The source, on the device it was on.
fn open_source(ctx: &PairContext<'_>, log: &mut Log<'_>) -> Option<OwnedFd> {
    let source = &ctx.spec.source;
    let opened = fsops::open_root(source).and_then(|fd| {
        let dev = fsops::stat_fd(fd.as_fd())?.dev;
        Ok((fd, dev))
    });
    let (fd, dev) = match opened {
        Ok(a) => a,
        Err(e) => {
            log.pass_error(format_args!(
                "source folder {} unavailable: {e}; nothing changed on either side",
                display_root(source)
            ));
            return None;
        }
    };
    if let Err(e) = crate::mounts::lock(ctx.mounts).check_source(dev) {
        log.pass_error(format_args!("source folder {} {e}", display_root(source)));
        return None;
    }
    Some(fd)
}

/// The replica: `Some(None)` in a dry run of a first sync that would
/// create it.
fn open_replica(
    ctx: &PairContext<'_>,
    had_entries: bool,
    log: &mut Log<'_>,
) -> Option<Option<OwnedFd>> {
    let replica = &ctx.spec.replica;
    match fsops::open_root(replica) {
        Ok(fd) => Some(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !had_entries => {
            let parent_dev = replica
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
            if let Err(e) = crate::mounts::lock(ctx.mounts).check_replica_missing(parent_dev) {
                log.pass_error(format_args!("replica folder {} {e}", display_root(replica)));
                return None;
            }
            if ctx.options.dry_run {
                Some(None)
            } else {
                create_replica(ctx, log).map(Some)
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
                display_root(replica)
            ));
            None
        }
    }
}

/// Creates the replica of a first sync, its parent's chain held against
/// other processes meanwhile.
fn create_replica(ctx: &PairContext<'_>, log: &mut Log<'_>) -> Option<OwnedFd> {
    let replica = &ctx.spec.replica;
    if let Err(e) = ctx.replica_lock.hold_ancestors(replica) {
        log.pass_error(format_args!("{e}; this pass is skipped, nothing changed"));
        return None;
    }
    match std::fs::create_dir(replica).and_then(|()| fsops::open_root(replica)) {
        Ok(fd) => {
            log.info(format_args!(
                "created replica folder {}",
                display_root(replica)
            ));
            Some(fd)
        }
        Err(e) => {
            log.pass_error(format_args!(
                "cannot create replica folder {}: {e}",
                display_root(replica)
            ));
            None
        }
    }
}
