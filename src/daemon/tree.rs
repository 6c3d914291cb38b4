//! A recursive watch on one root, of our own on inotify: a watch on each
//! folder that is not excluded, added as folders are made or moved in and
//! dropped as they go, and the events turned into [`Note`]s.
//!
//! Ours rather than the `notify` crate's: its mask includes `IN_OPEN`
//! (a pass's own opens were most of its events, and on a million-file
//! first pass its thread fell behind and the queue overflowed), it
//! watched excluded folders (spending the watch limit on a
//! `node_modules/` never synced), and it added a new folder's watches
//! after telling of it, which made the list's count race.
//!
//! A folder is a watch descriptor with its parent's and its name, so a
//! rename within the tree is one change to the map, not a walk; its path
//! is rebuilt from its parents when an event needs it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use rustix::fs::inotify::{self, Event, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::daemon::inotify::Handler;
use crate::daemon::watch::{LIMIT_REACHED, Note};
use crate::excludes::{IGNORE_FILE, Matcher};

/// What each folder's watch reports: no opens, no reads.
fn mask() -> WatchFlags {
    WatchFlags::ATTRIB
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MODIFY
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::EXCL_UNLINK
}

/// How long a folder moved out of a watched folder waits for its
/// `IN_MOVED_TO` (the kernel queues the two together) before it counts as
/// moved out of the tree.
const MOVE_PAIRING: Duration = Duration::from_millis(10);

/// What the owner asks of the tree's thread.
pub(super) enum Command {
    /// The exclude patterns changed: watch the folders now included, drop
    /// those now excluded, then say so on the channel.
    Patterns(Arc<Matcher>, Sender<()>),
}

/// One folder watched.
struct Node {
    /// `None` for the root.
    parent: Option<i32>,
    name: Box<[u8]>,
    children: Vec<i32>,
}

/// The folders watched under one root.
pub(super) struct Tree {
    root: PathBuf,
    sender: Sender<Note>,
    nodes: HashMap<i32, Node>,
    root_wd: i32,
    excludes: Arc<Matcher>,
    /// A folder moved from a watched folder: its cookie and its watch,
    /// until its `IN_MOVED_TO` says where it went.
    moving: Option<(u32, Option<i32>)>,
    /// How many folders are watched, for the list.
    count: Arc<AtomicUsize>,
    /// Set when the root's folder itself was moved, deleted or unmounted.
    gone: Arc<AtomicBool>,
    /// Watching failed: said once, nothing more is told.
    broken: bool,
}

impl Tree {
    /// Watches `root` and every folder below it that `excludes` leaves
    /// in, on `fd`. Fails when a folder cannot be watched (the limit).
    pub(super) fn start(
        fd: BorrowedFd<'_>,
        root: &Path,
        sender: Sender<Note>,
        excludes: Arc<Matcher>,
        gone: Arc<AtomicBool>,
    ) -> Result<Tree, String> {
        let root_wd = inotify::add_watch(fd, root, mask()).map_err(|e| why(e, root))?;
        let mut tree = Tree {
            root: root.to_path_buf(),
            sender,
            nodes: HashMap::new(),
            root_wd,
            excludes,
            moving: None,
            count: Arc::new(AtomicUsize::new(0)),
            gone,
            broken: false,
        };
        tree.nodes.insert(
            root_wd,
            Node {
                parent: None,
                name: Box::default(),
                children: Vec::new(),
            },
        );
        tree.walk(fd, root_wd, Vec::new())?;
        tree.count.store(tree.nodes.len(), Ordering::SeqCst);
        Ok(tree)
    }

    /// The count the list reads.
    pub(super) fn count(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.count)
    }

    /// The folder's path relative to the root.
    fn rel(&self, wd: i32) -> Option<Vec<u8>> {
        let mut names = Vec::new();
        let mut at = wd;
        loop {
            let node = self.nodes.get(&at)?;
            match node.parent {
                None => break,
                Some(parent) => {
                    names.push(&node.name[..]);
                    at = parent;
                }
            }
        }
        names.reverse();
        Some(names.join(&b'/'))
    }

    /// Watches the folder `name` in the watched folder `parent` (at
    /// `rel`); `Ok(None)` when it is not a folder (any more).
    fn add(
        &mut self,
        fd: BorrowedFd<'_>,
        parent: i32,
        name: &[u8],
        rel: &[u8],
    ) -> Result<Option<i32>, String> {
        let path = self.root.join(OsStr::from_bytes(rel));
        let wd = match inotify::add_watch(fd, &path, mask()) {
            Ok(wd) => wd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::ACCESS) => return Ok(None),
            Err(e) => return Err(why(e, &path)),
        };
        match self.nodes.entry(wd) {
            // Seen already (found by a walk and told of by an event).
            std::collections::hash_map::Entry::Occupied(_) => self.relink(wd, parent, name),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Node {
                    parent: Some(parent),
                    name: name.into(),
                    children: Vec::new(),
                });
                if let Some(p) = self.nodes.get_mut(&parent) {
                    p.children.push(wd);
                }
            }
        }
        Ok(Some(wd))
    }

    /// Moves the folder `wd` to `name` in `parent`.
    fn relink(&mut self, wd: i32, parent: i32, name: &[u8]) {
        let Some(old) = self.nodes.get(&wd).and_then(|n| n.parent) else {
            return;
        };
        if let Some(p) = self.nodes.get_mut(&old) {
            p.children.retain(|c| *c != wd);
        }
        if let Some(n) = self.nodes.get_mut(&wd) {
            n.parent = Some(parent);
            n.name = name.into();
        }
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.push(wd);
        }
    }

    /// Watches every folder below the watched `wd` (at `rel`) that is not
    /// excluded; a folder made meanwhile is told of by its own event,
    /// since each watch is added before its folder is listed.
    fn walk(&mut self, fd: BorrowedFd<'_>, wd: i32, rel: Vec<u8>) -> Result<(), String> {
        self.walk_noting(fd, wd, rel, &mut std::collections::HashSet::new())
    }

    /// [`Self::walk`], noting in `seen` each folder found.
    fn walk_noting(
        &mut self,
        fd: BorrowedFd<'_>,
        wd: i32,
        rel: Vec<u8>,
        seen: &mut std::collections::HashSet<i32>,
    ) -> Result<(), String> {
        let mut stack = vec![(wd, rel)];
        while let Some((wd, rel)) = stack.pop() {
            let Ok(list) = std::fs::read_dir(self.root.join(OsStr::from_bytes(&rel))) else {
                continue;
            };
            for entry in list.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name();
                let sub = join(&rel, name.as_bytes());
                if self.excludes.excludes(&sub, true) {
                    continue;
                }
                if let Some(child) = self.add(fd, wd, name.as_bytes(), &sub)? {
                    seen.insert(child);
                    stack.push((child, sub));
                }
            }
        }
        Ok(())
    }

    /// Drops `wd` and every folder below it, removing their watches from
    /// the kernel too when `unwatch` (a folder moved out, or excluded: a
    /// deleted one's watches are gone already).
    fn drop_tree(&mut self, fd: BorrowedFd<'_>, wd: i32, unwatch: bool) {
        if let Some(parent) = self.nodes.get(&wd).and_then(|n| n.parent)
            && let Some(p) = self.nodes.get_mut(&parent)
        {
            p.children.retain(|c| *c != wd);
        }
        let mut stack = vec![wd];
        while let Some(wd) = stack.pop() {
            if let Some(node) = self.nodes.remove(&wd) {
                stack.extend(node.children);
                if unwatch {
                    let _ = inotify::remove_watch(fd, wd);
                }
            }
        }
    }

    /// The watched folder `name` in `parent`, if any.
    fn child(&self, parent: i32, name: &[u8]) -> Option<i32> {
        let p = self.nodes.get(&parent)?;
        p.children
            .iter()
            .copied()
            .find(|c| self.nodes.get(c).is_some_and(|n| &n.name[..] == name))
    }

    /// Watches the tree again from the root with the patterns in force:
    /// after lost events (folders made or gone unseen) and when the
    /// patterns changed. Folders no longer found (gone, or excluded) are
    /// dropped.
    fn rescan(&mut self, fd: BorrowedFd<'_>) -> Result<(), String> {
        let excluded: Vec<i32> = self
            .nodes
            .keys()
            .copied()
            .filter(|wd| *wd != self.root_wd)
            .filter(|wd| {
                self.rel(*wd)
                    .is_none_or(|rel| self.excludes.excludes(&rel, true))
            })
            .collect();
        for wd in excluded {
            self.drop_tree(fd, wd, true);
        }
        let before: Vec<i32> = self.nodes.keys().copied().collect();
        let mut seen = std::collections::HashSet::new();
        seen.insert(self.root_wd);
        // Walked again, noting each folder found.
        self.walk_noting(fd, self.root_wd, Vec::new(), &mut seen)?;
        for wd in before.into_iter().filter(|wd| !seen.contains(wd)) {
            self.drop_tree(fd, wd, true);
        }
        Ok(())
    }

    fn tell(&self, note: Note) {
        if !self.broken {
            let _ = self.sender.send(note);
        }
    }

    /// Says once that watching failed.
    fn fail(&mut self, why: String) {
        self.tell(Note::Broken(why));
        self.broken = true;
    }

    /// A folder moved out of a watched folder whose `IN_MOVED_TO` did not
    /// follow: it left the tree.
    fn moved_out(&mut self, fd: BorrowedFd<'_>) {
        if let Some((_, Some(wd))) = self.moving.take() {
            self.drop_tree(fd, wd, true);
        }
    }

    /// An event on the root's folder itself.
    fn on_root(&mut self, flags: ReadFlags) {
        let gone = ReadFlags::MOVE_SELF | ReadFlags::DELETE_SELF | ReadFlags::UNMOUNT;
        if flags.intersects(gone) || flags.contains(ReadFlags::IGNORED) {
            self.gone.store(true, Ordering::SeqCst);
            self.tell(Note::Root);
        } else if flags.intersects(ReadFlags::ATTRIB | ReadFlags::MODIFY) {
            // Its mode, or its mtime (set alone, it is a modify event).
            self.tell(Note::Changed(Vec::new()));
        }
    }

    /// An event on an entry `name` of the watched folder `wd` (at `rel`).
    fn on_entry(
        &mut self,
        fd: BorrowedFd<'_>,
        wd: i32,
        rel: &[u8],
        name: &[u8],
        event: &Event<'_>,
    ) {
        let flags = event.events();
        let is_dir = flags.contains(ReadFlags::ISDIR);
        let entry = join(rel, name);
        let own_patterns = rel.is_empty() && name == IGNORE_FILE.as_bytes();
        if self.excludes.excludes(&entry, is_dir) && !own_patterns {
            return;
        }
        if is_dir && flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
            let moved = match self.moving.take() {
                Some((cookie, Some(moved))) if cookie == event.cookie() => Some(moved),
                other => {
                    self.moving = other;
                    self.moved_out(fd);
                    None
                }
            };
            let added = match moved {
                Some(moved) => {
                    self.relink(moved, wd, name);
                    Ok(Some(moved))
                }
                None => self.add(fd, wd, name, &entry),
            };
            match added {
                Ok(Some(child)) if moved.is_none() => {
                    if let Err(why) = self.walk(fd, child, entry.clone()) {
                        return self.fail(why);
                    }
                }
                Ok(_) => {}
                Err(why) => return self.fail(why),
            }
            // Its folder's entries, and all of it: nothing below it has
            // been seen where it is now.
            self.tell(Note::Changed(entry.clone()));
            self.tell(Note::Arrived(entry));
            return;
        }
        if is_dir && flags.contains(ReadFlags::MOVED_FROM) {
            self.moved_out(fd);
            self.moving = Some((event.cookie(), self.child(wd, name)));
        } else if is_dir && flags.contains(ReadFlags::DELETE) {
            if let Some(child) = self.child(wd, name) {
                self.drop_tree(fd, child, false);
            }
        }
        let settled = flags.contains(ReadFlags::CLOSE_WRITE)
            || (!is_dir && flags.contains(ReadFlags::MOVED_TO));
        self.tell(if settled {
            Note::Settled(entry)
        } else {
            Note::Changed(entry)
        });
    }
}

impl Handler for Tree {
    type Command = Command;

    fn event(&mut self, fd: BorrowedFd<'_>, event: &Event<'_>) {
        let flags = event.events();
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.moving = None;
            self.tell(Note::Lost);
            if let Err(why) = self.rescan(fd) {
                self.fail(why);
            }
            return;
        }
        // A pairing move's `IN_MOVED_TO` comes right after its `FROM`.
        if !flags.contains(ReadFlags::MOVED_TO) {
            self.moved_out(fd);
        }
        let wd = event.wd();
        match event.file_name() {
            Some(name) => {
                let Some(rel) = self.rel(wd) else { return };
                self.on_entry(fd, wd, &rel, name.to_bytes(), event);
            }
            None if wd == self.root_wd => self.on_root(flags),
            None if flags.contains(ReadFlags::IGNORED) => self.drop_tree(fd, wd, false),
            // A folder's own mode or mtime (set alone, it is a modify
            // event): its parent's entry.
            None if flags.intersects(ReadFlags::ATTRIB | ReadFlags::MODIFY) => {
                if let Some(rel) = self.rel(wd) {
                    self.tell(Note::Changed(rel));
                }
            }
            None => {}
        }
    }

    fn batch_end(&mut self) -> Option<Duration> {
        self.count.store(self.nodes.len(), Ordering::SeqCst);
        self.moving.is_some().then_some(MOVE_PAIRING)
    }

    fn idle(&mut self, fd: BorrowedFd<'_>) {
        self.moved_out(fd);
        self.count.store(self.nodes.len(), Ordering::SeqCst);
    }

    fn command(&mut self, fd: BorrowedFd<'_>, command: Command) {
        match command {
            Command::Patterns(excludes, done) => {
                self.excludes = excludes;
                if let Err(why) = self.rescan(fd) {
                    self.fail(why);
                }
                self.count.store(self.nodes.len(), Ordering::SeqCst);
                let _ = done.send(());
            }
        }
    }

    fn failed(&mut self, why: String) {
        self.fail(why);
    }
}

/// `rel/name`, or `name` at the top.
fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// Why `path` cannot be watched.
fn why(e: Errno, path: &Path) -> String {
    if e == Errno::NOSPC {
        LIMIT_REACHED.to_string()
    } else {
        format!("cannot watch {}: {e}", path.display())
    }
}
