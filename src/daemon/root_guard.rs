//! Whether the folder at a watched root's path is still the one watched.
//! inotify watches a folder, not a path: a source renamed away and made
//! again (`mv SRC OLD; mkdir SRC`, `rm -rf SRC; mkdir SRC`) leaves the
//! watch on the old folder, or on nothing, and the new one unwatched. The
//! guard hears of the path's changes through a watch on its parent, and
//! tells a new folder from the old one by device and inode, or by the old
//! one's own move, delete or unmount event (a new folder may get the old
//! one's inode back).
//!
//! The same watch on a folder for one name tells of an `--exclude-from`
//! file's changes.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use rustix::fs::inotify::{self, Event, ReadFlags, WatchFlags};

use crate::daemon::inotify::{Handler, Reader, instance};
use crate::daemon::watch::Note;

/// A folder as the kernel knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
}

/// The identity of the folder at `path` now; `None` when there is no
/// folder there.
fn identity(path: &Path) -> Option<Identity> {
    let m = std::fs::metadata(path).ok()?;
    m.is_dir().then(|| Identity {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// What the folder at a root's path is, compared with the one watched.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// The folder watched.
    Same,
    /// Another folder: to watch instead.
    New(Identity),
    /// No folder.
    Missing,
}

/// One root's guard: the folder watched.
pub(super) struct Guard {
    watched: Option<Identity>,
    /// Set (by the root's tree) when the kernel said the folder watched
    /// was itself moved, deleted or unmounted.
    pub(super) gone: Arc<AtomicBool>,
}

impl Guard {
    /// Guards the folder now at `root`.
    pub(super) fn new(root: &Path) -> Guard {
        Guard {
            watched: identity(root),
            gone: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Compares the folder at `root` with the one watched.
    pub(super) fn check(&self, root: &Path) -> Found {
        match identity(root) {
            None => Found::Missing,
            Some(now) if Some(now) != self.watched || self.gone.load(Ordering::SeqCst) => {
                Found::New(now)
            }
            Some(_) => Found::Same,
        }
    }

    /// Records that `now` is the folder watched from here on, with a new
    /// flag for its tree (the old tree may still set the old one).
    pub(super) fn watching(&mut self, now: Option<Identity>) {
        self.watched = now;
        self.gone = Arc::new(AtomicBool::new(false));
    }
}

/// What an entry watched by name stands for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Named {
    /// A root's path: made, removed or moved, it may be another folder.
    Root,
    /// A pattern file: written, made, removed or moved.
    Patterns,
}

/// The names watched in one folder, and what each stands for.
type Names = Vec<(Box<[u8]>, Named)>;

/// The entries watched by name, by their folder's watch.
struct Entries {
    by_folder: HashMap<i32, Names>,
    sender: Sender<Note>,
}

/// Watches the folders of `named` for events on their names, on a thread
/// of its own; `None` when none can be watched (`/` has no folder; then
/// only the check after each full pass sees a new root folder).
pub(super) fn watch_entries(
    named: &[(PathBuf, Named)],
    sender: Sender<Note>,
) -> Option<Reader<()>> {
    let fd = instance().ok()?;
    let mask = WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::ONLYDIR;
    let mut by_folder: HashMap<i32, Names> = HashMap::new();
    for (path, what) in named {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        if let Ok(wd) = inotify::add_watch(fd.as_fd(), parent, mask) {
            by_folder
                .entry(wd)
                .or_default()
                .push((name.as_bytes().into(), *what));
        }
    }
    if by_folder.is_empty() {
        return None;
    }
    Reader::spawn("watch-paths", fd, Entries { by_folder, sender }).ok()
}

impl Handler for Entries {
    type Command = ();

    fn event(&mut self, _fd: BorrowedFd<'_>, event: &Event<'_>) {
        let flags = event.events();
        let (Some(name), Some(names)) = (event.file_name(), self.by_folder.get(&event.wd())) else {
            return;
        };
        let moved =
            ReadFlags::CREATE | ReadFlags::DELETE | ReadFlags::MOVED_FROM | ReadFlags::MOVED_TO;
        for (_, what) in names.iter().filter(|(n, _)| &n[..] == name.to_bytes()) {
            let note = match what {
                Named::Root if flags.intersects(moved) => Note::Root,
                Named::Patterns if flags.intersects(moved | ReadFlags::CLOSE_WRITE) => {
                    Note::Patterns
                }
                _ => continue,
            };
            let _ = self.sender.send(note);
        }
    }

    fn batch_end(&mut self) -> Option<Duration> {
        None
    }

    fn idle(&mut self, _fd: BorrowedFd<'_>) {}

    fn command(&mut self, _fd: BorrowedFd<'_>, _command: ()) {}

    fn failed(&mut self, _why: String) {
        // The trees still watch; only a replaced root goes unseen until
        // the next full pass's check.
    }
}
