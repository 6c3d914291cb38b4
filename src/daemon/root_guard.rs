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

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::daemon::watch::Note;

/// A folder as the kernel knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
}

/// The identity of the folder at `path` now; `None` when there is no
/// folder there.
pub(super) fn identity(path: &Path) -> Option<Identity> {
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

/// One root's guard: the watch on its parent and the folder watched.
pub(super) struct Guard {
    /// `None` for `/`, or a parent that cannot be watched: then only the
    /// check after each full pass sees a new folder.
    _parent: Option<notify::INotifyWatcher>,
    watched: Option<Identity>,
    /// Set (by the watch's thread) when the kernel said the folder watched
    /// was itself moved, deleted or unmounted.
    pub(super) gone: Arc<AtomicBool>,
}

impl Guard {
    /// Guards the folder now at `root` (root number `index` of the watch).
    pub(super) fn new(root: &Path, index: usize, sender: Sender<Note>) -> Guard {
        Guard {
            _parent: watch_parent(root, index, sender),
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
    /// flag for its watch (the old watch's thread may still set the old
    /// one).
    pub(super) fn watching(&mut self, now: Option<Identity>) {
        self.watched = now;
        self.gone = Arc::new(AtomicBool::new(false));
    }
}

/// A watch on `root`'s parent that tells of entries named as `root` made,
/// removed or moved (not of opens: each pass opens the root).
fn watch_parent(root: &Path, index: usize, sender: Sender<Note>) -> Option<notify::INotifyWatcher> {
    let moved = |kind: &EventKind| {
        matches!(
            kind,
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
        )
    };
    watch_entry(root, moved, move || {
        let _ = sender.send(Note::Root(index));
    })
}

/// A watch on a pattern file's folder that tells of the file written,
/// made, removed or moved: its patterns are read again at the next pass.
pub(super) fn watch_pattern_file(
    file: &Path,
    sender: Sender<Note>,
) -> Option<notify::INotifyWatcher> {
    let changed = |kind: &EventKind| {
        matches!(
            kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        )
    };
    watch_entry(file, changed, move || {
        let _ = sender.send(Note::Patterns);
    })
}

/// A watch on `path`'s folder that calls `tell` on events of the `wanted`
/// kinds on an entry named as `path`. `None` for `/`, or a folder that
/// cannot be watched.
fn watch_entry(
    path: &Path,
    wanted: fn(&EventKind) -> bool,
    tell: impl Fn() + Send + 'static,
) -> Option<notify::INotifyWatcher> {
    let parent = path.parent()?;
    let name: OsString = path.file_name()?.to_os_string();
    let mut watcher = notify::INotifyWatcher::new(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let ours = event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()));
            if ours && wanted(&event.kind) {
                tell();
            }
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .ok()?;
    watcher.watch(parent, RecursiveMode::NonRecursive).ok()?;
    Some(watcher)
}
