//! Reading, hashing, comparing and copying file data.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use md5::{Digest as _, Md5};
use rustix::fs::{self as rfs, Mode, OFlags};

use super::*;

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
    /// The caller's last check, right before the commit, said no (the
    /// target or the source is not what the caller examined); the
    /// temporary file was discarded.
    Refused,
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
    copy_file_if(
        src_dir,
        dst_dir,
        name,
        hash,
        fsync,
        caps,
        &|_| true,
        cancelled,
        bufs,
    )
}

/// [`copy_file`], asking `ready` with the source as it was copied right
/// before the commit, so a two-way pass replaces nothing that changed
/// since it was examined.
#[allow(clippy::too_many_arguments)]
pub fn copy_file_if(
    src_dir: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &CStr,
    hash: bool,
    fsync: bool,
    caps: &Caps,
    ready: &dyn Fn(&Meta) -> bool,
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
    if !ready(&after) {
        return Ok(Copied::Refused);
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
