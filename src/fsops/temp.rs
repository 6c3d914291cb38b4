//! Temporary files that cannot collide with anything.
//!
//! A file being copied is written where no name can reach it: an unnamed
//! `O_TMPFILE` inode, given a name only when complete. Where the file system
//! has no `O_TMPFILE` (FUSE, NFS, SMB), the temporary gets a name with 64
//! random bits, created exclusively. Names built from a PID and a counter
//! were not enough: in a container every foldersync is PID 1, and a user's
//! file copied under such a name once overwrote a copy in progress.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{Op, OpError};

/// The prefix every temporary name of ours starts with.
const PREFIX: &str = ".foldersync-";
/// The suffix every temporary name of ours ends with.
const SUFFIX: &str = ".tmp";

/// Whether a replica entry is named like a temporary file of ours: the
/// random form `.foldersync-<16 hex digits>.tmp`, the tagged form
/// `.foldersync-<16 hex tag>-<16 hex digits>.tmp` (see [`tag_temporaries`]),
/// or the `<pid>-<n>` form of earlier versions, which an interrupted copy
/// may have left behind.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name
        .strip_prefix(PREFIX.as_bytes())
        .and_then(|r| r.strip_suffix(SUFFIX.as_bytes()))
    else {
        return false;
    };
    if is_hex16(rest) || temp_tag(name).is_some() {
        return true;
    }
    let mut parts = rest.split(|&b| b == b'-');
    let numeric =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none()
}

fn is_hex16(s: &[u8]) -> bool {
    s.len() == 16 && s.iter().all(u8::is_ascii_hexdigit)
}

/// The tag in a temporary name of the tagged form, if it is one.
pub fn temp_tag(name: &[u8]) -> Option<u64> {
    let rest = name
        .strip_prefix(PREFIX.as_bytes())?
        .strip_suffix(SUFFIX.as_bytes())?;
    let (tag, random) = (rest.get(..16)?, rest.get(16..)?);
    let random = random.strip_prefix(b"-")?;
    if !is_hex16(tag) || !is_hex16(random) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(tag).ok()?, 16).ok()
}

thread_local! {
    /// The tag the temporaries made on this thread carry, if any.
    static TAG: Cell<Option<u64>> = const { Cell::new(None) };
}

/// While the returned guard lives, every temporary name made on this
/// thread carries `tag`. A two-way pair records its pass's tag in its
/// state before it writes, so a later pass removes only leftovers whose
/// tag it recorded: a user's file named like a temporary is theirs, and
/// synced like any other (both folders are the user's, unlike a replica).
pub fn tag_temporaries(tag: u64) -> TagGuard {
    TagGuard {
        before: TAG.with(|t| t.replace(Some(tag))),
    }
}

/// Ends [`tag_temporaries`] when dropped.
pub struct TagGuard {
    before: Option<u64>,
}

impl Drop for TagGuard {
    fn drop(&mut self) {
        TAG.with(|t| t.set(self.before));
    }
}

/// A fresh tag for [`tag_temporaries`].
pub fn new_tag() -> u64 {
    random_u64()
}

/// A fresh temporary name with 64 random bits (after this thread's tag,
/// if it has one). Short and unrelated to the target's name, so a
/// 255-byte target name still fits. Callers create it exclusively and
/// draw again on `EEXIST`.
pub fn random_name() -> CString {
    let n = random_u64();
    let name = match TAG.with(Cell::get) {
        Some(tag) => format!("{PREFIX}{tag:016x}-{n:016x}{SUFFIX}"),
        None => format!("{PREFIX}{n:016x}{SUFFIX}"),
    };
    CString::new(name).expect("temp name has no NUL byte")
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let random = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())
        .is_ok_and(|filled| filled == 8);
    if random {
        u64::from_ne_bytes(bytes)
    } else {
        fallback_random()
    }
}

/// Without `getrandom` (a seccomp filter may refuse it): std's hasher keys
/// are random per process, mixed with a counter and the time.
fn fallback_random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    KEYS.get_or_init(RandomState::new)
        .hash_one((COUNTER.fetch_add(1, Ordering::Relaxed), now))
}

/// A temporary file in a replica folder, removed when dropped unless
/// [`TempFile::commit`] put it in place.
pub struct TempFile<'d> {
    fd: OwnedFd,
    name: TempName<'d>,
}

/// The name a temporary file has in its folder, if any (`None` for an
/// unnamed `O_TMPFILE` inode); removed when dropped.
struct TempName<'d> {
    dir: BorrowedFd<'d>,
    name: Option<CString>,
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = rfs::unlinkat(self.dir, name, AtFlags::empty());
        }
    }
}

/// Whether `/proc/self/fd` exists, through which an unnamed file is linked
/// in without the capability `AT_EMPTY_PATH` needs.
fn proc_available() -> bool {
    static PROC: OnceLock<bool> = OnceLock::new();
    *PROC.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir())
}

impl<'d> TempFile<'d> {
    /// Creates a new, empty, private (0600) file in `dir`, unnamed where the
    /// file system allows it.
    pub fn create(dir: BorrowedFd<'d>) -> Result<TempFile<'d>, OpError> {
        let flags = OFlags::WRONLY | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        if proc_available() {
            match rfs::openat(dir, c".", flags | OFlags::TMPFILE, mode) {
                Ok(fd) => {
                    let name = TempName { dir, name: None };
                    return Ok(TempFile { fd, name });
                }
                // Not supported by this file system or kernel: named.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {}
                Err(e) => return Err(e).op("create temporary file"),
            }
        }
        let (fd, tmp) = create_named(dir)?;
        let name = TempName {
            dir,
            name: Some(tmp),
        };
        Ok(TempFile { fd, name })
    }

    /// The open file, to write into.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Puts the file in place as `target`, replacing what is there, and
    /// returns its handle. An unnamed file that has nothing to replace is
    /// linked straight in; otherwise it gets a random name first and is
    /// renamed over the target, which is atomic.
    pub fn commit(self, target: &CStr) -> Result<OwnedFd, OpError> {
        let TempFile { fd, mut name } = self;
        let dir = name.dir;
        if name.name.is_none() {
            match link_as(&fd, dir, target) {
                Ok(()) => return Ok(fd),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e).op("link into place"),
            }
            loop {
                let tmp = random_name();
                match link_as(&fd, dir, &tmp) {
                    Ok(()) => {
                        name.name = Some(tmp);
                        break;
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e).op("link into place"),
                }
            }
        }
        let tmp = name.name.as_deref().expect("named by now");
        rfs::renameat(dir, tmp, dir, target).op("rename into place")?;
        name.name = None;
        Ok(fd)
    }
}

/// Creates a new, empty, private file in `dir` under a fresh random name
/// (for probes, which must see the file by name as a listing does). The
/// caller removes it.
pub fn create_named(dir: BorrowedFd<'_>) -> Result<(OwnedFd, CString), OpError> {
    loop {
        let name = random_name();
        match rfs::openat(
            dir,
            &name,
            OFlags::WRONLY | OFlags::CLOEXEC | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((fd, name)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e).op("create temporary file"),
        }
    }
}

/// Gives the unnamed file `fd` the name `name` in `dir`; fails if it exists.
fn link_as(fd: &OwnedFd, dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<()> {
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rfs::linkat(
        rfs::CWD,
        source.as_str(),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let name = random_name();
        assert!(is_temp_name(name.as_bytes()), "{name:?}");
        assert_ne!(random_name(), random_name());
        assert!(is_temp_name(b".foldersync-12-0.tmp"));
        assert!(is_temp_name(b".foldersync-0123456789abcdef.tmp"));
        assert!(!is_temp_name(b".foldersync-0123456789abcde.tmp"));
        assert!(!is_temp_name(b".foldersync-12.tmp"));
        assert!(!is_temp_name(b".foldersync-a-1.tmp"));
        assert!(!is_temp_name(b"foldersync-1-2.tmp"));
        assert!(!is_temp_name(b".foldersync-1-2.tmp.bak"));
    }

    #[test]
    fn a_tagged_name_carries_its_tag_only_while_the_guard_lives() {
        {
            let _tagged = tag_temporaries(0xabc);
            let name = random_name();
            assert!(is_temp_name(name.as_bytes()), "{name:?}");
            assert_eq!(temp_tag(name.as_bytes()), Some(0xabc));
        }
        assert_eq!(temp_tag(random_name().as_bytes()), None);
        assert_eq!(temp_tag(b".foldersync-0123456789abcdef.tmp"), None);
        assert_eq!(temp_tag(b".foldersync-1234-5.tmp"), None);
        assert_eq!(
            temp_tag(b".foldersync-00000000000000ff-0123456789abcdef.tmp"),
            Some(255)
        );
        assert_eq!(
            temp_tag(b".foldersync-00000000000000ff-0123456789abcde.tmp"),
            None
        );
    }
}
