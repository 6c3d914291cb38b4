//! Hard links: several names of one source file stay one file in the
//! replica.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

use crate::support::*;

const MIB: u64 = 1 << 20;

fn nlink(path: &std::path::Path) -> u64 {
    fs::symlink_metadata(path).expect("lstat").nlink()
}

/// A source with hard-linked files across folders: a small file with four
/// names, a big one (a job of its own) with three, a file also linked
/// from outside the source, and an ordinary file.
fn linked_tree(env: &TestEnv) {
    let one = env.write("src/a/one", "shared small content\n");
    env.mkdir("src/b");
    env.mkdir("src/c/d");
    fs::hard_link(&one, env.path("src/a/two")).unwrap();
    fs::hard_link(&one, env.path("src/b/three")).unwrap();
    fs::hard_link(&one, env.path("src/c/d/four")).unwrap();
    let big = env.write(
        "src/big1",
        (0..5 * MIB as usize)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    fs::hard_link(&big, env.path("src/a/big2")).unwrap();
    fs::hard_link(&big, env.path("src/c/d/big3")).unwrap();
    let lone = env.write("src/b/lone", "linked only from outside");
    fs::hard_link(&lone, env.path("outside-link")).unwrap();
    env.write("src/plain", "plain");
    set_mtime(&one, past());
    set_mtime(&big, "2019-02-03 04:05:06.7");
    for dir in ["src/a", "src/b", "src/c/d", "src/c", "src"] {
        set_mtime(&env.path(dir), "2018-01-01 00:00:00.5");
    }
}

const SMALL_NAMES: [&str; 4] = ["a/one", "a/two", "b/three", "c/d/four"];
const BIG_NAMES: [&str; 3] = ["big1", "a/big2", "c/d/big3"];

/// Asserts that the replica names of `names` are one file with that many
/// links, and returns its inode.
#[track_caller]
fn assert_one_file(env: &TestEnv, names: &[&str]) -> u64 {
    let first = env.path("dst").join(names[0]);
    for name in names {
        let p = env.path("dst").join(name);
        assert_eq!(
            inode(&p),
            inode(&first),
            "{name} is not a hard link of {}",
            names[0]
        );
    }
    assert_eq!(nlink(&first) as usize, names.len(), "link count");
    inode(&first)
}

fn hard_links_are_kept(jobs: &str) {
    let env = TestEnv::new();
    linked_tree(&env);
    env.once_ok(&["--jobs", jobs]);
    assert_mirror(&env.src(), &env.dst());
    let small = assert_one_file(&env, &SMALL_NAMES);
    let big = assert_one_file(&env, &BIG_NAMES);
    assert_eq!(nlink(&env.path("dst/b/lone")), 1);
    let log = env.log_text();
    assert_eq!(
        count(&log, "(hard link)"),
        5,
        "three small and two big names linked:\n{log}"
    );
    let first = summaries(&log, 1)[0].clone();
    // One copy of each file: 21 + 5 MiB + 24 + 5 bytes.
    assert!(
        first.contains(" 4 copied, 0 updated,") && first.contains(" 5 linked,"),
        "{first}"
    );
    assert!(first.ends_with(" 5242930 bytes written"), "{first}");

    // A second pass changes nothing.
    env.once_ok(&["--jobs", jobs]);
    let second = summaries(&env.log_text(), 1)[1].clone();
    assert!(
        second.contains(" 0 copied, 0 updated, 0 touched, 0 linked,"),
        "{second}"
    );
    assert_eq!(assert_one_file(&env, &SMALL_NAMES), small);
    assert_eq!(assert_one_file(&env, &BIG_NAMES), big);

    // An edit to the shared file shows under every name.
    let f = OpenOptions::new()
        .append(true)
        .open(env.path("src/b/three"))
        .unwrap();
    f.write_all_at(b"appended\n", 0).unwrap();
    drop(f);
    let f = OpenOptions::new()
        .write(true)
        .open(env.path("src/c/d/big3"))
        .unwrap();
    f.write_all_at(b"rewritten in place", 1000).unwrap();
    drop(f);
    env.once_ok(&["--jobs", jobs]);
    assert_mirror(&env.src(), &env.dst());
    assert_ne!(assert_one_file(&env, &SMALL_NAMES), small);
    assert_ne!(assert_one_file(&env, &BIG_NAMES), big);
    let third = summaries(&env.log_text(), 1)[2].clone();
    assert!(
        third.contains(" 0 copied, 2 updated, 0 touched, 5 linked,"),
        "{third}"
    );
}

#[test]
fn hard_links_are_kept_with_one_worker() {
    hard_links_are_kept("1");
}

#[test]
fn hard_links_are_kept_with_eight_workers() {
    hard_links_are_kept("8");
}

#[test]
fn a_name_that_stops_being_a_hard_link_is_still_mirrored() {
    let env = TestEnv::new();
    linked_tree(&env);
    env.once_ok(&[]);
    // b/three becomes a file of its own with the same bytes and mtime
    // (`cp -p`), so only the inode tells it apart.
    let three = env.path("src/b/three");
    fs::remove_file(&three).unwrap();
    fs::copy(env.path("src/a/one"), &three).unwrap();
    set_mtime(&three, past());
    set_mtime(&env.path("src/b"), "2018-01-01 00:00:00.5");
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    // Now the group changes mode: the replica of b/three must not follow.
    for name in ["a/one", "big1"] {
        fs::set_permissions(
            env.path("src").join(name),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    assert_one_file(&env, &["a/one", "a/two", "c/d/four"]);
    assert_one_file(&env, &BIG_NAMES);
    assert_ne!(
        inode(&env.path("dst/b/three")),
        inode(&env.path("dst/a/one"))
    );
    // And the other way round: the lone name changes alone.
    fs::set_permissions(&three, fs::Permissions::from_mode(0o604)).unwrap();
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn replica_copies_become_hard_links_and_a_dry_run_only_says_so() {
    let env = TestEnv::new();
    linked_tree(&env);
    // One worker, so which name leads each group is always the same.
    // Nothing exists yet: a dry run says what it would copy and link.
    env.once_ok(&["--dry-run", "--jobs", "1"]);
    assert!(!env.dst().exists());
    let log = env.log_text();
    assert_eq!(count(&log, "[dry run] linked "), 5, "{log}");
    assert_eq!(count(&log, " (hard link)"), 5, "{log}");

    // A replica made by a tool that copied each name (as we did before).
    env.once_ok(&["--jobs", "1"]);
    for name in ["a/two", "b/three", "a/big2"] {
        let p = env.path("dst").join(name);
        let copy = env.path("copy");
        fs::copy(&p, &copy).unwrap();
        let meta = fs::metadata(&p).unwrap();
        fs::set_permissions(&copy, meta.permissions()).unwrap();
        fs::rename(&copy, &p).unwrap();
        set_mtime(
            &p,
            if name == "a/big2" {
                "2019-02-03 04:05:06.7"
            } else {
                past()
            },
        );
    }
    for dir in ["dst/a", "dst/b"] {
        set_mtime(&env.path(dir), "2018-01-01 00:00:00.5");
    }
    assert_mirror(&env.src(), &env.dst());
    let before: Vec<u64> = SMALL_NAMES
        .iter()
        .chain(&BIG_NAMES)
        .map(|n| inode(&env.path("dst").join(n)))
        .collect();
    env.once_ok(&["--dry-run", "--jobs", "1"]);
    let after: Vec<u64> = SMALL_NAMES
        .iter()
        .chain(&BIG_NAMES)
        .map(|n| inode(&env.path("dst").join(n)))
        .collect();
    assert_eq!(before, after, "a dry run changed the replica");
    let log = env.log_text();
    let dry = summaries(&log, 1)[2].clone();
    assert!(
        dry.contains("[dry run] pass finished") && dry.contains(" 3 linked,"),
        "{dry}"
    );

    env.once_ok(&["--jobs", "1"]);
    assert_mirror(&env.src(), &env.dst());
    assert_one_file(&env, &SMALL_NAMES);
    assert_one_file(&env, &BIG_NAMES);
    let last = summaries(&env.log_text(), 1)[3].clone();
    assert!(
        last.contains(" 0 copied, 0 updated, 0 touched, 3 linked,")
            && last.ends_with(" 0 bytes written"),
        "{last}"
    );
}

#[test]
fn a_daemon_reads_no_linked_file_again_on_the_pass_after_linking() {
    let env = TestEnv::new();
    linked_tree(&env);
    let (s, d, l) = (env.src(), env.dst(), env.log());
    let mut session = MenuSession::start(
        env.root(),
        [
            std::ffi::OsStr::new("-v"),
            s.as_os_str(),
            d.as_os_str(),
            std::ffi::OsStr::new("3600"),
            l.as_os_str(),
        ],
    );
    // Linking moved the big file's ctime after its copy; its digest is
    // still taken, so the cache knows the file as it now is.
    let taken = "took the digests of 1 of 1 big files (5242880 bytes)";
    wait_log(&env.log(), taken, 1);
    assert_one_file(&env, &BIG_NAMES);
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 2);
    // Nothing was read: a big file read to compare would be hashed again.
    sync_now(&mut session, 1);
    wait_log(&env.log(), "pass finished", 3);
    let log = env.log_text();
    assert_eq!(count(&log, "took the digests of"), 1, "{log}");
    assert_mirror(&env.src(), &env.dst());
    session.send("3");
    let status = session.wait_exit(std::time::Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", session.stderr());
}
