//! foldersync benchmark: foldersync `--once` against `rsync -a --delete`,
//! `cp -a` (initial copy only) and two lower bounds, on workloads generated
//! deterministically from a seed.
//!
//! Run: `cargo run --release --example bench -- [--quick] [--seed N]
//! [--dir DIR] [--reps N] [--workloads small,large] [--keep] [--files N]
//! [--generate-only] [--baseline BIN] [--no-cache-limit]`.
//! Linux only (ptrace, /proc). See bench/README.md.
//!
//! Tools, each run as its own process tree with stdout and stderr sent to
//! files on /dev/shm:
//! - foldersync: `target/release/foldersync --once SRC DST 1 LOG`, LOG on
//!   /dev/shm. Every run is a fresh process with an empty cache, as a cron
//!   job would run it (the cache-limit scenario, below, runs it as a
//!   daemon), with `XDG_STATE_HOME=DIR/state/foldersync`: its state file
//!   is kept from run to run, on the trees' file system.
//! - baseline (`--baseline BIN`): another foldersync build, run the same
//!   way right after foldersync, with a state folder of its own
//!   (`DIR/state/baseline`), so any change can be shown against the build
//!   before it in one run, under the same load.
//! - rsync: `rsync -a --delete SRC/ DST/`.
//! - cp: `cp -a SRC/. DST/` (initial scenario only).
//! - stat-walk (lower bound): `find SRC DST -printf '%s %T@\n' > /dev/null`.
//! - md5 (lower bound): `find SRC DST -type f -print0 | xargs -0 -P2 -n N
//!   md5sum > /dev/null`, the pipe built here (no shell); `-n` is 500 for the
//!   small workload and a quarter of the file count for the large one, so
//!   that both cores hash (with -n 500, 16 large files would go to one
//!   md5sum).
//!
//! Workloads (files get random bytes and mtimes from the seed):
//! - small: 100,000 files of 1 to 16 KiB in about 5,000 folders up to 4
//!   deep, plus 50 empty folders and 500 symlinks (one in ten dangling);
//!   quick mode: 5,000 files in 250 folders.
//! - large: 8 files of 128 MiB (quick: 2).
//!
//! Scenarios, each on a replica reset (untimed) before every timed run:
//! - initial: no replica (removed; the lower bounds get an empty folder).
//! - no-change: the replica is an exact `cp -a` copy (nothing to reset).
//!   A run under 50 ms (the large workload's 8 files) is at the clock's
//!   resolution, so it is run 21 times in a row and the median is that
//!   repetition's wall time (`runs=21` in its RESULT line; RSS and written
//!   bytes from the first).
//! - churn: 1% of the files modified (half keeping their size), 1% added,
//!   1% deleted (at least one each), re-applied to the source from the seed
//!   before each repetition; the replica is put back to the pre-churn mirror
//!   with `rsync -aU --delete PRISTINE/ DST/` (a `cp -a` copy of the
//!   original source, so only the churned entries are rewritten).
//! - touch: every source file's mtime moved by a day, bytes unchanged; the
//!   replica is put back by restoring the recorded mtimes.
//!
//! Cache-limit, small workload only, right after no-change on the mirror it
//! leaves (verified; nothing to reset, and nothing changes): `--once` starts
//! with an empty cache every time, so `--cache-limit` is measured on
//! foldersync as a daemon, `foldersync --no-menu -v [--cache-limit L] SRC
//! DST 0.5 LOG` (LOG on /dev/shm, stdout and stderr to /dev/null), first
//! without a limit, then with L a tenth of the bytes the first run's cache
//! held. Each run lasts until the log shows 2 x reps passes after the first
//! (at least 4 in full mode; the first pass fills the cache), polled every
//! 50 ms; then the bench reads `VmHWM` from /proc/PID/status (peak RSS,
//! first pass included), sends SIGTERM and waits for the exit. From the log:
//! each later pass's duration from its `pass finished in X s` summary (at
//! debug level when there is nothing to do, hence `-v`): foldersync's own
//! timing, without process start; and the `cache holds N files in B bytes;
//! E evicted` line logged at stop. Not traced: no written bytes.
//!
//! How each number is measured. Every task (process and thread) of a tool's
//! tree is traced with ptrace (PTRACE_TRACEME before exec; fork, vfork,
//! clone, exec and exit events only, never system calls, so the tools run
//! at full speed between those events). At each task's exit event, when it
//! is stopped just before it releases its memory, the bench reads:
//! - `VmHWM` from /proc/PID/status (processes): that process's peak RSS;
//! - `write_bytes` from /proc/PID/io (processes): the bytes of page cache
//!   its threads dirtied, i.e. what it caused to be written to a disk. It
//!   counts `write`, `copy_file_range` and splice copies alike (`wchar`
//!   misses in-kernel copies) and is page-granular (a 5 KiB file counts
//!   8 KiB). It also holds the counts of the children the process reaped,
//!   which the bench subtracts (rsync's receiver would count twice). An
//!   earlier version summed per-thread counts (/proc/TGID/task/TID/io at
//!   each thread's exit) and lost some of foldersync's helper threads'
//!   bytes now and then. On a file system without a journal (this machine's
//!   ext4) it also counts metadata blocks the tool dirtied (inode tables,
//!   folders, bitmaps); with a journal, jbd2 writes those instead. The
//!   tools' output goes to /dev/null or /dev/shm (tmpfs dirties no
//!   accountable pages), and every file, folder and symlink of both trees
//!   gets an access time in the future so reading does not update atimes
//!   (relatime); so this is the bytes written to the replica. In the touch
//!   scenario the bench also reports the floor a pure mtime fix costs: the
//!   bytes its own reset (set every replica mtime back) dirties.
//!
//! - wall time: from just before the first process is spawned until the last
//!   process of the tree has been reaped.
//! - peak RSS: the largest sum, over any moment, of the `VmHWM` of the
//!   processes alive at that moment (each process counted for its whole
//!   life). For rsync, whose three processes live together, that is the sum
//!   of the three peaks; for xargs' short-lived md5sum processes it is not
//!   the sum of all of them, only of those that overlap. Shared pages are
//!   counted in every process that maps them, as the kernel's RSS does.
//! - written bytes: the sum of `write_bytes` over the tree.
//!
//! Warm cache: page caches are never dropped. Before each scenario one
//! untimed md5 pass reads both trees (data and metadata) into the cache.
//! Before every timed run the replica is reset (untimed) and `sync` is
//! called (untimed), so write-back left over from setup does not land in the
//! timed run; the timed run itself does not include write-back of what it
//! wrote (as for a user, the kernel flushes it later).
//!
//! Tools are interleaved: in repetition r the tool order is rotated by r.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A no-change run shorter than this (seconds) is repeated
/// `SHORT_RUN_REPEATS` times in all and its median taken as the
/// repetition's wall time.
const SHORT_RUN_S: f64 = 0.05;
const SHORT_RUN_REPEATS: usize = 21;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Folder mtime set after generation (and restored), so that the only
/// difference in the touch scenario is the files' mtimes.
const DIR_MTIME: u64 = 1_700_000_000;
/// How far the touch scenario moves every file's mtime.
const TOUCH_DELTA: u64 = 86_400;

// ---------------------------------------------------------------- options

struct Args {
    quick: bool,
    seed: u64,
    dir: PathBuf,
    reps: usize,
    workloads: Vec<String>,
    keep: bool,
    /// Overrides the small workload's file count (folders: one per 20).
    files: Option<usize>,
    /// Generate SRC (and its pristine copy) under --dir, then stop.
    generate_only: bool,
    /// A second foldersync binary (an older build) run side by side.
    baseline: Option<PathBuf>,
    /// Leave out the cache-limit scenario (a daemon, foldersync only).
    no_cache_limit: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo run --release --example bench -- [--quick] [--seed N] [--dir DIR] \
         [--reps N] [--workloads small,large] [--keep] [--files N] [--generate-only] \
         [--baseline BIN] [--no-cache-limit]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        seed: 1,
        dir: PathBuf::from("/tmp/foldersync-bench"),
        reps: 0,
        workloads: vec!["small".into(), "large".into()],
        keep: false,
        files: None,
        generate_only: false,
        baseline: None,
        no_cache_limit: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--quick" => args.quick = true,
            "--keep" => args.keep = true,
            "--generate-only" => args.generate_only = true,
            "--no-cache-limit" => args.no_cache_limit = true,
            "--baseline" => args.baseline = Some(PathBuf::from(value())),
            "--files" => args.files = Some(value().parse().unwrap_or_else(|_| usage())),
            "--seed" => args.seed = value().parse().unwrap_or_else(|_| usage()),
            "--dir" => args.dir = PathBuf::from(value()),
            "--reps" => args.reps = value().parse().unwrap_or_else(|_| usage()),
            "--workloads" => {
                args.workloads = value().split(',').map(str::to_string).collect();
                if args.workloads.iter().any(|w| w != "small" && w != "large") {
                    usage()
                }
            }
            _ => usage(),
        }
    }
    if args.reps == 0 {
        args.reps = if args.quick { 2 } else { 3 };
    }
    args
}

// ---------------------------------------------------------------- random

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Inclusive range.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// A sub-seed for one purpose.
fn mix(seed: u64, what: u64) -> u64 {
    Rng::new(seed ^ what.wrapping_mul(0xD1B5_4A32_D192_ED03)).next()
}

// ---------------------------------------------------------------- workloads

#[derive(Clone)]
struct FileSpec {
    path: String,
    size: u64,
    mode: u32,
    mtime: (u64, u32),
}

struct Churn {
    /// (file index, new size).
    modified: Vec<(usize, u64)>,
    deleted: Vec<usize>,
    added: Vec<FileSpec>,
}

struct Workload {
    name: &'static str,
    seed: u64,
    /// Relative folder paths, parents before children; "" is the root.
    dirs: Vec<String>,
    files: Vec<FileSpec>,
    symlinks: Vec<(String, String)>,
    churn: Churn,
}

impl Workload {
    fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// 1 to 16 KiB files in about `n_dirs` folders up to 4 deep, plus 1% more
/// folders left empty and one symlink per 200 files (one in ten dangling).
fn small_workload(seed: u64, n_files: usize, n_dirs: usize) -> Workload {
    let mut rng = Rng::new(mix(seed, 1));
    let mut dirs = vec![String::new()];
    let mut depth = vec![0usize];
    // Folders that may still get a subfolder (depth < 4).
    let mut open = vec![0usize];
    for i in 1..n_dirs {
        let parent = open[rng.below(open.len() as u64) as usize];
        dirs.push(join(&dirs[parent], &format!("d{i:05}")));
        depth.push(depth[parent] + 1);
        if depth[parent] + 1 < 4 {
            open.push(i);
        }
    }
    let exts = ["txt", "dat", "json", "rs", "jpg", "md"];
    let mut files = Vec::with_capacity(n_files);
    for i in 0..n_files {
        let d = rng.below(n_dirs as u64) as usize;
        let ext = exts[rng.below(exts.len() as u64) as usize];
        files.push(FileSpec {
            path: join(&dirs[d], &format!("f{i:06}.{ext}")),
            size: rng.range(KIB, 16 * KIB),
            mode: if rng.below(50) == 0 { 0o755 } else { 0o644 },
            mtime: (
                1_500_000_000 + rng.below(150_000_000),
                rng.below(1_000_000_000) as u32,
            ),
        });
    }
    // Empty folders, created after the files were placed so nothing lands in
    // them.
    for k in 0..n_dirs / 100 {
        let parent = open[rng.below(open.len() as u64) as usize];
        dirs.push(join(&dirs[parent], &format!("empty{k:04}")));
    }
    let mut symlinks = Vec::new();
    for k in 0..n_files / 200 {
        let d = rng.below(n_dirs as u64) as usize;
        let up = "../".repeat(depth[d]);
        let target = if k % 10 == 9 {
            format!("missing-{k}")
        } else {
            format!("{up}{}", files[rng.below(n_files as u64) as usize].path)
        };
        symlinks.push((join(&dirs[d], &format!("link{k:04}")), target));
    }
    let churn = make_churn(seed, &files, &dirs[..n_dirs], |rng, old| {
        let mut s = rng.range(KIB, 16 * KIB);
        if s == old {
            s = if old > KIB { old - 1 } else { old + 1 };
        }
        s
    });
    Workload {
        name: "small",
        seed,
        dirs,
        files,
        symlinks,
        churn,
    }
}

/// `n` files of 128 MiB at the root.
fn large_workload(seed: u64, n: usize) -> Workload {
    let mut rng = Rng::new(mix(seed, 2));
    let dirs = vec![String::new()];
    let files: Vec<FileSpec> = (0..n)
        .map(|i| FileSpec {
            path: format!("big{i:02}.bin"),
            size: 128 * MIB,
            mode: 0o644,
            mtime: (
                1_500_000_000 + rng.below(150_000_000),
                rng.below(1_000_000_000) as u32,
            ),
        })
        .collect();
    let churn = make_churn(seed, &files, &dirs, |_, old| old + MIB);
    Workload {
        name: "large",
        seed,
        dirs,
        files,
        symlinks: Vec::new(),
        churn,
    }
}

/// 1% of the files modified (the first half of those keep their size), 1%
/// deleted, 1% added; at least one of each.
fn make_churn(
    seed: u64,
    files: &[FileSpec],
    dirs: &[String],
    other_size: impl Fn(&mut Rng, u64) -> u64,
) -> Churn {
    let mut rng = Rng::new(mix(seed, 3));
    let n = files.len();
    let k = (n / 100).max(1);
    let mut idx: Vec<usize> = (0..n).collect();
    // Partial Fisher-Yates: the first 2k are a random sample.
    for i in 0..(2 * k).min(n) {
        let j = i + rng.below((n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let same = k.div_ceil(2);
    let modified = idx[..k]
        .iter()
        .enumerate()
        .map(|(m, &i)| {
            let size = if m < same {
                files[i].size
            } else {
                other_size(&mut rng, files[i].size)
            };
            (i, size)
        })
        .collect();
    let deleted = idx[k..(2 * k).min(n)].to_vec();
    let template = &files[0];
    let added = (0..k)
        .map(|a| {
            let d = rng.below(dirs.len() as u64) as usize;
            let size = if template.size >= MIB {
                template.size
            } else {
                rng.range(KIB, 16 * KIB)
            };
            FileSpec {
                path: join(&dirs[d], &format!("new{a:06}.dat")),
                size,
                mode: 0o644,
                mtime: (0, 0), // set to now when written
            }
        })
        .collect();
    Churn {
        modified,
        deleted,
        added,
    }
}

// ---------------------------------------------------------------- trees

/// Every file, folder and symlink gets this access time (year 2096): with
/// `relatime`, reading a file whose atime is not older than its mtime and
/// ctime, nor a day old, leaves the inode alone. Without it the first read
/// after a reset dirties inode blocks, which would count as written bytes of
/// whatever tool reads first, even the read-only lower bounds.
const FUTURE_ATIME: i64 = 4_000_000_000;

/// Sets `path`'s access time to [`FUTURE_ATIME`] and, when given, its mtime;
/// does not follow symlinks.
fn set_times(path: &Path, mtime: Option<(u64, u32)>) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};
    let last_modification = match mtime {
        Some((sec, nsec)) => Timespec {
            tv_sec: sec as i64,
            tv_nsec: nsec as _,
        },
        None => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    };
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: FUTURE_ATIME,
            tv_nsec: 0,
        },
        last_modification,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Writes file `id`'s bytes for `version` (0 = base, 1 = churned).
fn write_file(
    root: &Path,
    seed: u64,
    id: u64,
    version: u64,
    f: &FileSpec,
    mtime: Option<(u64, u32)>,
) -> io::Result<()> {
    let path = root.join(&f.path);
    let mut rng = Rng::new(mix(mix(seed, 1000 + id), version));
    let mut out = File::create(&path)?;
    let mut buf = vec![0u8; (f.size.min(MIB)) as usize];
    let mut left = f.size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.set_permissions(fs::Permissions::from_mode(f.mode))?;
    drop(out);
    set_times(&path, mtime)
}

fn set_dir_times(w: &Workload, root: &Path) -> io::Result<()> {
    for d in w.dirs.iter().rev() {
        set_times(&root.join(d), Some((DIR_MTIME, 0)))?;
    }
    Ok(())
}

fn generate(w: &Workload, root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    for d in &w.dirs[1..] {
        fs::create_dir(root.join(d))?;
    }
    for (i, f) in w.files.iter().enumerate() {
        write_file(root, w.seed, i as u64, 0, f, Some(f.mtime))?;
    }
    for (path, target) in &w.symlinks {
        symlink(target, root.join(path))?;
        set_times(&root.join(path), None)?;
    }
    set_dir_times(w, root)
}

/// Puts the source in the churned state (idempotent: run before each rep).
fn apply_churn(w: &Workload, root: &Path) -> io::Result<()> {
    let c = &w.churn;
    for &(i, size) in &c.modified {
        let f = FileSpec {
            size,
            ..w.files[i].clone()
        };
        write_file(root, w.seed, i as u64, 1, &f, None)?;
    }
    for &i in &c.deleted {
        match fs::remove_file(root.join(&w.files[i].path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    for (a, f) in c.added.iter().enumerate() {
        write_file(root, w.seed, (w.files.len() + a) as u64, 0, f, None)?;
    }
    Ok(())
}

/// Back to the base state.
fn revert_churn(w: &Workload, root: &Path) -> io::Result<()> {
    let c = &w.churn;
    for &i in c.modified.iter().map(|(i, _)| i).chain(&c.deleted) {
        let f = &w.files[i];
        write_file(root, w.seed, i as u64, 0, f, Some(f.mtime))?;
    }
    for f in &c.added {
        match fs::remove_file(root.join(&f.path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    set_dir_times(w, root)
}

/// Sets every file's mtime to its base mtime moved by `delta` seconds.
fn set_file_times(w: &Workload, root: &Path, delta: u64) -> io::Result<()> {
    for f in &w.files {
        let (s, ns) = f.mtime;
        set_times(&root.join(&f.path), Some((s + delta, ns)))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- tracing

/// One traced task: a process (thread-group leader) or a thread.
#[derive(Default)]
struct Task {
    start: Option<Instant>,
    end: Option<Instant>,
    /// Whether this is a thread-group leader (a process), known at exit.
    leader: bool,
    /// The process's peak RSS (leaders only).
    hwm_kb: u64,
    /// A process's write_bytes at its exit, all its threads and the
    /// children it reaped included (leaders only).
    write_bytes: u64,
    /// The process that forked this one, when it is a traced process.
    parent: Option<i32>,
    /// When its exit event came.
    exit_event: Option<Instant>,
    top: bool,
    first_stop_seen: bool,
    status: Option<i32>,
}

struct Measured {
    wall: f64,
    rss_kb: u64,
    written: u64,
    /// Processes in the tree.
    procs: usize,
    /// Exit status of each top process, in order.
    status: String,
    ok: bool,
}

/// One command of a pipeline: argv; `pipe_to_next` sends stdout to the next
/// command's stdin, otherwise stdout goes to /dev/null.
struct Cmd {
    argv: Vec<OsString>,
    pipe_to_next: bool,
    /// One variable set for it (foldersync's state folder).
    env: Option<(OsString, OsString)>,
}

fn cmd(argv: &[&dyn AsRef<std::ffi::OsStr>]) -> Cmd {
    Cmd {
        argv: argv.iter().map(|a| a.as_ref().to_os_string()).collect(),
        pipe_to_next: false,
        env: None,
    }
}

/// The first number after `key` in a /proc file, or 0.
fn proc_field(path: &str, key: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn ptrace(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> libc::c_long {
    // SAFETY: plain ptrace requests on our own tracees; `addr`/`data` are
    // integers or point to a live local.
    unsafe {
        libc::ptrace(
            req,
            pid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    }
}

/// The bytes a traced tree wrote: each process's count at its exit, less
/// the counts of the children it had reaped by then (already in it).
fn written_bytes(tasks: &HashMap<i32, Task>) -> u64 {
    let mut total: i64 = 0;
    for (pid, t) in tasks.iter().filter(|(_, t)| t.leader) {
        total += t.write_bytes as i64;
        for child in tasks
            .values()
            .filter(|c| c.leader && c.parent == Some(*pid))
        {
            if let (Some(ended), Some(exit)) = (child.end, t.exit_event) {
                if ended <= exit {
                    total -= child.write_bytes as i64;
                }
            }
        }
    }
    total.max(0) as u64
}

/// Runs a pipeline under ptrace and measures it (see the header).
///
/// Every task of the tree, threads included, is traced. At a process's
/// exit event (its last thread, the leader, is stopped before it gives up
/// its memory) the bench reads its `VmHWM` and its `write_bytes` from
/// /proc/PID/io: that counts every thread it had, living or ended, plus
/// the children it reaped, which are subtracted (each is counted at its
/// own exit), so nothing is counted twice. Summing per-thread counts read
/// at each thread's exit instead lost some of foldersync's helper
/// threads' bytes now and then (a 1 GiB copy counted as 640 MiB), while
/// /proc/PID/io of the same copy always said 1 GiB.
fn measure(cmds: Vec<Cmd>, stderr_path: &Path) -> io::Result<Measured> {
    let mut tasks: HashMap<i32, Task> = HashMap::new();
    let mut tops = Vec::new();
    let mut alive = 0usize;
    let stderr = File::create(stderr_path)?;
    let t0 = Instant::now();
    let mut prev_stdout: Option<std::process::ChildStdout> = None;
    for c in cmds {
        let mut command = Command::new(&c.argv[0]);
        command.args(&c.argv[1..]).stderr(stderr.try_clone()?);
        if let Some((key, value)) = &c.env {
            command.env(key, value);
        }
        command.stdin(match prev_stdout.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::null(),
        });
        command.stdout(if c.pipe_to_next {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::ptrace(
                    libc::PTRACE_TRACEME,
                    0,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                ) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        prev_stdout = child.stdout.take();
        let pid = child.id() as i32;
        // The child is reaped below with waitpid, never through `child`.
        drop(child);
        tops.push(pid);
        tasks.insert(
            pid,
            Task {
                start: Some(Instant::now()),
                top: true,
                ..Task::default()
            },
        );
        alive += 1;
    }
    let options = libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_TRACEEXIT
        | libc::PTRACE_O_EXITKILL;
    let mut last = t0;
    while alive > 0 {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`.
        let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        let now = Instant::now();
        if tid < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        last = now;
        let t = tasks.entry(tid).or_default();
        if t.start.is_none() {
            // A new task whose first stop came before its creator's event.
            t.start = Some(now);
            alive += 1;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            t.end = Some(now);
            t.status = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
            alive -= 1;
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        let mut deliver = 0;
        if !t.first_stop_seen {
            t.first_stop_seen = true;
            if t.top {
                // The SIGTRAP after exec: start following.
                ptrace(libc::PTRACE_SETOPTIONS, tid, 0, options as usize);
            } else if sig != libc::SIGSTOP {
                deliver = sig;
            }
        } else if event == libc::PTRACE_EVENT_FORK
            || event == libc::PTRACE_EVENT_VFORK
            || event == libc::PTRACE_EVENT_CLONE
        {
            let mut new: libc::c_ulong = 0;
            ptrace(
                libc::PTRACE_GETEVENTMSG,
                tid,
                0,
                &mut new as *mut _ as usize,
            );
            let parent = (event != libc::PTRACE_EVENT_CLONE)
                .then(|| proc_field(&format!("/proc/{tid}/status"), "Tgid:") as i32);
            let n = tasks.entry(new as i32).or_default();
            if n.start.is_none() {
                n.start = Some(now);
                alive += 1;
            }
            n.parent = n.parent.or(parent);
        } else if event == libc::PTRACE_EVENT_EXIT {
            let tgid = proc_field(&format!("/proc/{tid}/status"), "Tgid:") as i32;
            t.leader = tgid == tid;
            t.exit_event = Some(now);
            if t.leader {
                t.hwm_kb = proc_field(&format!("/proc/{tid}/status"), "VmHWM:");
                t.write_bytes = proc_field(&format!("/proc/{tid}/io"), "write_bytes:");
            }
        } else if event != libc::PTRACE_EVENT_EXEC {
            deliver = sig;
        }
        ptrace(libc::PTRACE_CONT, tid, 0, deliver as usize);
    }
    let wall = last.duration_since(t0).as_secs_f64();
    // Peak of the summed VmHWM of the processes alive together.
    let mut events: Vec<(Instant, i64)> = Vec::new();
    for t in tasks.values().filter(|t| t.leader) {
        if let (Some(s), Some(e)) = (t.start, t.end) {
            events.push((s, t.hwm_kb as i64));
            events.push((e, -(t.hwm_kb as i64)));
        }
    }
    events.sort();
    let (mut sum, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        sum += d;
        peak = peak.max(sum);
    }
    let statuses: Vec<i32> = tops.iter().map(|t| tasks[t].status.unwrap_or(-1)).collect();
    Ok(Measured {
        wall,
        rss_kb: peak as u64,
        written: written_bytes(&tasks),
        procs: tasks.values().filter(|t| t.leader).count(),
        ok: statuses.iter().all(|&s| s == 0),
        status: statuses
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(","),
    })
}

// ---------------------------------------------------------------- tools

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Foldersync,
    /// `--baseline BIN`: another foldersync build, run exactly as
    /// foldersync is.
    Baseline,
    Rsync,
    Cp,
    StatWalk,
    Md5,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Foldersync => "foldersync",
            Tool::Baseline => "baseline",
            Tool::Rsync => "rsync",
            Tool::Cp => "cp",
            Tool::StatWalk => "stat-walk",
            Tool::Md5 => "md5",
        }
    }
    /// Whether it changes the replica.
    fn writes(self) -> bool {
        matches!(
            self,
            Tool::Foldersync | Tool::Baseline | Tool::Rsync | Tool::Cp
        )
    }
    /// Whether it is a foldersync build (with a log file and a state
    /// folder of its own).
    fn is_foldersync(self) -> bool {
        matches!(self, Tool::Foldersync | Tool::Baseline)
    }
}

struct Env {
    foldersync: PathBuf,
    /// `--baseline BIN`.
    baseline: Option<PathBuf>,
    /// Each foldersync build's state folder (`XDG_STATE_HOME`) lives
    /// under this, on the trees' file system, so the two builds never
    /// share a pair's state file.
    state: PathBuf,
    /// Files per md5sum call: enough batches for both cores to stay busy
    /// (500 for the small workload, 1 or 2 for the large one).
    md5_batch: std::cell::Cell<usize>,
    /// Scratch on /dev/shm: foldersync's log file, tools' stderr.
    shm: PathBuf,
}

impl Env {
    fn log(&self) -> PathBuf {
        self.shm.join("foldersync.log")
    }
    fn tool_log(&self, tool: Tool) -> PathBuf {
        self.shm.join(format!("{}.log", tool.name()))
    }
    /// The tools of a scenario, with the baseline right after foldersync.
    fn tools(&self, s: Scenario) -> Vec<Tool> {
        let mut t = s.tools();
        if self.baseline.is_some() {
            t.insert(1, Tool::Baseline);
        }
        t
    }
    fn stderr(&self, tool: Tool) -> PathBuf {
        self.shm.join(format!("{}.stderr", tool.name()))
    }
}

fn with_slash(p: &Path, tail: &str) -> OsString {
    let mut s = p.as_os_str().to_os_string();
    s.push(tail);
    s
}

fn tool_cmds(env: &Env, tool: Tool, src: &Path, dst: &Path) -> Vec<Cmd> {
    match tool {
        Tool::Foldersync | Tool::Baseline => {
            let bin = match tool {
                Tool::Baseline => env.baseline.as_ref().expect("--baseline"),
                _ => &env.foldersync,
            };
            let mut c = cmd(&[&bin, &"--once", &src, &dst, &"1", &env.tool_log(tool)]);
            c.env = Some(("XDG_STATE_HOME".into(), env.state.join(tool.name()).into()));
            vec![c]
        }
        Tool::Rsync => vec![cmd(&[
            &"rsync",
            &"-a",
            &"--delete",
            &with_slash(src, "/"),
            &with_slash(dst, "/"),
        ])],
        Tool::Cp => vec![cmd(&[
            &"cp",
            &"-a",
            &with_slash(src, "/."),
            &with_slash(dst, "/"),
        ])],
        Tool::StatWalk => vec![cmd(&[&"find", &src, &dst, &"-printf", &"%s %T@\\n"])],
        Tool::Md5 => vec![
            Cmd {
                pipe_to_next: true,
                ..cmd(&[&"find", &src, &dst, &"-type", &"f", &"-print0"])
            },
            cmd(&[
                &"xargs",
                &"-0",
                &"-P2",
                &"-n",
                &env.md5_batch.get().to_string(),
                &"md5sum",
            ]),
        ],
    }
}

fn run_tool(env: &Env, tool: Tool, src: &Path, dst: &Path) -> io::Result<Measured> {
    if tool.is_foldersync() {
        let _ = fs::remove_file(env.tool_log(tool));
    }
    let m = measure(tool_cmds(env, tool, src, dst), &env.stderr(tool))?;
    if !m.ok {
        let err = fs::read_to_string(env.stderr(tool)).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        println!(
            "# WARNING: {} exited with status {}; stderr ends: {:?}",
            tool.name(),
            m.status,
            tail
        );
    }
    Ok(m)
}

// ---------------------------------------------------------------- helpers

fn run(argv: &[&dyn AsRef<std::ffi::OsStr>]) -> io::Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed: {}",
            argv.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn remove_tree(p: &Path) -> io::Result<()> {
    if fs::symlink_metadata(p).is_ok() {
        run(&[&"rm", &"-rf", &p])?;
    }
    Ok(())
}

/// Bytes of page cache this thread has dirtied so far.
fn own_write_bytes() -> u64 {
    proc_field("/proc/thread-self/io", "write_bytes:")
}

fn sync_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(argv: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    run(argv)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Lines `rsync -an[c] --delete -i` would change; empty when `dst` mirrors
/// `src` (with `checksum`, bytes compared too).
fn differences(src: &Path, dst: &Path, checksum: bool) -> io::Result<Vec<String>> {
    let flags = if checksum { "-anci" } else { "-ani" };
    let out = run(&[
        &"rsync",
        &flags,
        &"--delete",
        &with_slash(src, "/"),
        &with_slash(dst, "/"),
    ])?;
    Ok(out.lines().map(str::to_string).collect())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib(b: f64) -> String {
    format!("{:.1}", b / MIB as f64)
}

// ---------------------------------------------------------------- scenarios

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Initial,
    NoChange,
    Churn,
    Touch,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Initial => "initial",
            Scenario::NoChange => "no-change",
            Scenario::Churn => "churn",
            Scenario::Touch => "touch",
        }
    }
    fn tools(self) -> Vec<Tool> {
        let mut t = vec![Tool::Foldersync, Tool::Rsync];
        if self == Scenario::Initial {
            t.push(Tool::Cp);
        }
        t.extend([Tool::StatWalk, Tool::Md5]);
        t
    }
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Initial,
    Scenario::NoChange,
    Scenario::Churn,
    Scenario::Touch,
];

struct Row {
    workload: &'static str,
    files: usize,
    tree_bytes: u64,
    scenario: Scenario,
    tool: Tool,
    wall: f64,
    wall_min: f64,
    wall_max: f64,
    rss_kb: f64,
    written: f64,
}

struct Paths {
    src: PathBuf,
    dst: PathBuf,
    pristine: PathBuf,
}

/// Puts the replica back in the state the scenario starts from (before
/// `tool` runs: the lower bounds get an empty replica in the initial
/// scenario).
fn reset_replica(w: &Workload, s: Scenario, p: &Paths, tool: Tool) -> io::Result<()> {
    match s {
        Scenario::Initial => {
            remove_tree(&p.dst)?;
            if !tool.writes() {
                // The lower bounds walk an empty replica.
                fs::create_dir(&p.dst)?;
            }
        }
        Scenario::NoChange => {}
        // Back to the pre-churn mirror: rsync from the pristine copy touches
        // only the entries the tool changed.
        Scenario::Churn => {
            run(&[
                &"rsync",
                &"-aU",
                &"--delete",
                &with_slash(&p.pristine, "/"),
                &with_slash(&p.dst, "/"),
            ])?;
        }
        // Back to the pre-touch mirror: bytes are equal, so restoring the
        // recorded mtimes (and folder mtimes) is enough.
        Scenario::Touch => {
            set_file_times(w, &p.dst, 0)?;
            set_dir_times(w, &p.dst)?;
        }
    }
    Ok(())
}

/// Checks that `dst` mirrors `src` and says so in the output. Symlinks
/// whose only difference is their own mtime (which rsync -a copies and
/// foldersync does not) are counted apart.
fn check_mirror(what: &str, src: &Path, dst: &Path, checksum: bool) -> io::Result<()> {
    let all = differences(src, dst, checksum)?;
    let (link_times, diff): (Vec<String>, Vec<String>) =
        all.into_iter().partition(|l| l.starts_with(".L..t......"));
    let how = if checksum { "c" } else { "" };
    if diff.is_empty() {
        let links = if link_times.is_empty() {
            String::new()
        } else {
            format!(
                " except the mtime of {} symlinks (not copied)",
                link_times.len()
            )
        };
        println!("# verify {what}: OK (rsync -an{how} --delete -i lists no difference{links})");
    } else {
        println!(
            "# verify {what}: {} DIFFERENCES, first: {:?}",
            diff.len(),
            &diff[..diff.len().min(5)]
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- cache limit

/// How long a daemon run may take to log its passes before the bench gives
/// up on it (a pass that fails never logs "pass finished"): far above the
/// few seconds it needs on 100,000 files.
const DAEMON_TIMEOUT_S: u64 = 300;

/// What one foldersync daemon run on a mirror logged and used (see the
/// header).
struct DaemonRun {
    /// `--cache-limit` in bytes; 0 for none.
    limit: u64,
    /// The passes after the first: how many, and their durations as
    /// foldersync logged them.
    passes: usize,
    pass_median: f64,
    pass_min: f64,
    pass_max: f64,
    /// `VmHWM` just before SIGTERM.
    rss_kb: u64,
    /// From the `cache holds` line logged when the pair stopped.
    cache_files: u64,
    cache_bytes: u64,
    evicted: u64,
}

/// The seconds of a `pair N: pass finished in X s: ...` summary line.
fn pass_seconds(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once(": pass finished in ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Files, bytes and evictions from the last `pair N: cache holds F files in
/// B bytes; E evicted` line.
fn cache_line(log: &str) -> Option<(u64, u64, u64)> {
    let (_, rest) = log
        .lines()
        .rev()
        .find_map(|l| l.split_once(": cache holds "))?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words[..] {
        [files, "files", "in", bytes, "bytes;", evicted, "evicted"] => Some((
            files.parse().ok()?,
            bytes.parse().ok()?,
            evicted.parse().ok()?,
        )),
        _ => None,
    }
}

/// The complete lines of a log file being written (a line still being
/// written is left out).
fn read_log(path: &Path) -> String {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    text
}

fn log_tail(text: &str) -> Vec<&str> {
    text.lines().rev().take(5).collect()
}

/// Waits up to `limit` for `child` to exit, polling every 50 ms; kills it
/// if it has not.
fn wait_child(
    child: &mut std::process::Child,
    limit: Duration,
) -> io::Result<Option<std::process::ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `foldersync --no-menu -v [--cache-limit LIMIT] SRC DST 0.5 LOG`
/// until it has logged `passes` passes after the first (which fills the
/// cache), reads its peak RSS, stops it with SIGTERM and reads the rest
/// from its log. Not traced: `VmHWM` is read while it runs, and pass times
/// are foldersync's own (`-v`, because a pass with nothing to do logs its
/// summary at debug level). Without `--once` its cache lasts from pass to
/// pass, which is what `--cache-limit` bounds.
fn run_daemon(
    env: &Env,
    src: &Path,
    dst: &Path,
    limit: Option<u64>,
    passes: usize,
) -> io::Result<DaemonRun> {
    let log = env.log();
    let _ = fs::remove_file(&log);
    let mut command = Command::new(&env.foldersync);
    command.env("XDG_STATE_HOME", env.state.join(Tool::Foldersync.name()));
    command.args(["--no-menu", "-v"]);
    if let Some(limit) = limit {
        command.arg("--cache-limit").arg(limit.to_string());
    }
    let mut child = command
        .arg(src)
        .arg(dst)
        .arg("0.5")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as i32;
    let started = Instant::now();
    loop {
        let text = read_log(&log);
        if text.lines().filter_map(pass_seconds).count() > passes {
            break;
        }
        let problem = if let Some(status) = child.try_wait()? {
            format!("exited early ({status})")
        } else if started.elapsed() > Duration::from_secs(DAEMON_TIMEOUT_S) {
            let _ = child.kill();
            child.wait()?;
            format!("did not log {} passes in {DAEMON_TIMEOUT_S} s", passes + 1)
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        return Err(io::Error::other(format!(
            "foldersync daemon {problem}; its log ends: {:?}",
            log_tail(&text)
        )));
    }
    let rss_kb = proc_field(&format!("/proc/{pid}/status"), "VmHWM:");
    // SAFETY: kill(2) on our own child, not yet reaped.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
        return Err(io::Error::last_os_error());
    }
    match wait_child(&mut child, Duration::from_secs(10))? {
        Some(status) if status.success() => {}
        Some(status) => println!("# WARNING: foldersync daemon exited with {status} on SIGTERM"),
        None => println!("# WARNING: foldersync daemon still running 10 s after SIGTERM: killed"),
    }
    let text = read_log(&log);
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(pass_seconds)
        .skip(1)
        .take(passes)
        .collect();
    let (cache_files, cache_bytes, evicted) = cache_line(&text).ok_or_else(|| {
        io::Error::other(format!(
            "foldersync daemon logged no cache line; its log ends: {:?}",
            log_tail(&text)
        ))
    })?;
    Ok(DaemonRun {
        limit: limit.unwrap_or(0),
        passes: times.len(),
        pass_median: median(&mut times),
        pass_min: times.iter().copied().fold(f64::INFINITY, f64::min),
        pass_max: times.iter().copied().fold(0.0, f64::max),
        rss_kb,
        cache_files,
        cache_bytes,
        evicted,
    })
}

/// The cache-limit scenario, on the mirror the no-change scenario leaves: a
/// daemon without a limit, then one limited to a tenth of the bytes the
/// first one's cache held. Returns [without, with].
fn bench_cache_limit(
    args: &Args,
    env: &Env,
    w: &Workload,
    p: &Paths,
) -> io::Result<[DaemonRun; 2]> {
    println!(
        "# scenario {} / cache-limit: load average {}",
        w.name,
        loadavg()
    );
    let passes = if args.quick {
        2 * args.reps
    } else {
        (2 * args.reps).max(4)
    };
    let full = run_daemon(env, &p.src, &p.dst, None, passes)?;
    print_daemon_result(w, &full)?;
    let limit = (full.cache_bytes / 10).max(1);
    let limited = run_daemon(env, &p.src, &p.dst, Some(limit), passes)?;
    print_daemon_result(w, &limited)?;
    let what = format!("{} cache-limit replica after the daemon runs", w.name);
    check_mirror(&what, &p.src, &p.dst, false)?;
    println!(
        "# {} / cache-limit: limit {} bytes, cache {} bytes ({}); no-change pass median {:.3} s with the limit, {:.3} s without ({:.2}x)",
        w.name,
        limited.limit,
        limited.cache_bytes,
        if limited.cache_bytes <= limited.limit {
            "held"
        } else {
            "NOT held"
        },
        limited.pass_median,
        full.pass_median,
        limited.pass_median / full.pass_median
    );
    Ok([full, limited])
}

fn print_daemon_result(w: &Workload, r: &DaemonRun) -> io::Result<()> {
    println!(
        "RESULT scenario=cache-limit workload={} tool=foldersync limit_bytes={} passes={} pass_s_median={:.3} pass_s_min={:.3} pass_s_max={:.3} rss_kb={} cache_files={} cache_bytes={} evicted={}",
        w.name,
        r.limit,
        r.passes,
        r.pass_median,
        r.pass_min,
        r.pass_max,
        r.rss_kb,
        r.cache_files,
        r.cache_bytes,
        r.evicted
    );
    io::stdout().flush()
}

fn cache_limit_markdown(runs: &[DaemonRun; 2]) -> String {
    let mut out = String::from(
        "| run | limit (bytes) | passes | pass (s) | pass min–max (s) | peak RSS (MiB) | cached files | cache (bytes) | evicted |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, r) in ["no limit", "limit"].iter().zip(runs) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.3} | {:.3}–{:.3} | {:.1} | {} | {} | {} |",
            if r.limit == 0 {
                "–".to_string()
            } else {
                r.limit.to_string()
            },
            r.passes,
            r.pass_median,
            r.pass_min,
            r.pass_max,
            r.rss_kb as f64 / 1024.0,
            r.cache_files,
            r.cache_bytes,
            r.evicted
        );
    }
    out
}

fn bench_workload(
    args: &Args,
    env: &Env,
    w: &Workload,
    rows: &mut Vec<Row>,
    touch_floor: &mut HashMap<&'static str, f64>,
    cache_limit: &mut Option<[DaemonRun; 2]>,
) -> io::Result<()> {
    env.md5_batch.set((w.files.len() / 4).clamp(1, 500));
    let mut floors = Vec::new();
    let base = args.dir.join(w.name);
    let p = Paths {
        src: base.join("src"),
        dst: base.join("dst"),
        pristine: base.join("pristine"),
    };
    remove_tree(&base)?;
    fs::create_dir_all(&base)?;
    let t = Instant::now();
    generate(w, &p.src)?;
    run(&[&"cp", &"-a", &p.src, &p.pristine])?;
    sync_all();
    println!(
        "# workload {}: {} files ({} MiB), {} folders, {} symlinks; churn: {} modified ({} same size), {} added, {} deleted; generated and copied in {:.1} s; md5 bound: xargs -0 -P2 -n {} md5sum",
        w.name,
        w.files.len(),
        mib(w.total_bytes() as f64),
        w.dirs.len(),
        w.symlinks.len(),
        w.churn.modified.len(),
        w.churn
            .modified
            .iter()
            .filter(|(i, s)| w.files[*i].size == *s)
            .count(),
        w.churn.added.len(),
        w.churn.deleted.len(),
        t.elapsed().as_secs_f64(),
        env.md5_batch.get()
    );

    for s in SCENARIOS {
        // The source state and the replica the scenario starts from.
        match s {
            Scenario::Initial => remove_tree(&p.dst)?,
            Scenario::NoChange => {
                remove_tree(&p.dst)?;
                run(&[&"cp", &"-a", &p.pristine, &p.dst])?;
            }
            Scenario::Churn => apply_churn(w, &p.src)?,
            Scenario::Touch => {
                revert_churn(w, &p.src)?;
                set_file_times(w, &p.src, TOUCH_DELTA)?;
            }
        }
        if s == Scenario::Churn || s == Scenario::Touch {
            // Whatever the previous scenario left: back to the pre-change mirror.
            reset_replica(w, Scenario::Churn, &p, Tool::Foldersync)?;
            let what = format!("{} {} replica reset", w.name, s.name());
            check_mirror(&what, &p.pristine, &p.dst, false)?;
        }
        println!(
            "# scenario {} / {}: load average {}",
            w.name,
            s.name(),
            loadavg()
        );
        // Warm-up: read both trees once, untimed.
        if s == Scenario::Initial {
            fs::create_dir(&p.dst)?;
        }
        sync_all();
        run_tool(env, Tool::Md5, &p.src, &p.dst)?;
        let mut dirty = true;
        let tools = env.tools(s);
        let mut results: HashMap<&'static str, Vec<Measured>> = HashMap::new();
        let mut verified = Vec::new();
        for rep in 0..args.reps {
            if s == Scenario::Churn {
                apply_churn(w, &p.src)?;
            }
            for k in 0..tools.len() {
                let tool = tools[(k + rep) % tools.len()];
                if s == Scenario::Touch && dirty {
                    // What setting every replica mtime back costs in
                    // written bytes (inode blocks): the floor for a tool
                    // that fixes mtimes without rewriting data.
                    sync_all();
                    let before = own_write_bytes();
                    reset_replica(w, s, &p, tool)?;
                    floors.push((own_write_bytes() - before) as f64);
                } else if dirty || s == Scenario::Initial {
                    reset_replica(w, s, &p, tool)?;
                }
                sync_all();
                let mut m = run_tool(env, tool, &p.src, &p.dst)?;
                // A run of a few milliseconds is at the clock's and the
                // scheduler's resolution: where running again changes
                // nothing (no-change), take the median of several.
                let mut runs = 1;
                if s == Scenario::NoChange && m.wall < SHORT_RUN_S {
                    let mut walls = vec![m.wall];
                    for _ in 1..SHORT_RUN_REPEATS {
                        walls.push(run_tool(env, tool, &p.src, &p.dst)?.wall);
                    }
                    runs = walls.len();
                    m.wall = median(&mut walls);
                }
                println!(
                    "RESULT scenario={} workload={} tool={} rep={} wall_s={:.4} rss_kb={} written_bytes={} procs={} exit={} runs={}",
                    s.name(),
                    w.name,
                    tool.name(),
                    rep + 1,
                    m.wall,
                    m.rss_kb,
                    m.written,
                    m.procs,
                    m.status,
                    runs
                );
                io::stdout().flush()?;
                dirty = tool.writes() && s != Scenario::NoChange;
                if tool.is_foldersync() && !verified.contains(&tool) {
                    verified.push(tool);
                    let what = format!("{} {} {}", tool.name(), w.name, s.name());
                    check_mirror(&what, &p.src, &p.dst, true)?;
                }
                results.entry(tool.name()).or_default().push(m);
            }
        }
        if s == Scenario::NoChange {
            let what = format!("{} no-change replica after all runs", w.name);
            check_mirror(&what, &p.src, &p.dst, false)?;
        }
        for &tool in &tools {
            let ms = &results[tool.name()];
            let mut wall: Vec<f64> = ms.iter().map(|m| m.wall).collect();
            let mut rss: Vec<f64> = ms.iter().map(|m| m.rss_kb as f64).collect();
            let mut written: Vec<f64> = ms.iter().map(|m| m.written as f64).collect();
            rows.push(Row {
                workload: w.name,
                files: w.files.len(),
                tree_bytes: w.total_bytes(),
                scenario: s,
                tool,
                wall: median(&mut wall),
                wall_min: wall.iter().copied().fold(f64::INFINITY, f64::min),
                wall_max: wall.iter().copied().fold(0.0, f64::max),
                rss_kb: median(&mut rss),
                written: median(&mut written),
            });
        }
        print_scenario(rows, w.name, s);
        if s == Scenario::NoChange && w.name == "small" && !args.no_cache_limit {
            // The replica is the mirror just checked: nothing to reset.
            *cache_limit = Some(bench_cache_limit(args, env, w, &p)?);
        }
        if s == Scenario::Touch && !floors.is_empty() {
            let floor = median(&mut floors);
            println!(
                "# {} / touch: setting every replica file's and folder's mtime alone (bench's reset) writes {} MiB (median of {})",
                w.name,
                mib(floor),
                floors.len()
            );
            touch_floor.insert(w.name, floor);
        }
    }
    if !args.keep {
        remove_tree(&base)?;
    }
    Ok(())
}

fn find_row<'a>(rows: &'a [Row], w: &str, s: Scenario, t: Tool) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.workload == w && r.scenario == s && r.tool == t)
}

fn print_scenario(rows: &[Row], w: &str, s: Scenario) {
    let fs = find_row(rows, w, s, Tool::Foldersync).expect("foldersync row");
    println!("# {w} / {}: medians", s.name());
    for r in rows.iter().filter(|r| r.workload == w && r.scenario == s) {
        println!(
            "#   {:<10} wall {:>8.3} s  rss {:>8} KiB  written {:>9} MiB  foldersync/this {:>6.2}x",
            r.tool.name(),
            r.wall,
            r.rss_kb,
            mib(r.written),
            fs.wall / r.wall
        );
    }
}

/// Seconds with three decimals, or four below 0.1 s, where a millisecond
/// is a large share.
fn secs(s: f64) -> String {
    if s < 0.1 {
        format!("{s:.4}")
    } else {
        format!("{s:.3}")
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | scenario | tool | wall (s) | wall min–max (s) | peak RSS (MiB) | written (MiB) | foldersync ÷ tool, wall | foldersync ÷ tool, RSS |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let fs = find_row(rows, r.workload, r.scenario, Tool::Foldersync).expect("row");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}–{} | {:.1} | {} | {:.2} | {:.2} |",
            r.workload,
            r.scenario.name(),
            r.tool.name(),
            secs(r.wall),
            secs(r.wall_min),
            secs(r.wall_max),
            r.rss_kb / 1024.0,
            mib(r.written),
            fs.wall / r.wall,
            fs.rss_kb / r.rss_kb
        );
    }
    out
}

/// The project's targets, checked against the medians.
fn targets(
    rows: &[Row],
    baseline_kb: f64,
    touch_floor: &HashMap<&'static str, f64>,
    cache_limit: Option<&[DaemonRun; 2]>,
) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---:|---|\n");
    let mut line = |name: String, value: f64, limit: f64, unit: &str| {
        let _ = writeln!(
            out,
            "| {name} {unit}<= {limit} | {value:.3} | {} |",
            if value <= limit { "yes" } else { "NO" }
        );
    };
    for w in ["small", "large"] {
        let get = |s, t| find_row(rows, w, s, t);
        let ratio =
            |s, t: Tool| -> Option<f64> { Some(get(s, Tool::Foldersync)?.wall / get(s, t)?.wall) };
        let pairs: Vec<(Scenario, Tool, f64)> = {
            let mut v = vec![
                (Scenario::NoChange, Tool::Rsync, 0.5),
                (Scenario::NoChange, Tool::StatWalk, 1.0),
            ];
            if w == "small" {
                v.extend([
                    (Scenario::Initial, Tool::Cp, 0.9),
                    (Scenario::Initial, Tool::Rsync, 0.7),
                ]);
            } else {
                v.push((Scenario::Initial, Tool::Cp, 1.0));
            }
            v.extend([
                (Scenario::Churn, Tool::Rsync, 0.5),
                (Scenario::Touch, Tool::Md5, 1.2),
            ]);
            v
        };
        for (s, t, limit) in pairs {
            if let Some(r) = ratio(s, t) {
                line(
                    format!("{w} {}: foldersync ÷ {}", s.name(), t.name()),
                    r,
                    limit,
                    "",
                );
            }
        }
        if let Some(touch) = get(Scenario::Touch, Tool::Foldersync) {
            line(
                format!("{w} touch: written as % of the tree"),
                100.0 * touch.written / touch.tree_bytes as f64,
                1.0,
                "(%) ",
            );
            if let Some(floor) = touch_floor.get(w) {
                line(
                    format!(
                        "{w} touch: written above the mtime-only floor ({} MiB) as % of the tree",
                        mib(*floor)
                    ),
                    100.0 * (touch.written - floor).max(0.0) / touch.tree_bytes as f64,
                    1.0,
                    "(%) ",
                );
            }
        }
        for s in SCENARIOS {
            if w != "small" {
                // Bytes per file means nothing with 8 files.
                break;
            }
            if let (Some(f), Some(r)) = (get(s, Tool::Foldersync), get(s, Tool::Rsync)) {
                line(
                    format!("{w} {}: bytes of RSS per file above baseline", s.name()),
                    (f.rss_kb - baseline_kb) * 1024.0 / f.files as f64,
                    150.0,
                    "",
                );
                line(
                    format!("{w} {}: foldersync RSS ÷ rsync summed RSS", s.name()),
                    f.rss_kb / r.rss_kb,
                    1.0,
                    "",
                );
            }
        }
    }
    if let Some([full, limited]) = cache_limit {
        let _ = writeln!(
            out,
            "| small cache-limit: cache bytes <= limit ({} bytes) | {} | {} |",
            limited.limit,
            limited.cache_bytes,
            if limited.cache_bytes <= limited.limit {
                "yes"
            } else {
                "NO"
            }
        );
        // The issue sets no bound on this cost: reported, not judged.
        let _ = writeln!(
            out,
            "| small cache-limit: no-change pass with limit ÷ without | {:.3} | info |",
            limited.pass_median / full.pass_median
        );
    }
    out
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench -> target/<profile>/foldersync
    let foldersync = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("foldersync"))
        .expect("target folder");
    if let Some(cargo) = std::env::var_os("CARGO") {
        // Make sure the binary under test is the current release build.
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "foldersync"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !status.success() {
            return Err(io::Error::other("cargo build --release failed"));
        }
    }
    if !foldersync.exists() {
        return Err(io::Error::other(format!(
            "{} not found: run `cargo build --release` first",
            foldersync.display()
        )));
    }
    let shm = PathBuf::from(format!("/dev/shm/foldersync-bench-{}", std::process::id()));
    fs::create_dir_all(&shm)?;
    if let Some(b) = &args.baseline {
        if !b.exists() {
            return Err(io::Error::other(format!(
                "--baseline {}: not found",
                b.display()
            )));
        }
    }
    let env = Env {
        foldersync,
        baseline: args.baseline.as_ref().map(fs::canonicalize).transpose()?,
        state: args.dir.join("state"),
        md5_batch: std::cell::Cell::new(500),
        shm,
    };
    fs::create_dir_all(&args.dir)?;

    let (n_small, n_dirs, n_large) = if args.quick {
        (5_000, 250, 2)
    } else {
        (100_000, 5_000, 8)
    };
    let (n_small, n_dirs) = match args.files {
        Some(n) => (n, (n / 20).max(1)),
        None => (n_small, n_dirs),
    };
    let workload = |name: &str| {
        if name == "small" {
            small_workload(args.seed, n_small, n_dirs)
        } else {
            large_workload(args.seed, n_large)
        }
    };
    if args.generate_only {
        for name in &args.workloads {
            let w = workload(name);
            let base = args.dir.join(w.name);
            remove_tree(&base)?;
            generate(&w, &base.join("src"))?;
            run(&[&"cp", &"-a", &base.join("src"), &base.join("pristine")])?;
            println!(
                "generated {}/src and its copy {}/pristine",
                base.display(),
                base.display()
            );
        }
        return Ok(());
    }
    let started = Instant::now();
    println!(
        "# foldersync benchmark: mode={} seed={} reps={} dir={}",
        if args.quick { "quick" } else { "full" },
        args.seed,
        args.reps,
        args.dir.display()
    );
    println!(
        "# machine: {} cores, {}, file system of --dir: {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line(&[&"uname", &"-sr"]),
        first_line(&[&"findmnt", &"-no", &"FSTYPE,OPTIONS", &"-T", &args.dir]),
        loadavg()
    );
    println!(
        "# versions: {}; {}; {}; {}; foldersync {}",
        first_line(&[&"rsync", &"--version"]),
        first_line(&[&"cp", &"--version"]),
        first_line(&[&"find", &"--version"]),
        first_line(&[&"md5sum", &"--version"]),
        first_line(&[
            &"git",
            &"-C",
            &env!("CARGO_MANIFEST_DIR"),
            &"describe",
            &"--always",
            &"--dirty"
        ])
    );
    println!(
        "# warm cache: page cache never dropped; one untimed md5 read of both trees per scenario; \
         untimed `sync` before every timed run; times exclude write-back."
    );
    println!(
        "# foldersync: each `--once` run is a fresh process with an empty cache (as a cron job runs it); \
         stderr to a file on /dev/shm, log file on /dev/shm."
    );
    println!(
        "# RSS: peak over time of the summed VmHWM of a tool's live processes (read at each exit via ptrace); \
         written: write_bytes of each process at its exit, less the children it reaped (page-granular; includes metadata blocks on a journal-less fs)."
    );
    println!(
        "# tool order rotated per repetition; {} timed repetitions per scenario and tool; medians reported.",
        args.reps
    );

    remove_tree(&env.state)?;
    // foldersync's memory with nothing to do, for bytes-per-file figures,
    // and with one tiny file to copy.
    let (baseline_kb, tiny) = small_runs(&args, &env)?;

    let mut rows = Vec::new();
    let mut touch_floor = HashMap::new();
    let mut cache_limit = None;
    for name in &args.workloads {
        let w = workload(name);
        bench_workload(
            &args,
            &env,
            &w,
            &mut rows,
            &mut touch_floor,
            &mut cache_limit,
        )?;
    }
    let _ = fs::remove_dir_all(&env.shm);

    println!();
    println!(
        "## Results ({} mode, seed {}, {} reps, medians; warm cache; foldersync: fresh process, empty cache)",
        if args.quick { "quick" } else { "full" },
        args.seed,
        args.reps
    );
    println!();
    print!("{}", markdown(&rows));
    println!();
    println!("foldersync baseline RSS: {:.1} MiB", baseline_kb / 1024.0);
    println!();
    if let Some(runs) = &cache_limit {
        println!(
            "Cache limit (small, foldersync daemon, interval 0.5 s; no-change passes after the first, as logged; limit a tenth of the unlimited cache):"
        );
        println!();
        print!("{}", cache_limit_markdown(runs));
        println!();
    }
    print!(
        "{}",
        targets(&rows, baseline_kb, &touch_floor, cache_limit.as_ref())
    );
    println!();
    print!("{}", issue21_targets(&rows, &tiny));
    if env.baseline.is_some() {
        println!();
        print!("{}", against_baseline(&rows, &tiny));
    }
    println!();
    println!(
        "# load average at end: {}; total time {:.0} s",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Peak RSS (KiB) of each foldersync build: on an empty source (the
/// baseline of the bytes-per-file figures, foldersync's only) and on a
/// first sync of one 100-byte file (median of 3 each).
fn small_runs(args: &Args, env: &Env) -> io::Result<(f64, Vec<(Tool, f64)>)> {
    let dir = args.dir.join("baseline");
    let mut builds = vec![Tool::Foldersync];
    builds.extend(env.baseline.as_ref().map(|_| Tool::Baseline));
    let mut empty_kb = 0.0;
    let mut tiny = Vec::new();
    for tool in builds {
        for files in [0, 1] {
            remove_tree(&dir)?;
            fs::create_dir_all(dir.join("src"))?;
            if files == 1 {
                fs::write(dir.join("src/tiny.txt"), [b'x'; 100])?;
            }
            let (mut rss, mut wall) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                remove_tree(&dir.join("dst"))?;
                let m = run_tool(env, tool, &dir.join("src"), &dir.join("dst"))?;
                rss.push(m.rss_kb as f64);
                wall.push(m.wall);
            }
            let (kb, wall) = (median(&mut rss), median(&mut wall));
            let what = ["an empty source", "one tiny file"][files];
            println!(
                "# {} on {what}: RSS {kb} KiB, wall {wall:.3} s",
                tool.name()
            );
            match (files, tool) {
                (0, Tool::Foldersync) => empty_kb = kb,
                (1, _) => tiny.push((tool, kb)),
                _ => {}
            }
        }
    }
    remove_tree(&dir)?;
    Ok((empty_kb, tiny))
}

/// Issue 21's targets: the small workload's ratios and peak memory.
fn issue21_targets(rows: &[Row], tiny: &[(Tool, f64)]) -> String {
    let mut out =
        String::from("| issue 21 target | measured | limit | met |\n|---|---:|---:|---|\n");
    let mut line = |name: &str, value: f64, limit: f64| {
        let met = if value <= limit { "yes" } else { "NO" };
        let _ = writeln!(out, "| {name} | {value:.3} | {limit} | {met} |");
    };
    let get = |s, t| find_row(rows, "small", s, t);
    let checks = [
        (Scenario::Initial, Tool::Cp, 0.7),
        (Scenario::Churn, Tool::Rsync, 0.4),
        (Scenario::Touch, Tool::Rsync, 0.15),
        (Scenario::NoChange, Tool::Rsync, 0.3),
        (Scenario::NoChange, Tool::StatWalk, 1.0),
    ];
    for (s, t, limit) in checks {
        if let (Some(f), Some(o)) = (get(s, Tool::Foldersync), get(s, t)) {
            let name = format!("small {}: foldersync ÷ {}", s.name(), t.name());
            line(&name, f.wall / o.wall, limit);
        }
    }
    let peak = SCENARIOS
        .iter()
        .filter_map(|&s| get(s, Tool::Foldersync))
        .map(|r| r.rss_kb)
        .fold(0.0, f64::max);
    if peak > 0.0 {
        line("small: peak RSS of any scenario (MiB)", peak / 1024.0, 8.0);
    }
    if let Some((_, kb)) = tiny.iter().find(|(t, _)| *t == Tool::Foldersync) {
        line("one tiny file: peak RSS (MiB)", kb / 1024.0, 4.0);
    }
    out
}

/// foldersync against `--baseline`, scenario by scenario: the ratios of
/// their medians, measured in the same run.
fn against_baseline(rows: &[Row], tiny: &[(Tool, f64)]) -> String {
    let mut out = String::from(
        "| workload | scenario | foldersync (s) | baseline (s) | wall ÷ baseline | RSS ÷ baseline |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for f in rows.iter().filter(|r| r.tool == Tool::Foldersync) {
        if let Some(b) = find_row(rows, f.workload, f.scenario, Tool::Baseline) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {:.2} |",
                f.workload,
                f.scenario.name(),
                secs(f.wall),
                secs(b.wall),
                f.wall / b.wall,
                f.rss_kb / b.rss_kb
            );
        }
    }
    let kb = |tool| tiny.iter().find(|(t, _)| *t == tool).map(|(_, kb)| *kb);
    if let (Some(f), Some(b)) = (kb(Tool::Foldersync), kb(Tool::Baseline)) {
        let _ = writeln!(
            out,
            "| one tiny file | initial | | | | {:.2} ({:.1} vs {:.1} MiB) |",
            f / b,
            f / 1024.0,
            b / 1024.0
        );
    }
    out
}
