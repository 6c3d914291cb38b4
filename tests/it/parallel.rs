//! The parallel pass (`--jobs`): several folders are synced at once, yet the
//! replica ends up exact (folder modes and mtimes included, which are set
//! only after everything below them), `--jobs 1` still works, and
//! `--max-delete` is one budget shared by every worker.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sets a folder's mode and then its mtime (a chmod leaves the mtime be).
fn seal_dir(path: &Path, mode: u32, secs: u64) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(123_456);
    fs::File::open(path).unwrap().set_modified(when).unwrap();
}

/// A tree both wide (6 x 5 folders with files, links and empty folders)
/// and deep (a 60-level chain), every folder with its own mode and an old
/// mtime, set deepest first like a real tree that was left alone.
fn build_tree(env: &TestEnv) {
    let modes = [0o755, 0o750, 0o700, 0o555, 0o711];
    let mut dirs = Vec::new();
    for a in 0..6 {
        for b in 0..5 {
            let dir = format!("src/w{a}/x{b}");
            for f in 0..4 {
                env.write(
                    format!("{dir}/f{f}.txt"),
                    format!("{a}-{b}-{f}").repeat(f + 1),
                );
            }
            env.symlink(format!("{dir}/link"), format!("f{b}.txt"));
            env.mkdir(format!("{dir}/empty"));
            dirs.push(format!("{dir}/empty"));
            dirs.push(dir);
        }
        dirs.push(format!("src/w{a}"));
    }
    let mut chain = String::from("src/deep");
    for level in 0..60 {
        env.write(format!("{chain}/at{level}"), format!("{level}"));
        dirs.push(chain.clone());
        chain.push_str(&format!("/d{level}"));
    }
    env.mkdir(&chain);
    dirs.push(chain);
    // Deepest first, so setting a folder never disturbs one already set.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for (i, dir) in dirs.iter().enumerate() {
        seal_dir(
            &env.path(dir),
            modes[i % modes.len()],
            1_500_000_000 + i as u64,
        );
    }
}

/// Makes the sealed source folders writable again, changes entries spread
/// over many folders, and seals them once more.
fn change_tree(env: &TestEnv) {
    for a in 0..6 {
        for b in 0..5 {
            let dir = env.path(format!("src/w{a}/x{b}"));
            let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
            let mtime = fs::metadata(&dir).unwrap().modified().unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            fs::remove_file(dir.join("f0.txt")).unwrap();
            fs::write(dir.join("f1.txt"), format!("changed {a} {b}")).unwrap();
            fs::write(dir.join("new.txt"), "new").unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let secs = mtime
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            seal_dir(&dir, mode, secs + 7);
        }
    }
}

fn mirrors_with(jobs: &str) {
    let env = TestEnv::new();
    build_tree(&env);
    env.once_ok(&["--jobs", jobs]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains("pass finished"), "{log}");
    assert!(log.contains(" 0 errors,"), "{log}");

    change_tree(&env);
    env.once_ok(&["--jobs", jobs]);
    assert_mirror(&env.src(), &env.dst());

    // Nothing left to do: a third pass changes nothing.
    let before = env.log_text().len();
    env.once_ok(&["--jobs", jobs]);
    let third = &env.log_text()[before..];
    assert!(third.contains(" 0 copied, 0 updated, 0 touched"), "{third}");
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn four_jobs_mirror_a_deep_and_wide_tree_exactly() {
    mirrors_with("4");
}

#[test]
fn one_job_still_mirrors_the_same_tree() {
    mirrors_with("1");
}

#[test]
fn max_delete_is_one_budget_across_parallel_folders() {
    let env = TestEnv::new();
    for d in 0..20 {
        for f in 0..5 {
            env.write(format!("src/d{d}/f{f}"), format!("{d}{f}"));
        }
    }
    env.write("src/stay", "stay");
    env.once_ok(&["--jobs", "4"]);
    let full = snapshot(&env.dst()).len();
    for d in 0..20 {
        for f in 0..5 {
            fs::remove_file(env.path(format!("src/d{d}/f{f}"))).unwrap();
        }
    }

    let out = env.once(&["--jobs", "4", "--max-delete", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(snapshot(&env.dst()).len(), full);
    let log = env.log_text();
    assert_eq!(log.matches("removed file").count(), 0, "{log}");
    assert_eq!(
        log.matches("would remove 100 entries, more than --max-delete 99")
            .count(),
        1,
        "{log}"
    );

    env.once_ok(&["--jobs", "4", "--max-delete", "100"]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(env.log_text().matches("removed file").count(), 100);
}

#[test]
fn zero_jobs_is_refused() {
    let env = TestEnv::new();
    let out = env.once(&["--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!env.dst().exists());
}

#[test]
fn big_files_of_one_folder_are_copied_as_separate_jobs() {
    let env = TestEnv::new();
    let big = |seed: u8| -> Vec<u8> { (0..5 << 20).map(|i: u32| (i % 251) as u8 ^ seed).collect() };
    for i in 0..3u8 {
        env.write(format!("src/big/b{i}"), big(i));
    }
    env.write("src/big/small", "small");
    env.mkdir("src/big/sub");
    env.once_ok(&["--jobs", "4"]);
    assert_mirror(&env.src(), &env.dst());

    // A changed big file and a folder now where a big file was.
    env.write("src/big/b0", big(9));
    fs::remove_file(env.path("src/big/b1")).unwrap();
    env.write("src/big/b1/inside", "x");
    env.once_ok(&["--jobs", "4"]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains("updated big/b0"), "{log}");
    assert!(log.contains("removed file big/b1"), "{log}");
}

#[test]
fn big_files_are_compared_as_jobs_and_only_changed_bytes_rewritten() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    let big = |seed: u8| -> Vec<u8> { (0..5 << 20).map(|i: u32| (i % 251) as u8 ^ seed).collect() };
    env.write("src/same.bin", big(1));
    env.write("src/edited.bin", big(2));
    env.write("src/grown.bin", big(3));
    env.once_ok(&["--jobs", "2"]);
    let inode = |p: &str| fs::metadata(env.path(p)).unwrap().ino();
    let same_ino = inode("dst/same.bin");

    // Touched only; same size but other bytes; grown.
    set_mtime(&env.path("src/same.bin"), past());
    let mut edited = big(2);
    edited[3 << 20] ^= 0xff;
    env.write("src/edited.bin", edited);
    env.write("src/grown.bin", [big(3), vec![9; 10]].concat());
    env.once_ok(&["--jobs", "2"]);
    assert_mirror(&env.src(), &env.dst());
    assert_eq!(
        inode("dst/same.bin"),
        same_ino,
        "touched file was rewritten"
    );
    let log = env.log_text();
    assert!(log.contains("touched same.bin (mtime)"), "{log}");
    assert!(log.contains("updated edited.bin"), "{log}");
    assert!(log.contains("updated grown.bin"), "{log}");
}
