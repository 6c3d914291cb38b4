//! How a pass shares its work out: the jobs, the queue the workers take
//! them from, and the counting that says when a folder is finished.
//!
//! Folders are the unit of work: a small pool of workers (`--jobs`) takes
//! them from a shared LIFO queue, so the tree is walked roughly depth first
//! with no recursion (depth is not limited by the call stack), and several
//! folders are synced at once (files in one folder serialize on its inode
//! lock in the kernel, so parallelism across folders is what helps). Big
//! files whose data must be read are jobs too, so one folder's big files
//! are read on several cores. A folder's own mode and mtime are set after
//! everything inside it, since writing inside changes its mtime: see
//! [`DirNode`]. What a job does to the files is the business of
//! [`super`], which builds the jobs and does them.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::cache::Entry;
use crate::fsops::Meta;
use crate::pair::Cancel;

/// A folder waiting in the queue, opened when a worker takes it (so a wide
/// tree holds the parent's handle, not one handle per queued folder).
pub(super) struct Task {
    /// How to reach it once a worker takes it.
    pub(super) open: Open,
    /// Its path relative to the pair's roots, for the log and the cache.
    pub(super) rel: Vec<u8>,
    /// The source folder's metadata, set on the replica folder at the end.
    pub(super) src_meta: Meta,
    /// The replica folder was created in this pass.
    pub(super) fresh: bool,
    /// The folders in it are entered too; only a watched pair's pass over
    /// a folder whose entries changed leaves them (see [`super::Start`]).
    pub(super) deep: bool,
    /// The folder this one is in; told when this one is finished.
    pub(super) parent: Option<Arc<DirNode>>,
}

impl Task {
    /// Where this task starts a pass, and how far down.
    pub(super) fn start(&self) -> super::Start {
        super::Start {
            rel: self.rel.clone(),
            deep: self.deep,
        }
    }
}

/// A large file whose data must be read (to copy, hash or compare it) is
/// handed to the pool, so the big files of one folder are read and hashed
/// on several cores at once.
pub(super) struct FileTask {
    /// The source folder's handle, shared with the folder's other jobs.
    pub(super) src: Arc<OwnedFd>,
    /// The replica folder's handle (big-file jobs exist only outside a dry
    /// run, so there always is one).
    pub(super) dst: Arc<OwnedFd>,
    /// The folder's relative path; the file's is `rel/name`.
    pub(super) dir_rel: Vec<u8>,
    /// The file's name in both folders.
    pub(super) name: CString,
    /// The source file's metadata as the folder's listing found it, so
    /// the job does not stat again.
    pub(super) src_meta: Meta,
    /// The replica entry's, likewise; `None` when there is none.
    pub(super) dst_meta: Option<Meta>,
    /// What the cache knew of it.
    pub(super) old: Option<Entry>,
    /// The folder it is in: finished only after this file.
    pub(super) node: Arc<DirNode>,
    /// It leads a group of hard links, whose waiting names are linked
    /// once it is done (see [`super::links`]).
    pub(super) leads: bool,
}

/// Work in the queue.
pub(super) enum Job {
    /// A folder to list and sync.
    Dir(Task),
    /// A big file of a folder being synced.
    File(FileTask),
}

/// How a queued folder is reached.
pub(super) enum Open {
    /// The pair's roots, already open.
    Root {
        src: OwnedFd,
        /// `None` in a dry run when the replica does not exist yet.
        dst: Option<OwnedFd>,
    },
    /// A sub-folder, by name in its parent's handles.
    Child {
        src_parent: Arc<OwnedFd>,
        /// `None` in a dry run when the replica folder does not exist yet.
        dst_parent: Option<Arc<OwnedFd>>,
        name: CString,
    },
}

/// A folder being synced, alive until it and everything below it are done.
///
/// `pending` counts the folder's own work (1, released when its entries are
/// handled) plus each sub-folder queued and not yet finished. Whoever
/// brings it to zero sets the folder's mode and mtime (`finish`) and then
/// releases one count of the parent: so a folder is finished only after
/// every folder below it, whichever worker did them.
pub(super) struct DirNode {
    pending: AtomicUsize,
    /// `None` when there is no replica folder to finish (dry run).
    finish: Option<Finish>,
    parent: Option<Arc<DirNode>>,
}

impl DirNode {
    /// A folder whose entries are about to be handled: one count for that
    /// work, released by whoever handles them.
    pub(super) fn new(finish: Option<Finish>, parent: Option<Arc<DirNode>>) -> Arc<DirNode> {
        Arc::new(DirNode {
            pending: AtomicUsize::new(1),
            finish,
            parent,
        })
    }

    /// Counts `jobs` more jobs of this folder, each released once done;
    /// added before they are queued, so the folder cannot finish first.
    pub(super) fn add_pending(&self, jobs: usize) {
        self.pending.fetch_add(jobs, Ordering::AcqRel);
    }

    /// One count of `node` is done; finishes every folder this completes
    /// (`finish` sets its mode and mtime), walking up the parents (a loop,
    /// so depth does not matter). A stopped pass finishes nothing more.
    pub(super) fn release(
        mut node: Option<Arc<DirNode>>,
        cancel: &Cancel,
        mut finish: impl FnMut(&Finish),
    ) {
        while let Some(done) = node {
            if done.pending.fetch_sub(1, Ordering::AcqRel) != 1 || cancel.is_set() {
                return;
            }
            if let Some(f) = &done.finish {
                finish(f);
            }
            node = done.parent.clone();
        }
    }
}

impl Drop for DirNode {
    /// Unlinks the parent chain one node at a time: a stopped pass may drop
    /// a 3,000-deep chain of unfinished nodes at once, and the default
    /// recursive drop could overflow a worker's stack.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(node) = parent {
            parent = match Arc::try_unwrap(node) {
                Ok(mut node) => node.parent.take(),
                Err(_) => None,
            };
        }
    }
}

/// A replica folder whose mode and mtime are set once its contents are done.
pub(super) struct Finish {
    /// The replica folder's handle, kept open until then.
    pub(super) dst: Arc<OwnedFd>,
    /// Its relative path, for the log.
    pub(super) rel: Vec<u8>,
    /// The source folder's metadata: the mode and mtime to set.
    pub(super) src_meta: Meta,
    /// Its mode when the pass found it; `None` when the pass created it.
    pub(super) found_mode: Option<u32>,
}

/// The jobs waiting for a worker. Workers block on it, never spin: an
/// empty queue may still grow while another worker is busy, so a worker
/// leaves only once none is (or the pass is stopped).
pub(super) struct Queue<'a> {
    state: Mutex<State>,
    /// Signalled when jobs are queued or the last busy worker is done.
    wake: Condvar,
    /// The pass's stop signals: a stopped pass hands out no more jobs.
    cancel: &'a Cancel,
}

/// Jobs waiting for a worker, and how many workers are busy with one.
struct State {
    /// Taken from the end (LIFO): depth first, which bounds the open
    /// handles to roughly the depth times the number of workers.
    tasks: Vec<Job>,
    /// Workers in the middle of a job (which may queue more).
    working: usize,
    /// A worker panicked: no more jobs are handed out.
    abandoned: bool,
}

impl<'a> Queue<'a> {
    /// An empty queue for a pass that obeys `cancel`.
    pub(super) fn new(cancel: &'a Cancel) -> Self {
        Queue {
            state: Mutex::new(State {
                tasks: Vec::new(),
                working: 0,
                abandoned: false,
            }),
            wake: Condvar::new(),
            cancel,
        }
    }

    /// The next folder to sync; blocks while the queue is empty but other
    /// workers may still add to it. `None` when the pass is done or
    /// stopped.
    pub(super) fn next_task(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if self.cancel.is_set() || queue.abandoned {
                return None;
            }
            if let Some(task) = queue.tasks.pop() {
                queue.working += 1;
                return Some(task);
            }
            if queue.working == 0 {
                return None;
            }
            queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether any job is waiting.
    pub(super) fn queued(&self) -> bool {
        !self.lock().tasks.is_empty()
    }

    /// Queues jobs, first one on top.
    pub(super) fn push(&self, tasks: Vec<Job>) {
        if tasks.is_empty() {
            return;
        }
        let mut queue = self.lock();
        queue.tasks.extend(tasks.into_iter().rev());
        self.wake.notify_all();
    }

    /// A worker is done with its folder; when no worker is busy and nothing
    /// is queued, the waiting ones are woken to leave.
    pub(super) fn task_done(&self) {
        let mut queue = self.lock();
        queue.working -= 1;
        if queue.working == 0 || self.cancel.is_set() || queue.abandoned {
            self.wake.notify_all();
        }
    }

    /// A worker panicked: the pass hands out no more jobs, and the waiting
    /// workers leave.
    pub(super) fn abandon(&self) {
        self.lock().abandoned = true;
        self.wake.notify_all();
    }

    /// The state, even after a panic elsewhere (it holds no invariant a
    /// panic could break half way: counts and a list).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
