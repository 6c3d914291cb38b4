//! One pair as its passes see it: the context a pass and the digests
//! taken after it share, so neither module depends on the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::cache_store::CacheStore;
use crate::config::{PairSpec, SyncOptions};
use crate::excludes::PairExcludes;
use crate::mounts::Mounts;
use crate::replica_lock::ReplicaLock;

/// The stop signals a pass obeys at every file boundary: quit for all
/// pairs, stop for this one.
#[derive(Clone, Default)]
pub struct Cancel {
    pub all: Arc<AtomicBool>,
    pub pair: Arc<AtomicBool>,
}

impl Cancel {
    /// Whether the pass should stop now.
    pub fn is_set(&self) -> bool {
        self.all.load(Ordering::Relaxed) || self.pair.load(Ordering::Relaxed)
    }
}

/// Everything a pass (and the digests after it) needs from its pair.
pub struct PairContext<'a> {
    pub id: usize,
    pub target: &'a str,
    pub spec: &'a PairSpec,
    pub options: SyncOptions,
    pub cancel: &'a Cancel,
    /// The cache outlives this pass (a daemon, not `--once`), so digests
    /// are worth their CPU: small files are hashed as they are read, big
    /// ones afterwards (see [`crate::digests`]).
    pub lasting_cache: bool,
    /// The pair's cache entries kept across restarts in its state file;
    /// `None` without a state folder.
    pub store: Option<&'a Mutex<CacheStore>>,
    /// Keeps other processes out of the replica (see [`ReplicaLock`]).
    pub replica_lock: &'a ReplicaLock,
    /// What the pair learnt about its roots' file systems at earlier
    /// passes; the pass adds to it.
    pub mounts: &'a Mutex<Mounts>,
    /// The pair's exclude patterns; each pass first reads its
    /// `.foldersyncignore` again if it changed.
    pub excludes: &'a Mutex<PairExcludes>,
}

/// A file a pass read or wrote without hashing it.
pub struct Unhashed {
    /// Its path relative to the pair's roots.
    pub rel: Vec<u8>,
}

/// How many threads a pass works with: `--jobs`, or two per core, at most
/// 8. Much of a pass is waiting on the file system (a deletion waits for
/// its discard, a stat on a network mount for the server), and a second
/// thread per core fills those waits; beyond 8 they mostly contend. A
/// replica on a network file system gets 8 whatever the cores: there the
/// waits are the server's (on sshfs, 8 took 23% less time than 4 for a
/// first pass on 2 cores, 16 no less than 8; see bench/RESULTS.md).
pub fn jobs(options: &SyncOptions, network: bool) -> usize {
    /// For a replica reached over a network.
    const NETWORK_JOBS: usize = 8;
    // Asked once: std reads cgroup files to answer.
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    options.jobs.map_or_else(
        || {
            let local = *DEFAULT.get_or_init(|| {
                std::thread::available_parallelism().map_or(2, |n| (2 * n.get()).min(8))
            });
            if network {
                local.max(NETWORK_JOBS)
            } else {
                local
            }
        },
        usize::from,
    )
}
