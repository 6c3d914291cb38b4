//! `--cache-limit`: each pair's cache stays under the limit, evicting the
//! folders used least recently, and the replica is still exact.

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

#[test]
fn without_a_limit_every_file_is_cached() {
    let env = TestEnv::new();
    tree(&env);
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
    env.once_ok(&["--cache-limit", "10K"]);
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
