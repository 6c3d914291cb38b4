//! Copying a sparse file (a VM image, a database) so that its holes stay
//! holes: a plain copy reads them as zeros and writes those out, so a
//! 5 GiB image holding a few megabytes fills 5 GiB of the backup disk.
//!
//! The source's data segments are found with `SEEK_DATA`/`SEEK_HOLE` and
//! copied at their offsets; the holes are only skipped, and the file is
//! given its full size at the end.

use std::os::fd::BorrowedFd;

use md5::{Digest as _, Md5};
use rustix::fs::{self as rfs, SeekFrom};
use rustix::io::Errno;

use super::copy::kernel_copy;
use super::{Op, OpError};

/// How a segment copy ended, when it did not fail.
pub enum Segments {
    /// The destination holds the source's bytes, holes kept (or the source
    /// ended sooner than expected, which the caller's stat catches).
    Done,
    /// The file system cannot tell holes from data: nothing was written,
    /// the caller copies the file as usual.
    Unsupported,
    Cancelled,
}

/// Zeros to hash for a hole, so a digest is the MD5 of the file's bytes.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Copies the first `size` bytes of `src` into the empty file `dst`,
/// keeping holes. With `hasher`, the bytes go through `buf` and are hashed
/// on the way, holes as zeros; without, the kernel copies each segment.
pub fn copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    size: u64,
    mut hasher: Option<&mut Md5>,
    cancelled: &dyn Fn() -> bool,
    buf: &mut [u8],
) -> Result<Segments, OpError> {
    // Everything before `pos` is copied (and hashed).
    let mut pos = 0;
    while pos < size {
        if cancelled() {
            return Ok(Segments::Cancelled);
        }
        let data = match rfs::seek(src, SeekFrom::Data(pos)) {
            Ok(at) => at.min(size),
            // No data from here on: the rest is one hole.
            Err(Errno::NXIO) => size,
            Err(Errno::INVAL | Errno::OPNOTSUPP) if pos == 0 => return Ok(Segments::Unsupported),
            Err(e) => return Err(e).op("find data"),
        };
        let end = if data < size {
            rfs::seek(src, SeekFrom::Hole(data))
                .op("find hole")?
                .min(size)
        } else {
            size
        };
        if let Some(h) = hasher.as_deref_mut() {
            hash_zeros(h, data - pos);
        }
        match copy_segment(
            src,
            dst,
            data,
            end - data,
            hasher.as_deref_mut(),
            cancelled,
            buf,
        )? {
            Some(true) => {}
            Some(false) => return Ok(Segments::Done),
            None => return Ok(Segments::Cancelled),
        }
        pos = end;
    }
    rfs::ftruncate(dst, size).op("set size")?;
    Ok(Segments::Done)
}

fn hash_zeros(hasher: &mut Md5, mut len: u64) {
    while len > 0 {
        let n = ZEROS.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

/// Copies `len` bytes at offset `at` of `src` to the same offset of `dst`:
/// by the kernel when not hashing, else (and for what the kernel cannot
/// do) through `buf`. `Some(false)` when the source ended sooner, `None`
/// when cancelled.
fn copy_segment(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    mut at: u64,
    mut len: u64,
    mut hasher: Option<&mut Md5>,
    cancelled: &dyn Fn() -> bool,
    buf: &mut [u8],
) -> Result<Option<bool>, OpError> {
    if hasher.is_none() && !kernel_copy(src, dst, Some(&mut at), &mut len, cancelled)? {
        return Ok(None);
    }
    while len > 0 {
        if cancelled() {
            return Ok(None);
        }
        let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let n = loop {
            match rustix::io::pread(src, &mut buf[..want], at) {
                Err(Errno::INTR) => continue,
                other => break other.op("read")?,
            }
        };
        if n == 0 {
            return Ok(Some(false));
        }
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        let mut written = 0;
        while written < n {
            match rustix::io::pwrite(dst, &buf[written..n], at + written as u64) {
                Ok(0) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)).op("write");
                }
                Ok(w) => written += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e).op("write"),
            }
        }
        at += n as u64;
        len -= n as u64;
    }
    Ok(Some(true))
}
