//! Every file-system operation a pass performs, done relative to open
//! directory handles.
//!
//! Working from handles (`openat`, `statat`, `renameat`, all with
//! `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`) instead of full paths means a symlink
//! planted inside the replica is never followed for writing or deleting, and
//! trees deeper than `PATH_MAX` still work. The atomic-write, symlink and
//! permission rules live here, in one place.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};

mod copy;
mod probe;
mod sparse;
mod tree;

use sparse::Segments;

mod temp;

pub use copy::{Compared, Copied, compare_files, copy_file, copy_file_if, hash_file, hash_file_if};
pub use probe::{FileProbe, LinkProbe, LinkTimes, device, probe_file, probe_links};
use temp::{TempFile, create_named, random_name};
pub use temp::{is_temp_name, new_tag, tag_temporaries, temp_tag};
pub use tree::{RemovalObserver, make_dir_writable, open_dir_path, open_dir_writable, remove_tree};

use crate::mounts::Caps;

/// An MD5 digest of a file's bytes.
pub type Digest = [u8; 16];

/// Size of the buffer used to read, hash and write file data.
const CHUNK: usize = 256 * 1024;

/// A pass worker's data buffers, allocated once and reused for every file
/// it reads, hashes or copies (instead of a fresh zeroed 256 KiB per file).
/// A small file only ever touches as many bytes of them as it holds.
#[derive(Default)]
pub struct Buffers {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Buffers {
    /// Both buffers at full size (allocated on first use). Allocated
    /// zeroed, which for this size means fresh pages from the kernel, so
    /// only the pages a read fills count towards memory in use: 16 KiB
    /// for a 16 KiB file, where filling the buffers with zeros made every
    /// worker 512 KiB bigger.
    fn both(&mut self) -> (&mut [u8], &mut [u8]) {
        if self.a.len() < CHUNK {
            self.a = vec![0; CHUNK];
            self.b = vec![0; CHUNK];
        }
        (&mut self.a, &mut self.b)
    }
}

/// A point in time as the file system stores it (seconds and nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

impl Time {
    /// Nanoseconds since the epoch, saturated: 8 bytes where a `Time` takes 16.
    pub fn nanos(self) -> i64 {
        self.sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nsec))
    }

    #[cfg(test)]
    pub fn from_nanos(ns: i64) -> Time {
        Time {
            sec: ns.div_euclid(1_000_000_000),
            nsec: ns.rem_euclid(1_000_000_000) as u32,
        }
    }
}

/// What kind of entry a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFOs, sockets and device files: never opened, never synced.
    Special(&'static str),
}

/// The metadata a pass needs about one entry, taken without following links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
    pub ino: u64,
    /// The device the inode is on: with `ino`, what names one file.
    pub dev: u64,
    /// Names of this inode (hard links), anywhere on its file system.
    pub nlink: u64,
    /// 512-byte blocks allocated: fewer than the size needs means holes.
    pub blocks: u64,
    /// Permission bits only (`mode & 0o7777`).
    pub mode: u32,
}

impl Meta {
    // The stat field types differ between architectures; the casts are
    // no-ops on some and needed on others.
    #[allow(clippy::unnecessary_cast)]
    fn from_stat(st: &rfs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Special("fifo"),
            FileType::Socket => Kind::Special("socket"),
            FileType::CharacterDevice => Kind::Special("character device"),
            FileType::BlockDevice => Kind::Special("block device"),
            FileType::Unknown => Kind::Special("unknown file type"),
        };
        Meta {
            kind,
            size: st.st_size as u64,
            mtime: Time {
                sec: st.st_mtime as i64,
                nsec: st.st_mtime_nsec as u32,
            },
            ctime: Time {
                sec: st.st_ctime as i64,
                nsec: st.st_ctime_nsec as u32,
            },
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
            blocks: st.st_blocks as u64,
            mode: (st.st_mode as u32) & 0o7777,
        }
    }

    /// Whether the file may have holes (fewer blocks than its size needs),
    /// so copying it segment by segment can keep them; false for ordinary
    /// files, which then cost no extra call.
    pub fn looks_sparse(&self) -> bool {
        self.blocks.saturating_mul(512) < self.size
    }
}

/// A failed operation: which step failed and the OS's reason. The caller
/// adds the path.
#[derive(Debug)]
pub struct OpError {
    pub op: &'static str,
    pub err: io::Error,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.err)
    }
}

/// Attaches the name of the step to an I/O error.
pub trait Op<T> {
    fn op(self, op: &'static str) -> Result<T, OpError>;
}

impl<T, E: Into<io::Error>> Op<T> for Result<T, E> {
    fn op(self, op: &'static str) -> Result<T, OpError> {
        self.map_err(|e| OpError { op, err: e.into() })
    }
}

/// One directory entry with its metadata (or the reason it could not be
/// read).
pub struct Entry {
    pub name: CString,
    pub meta: io::Result<Meta>,
}

/// Opens a pair's root folder. The user named it, so a symlink here is
/// followed.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens a sub-folder without following a symlink in its place.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Metadata of the open file or folder itself.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    Ok(Meta::from_stat(&rfs::fstat(fd)?))
}

/// Metadata of an entry, not following a symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Meta> {
    Ok(Meta::from_stat(&rfs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Lists a folder, sorted by name bytes so two listings can be merged in
/// one linear sweep.
///
/// Reads from the handle's position, so it must be freshly opened (every
/// caller opens the folder just before): `getdents` straight on it, where
/// `rustix::fs::Dir` would first `fcntl`, reopen `.` and later close it,
/// three calls more per folder, 30,000 in a pass over the small benchmark.
///
/// The names are sorted before they are stat'ed: sorting the entries
/// themselves moved a hundred bytes for every step of the sort (a tenth
/// of this function's user-space instructions).
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut names = Vec::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut items = rfs::RawDir::new(dir, &mut buf);
    while let Some(item) = items.next() {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        names.push(name.to_owned());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names
        .into_iter()
        .map(|name| Entry {
            meta: stat_at(dir, &name),
            name,
        })
        .collect())
}

/// Reads a symlink's target text without following it.
pub fn read_link(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?)
}

/// Timestamps that set the mtime and leave the atime alone.
fn times(mtime: Time) -> Timestamps {
    Timestamps {
        last_access: rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: rfs::Timespec {
            tv_sec: mtime.sec,
            tv_nsec: mtime.nsec as _,
        },
    }
}

/// Sets a replica file's mode and mtime without touching its bytes, and
/// returns its metadata afterwards. The file is opened with `O_NOFOLLOW`,
/// so a symlink swapped in meanwhile is refused, not followed.
pub fn set_file_attrs(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: u32,
    mtime: Time,
    caps: &Caps,
) -> Result<Meta, OpError> {
    let fd = match rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // An unreadable file (mode 000 and we are not root): `O_PATH`
        // opens it without read permission and still refuses symlinks.
        Err(rustix::io::Errno::ACCESS) => rfs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .op("open")?,
        Err(e) => return Err(e).op("open"),
    };
    set_fd_attrs(fd.as_fd(), mode, mtime, caps)?;
    stat_fd(fd.as_fd()).op("stat")
}

/// Sets mode and mtime on an open file or folder, each only when it
/// differs as far as the file system can tell (`caps`): a mount that keeps
/// whole seconds gets no time set that it would only truncate again.
pub fn set_fd_attrs(
    fd: BorrowedFd<'_>,
    mode: u32,
    mtime: Time,
    caps: &Caps,
) -> Result<(), OpError> {
    let now = stat_fd(fd).op("stat")?;
    if !caps.same_mode(now.mode, mode) {
        rfs::fchmod(fd, Mode::from_raw_mode(mode))
            .or_else(|_| chmod_via_proc(fd, mode))
            .op("set mode")?;
    }
    if !caps.same_mtime(now.mtime, mtime) {
        rfs::futimens(fd, &times(mtime))
            .or_else(|_| rfs::utimensat(rfs::CWD, proc_path(fd), &times(mtime), AtFlags::empty()))
            .op("set mtime")?;
    }
    Ok(())
}

/// `fchmod` fails on an `O_PATH` descriptor; its `/proc/self/fd` link
/// names the very same file, so no symlink can be swapped in.
fn chmod_via_proc(fd: BorrowedFd<'_>, mode: u32) -> rustix::io::Result<()> {
    rfs::chmodat(
        rfs::CWD,
        proc_path(fd),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )
}

fn proc_path(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Creates a folder (private until its final mode is set once its contents
/// are in place).
pub fn make_dir(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), OpError> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).op("create folder")
}

/// Creates or replaces a symlink atomically: the new link is made under a
/// temporary name and renamed over the old entry. `mtime` is `None` where
/// the file system cannot set a link's own time (see [`probe_links`]).
pub fn make_symlink(
    dir: BorrowedFd<'_>,
    name: &CStr,
    target: &CStr,
    mtime: Option<Time>,
) -> Result<(), OpError> {
    loop {
        let tmp = random_name();
        match rfs::symlinkat(target, dir, &tmp) {
            Ok(()) => {
                return mtime
                    .map_or(Ok(()), |mtime| set_link_mtime(dir, &tmp, mtime))
                    .and_then(|()| rfs::renameat(dir, &tmp, dir, name).op("rename link into place"))
                    .inspect_err(|_| {
                        let _ = rfs::unlinkat(dir, &tmp, AtFlags::empty());
                    });
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e).op("create link"),
        }
    }
}

/// Makes `name` in `dir` another name (a hard link) of the file `from_name`
/// in `from_dir`, replacing whatever `name` was atomically: the link is
/// made under a fresh temporary name and renamed over it. The file linked
/// must still be `expect` (same device and inode), else nothing changes.
/// Returns the file's metadata once linked.
pub fn hard_link(
    from_dir: BorrowedFd<'_>,
    from_name: &CStr,
    dir: BorrowedFd<'_>,
    name: &CStr,
    expect: &Meta,
) -> Result<Meta, OpError> {
    loop {
        let tmp = random_name();
        match rfs::linkat(from_dir, from_name, dir, &tmp, AtFlags::empty()) {
            Ok(()) => {
                let undo = || {
                    let _ = rfs::unlinkat(dir, &tmp, AtFlags::empty());
                };
                let linked = stat_at(dir, &tmp).op("stat link").inspect_err(|_| undo())?;
                if (linked.dev, linked.ino) != (expect.dev, expect.ino) {
                    undo();
                    return Err(io::Error::other("the file to link to was replaced")).op("link");
                }
                rfs::renameat(dir, &tmp, dir, name)
                    .op("rename link into place")
                    .inspect_err(|_| undo())?;
                return Ok(linked);
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e).op("link"),
        }
    }
}

/// Sets a symlink's own mtime (not its target's), as `rsync -a` keeps it.
pub fn set_link_mtime(dir: BorrowedFd<'_>, name: &CStr, mtime: Time) -> Result<(), OpError> {
    rfs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW).op("set link mtime")
}

/// Removes a file, symlink or other non-folder entry.
pub fn remove_file(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), OpError> {
    rfs::unlinkat(dir, name, AtFlags::empty()).op("remove")
}

/// What [`remove_file_if`] did.
pub enum Removal {
    Removed,
    /// It changed since it was looked at, and is back under its name.
    PutBack,
    /// It changed, and meanwhile a new entry took its name: it is left
    /// under this temporary name for the caller to keep.
    Aside(CString),
}

/// Removes the file or link `name` in `dir` unless `unchanged` says it
/// changed since the caller looked at it (its ctime aside, which the
/// rename moves). It is renamed aside first, so a writer who opens the
/// name from then on makes a new file instead of writing into one about
/// to go, then looked at again under its temporary name, then removed, or
/// put back.
pub fn remove_file_if(
    dir: BorrowedFd<'_>,
    name: &CStr,
    unchanged: &dyn Fn(&Meta) -> bool,
) -> Result<Removal, OpError> {
    let aside = loop {
        let tmp = random_name();
        match rename_new(dir, name, &tmp) {
            Ok(()) => break tmp,
            Err(e) if e.err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let now = stat_at(dir, &aside).op("stat")?;
    if unchanged(&now) {
        rfs::unlinkat(dir, &aside, AtFlags::empty()).op("remove")?;
        return Ok(Removal::Removed);
    }
    match rename_new(dir, &aside, name) {
        Ok(()) => Ok(Removal::PutBack),
        Err(e) if e.err.kind() == io::ErrorKind::AlreadyExists => Ok(Removal::Aside(aside)),
        Err(e) => Err(e),
    }
}

/// Removes an empty folder; one that is not empty stays (`ENOTEMPTY`).
pub fn remove_dir(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), OpError> {
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).op("remove folder")
}

/// Renames an entry within its folder to a name that must not exist yet:
/// `RENAME_NOREPLACE` where the file system has it, else a check right
/// before a plain rename (FUSE mounts often lack the flag).
pub fn rename_new(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> Result<(), OpError> {
    use rustix::fs::RenameFlags;
    match rfs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {
            match stat_at(dir, to) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    rfs::renameat(dir, from, dir, to).op("rename")
                }
                Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)).op("rename"),
                Err(e) => Err(e).op("rename"),
            }
        }
        Err(e) => Err(e).op("rename"),
    }
}

/// `parent/name` as relative path bytes; an empty parent is the root.
pub fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut rel = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        rel.extend_from_slice(parent);
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
    rel
}
