//! What the process asks of glibc's malloc, so that a long-running daemon
//! gives back the memory a pass used and freed.
//!
//! glibc raises its mmap threshold (and with it the threshold for trimming
//! an arena's top) each time a block allocated with mmap is freed: after
//! the first pass freed a worker's 256 KiB copy buffers (see
//! [`crate::fsops::Buffers`]), later buffers and other big blocks came from
//! the arenas instead, and their pages stayed with the process after the
//! pass, between the cache's own blocks. Measured on the huge workload's
//! shape at 100,000 files, a daemon after its no-change passes: 12.6 MiB
//! anonymous memory with the moving threshold, 9.1 MiB with it fixed, for
//! the same 7.5 MiB in use.

/// Fixes malloc's mmap threshold at glibc's default (128 KiB), which also
/// stops it moving: blocks that large are mapped and unmapped on their own,
/// and an arena's free top is trimmed past 128 KiB. To be called before
/// any other thread starts. Other C libraries: nothing to do.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only sets one of malloc's parameters; no other
        // thread is allocating yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        }
    }
}

/// Hands malloc's free pages back to the kernel, in every arena and not
/// only at their tops (glibc's `malloc_trim`): for memory freed in one
/// piece, such as SQLite's page cache after a pass (see
/// [`crate::cache_store::CacheStore::commit`]), which sits among blocks
/// that live on and would otherwise stay with the process. It walks every
/// arena's free lists: a cost once a pass, not once a file.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it takes malloc's
    // locks like any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
