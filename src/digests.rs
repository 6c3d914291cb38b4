//! Digests of big files, taken after the pass that copied or compared them.
//!
//! MD5 runs at about 500 MB/s on one core, several times slower than the
//! kernel copies a file (`copy_file_range`), so a pass hashing every byte
//! it copies would take three to four times as long as `cp`. Instead a
//! pass lets the kernel copy big files and lists them; once the replica is
//! right, the pair's worker hashes them here, from the replica, whose pages
//! are still in memory, never reading the source a second time. The next
//! pass that finds such a source touched then hashes only the source.
//!
//! Only a daemon does this: with `--once` the cache ends with the process
//! and the digests would never be used.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use log::debug;

use crate::cache::{Cache, Stamp};
use crate::cache_store;
use crate::fsops::{self, Buffers};
use crate::logging::display_path;
use crate::mounts::Caps;
use crate::pair::{self, PairContext, Unhashed};

/// Hashes each listed replica file that is still exactly as the pass left
/// it (its cache entry's stamp) and records the digest. Stops early when
/// the pair is stopped or the program quits. A file that cannot be hashed
/// only keeps no digest (logged at debug level): the replica is right
/// either way, and the next pass that needs the bytes reads both sides.
pub fn fill(ctx: &PairContext<'_>, cache: &mut Cache, files: Vec<Unhashed>) {
    if files.is_empty() || ctx.cancel.is_set() {
        return;
    }
    let started = Instant::now();
    let root = match fsops::open_root(&ctx.spec.replica) {
        Ok(fd) => fd,
        Err(e) => {
            debug!(target: ctx.target, "pair {}: no digests taken: replica: {e}", ctx.id);
            return;
        }
    };
    let (caps, network) = {
        let mounts = crate::mounts::lock(ctx.mounts);
        (mounts.caps(), mounts.replica_on_network())
    };
    let next = AtomicUsize::new(0);
    let cache = Mutex::new(cache);
    let done = Mutex::new((0usize, 0u64));
    let work = || {
        let mut bufs = Buffers::default();
        while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
            if ctx.cancel.is_set() {
                return;
            }
            let Some(expected) = cache
                .lock()
                .expect("cache poisoned")
                .get(&file.rel)
                .map(|e| e.dst)
            else {
                continue;
            };
            match hash_replica(root.as_fd(), &file.rel, expected, &caps, ctx, &mut bufs) {
                Ok(Some(digest)) => {
                    let mut cache = cache.lock().expect("cache poisoned");
                    if cache.set_digest(&file.rel, expected, digest) {
                        if let (Some(store), Some(entry)) = (ctx.store, cache.get(&file.rel)) {
                            cache_store::lock(store).save_entry(&file.rel, &entry);
                        }
                        drop(cache);
                        let mut done = done.lock().expect("count poisoned");
                        done.0 += 1;
                        done.1 += expected.size;
                    }
                }
                Ok(None) => {}
                Err(e) => debug!(
                    target: ctx.target,
                    "pair {}: no digest for {}: {e}",
                    ctx.id,
                    display_path(&file.rel)
                ),
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..pair::jobs(&ctx.options, network).min(files.len()) {
            scope.spawn(work);
        }
        work();
    });
    let (count, bytes) = *done.lock().expect("count poisoned");
    debug!(
        target: ctx.target,
        "pair {}: took the digests of {count} of {} big files ({bytes} bytes) from the replica in {:.3} s",
        ctx.id,
        files.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The digest of the replica file at `rel`, if it still matches `expected`
/// before and after the read; every folder on the way is opened without
/// following symlinks.
fn hash_replica(
    root: BorrowedFd<'_>,
    rel: &[u8],
    expected: Stamp,
    caps: &Caps,
    ctx: &PairContext<'_>,
    bufs: &mut Buffers,
) -> Result<Option<fsops::Digest>, String> {
    let mut parts = rel.split(|&b| b == b'/');
    let name = parts.next_back().expect("split yields at least one part");
    let mut dir: Option<OwnedFd> = None;
    for part in parts {
        let parent = dir.as_ref().map_or(root, |d| d.as_fd());
        let opened = fsops::open_dir_at(parent, &c_name(part)).map_err(|e| e.to_string())?;
        dir = Some(opened);
    }
    let parent = dir.as_ref().map_or(root, |d| d.as_fd());
    fsops::hash_file_if(
        parent,
        &c_name(name),
        &|m| caps.same_stamp(&Stamp::from(m), &expected),
        &|| ctx.cancel.is_set(),
        bufs,
    )
    .map_err(|e| e.to_string())
}

fn c_name(part: &[u8]) -> CString {
    CString::new(part).expect("names from a listing hold no NUL byte")
}
