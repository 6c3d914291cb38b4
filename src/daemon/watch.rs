//! A watched pair's eyes on its source: inotify through the `notify`
//! crate, recursive, turned into the folders that changed. The worker owns
//! the [`Watch`]; dropping it removes the watches and ends notify's thread.
//!
//! `notify` rather than the thinner `inotify` crate: it already adds a
//! watch to each new folder as it appears, reports a queue overflow as a
//! rescan and a full watch table as an error, and ends its reader thread
//! on drop; with `inotify` all of that would be ours to write.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::daemon::root_guard::{Found, Guard, watch_pattern_file};
use crate::daemon::watched_folders::Folders;

/// Why a folder cannot be watched when the kernel says ENOSPC: both
/// limits count, the machine's and, in a container, its user namespace's.
const LIMIT_REACHED: &str = "the kernel's limit of watches is reached \
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
    /// The folder at this root's path (0: the source) may be another one
    /// now, or none: the worker looks ([`Watch::renew`]).
    Root(usize),
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
    /// The watches on the folders of pattern files outside the roots.
    _patterns: Vec<notify::INotifyWatcher>,
}

/// One root watched.
struct Root {
    path: PathBuf,
    /// `source` or `replica`, for the log.
    name: String,
    /// `None` while no folder is at `path`.
    watcher: Option<notify::INotifyWatcher>,
    /// The folders watched below it, for the list (notify keeps its own to
    /// itself).
    folders: Arc<Mutex<Folders>>,
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
    /// Watches each of `roots` and everything below them, all telling the
    /// one channel. Fails, with the root's name (`source` or `replica`) and
    /// why, on a file system that reports no events (a network share, FUSE)
    /// and when a folder cannot be watched (the `max_user_watches` limit).
    /// `patterns`: the pattern files outside the roots, watched too.
    pub fn start<'n>(
        roots: &[(&Path, &'n str)],
        patterns: &[PathBuf],
    ) -> Result<Watch, (&'n str, String)> {
        if let (Err(why), Some((_, name))) = (test_hook(), roots.first()) {
            return Err((name, why));
        }
        let (sender, notes) = crossbeam_channel::unbounded();
        let mut watch = Watch {
            _patterns: patterns
                .iter()
                .filter_map(|f| watch_pattern_file(f, sender.clone()))
                .collect(),
            notes,
            sender,
            roots: Vec::new(),
        };
        for (index, (root, name)) in roots.iter().enumerate() {
            // The guard first: a folder replaced while the watches are
            // added is then told of.
            let guard = Guard::new(root, index, watch.sender.clone());
            let (watcher, folders) =
                watch_root(root, index, watch.sender.clone(), Arc::clone(&guard.gone))
                    .map_err(|why| (*name, why))?;
            watch.roots.push(Root {
                path: root.to_path_buf(),
                name: name.to_string(),
                watcher: Some(watcher),
                folders,
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
        for (index, root) in self.roots.iter_mut().enumerate() {
            match root.guard.check(&root.path) {
                Found::Same => {}
                // Said once, when it goes.
                Found::Missing if root.watcher.is_none() => {}
                Found::Missing => {
                    // The old folder's events no longer name this path.
                    root.watcher = None;
                    lock(&root.folders).remove_all();
                    root.guard.watching(None);
                    renewal = Renewal::Missing;
                }
                Found::New(now) => {
                    root.watcher = None;
                    root.guard.watching(Some(now));
                    let gone = Arc::clone(&root.guard.gone);
                    match watch_root(&root.path, index, self.sender.clone(), gone) {
                        Ok((watcher, folders)) => {
                            root.watcher = Some(watcher);
                            root.folders = folders;
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

    /// Counts the folders below each of `rels` (in the first root) again,
    /// after a pass over them. notify adds the watches of a folder made or
    /// moved in after it has told of it, walking the folder then, and
    /// folders made in it meanwhile send no event: a walk at the event
    /// can miss them, a walk after the pass sees what notify saw.
    pub fn recount(&self, rels: &[Vec<u8>]) {
        let Some(root) = self.roots.first().filter(|r| r.watcher.is_some()) else {
            return;
        };
        for rel in rels.iter().filter(|r| !r.is_empty()) {
            // Walked before the lock, so the list never waits on a walk.
            let found = folders_below(&root.path, rel);
            let mut folders = lock(&root.folders);
            folders.remove_tree(rel);
            folders.add(found);
        }
    }

    /// Why a root is not watched for now (its folder is gone), if one is
    /// not.
    pub fn off(&self) -> Option<String> {
        let root = self.roots.iter().find(|r| r.watcher.is_none())?;
        Some(format!(
            "the {} folder {} is gone (moved or deleted); it is watched again once a folder is back there",
            root.name,
            root.path.display()
        ))
    }

    /// How many folders are watched.
    pub fn folders(&self) -> usize {
        self.roots.iter().map(|r| lock(&r.folders).len()).sum()
    }
}

/// One root's recursive watch and the folders it holds.
fn watch_root(
    root: &Path,
    index: usize,
    sender: Sender<Note>,
    gone: Arc<AtomicBool>,
) -> Result<(notify::INotifyWatcher, Arc<Mutex<Folders>>), String> {
    if let Some(fs) = silent_file_system(root) {
        return Err(format!(
            "it is on {fs}, which does not report changes made elsewhere"
        ));
    }
    let path = root.to_path_buf();
    let folders = Arc::new(Mutex::new(Folders::default()));
    let kept = Arc::clone(&folders);
    // Symlinks not followed: a pass copies a link as a link, so what it
    // points to is not the pair's to watch (a link to `/` would spend the
    // whole watch limit on it).
    let mut watcher = notify::INotifyWatcher::new(
        move |event: notify::Result<notify::Event>| {
            if is_root_gone(&path, &event) {
                gone.store(true, Ordering::SeqCst);
                let _ = sender.send(Note::Root(index));
            }
            forward(&path, &sender, &kept, event)
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .map_err(|e| e.to_string())?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| match e.kind {
            notify::ErrorKind::MaxFilesWatch => LIMIT_REACHED.to_string(),
            _ => e.to_string(),
        })?;
    // After the watch is in place, so a folder made meanwhile is not
    // missed (found twice, it is one entry).
    let all = folders_below(root, b"");
    lock(&folders).add(all);
    Ok((watcher, folders))
}

fn lock(folders: &Mutex<Folders>) -> std::sync::MutexGuard<'_, Folders> {
    folders.lock().unwrap_or_else(|e| e.into_inner())
}

/// `rel` and the folders below it in `root` (relative to `root`), symlinks
/// not followed; none when `rel` is not a folder (any more).
fn folders_below(root: &Path, rel: &[u8]) -> Vec<Box<[u8]>> {
    let mut found = Vec::new();
    let mut stack = vec![rel.to_vec()];
    while let Some(dir) = stack.pop() {
        let Ok(list) = std::fs::read_dir(root.join(OsStr::from_bytes(&dir))) else {
            continue;
        };
        for entry in list.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name();
                let sub = if dir.is_empty() {
                    name.as_bytes().to_vec()
                } else {
                    [&dir[..], b"/", name.as_bytes()].concat()
                };
                stack.push(sub);
            }
        }
        found.push(dir.into_boxed_slice());
    }
    found
}

/// Turns one notify event into notes. Opens and reads (a pass reading the
/// source makes them) change nothing and are dropped, or each pass would
/// start the next.
fn forward(
    root: &Path,
    sender: &Sender<Note>,
    folders: &Mutex<Folders>,
    event: notify::Result<notify::Event>,
) {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            let why = match e.kind {
                notify::ErrorKind::MaxFilesWatch => LIMIT_REACHED.to_string(),
                _ => e.to_string(),
            };
            let _ = sender.send(Note::Broken(why));
            return;
        }
    };
    if event.need_rescan() {
        let _ = sender.send(Note::Lost);
        return;
    }
    let mut settled = false;
    let mut arrived = false;
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => settled = true,
        EventKind::Create(CreateKind::Folder) => arrived = true,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            // A folder moved in is new below too, and its watches are
            // still being added: it waits for the quiet window.
            arrived = event.paths.first().is_some_and(|p| is_folder(p));
            settled = !arrived;
        }
        // Said already by the `From` and the `To` before it.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return,
        EventKind::Access(_) => return,
        _ => {}
    }
    keep_folders(root, folders, &event);
    for path in &event.paths {
        if let Some(entry) = entry_of(root, path) {
            let _ = sender.send(if settled {
                Note::Settled(entry)
            } else {
                Note::Changed(entry)
            });
        }
        if let Some(rel) = arrived.then(|| relative(root, path)).flatten() {
            let _ = sender.send(Note::Arrived(rel));
        }
    }
}

/// Whether `event` says the folder watched at `root` was itself moved or
/// deleted (notify names it by the root's path).
fn is_root_gone(root: &Path, event: &notify::Result<notify::Event>) -> bool {
    let Ok(event) = event else { return false };
    event.paths.first().is_some_and(|p| p == root)
        && matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        )
}

/// Whether `path` is a folder, symlinks not followed.
fn is_folder(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// `path` relative to `root`; `None` for the root itself or outside it.
fn relative(root: &Path, path: &Path) -> Option<Vec<u8>> {
    let rel = path.strip_prefix(root).ok()?.as_os_str().as_bytes();
    (!rel.is_empty()).then(|| rel.to_vec())
}

/// Keeps [`Folders`] as notify keeps its watches. The root's own events
/// (moved or deleted itself) change nothing: its watches stay on it.
fn keep_folders(root: &Path, folders: &Mutex<Folders>, event: &notify::Event) {
    let Some(rel) = event.paths.first().and_then(|p| relative(root, p)) else {
        return;
    };
    match event.kind {
        EventKind::Create(CreateKind::Folder)
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            // Walked before the lock, so the list never waits on a walk.
            // (A folder made in one just moved is named by the old path
            // and found nowhere: the pass over the moved one counts it.)
            let found = folders_below(root, &rel);
            lock(folders).add(found);
        }
        // A folder moved within the tree also tells `From` through its own
        // watch, which notify may name by the new path once it has added
        // that watch again: a path still a folder was not moved away.
        EventKind::Modify(ModifyKind::Name(RenameMode::From))
            if event.paths.first().is_some_and(|p| is_folder(p)) => {}
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            lock(folders).remove_tree(&rel);
        }
        _ => {}
    }
}

/// The entry an event on `path` names, relative to `root` (empty for the
/// root itself); a pass syncs its folder's entries.
fn entry_of(root: &Path, path: &Path) -> Option<Vec<u8>> {
    let rel = path.strip_prefix(root).ok()?;
    Some(rel.as_os_str().as_bytes().to_vec())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_entry_relative_to_the_root() {
        let root = Path::new("/s");
        assert_eq!(entry_of(root, Path::new("/s/a/b")), Some(b"a/b".to_vec()));
        assert_eq!(entry_of(root, Path::new("/s")), Some(Vec::new()));
        assert_eq!(entry_of(root, Path::new("/t/f")), None);
    }
}
