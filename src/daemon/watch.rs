//! A watched pair's eyes on its source: a recursive inotify watch of our
//! own on each root ([`crate::daemon::tree`]), a guard on each root's path
//! ([`crate::daemon::root_guard`]), and the notes they send the worker.
//! The worker owns the [`Watch`]; dropping it stops and joins its threads
//! and closes their inotify instances, which removes every watch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::daemon::inotify::{Reader, instance};
use crate::daemon::root_guard::{Found, Guard, Named, watch_entries};
use crate::daemon::tree::{Command, Tree};
use crate::excludes::Matcher;

/// Why a folder cannot be watched when the kernel says ENOSPC: both
/// limits count, the machine's and, in a container, its user namespace's.
pub(super) const LIMIT_REACHED: &str = "the kernel's limit of watches is reached \
     (fs.inotify.max_user_watches, or user.max_inotify_watches in a user namespace)";

/// What the watcher tells the worker.
#[derive(Debug)]
pub enum Note {
    /// This entry (relative to the source root; empty for the root)
    /// changed, and more may come.
    Changed(Vec<u8>),
    /// This file was closed after writing, or moved in: its content is
    /// complete, so it can be synced at once, with no quiet window.
    Settled(Vec<u8>),
    /// This folder was made or moved in: nothing below it has been seen,
    /// and what was made in it before its watch was added sends no event.
    Arrived(Vec<u8>),
    /// Events were lost (the kernel queue overflowed): only a full pass
    /// knows what changed. Watching goes on.
    Lost,
    /// A pattern file outside the source changed: the next pass reads the
    /// patterns again.
    Patterns,
    /// The folder at a root's path may be another one now, or none: the
    /// worker looks at every root ([`Watch::renew`]).
    Root,
    /// Watching failed (a folder could not be watched, the event queue
    /// could not be read): from now on only full passes see changes.
    Broken(String),
}

/// A recursive watch on a pair's source (and, for a two-way pair, its
/// replica too: both are edited).
pub struct Watch {
    pub notes: Receiver<Note>,
    sender: Sender<Note>,
    roots: Vec<Root>,
    /// The patterns the trees leave out.
    excludes: Arc<Matcher>,
    /// The watch on the roots' parents and the pattern files' folders.
    _entries: Option<Reader<()>>,
}

/// One root watched.
struct Root {
    path: PathBuf,
    /// `source` or `replica`, for the log.
    name: String,
    /// `None` while no folder is at `path`.
    tree: Option<Reader<Command>>,
    /// How many folders its tree watches.
    count: Arc<AtomicUsize>,
    guard: Guard,
}

/// What [`Watch::renew`] found at the roots' paths.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The folders watched are still there.
    Same,
    /// A new folder at a root's path (named) is watched now: a full pass
    /// must look at it.
    Renewed(String),
    /// No folder at a root's path any more ([`Watch::off`] says which):
    /// watched again once one is back.
    Missing,
    /// A new folder could not be watched: the root's name, and why.
    Failed(String, String),
}

impl Watch {
    /// Watches each of `roots` and every folder below them that
    /// `excludes` leaves in, all telling the one channel, and the
    /// `patterns` files (outside the roots). Fails, with the root's name
    /// (`source` or `replica`) and why, on a file system that reports no
    /// events (a network share, FUSE) and when a folder cannot be watched
    /// (the `max_user_watches` limit).
    pub fn start<'n>(
        roots: &[(&Path, &'n str)],
        patterns: &[PathBuf],
        excludes: Arc<Matcher>,
    ) -> Result<Watch, (&'n str, String)> {
        if let (Err(why), Some((_, name))) = (test_hook(), roots.first()) {
            return Err((name, why));
        }
        let (sender, notes) = crossbeam_channel::unbounded();
        // The guards first: a folder replaced while the trees are watched
        // is then told of.
        let mut named: Vec<(PathBuf, Named)> = roots
            .iter()
            .map(|(root, _)| (root.to_path_buf(), Named::Root))
            .collect();
        named.extend(patterns.iter().map(|f| (f.clone(), Named::Patterns)));
        let mut watch = Watch {
            _entries: watch_entries(&named, sender.clone()),
            notes,
            sender,
            roots: Vec::new(),
            excludes,
        };
        for (root, name) in roots {
            let guard = Guard::new(root);
            let (tree, count) = watch_root(root, &watch, &guard).map_err(|why| (*name, why))?;
            watch.roots.push(Root {
                path: root.to_path_buf(),
                name: name.to_string(),
                tree: Some(tree),
                count,
                guard,
            });
        }
        Ok(watch)
    }

    /// Looks at the folder at each root's path (after a [`Note::Root`], and
    /// after each full pass: a disk mounted there tells no event): a new
    /// one is watched instead of the old one, a missing one is unwatched
    /// until it is back.
    pub fn renew(&mut self) -> Renewal {
        let mut renewal = Renewal::Same;
        for index in 0..self.roots.len() {
            let root = &mut self.roots[index];
            match root.guard.check(&root.path) {
                Found::Same => {}
                // Said once, when it goes.
                Found::Missing if root.tree.is_none() => {}
                Found::Missing => {
                    // The old folder's events no longer name this path.
                    root.tree = None;
                    root.guard.watching(None);
                    renewal = Renewal::Missing;
                }
                Found::New(now) => {
                    root.tree = None;
                    root.guard.watching(Some(now));
                    let root = &self.roots[index];
                    match watch_root(&root.path, self, &root.guard) {
                        Ok((tree, count)) => {
                            let root = &mut self.roots[index];
                            root.tree = Some(tree);
                            root.count = count;
                            if renewal == Renewal::Same {
                                renewal = Renewal::Renewed(root.name.clone());
                            }
                        }
                        Err(why) => return Renewal::Failed(root.name.clone(), why),
                    }
                }
            }
        }
        renewal
    }

    /// Watches with `excludes` from now on if they are new: the folders
    /// they now leave in are watched, those they leave out are not.
    /// Returns once the trees are done, whether they were new.
    pub fn patterns(&mut self, excludes: Arc<Matcher>) -> bool {
        if Arc::ptr_eq(&self.excludes, &excludes) {
            return false;
        }
        let (done, replies) = crossbeam_channel::unbounded();
        let trees: Vec<&Reader<Command>> =
            self.roots.iter().filter_map(|r| r.tree.as_ref()).collect();
        for tree in &trees {
            tree.send(Command::Patterns(Arc::clone(&excludes), done.clone()));
        }
        drop(done);
        // A tree whose thread has ended drops its sender: no wait for it.
        for _ in &trees {
            let _ = replies.recv();
        }
        self.excludes = excludes;
        true
    }

    /// Why a root is not watched for now (its folder is gone), if one is
    /// not.
    pub fn off(&self) -> Option<String> {
        let root = self.roots.iter().find(|r| r.tree.is_none())?;
        Some(format!(
            "the {} folder {} is gone (moved or deleted); it is watched again once a folder is back there",
            root.name,
            root.path.display()
        ))
    }

    /// How many folders are watched.
    pub fn folders(&self) -> usize {
        self.roots
            .iter()
            .filter(|r| r.tree.is_some())
            .map(|r| r.count.load(Ordering::SeqCst))
            .sum()
    }
}

/// One root's recursive watch, on a thread of its own, and its count.
fn watch_root(
    root: &Path,
    watch: &Watch,
    guard: &Guard,
) -> Result<(Reader<Command>, Arc<AtomicUsize>), String> {
    if let Some(fs) = silent_file_system(root) {
        return Err(format!(
            "it is on {fs}, which does not report changes made elsewhere"
        ));
    }
    let fd = instance()?;
    let tree = Tree::start(
        std::os::fd::AsFd::as_fd(&fd),
        root,
        watch.sender.clone(),
        Arc::clone(&watch.excludes),
        Arc::clone(&guard.gone),
    )?;
    let count = tree.count();
    Ok((Reader::spawn("watch", fd, tree)?, count))
}

/// The name of the file system `path` is on when it reports no events
/// for changes made by other machines or by a FUSE daemon.
fn silent_file_system(path: &Path) -> Option<&'static str> {
    let kind = rustix::fs::statfs(path).ok()?.f_type as u64;
    Some(match kind {
        0x6573_5546 => "a FUSE file system (sshfs, rclone...)",
        0x6969 => "NFS",
        0x517b => "SMB",
        0xff53_4d42 => "CIFS",
        0xfe53_4d42 => "SMB2",
        0x0102_1997 => "9p",
        0x00c3_6400 => "Ceph",
        0x5346_414f => "AFS",
        _ => return None,
    })
}

/// Debug builds only: `FOLDERSYNC_TEST_WATCH_FAIL` makes watching fail as
/// a full watch table would, so the tests can prove the fallback.
fn test_hook() -> Result<(), String> {
    #[cfg(debug_assertions)]
    if std::env::var_os("FOLDERSYNC_TEST_WATCH_FAIL").is_some() {
        return Err(
            "the kernel's limit of watches is reached (fs.inotify.max_user_watches; test)".into(),
        );
    }
    Ok(())
}
