//! `--cache-limit`: each pair's cache stays under the limit, evicting the
//! folders used least recently, and the replica is still exact. `--once`
//! keeps no cache at all.

use crate::support::*;

/// The numbers of the "cache holds N files in B bytes; E evicted" line.
fn cache_line(log: &str) -> (u64, u64, u64) {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("cache holds"))
        .unwrap_or_else(|| panic!("no cache line in:\n{log}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(';').parse().ok())
        .collect();
    let n = nums.len();
    assert!(n >= 3, "{line}");
    (nums[n - 3], nums[n - 2], nums[n - 1])
}

fn tree(env: &TestEnv) {
    for d in 0..40 {
        for f in 0..25 {
            env.write(format!("src/d{d}/f{f}.txt"), format!("{d}-{f}"));
        }
    }
    env.once_ok(&[]);
}

/// One pass of a daemon (whose cache lasts, unlike `--once`'s), then
/// SIGTERM: its last log line says what the cache held.
fn daemon_pass(env: &TestEnv, extra: &[&str]) {
    let passes = env.log_text().matches("pass finished").count();
    let mut args = vec!["--no-menu"];
    args.extend_from_slice(extra);
    args.extend(["src", "dst", "1h", "log.txt"]);
    let mut session = MenuSession::start(env.root(), args);
    wait_log(&env.log(), "pass finished", passes + 1);
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn without_a_limit_every_file_is_cached() {
    let env = TestEnv::new();
    tree(&env);
    daemon_pass(&env, &[]);
    let (files, bytes, evicted) = cache_line(&env.log_text());
    assert_eq!((files, evicted), (1000, 0));
    // Compact entries: well under 150 bytes a file.
    assert!(bytes < 150 * 1000, "{bytes} bytes for 1000 files");
}

#[test]
fn a_limit_is_held_and_the_replica_stays_exact() {
    let env = TestEnv::new();
    tree(&env);
    // Touch every file: the pass hashes and caches each one again.
    let mut touch = std::process::Command::new("touch");
    touch.args(["-d", past()]);
    for d in 0..40 {
        for f in 0..25 {
            touch.arg(env.path(format!("src/d{d}/f{f}.txt")));
        }
    }
    assert!(touch.status().unwrap().success());
    daemon_pass(&env, &["--cache-limit", "10K"]);
    assert_mirror(&env.src(), &env.dst());
    let (files, bytes, evicted) = cache_line(&env.log_text());
    assert!(bytes <= 10 * 1024, "{bytes} bytes over the 10K limit");
    assert!(files > 0 && evicted > 0, "{files} kept, {evicted} evicted");
    assert_eq!(files + evicted, 1000);
}

#[test]
fn a_bad_limit_is_refused() {
    let env = TestEnv::new();
    for bad in ["0", "lots", "12X"] {
        let out = env.once(&["--cache-limit", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--cache-limit"), "{err}");
        assert!(!env.dst().exists());
    }
}

/// `--once` records no entry: its cache dies with the pass, so keeping
/// entries only made its memory grow with the tree. Hard-link groups and
/// big-file jobs (which record entries from outside their folder) still
/// sync right.
#[test]
fn once_keeps_no_cache_entries() {
    let env = TestEnv::new();
    for d in 0..10 {
        for f in 0..20 {
            env.write(format!("src/d{d}/f{f}.txt"), format!("{d}-{f}"));
        }
    }
    let linked = env.write("src/d0/linked.txt", "one file, three names");
    for name in ["src/d1/second.txt", "src/d2/third.txt"] {
        std::fs::hard_link(&linked, env.path(name)).unwrap();
    }
    env.write("src/d3/big.bin", vec![7u8; 5 << 20]);
    for _ in 0..2 {
        env.once_ok(&[]);
        assert_mirror(&env.src(), &env.dst());
        assert_eq!(cache_line(&env.log_text()), (0, 0, 0));
    }
    use std::os::unix::fs::MetadataExt;
    let ino = |rel: &str| std::fs::metadata(env.path(rel)).unwrap().ino();
    assert_eq!(ino("dst/d0/linked.txt"), ino("dst/d1/second.txt"));
    assert_eq!(ino("dst/d0/linked.txt"), ino("dst/d2/third.txt"));
}
