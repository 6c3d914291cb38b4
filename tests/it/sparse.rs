//! Sparse files: their holes stay holes in the replica, and their bytes
//! (and digests) are still exactly the source's.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::support::*;

const MIB: u64 = 1 << 20;

/// A sparse file of `size` bytes with `islands` of data (offset, bytes).
fn sparse(path: &Path, size: u64, islands: &[(u64, &[u8])]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir -p");
    }
    let f = fs::File::create(path).expect("create sparse file");
    f.set_len(size).expect("set_len");
    for (at, bytes) in islands {
        f.write_all_at(bytes, *at).expect("write island");
    }
}

/// Bytes actually allocated to a file.
fn allocated(path: &Path) -> u64 {
    fs::symlink_metadata(path).expect("lstat").blocks() * 512
}

fn md5sum(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// Whether two files hold the same bytes, read in chunks (they may be big).
fn same_bytes(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .expect("cmp")
        .success()
}

/// Asserts a replica file has its source's size, mode and mtime.
#[track_caller]
fn assert_same_attrs(src: &Path, dst: &Path) {
    let (s, d) = (fs::metadata(src).unwrap(), fs::metadata(dst).unwrap());
    assert_eq!(s.len(), d.len(), "size of {}", dst.display());
    assert_eq!(s.mode(), d.mode(), "mode of {}", dst.display());
    assert_eq!(
        (s.mtime(), s.mtime_nsec()),
        (d.mtime(), d.mtime_nsec()),
        "mtime of {}",
        dst.display()
    );
}

/// Whether this file system keeps holes at all (it does on ext4, xfs,
/// btrfs and tmpfs).
fn holes_supported(dir: &Path) -> bool {
    let probe = dir.join("probe-sparse");
    sparse(&probe, 64 * MIB, &[]);
    let ok = allocated(&probe) < MIB;
    fs::remove_file(&probe).unwrap();
    ok
}

#[test]
fn sparse_files_keep_their_holes_and_their_bytes() {
    let env = TestEnv::new();
    if !holes_supported(env.root()) {
        missing_prerequisite(
            "a temp folder whose file system keeps holes (ext4, xfs, btrfs, tmpfs)",
        );
        return;
    }
    // 1 GiB, two small islands of data, a hole at the end.
    let islands: &[(u64, &[u8])] = &[
        (100 * MIB + 12_345, &[0xab; 70_000]),
        (700 * MIB, b"second island of data"),
    ];
    let vm = env.path("src/images/vm.img");
    sparse(&vm, 1 << 30, islands);
    // Data up to the very end, after a hole.
    let tail = env.path("src/tail.db");
    sparse(&tail, 64 * MIB, &[(64 * MIB - 5, b"end!!")]);
    // No data at all, like `truncate -s 5G`.
    let empty = env.path("src/empty.img");
    sparse(&empty, 2 << 30, &[]);
    // Small (hashed as it is copied when a cache lasts), with a hole first.
    let small = env.path("src/small.bin");
    sparse(&small, 3 * MIB, &[(2 * MIB, b"small island")]);
    for p in [&vm, &tail, &empty, &small] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o640)).unwrap();
        set_mtime(p, past());
    }

    env.once_ok(&[]);
    for (src, rel) in [
        (&vm, "dst/images/vm.img"),
        (&tail, "dst/tail.db"),
        (&empty, "dst/empty.img"),
        (&small, "dst/small.bin"),
    ] {
        let dst = env.path(rel);
        assert_same_attrs(src, &dst);
        assert!(
            allocated(&dst) <= allocated(src) + MIB,
            "{rel} was filled in: {} bytes allocated, the source has {}",
            allocated(&dst),
            allocated(src)
        );
    }
    assert_eq!(allocated(&env.path("dst/empty.img")), 0);
    assert!(same_bytes(&tail, &env.path("dst/tail.db")));
    assert!(same_bytes(&small, &env.path("dst/small.bin")));
    assert!(same_bytes(&vm, &env.path("dst/images/vm.img")));
    assert_eq!(md5sum(&vm), md5sum(&env.path("dst/images/vm.img")));
    let log = env.log_text();
    assert_action(&log, 1, "copied images/vm.img (1073741824 bytes)");
    assert_action(&log, 1, "copied empty.img (2147483648 bytes)");

    // A second pass finds nothing to do.
    env.once_ok(&[]);
    let second = summaries(&env.log_text(), 1)[1].clone();
    assert!(
        second.contains(" 0 copied, 0 updated, 0 touched,") && second.ends_with(" 0 bytes written"),
        "{second}"
    );
}

#[test]
fn a_daemon_hashes_a_sparse_copy_with_its_holes_as_zeros() {
    let env = TestEnv::new();
    if !holes_supported(env.root()) {
        missing_prerequisite(
            "a temp folder whose file system keeps holes (ext4, xfs, btrfs, tmpfs)",
        );
        return;
    }
    // Under 4 MiB: a daemon hashes it as it copies it.
    let small = env.path("src/small.bin");
    sparse(&small, 3 * MIB, &[(MIB, b"island"), (3 * MIB - 2, b"zz")]);
    set_mtime(&small, past());
    let mut session = start_hourly(&env);
    wait_log(&env.log(), "pass finished", 1);
    let dst = env.path("dst/small.bin");
    assert!(allocated(&dst) < MIB, "filled in: {}", allocated(&dst));
    assert!(same_bytes(&small, &dst));

    // Only the mtime moves: the source is hashed and compared with the
    // digest taken during the copy, which must count the holes as zeros.
    set_mtime(&small, "2021-03-04 05:06:07");
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 2);
    let log = env.log_text();
    assert_action(&log, 1, "touched small.bin (mtime)");
    assert_no_action(&log, 1, "updated");
    assert_same_attrs(&small, &dst);
    quit(session);
}
