//! The bytes of two files read side by side, where the planner cannot
//! decide from the stamps: on `--jobs` threads, each with its last open
//! folder pair.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fsops::{self, Buffers, Compared};
use crate::pair::PairContext;

use super::reconcile;
use super::report::Log;
use super::roots::Roots;
use super::row::{Row, Side, parent};

/// Reads both sides' bytes where the planner needs to know whether they
/// are the same, on `--jobs` threads. A row whose files cannot be read is
/// left alone (its action stays Keep, decided here by dropping it).
pub(super) fn compare(
    ctx: &PairContext<'_>,
    roots: &Roots,
    rows: &mut Vec<Row>,
    log: &mut Log<'_>,
) {
    let Some(b_root) = roots.b.as_ref() else {
        return;
    };
    let wanted: Vec<usize> = (0..rows.len())
        .filter(|&i| reconcile::needs_compare(&rows[i], ctx.options.checksum))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let next = AtomicUsize::new(0);
    let jobs = crate::pair::jobs(&ctx.options, false).min(wanted.len());
    let rows_ref: &[Row] = rows;
    let results: Vec<Vec<(usize, Comparison)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut bufs = Buffers::default();
                    let mut dirs: Option<(Vec<u8>, OwnedFd, OwnedFd)> = None;
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = wanted.get(k) else { break };
                        if ctx.cancel.is_set() {
                            break;
                        }
                        let path = &rows_ref[i].path;
                        let result = compare_one(&roots.a, b_root, path, &mut dirs, &mut bufs);
                        out.push((i, result));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut unreadable = HashSet::new();
    for (i, result) in results.into_iter().flatten() {
        match result {
            Ok(same) => rows[i].same = Some(same),
            Err((side, e)) => {
                log.op_error(&rows[i].path, side, &e);
                unreadable.insert(i);
            }
        }
    }
    if !unreadable.is_empty() {
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            !unreadable.contains(&(i - 1))
        });
    }
}

/// Whether two files hold the same bytes, or why they could not be read.
type Comparison = Result<bool, (Side, fsops::OpError)>;

fn compare_one(
    a_root: &OwnedFd,
    b_root: &OwnedFd,
    path: &[u8],
    dirs: &mut Option<(Vec<u8>, OwnedFd, OwnedFd)>,
    bufs: &mut Buffers,
) -> Comparison {
    let dir = parent(path);
    if !matches!(dirs, Some((p, _, _)) if p.as_slice() == dir) {
        let open = |root: &OwnedFd, side: Side| {
            let mut fd = root.try_clone().map_err(|e| (side, op("open folder", e)))?;
            for name in dir.split(|&c| c == b'/').filter(|n| !n.is_empty()) {
                let name = std::ffi::CString::new(name)
                    .map_err(|e| (side, op("open folder", io::Error::other(e))))?;
                fd = fsops::open_dir_at(fd.as_fd(), &name)
                    .map_err(|e| (side, op("open folder", e)))?;
            }
            Ok(fd)
        };
        *dirs = Some((dir.to_vec(), open(a_root, Side::A)?, open(b_root, Side::B)?));
    }
    let (_, a, b) = dirs.as_ref().expect("opened above");
    let name = std::ffi::CString::new(&path[dir.len() + usize::from(!dir.is_empty())..])
        .expect("names from a listing hold no NUL");
    match fsops::compare_files(a.as_fd(), b.as_fd(), &name, false, bufs) {
        Ok(Compared::Equal(_)) => Ok(true),
        Ok(Compared::Different) => Ok(false),
        Err(e) => {
            let side = if e.op.contains("replica") {
                Side::B
            } else {
                Side::A
            };
            Err((side, e))
        }
    }
}

fn op(op: &'static str, err: io::Error) -> fsops::OpError {
    fsops::OpError { op, err }
}
