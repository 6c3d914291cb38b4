//! Where control sockets live: one per process, `PID.sock`, in
//! `$XDG_RUNTIME_DIR/foldersync/` (a system service without it:
//! `/run/foldersync/`), a folder of mode 0700 that only its owner reaches.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The folder of every control socket of this user.
pub fn folder() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("foldersync"),
        _ => PathBuf::from("/run/foldersync"),
    }
}

/// Makes the folder (mode 0700), or checks the one there: a real folder,
/// ours, that no one else may enter (a looser one of ours is tightened).
pub fn make_folder(dir: &Path) -> Result<(), String> {
    let fail = |e: io::Error| format!("control socket folder {}: {e}", dir.display());
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(fail)?;
    if !meta.is_dir() {
        return Err(format!(
            "control socket folder {}: not a folder",
            dir.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "control socket folder {}: owned by user {}, not by this user ({me})",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// This process's socket in `dir`.
pub fn own_socket(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sock", std::process::id()))
}

/// What connecting to one socket found.
pub enum Probe {
    Alive(UnixStream),
    /// Nobody listens: its process was killed.
    Stale,
    Denied(io::Error),
    Other(io::Error),
}

/// Connects to a socket to learn whether a process listens on it.
pub fn probe(path: &Path) -> Probe {
    match UnixStream::connect(path) {
        Ok(stream) => Probe::Alive(stream),
        Err(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => Probe::Stale,
            io::ErrorKind::PermissionDenied => Probe::Denied(e),
            _ => Probe::Other(e),
        },
    }
}

/// The sockets in `dir`, in order of their names.
pub fn sockets(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    found.sort();
    Ok(found)
}

/// Removes the sockets of killed processes, so they do not pile up.
pub fn remove_stale(dir: &Path) {
    for path in sockets(dir).unwrap_or_default() {
        if matches!(probe(&path), Probe::Stale) {
            let _ = fs::remove_file(&path);
        }
    }
}
