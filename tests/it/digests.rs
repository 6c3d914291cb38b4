//! Big files are copied by the kernel without hashing; a daemon takes their
//! digests from the replica after the pass, and `--once` never does.

use std::time::Duration;

use crate::support::*;

/// 6 MiB of bytes that differ from block to block (above the 4 MiB at
/// which a file counts as big).
fn big_content(seed: u8) -> Vec<u8> {
    (0..6usize << 20)
        .map(|i| (i / 4099) as u8 ^ (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

const TAKEN: &str = "took the digests of 1 of 1 big files (6291456 bytes)";

#[test]
fn a_daemon_hashes_big_copies_after_the_pass_and_uses_the_digest() {
    let env = TestEnv::new();
    env.write("src/big.bin", big_content(1));
    env.write("src/small.txt", "small");
    set_mtime(&env.path("src/big.bin"), past());
    let mut s = MenuSession::start(
        env.root(),
        ["--no-menu", "-v", "src", "dst", "0.2", "log.txt"],
    );
    wait_for(
        Duration::from_secs(20),
        || env.log_text().contains(TAKEN),
        || format!("no digest line in:\n{}", env.log_text()),
    );
    assert_mirror(&env.src(), &env.dst());

    // Only the mtime moves: settled by hashing the source against the
    // digest taken from the replica, so it is touched, never copied.
    set_mtime(&env.path("src/big.bin"), "2001-02-03 04:05:06");
    wait_for(
        Duration::from_secs(20),
        || env.log_text().contains("touched big.bin (mtime)"),
        || format!("big.bin never touched:\n{}", env.log_text()),
    );
    // The same size, other bytes and the old mtime back: caught by the
    // ctime and the digest, and copied. Prepared outside the source and
    // renamed in, so a pass of the running daemon never sees it half
    // written (it would rightly copy that version too).
    env.write("big.next", big_content(2));
    set_mtime(&env.path("big.next"), "2001-02-03 04:05:06");
    std::fs::rename(env.path("big.next"), env.path("src/big.bin")).unwrap();
    wait_for(
        Duration::from_secs(20),
        || env.log_text().contains("updated big.bin (6291456 bytes)"),
        || format!("big.bin never updated:\n{}", env.log_text()),
    );
    signal(s.child.id(), "INT");
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert_eq!(log.matches("updated big.bin").count(), 1, "{log}");
    assert_eq!(log.matches("copied big.bin").count(), 1, "{log}");
}

#[test]
fn once_takes_no_digests_and_a_daemon_repairs_a_tampered_big_replica() {
    let env = TestEnv::new();
    env.write("src/big.bin", big_content(3));
    set_mtime(&env.path("src/big.bin"), past());
    // With --once the cache ends with the process: no digests are taken.
    env.once_ok(&["-v"]);
    assert_mirror(&env.src(), &env.dst());
    assert!(
        !env.log_text().contains("took the digests"),
        "--once took digests:\n{}",
        env.log_text()
    );
    std::fs::remove_dir_all(env.dst()).unwrap();
    let mut s = MenuSession::start(
        env.root(),
        ["--no-menu", "-v", "src", "dst", "0.2", "log.txt"],
    );
    wait_for(
        Duration::from_secs(20),
        || env.log_text().contains(TAKEN),
        || format!("no digest line in:\n{}", env.log_text()),
    );
    // Tamper with the replica: same size, same mtime, other bytes. The
    // replica's ctime moved, so it is hashed against the digest.
    env.write("dst/big.bin", big_content(4));
    set_mtime(&env.path("dst/big.bin"), past());
    wait_for(
        Duration::from_secs(20),
        || env.log_text().contains("updated big.bin"),
        || format!("tampered replica not repaired:\n{}", env.log_text()),
    );
    signal(s.child.id(), "INT");
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    assert_mirror(&env.src(), &env.dst());
}

/// `--checksum` trusts an entry only with a digest (its bytes were read),
/// so a daemon takes the digests of big copies as it does without it.
#[test]
fn checksum_mode_takes_the_digests_it_will_trust() {
    let env = TestEnv::new();
    env.write("src/big.bin", big_content(5));
    let mut s = MenuSession::start(
        env.root(),
        [
            "--no-menu",
            "-v",
            "--checksum",
            "src",
            "dst",
            "0.2",
            "log.txt",
        ],
    );
    wait_for(
        Duration::from_secs(20),
        || env.log_text().matches("pass finished").count() >= 3,
        || format!("no third pass:\n{}", env.log_text()),
    );
    signal(s.child.id(), "INT");
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains(TAKEN), "{log}");
    assert_eq!(log.matches("copied big.bin").count(), 1, "{log}");
}
