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

use md5::{Digest as _, Md5};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};

mod sparse;

use sparse::Segments;

mod temp;

pub use temp::is_temp_name;
use temp::{TempFile, create_named, random_name};

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
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut items = rfs::RawDir::new(dir, &mut buf);
    while let Some(item) = items.next() {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let meta = stat_at(dir, name);
        entries.push(Entry {
            name: name.to_owned(),
            meta,
        });
    }
    entries.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(entries)
}

/// Reads a symlink's target text without following it.
pub fn read_link(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?)
}

/// Opens a regular file for reading, refusing to follow a symlink and never
/// blocking on a FIFO that appeared in its place.
fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if rfs::fstat(&fd)?.st_mode & 0o170000 != 0o100000 {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(fd)
}

/// Reads into `buf` until it is full or the file ends; returns the length.
fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::io::read(fd, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The MD5 digest of a file's bytes.
pub fn hash_file(dir: BorrowedFd<'_>, name: &CStr, bufs: &mut Buffers) -> Result<Digest, OpError> {
    let fd = open_file_at(dir, name).op("open")?;
    let digest = hash_fd(fd.as_fd(), &|| false, bufs).op("read")?;
    Ok(digest.expect("never cancelled"))
}

/// The MD5 digest of a file's bytes, provided `unchanged` holds for its
/// metadata both before and after the read (so the digest belongs to the
/// file as it was judged); `None` when it did not, or on `cancelled`.
pub fn hash_file_if(
    dir: BorrowedFd<'_>,
    name: &CStr,
    unchanged: &dyn Fn(&Meta) -> bool,
    cancelled: &dyn Fn() -> bool,
    bufs: &mut Buffers,
) -> Result<Option<Digest>, OpError> {
    let fd = open_file_at(dir, name).op("open")?;
    if !unchanged(&stat_fd(fd.as_fd()).op("stat")?) {
        return Ok(None);
    }
    let Some(digest) = hash_fd(fd.as_fd(), cancelled, bufs).op("read")? else {
        return Ok(None);
    };
    let after = stat_fd(fd.as_fd()).op("stat")?;
    Ok(unchanged(&after).then_some(digest))
}

fn hash_fd(
    fd: BorrowedFd<'_>,
    cancelled: &dyn Fn() -> bool,
    bufs: &mut Buffers,
) -> io::Result<Option<Digest>> {
    let mut hasher = Md5::new();
    let (buf, _) = bufs.both();
    loop {
        if cancelled() {
            return Ok(None);
        }
        let n = read_full(fd, buf)?;
        if n == 0 {
            return Ok(Some(hasher.finalize().into()));
        }
        hasher.update(&buf[..n]);
    }
}

/// What reading a source file and its replica side by side found.
pub enum Compared {
    /// Same bytes; the source's digest when it was asked for.
    Equal(Option<Digest>),
    Different,
}

/// Compares a source file with its replica byte for byte, stopping at the
/// first difference, and hashes the source on the way when `hash` is set
/// (a digest is only worth its CPU when a cache will keep it).
pub fn compare_files(
    src_dir: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &CStr,
    hash: bool,
    bufs: &mut Buffers,
) -> Result<Compared, OpError> {
    let src = open_file_at(src_dir, name).op("open")?;
    let dst = open_file_at(dst_dir, name).op("open replica")?;
    let mut hasher = hash.then(Md5::new);
    let (a, b) = bufs.both();
    loop {
        let n = read_full(src.as_fd(), a).op("read")?;
        let m = read_full(dst.as_fd(), b).op("read replica")?;
        if n != m || a[..n] != b[..m] {
            return Ok(Compared::Different);
        }
        if n == 0 {
            return Ok(Compared::Equal(hasher.map(|h| h.finalize().into())));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&a[..n]);
        }
    }
}

/// How a copy ended, when it did not fail.
// Returned once per copy and never stored: boxing would only cost.
#[allow(clippy::large_enum_variant)]
pub enum Copied {
    /// The replica now holds the source's bytes under the real name.
    Done {
        /// MD5 of the bytes copied, when asked for.
        digest: Option<Digest>,
        /// The source as it was while copied.
        src: Meta,
        /// The replica file as written.
        dst: Meta,
    },
    /// The source changed while it was read; the temporary file was
    /// discarded and the old replica file left as it was.
    SourceChanged,
    /// Stop was requested mid-copy; the temporary file was discarded.
    Cancelled,
}

/// Copies a regular file into the replica atomically: the bytes go to a
/// temporary file in the target's folder, which gets the source's mode and
/// mtime and is then renamed over the target. A crash at any point leaves
/// the target either as it was or complete.
///
/// With `hash`, the bytes pass through this process and are hashed on the
/// way; without, the kernel copies them (`copy_file_range`: no copy into
/// user space, a reflink or server-side copy where the file system has
/// one), which is several times faster than MD5 can go. A source that
/// looks sparse is copied segment by segment, so its holes stay holes
/// (see [`crate::fsops::sparse`]).
///
/// `caps` says whether the replica's file system keeps modes; where it
/// does not, none is set (a chmod there fails or is ignored).
#[allow(clippy::too_many_arguments)]
pub fn copy_file(
    src_dir: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &CStr,
    hash: bool,
    fsync: bool,
    caps: &Caps,
    cancelled: &dyn Fn() -> bool,
    bufs: &mut Buffers,
) -> Result<Copied, OpError> {
    let src = open_file_at(src_dir, name).op("open")?;
    let before = stat_fd(src.as_fd()).op("stat")?;
    // Every way out before the commit drops it, which removes it.
    let tmp = TempFile::create(dst_dir)?;
    let mut hasher = hash.then(Md5::new);
    // Copy no further than the size seen before: no extra read to meet the
    // end of the file, and a file that grew or shrank meanwhile is caught
    // by the second stat below.
    let mut left = before.size;
    if before.looks_sparse() {
        let (buf, _) = bufs.both();
        match sparse::copy(
            src.as_fd(),
            tmp.fd(),
            before.size,
            hasher.as_mut(),
            cancelled,
            buf,
        )? {
            Segments::Done => left = 0,
            Segments::Unsupported => {}
            Segments::Cancelled => return Ok(Copied::Cancelled),
        }
    }
    if hasher.is_none() && left > 0 {
        match kernel_copy(src.as_fd(), tmp.fd(), None, &mut left, cancelled) {
            Ok(true) => {}
            Ok(false) => return Ok(Copied::Cancelled),
            Err(e) => return Err(e),
        }
    }
    // Whatever the kernel did not copy goes through our buffer.
    let (buf, _) = bufs.both();
    while left > 0 {
        if cancelled() {
            return Ok(Copied::Cancelled);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_full(src.as_fd(), &mut buf[..want]).op("read")?;
        if n == 0 {
            break;
        }
        left -= n as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        write_all(tmp.fd(), &buf[..n]).op("write")?;
    }
    let after = stat_fd(src.as_fd()).op("stat")?;
    if (after.size, after.mtime, after.ctime) != (before.size, before.mtime, before.ctime) {
        return Ok(Copied::SourceChanged);
    }
    if caps.modes {
        rfs::fchmod(tmp.fd(), Mode::from_raw_mode(after.mode)).op("set mode")?;
    }
    rfs::futimens(tmp.fd(), &times(after.mtime)).op("set mtime")?;
    if fsync {
        rfs::fsync(tmp.fd()).op("fsync")?;
    }
    let placed = tmp.commit(name)?;
    let dst = stat_fd(placed.as_fd()).op("stat replica")?;
    Ok(Copied::Done {
        digest: hasher.map(|h| h.finalize().into()),
        src: after,
        dst,
    })
}

/// Most bytes one `copy_file_range` call is asked for, so that a stop
/// request is seen within a few milliseconds even in a huge file.
const KERNEL_CHUNK: usize = 16 << 20;

/// Has the kernel copy up to `left` bytes from the current offset of `src`
/// to that of `dst` (or from offset `at` in both, moving it on), counting
/// `left` down. Stops early, leaving the rest to the caller's
/// read-and-write loop, where the kernel cannot do it (another file system
/// before Linux 5.19, a file system without support, a file that ends
/// sooner). Returns `false` when cancelled.
pub(crate) fn kernel_copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    mut at: Option<&mut u64>,
    left: &mut u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<bool, OpError> {
    use rustix::io::Errno;
    while *left > 0 {
        if cancelled() {
            return Ok(false);
        }
        let want = usize::try_from(*left)
            .unwrap_or(usize::MAX)
            .min(KERNEL_CHUNK);
        let copied = match at.as_deref_mut() {
            Some(at) => {
                let (mut from, mut to) = (*at, *at);
                let copied = rfs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), want);
                *at = from;
                copied
            }
            None => rfs::copy_file_range(src, None, dst, None, want),
        };
        match copied {
            Ok(0) => break,
            Ok(n) => *left -= n as u64,
            Err(Errno::INTR) => continue,
            // Not possible here; the plain loop will do it (as cp does).
            Err(
                Errno::XDEV
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::INVAL
                | Errno::BADF
                | Errno::PERM
                | Errno::TXTBSY,
            ) => break,
            Err(e) => return Err(e).op("copy"),
        }
    }
    Ok(true)
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

/// The device a file or folder is on (`st_dev`), to notice a root that
/// moved to another file system between passes (an unmounted share).
pub fn device(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rfs::fstat(fd)?.st_dev)
}

/// What a probe file in a folder showed about its file system.
pub struct FileProbe {
    /// The mtime set on the probe file, and what a stat read back.
    pub mtime_set: Time,
    pub mtime_read: Time,
    /// Whether a chmod was kept; `false` when it failed or was ignored.
    pub modes: bool,
}

/// An mtime with every sub-second digit set and an odd second, so a file
/// system that keeps less (whole seconds, FAT's two) shows it.
const PROBE_MTIME: Time = Time {
    sec: 1_000_000_001,
    nsec: 123_456_789,
};

/// Learns what a folder's file system keeps of a file's mtime and mode:
/// creates a temporary file there, sets both, stats it by name (as a
/// listing does) and removes it.
pub fn probe_file(dir: BorrowedFd<'_>) -> Result<FileProbe, OpError> {
    let (fd, name) = create_named(dir)?;
    let result = (|| {
        rfs::futimens(&fd, &times(PROBE_MTIME)).op("probe: set mtime")?;
        const MODE: u32 = 0o604;
        let chmod_ok = rfs::fchmod(&fd, Mode::from_raw_mode(MODE)).is_ok();
        let read = stat_at(dir, &name).op("probe: stat")?;
        Ok(FileProbe {
            mtime_set: PROBE_MTIME,
            mtime_read: read.mtime,
            modes: chmod_ok && read.mode == MODE,
        })
    })();
    drop(fd);
    let removed = remove_file(dir, &name).map_err(|e| OpError {
        op: "probe: remove temporary file",
        err: e.err,
    });
    let probe = result?;
    removed?;
    Ok(probe)
}

/// What a folder's file system does with a symlink's own time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTimes {
    /// Set on the link itself, as asked.
    Kept,
    /// Not possible there (the call fails or changes nothing).
    Unsupported,
    /// Applied to the link's target instead (sshfs): setting one would
    /// write outside the replica.
    FollowTheLink,
    /// The file system holds no symlinks at all.
    NoSymlinks,
}

/// What a probe link in a folder showed about its file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProbe {
    pub times: LinkTimes,
    /// An absolute link target reads back as written (Debian's sshfs
    /// refuses to show targets that are absolute or hold `..`, others
    /// rewrite them).
    pub targets: bool,
}

/// Learns how a folder's file system treats symlinks: makes a dangling
/// link of ours there (a temporary name, pointing at an absolute path
/// under another temporary name that does not exist), reads its target
/// back and sets its time without following it. A file system that
/// follows the link anyway fails with ENOENT; nothing outside is touched,
/// since there is no target. The link is removed afterwards.
pub fn probe_links(dir: BorrowedFd<'_>) -> Result<LinkProbe, OpError> {
    use rustix::io::Errno;
    let target = CString::new(format!("/{}/missing", random_name().to_string_lossy()))
        .expect("temp name has no NUL byte");
    let name = loop {
        let name = random_name();
        match rfs::symlinkat(&target, dir, &name) {
            Ok(()) => break name,
            Err(Errno::EXIST) => continue,
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {
                return Ok(LinkProbe {
                    times: LinkTimes::NoSymlinks,
                    targets: false,
                });
            }
            Err(e) => return Err(e).op("probe: create link"),
        }
    };
    let targets = read_link(dir, &name).is_ok_and(|t| t == target);
    let times = match set_link_mtime(dir, &name, PROBE_MTIME) {
        Err(e) if e.err.kind() == io::ErrorKind::NotFound => Ok(LinkTimes::FollowTheLink),
        Err(e)
            if matches!(
                e.err.raw_os_error().map(Errno::from_raw_os_error),
                Some(Errno::OPNOTSUPP | Errno::NOSYS | Errno::PERM | Errno::INVAL)
            ) =>
        {
            Ok(LinkTimes::Unsupported)
        }
        Err(e) => Err(e),
        // Accepted: did it take? (Read back to the second, the coarsest
        // any file system with symlinks keeps.)
        Ok(()) => stat_at(dir, &name).op("probe: stat link").map(|m| {
            match m.mtime.sec == PROBE_MTIME.sec {
                true => LinkTimes::Kept,
                false => LinkTimes::Unsupported,
            }
        }),
    };
    let removed = remove_file(dir, &name).map_err(|e| OpError {
        op: "probe: remove temporary link",
        err: e.err,
    });
    let times = times?;
    removed?;
    Ok(LinkProbe { times, targets })
}

/// Hears of a tree removal entry by entry, and may stop it (`--max-delete`).
pub trait RemovalObserver {
    /// Asked before each entry is removed; `false` stops the removal there.
    fn may_remove(&mut self) -> bool;
    /// Told after an entry was removed, by its path relative to the folder
    /// the tree is in, and whether it was a folder.
    fn removed(&mut self, rel: &[u8], is_dir: bool);
}

/// Removes a folder and everything below it, depth first, without ever
/// following a symlink (links are unlinked, not entered). Works with an
/// explicit stack, so depth is bounded by open file handles, not by the
/// call stack. Read-only folders on the way are made writable first, as
/// removing needs it. Returns `Ok(false)` when the observer stopped it.
pub fn remove_tree(
    dir: BorrowedFd<'_>,
    name: &CStr,
    observer: &mut dyn RemovalObserver,
) -> Result<bool, OpError> {
    /// A folder being emptied: its handle and the sub-folders still to go.
    struct Level {
        fd: OwnedFd,
        name: CString,
        rel: Vec<u8>,
        subdirs: Vec<CString>,
    }
    /// Opens a folder and removes its non-folder entries; `None` when the
    /// observer said stop.
    fn open(
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: Vec<u8>,
        observer: &mut dyn RemovalObserver,
    ) -> Result<Option<Level>, OpError> {
        let fd = open_dir_writable(parent, name).op("open folder")?;
        let mut subdirs = Vec::new();
        for entry in list(fd.as_fd()).op("list folder")? {
            if matches!(
                entry.meta,
                Ok(Meta {
                    kind: Kind::Dir,
                    ..
                })
            ) {
                subdirs.push(entry.name);
                continue;
            }
            if !observer.may_remove() {
                return Ok(None);
            }
            unlink_in_writable(fd.as_fd(), &entry.name, AtFlags::empty()).op("remove")?;
            observer.removed(&join_rel(&rel, entry.name.to_bytes()), false);
        }
        subdirs.reverse();
        Ok(Some(Level {
            fd,
            name: name.to_owned(),
            rel,
            subdirs,
        }))
    }
    let Some(first) = open(dir, name, name.to_bytes().to_vec(), observer)? else {
        return Ok(false);
    };
    let mut stack = vec![first];
    while let Some(top) = stack.last_mut() {
        match top.subdirs.pop() {
            Some(sub) => {
                let rel = join_rel(&top.rel, sub.to_bytes());
                let Some(level) = open(top.fd.as_fd(), &sub, rel, observer)? else {
                    return Ok(false);
                };
                stack.push(level);
            }
            None => {
                if !observer.may_remove() {
                    return Ok(false);
                }
                let done = stack.pop().expect("stack is not empty");
                drop(done.fd);
                let parent = stack.last().map_or(dir, |l| l.fd.as_fd());
                unlink_in_writable(parent, &done.name, AtFlags::REMOVEDIR).op("remove folder")?;
                observer.removed(&done.rel, true);
            }
        }
    }
    Ok(true)
}

/// Opens a replica sub-folder to change what is inside it, without
/// following a symlink. A folder we may not enter (mode 000 and we are not
/// root) first gets owner `rwx`; the pass sets its mirrored mode again when
/// it is done with it.
pub fn open_dir_writable(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    match open_dir_at(dir, name) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ACCESS.raw_os_error()) => {
            let handle = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mode = stat_fd(handle.as_fd())?.mode;
            chmod_via_proc(handle.as_fd(), mode | 0o700)?;
            open_dir_at(dir, name)
        }
        other => other,
    }
}

/// Gives an open folder owner `rwx` if it lacks it, so entries can be
/// created, replaced and removed in it. Returns the mode it had.
pub fn make_dir_writable(dir: BorrowedFd<'_>) -> Result<u32, OpError> {
    let mode = stat_fd(dir).op("stat folder")?.mode;
    if mode & 0o700 != 0o700 {
        rfs::fchmod(dir, Mode::from_raw_mode(mode | 0o700)).op("make folder writable")?;
    }
    Ok(mode)
}

/// `unlinkat`, retried once after giving the folder owner `rwx` when it
/// was read-only.
fn unlink_in_writable(dir: BorrowedFd<'_>, name: &CStr, flags: AtFlags) -> io::Result<()> {
    match rfs::unlinkat(dir, name, flags) {
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
            make_dir_writable(dir).map_err(|e| e.err)?;
            Ok(rfs::unlinkat(dir, name, flags)?)
        }
        other => Ok(other?),
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
