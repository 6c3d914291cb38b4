//! The shortest proof that the binary mirrors a tree.

use crate::support::*;

#[test]
fn once_mirrors_a_mixed_tree_and_a_second_pass_changes_nothing() {
    let env = TestEnv::new();
    env.write("src/a.txt", "alpha");
    env.write("src/sub/deep/b.bin", vec![7u8; 300_000]);
    env.mkdir("src/empty");
    env.symlink("src/link", "a.txt");
    set_mtime(&env.path("src/a.txt"), past());
    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let log = env.log_text();
    assert!(log.contains("copied a.txt (5 bytes)"), "{log}");
    assert!(log.contains("linked link -> a.txt"), "{log}");

    env.once_ok(&[]);
    assert_mirror(&env.src(), &env.dst());
    let last = env
        .log_text()
        .lines()
        .rev()
        .find(|l| l.contains("pass finished"))
        .unwrap()
        .to_string();
    assert!(last.contains(" 0 copied, 0 updated"), "{last}");
}
