//! Two-way pairs at their edges (issue 19): conflicts on names near the
//! file system's limit, state folders inside a synced folder, excluded
//! entries meeting entries of the same name, and disks mounted inside a
//! side.

use std::fs;
use std::path::Path;

use crate::support::*;

/// One `--once --two-way` pass of src and dst with `extra` options: its
/// exit code and the log lines it added.
fn pass_code(env: &TestEnv, extra: &[&str]) -> (Option<i32>, Vec<String>) {
    let before = actions(&env.log_text(), 1).len();
    let mut args = vec!["--two-way"];
    args.extend_from_slice(extra);
    let out = env.once(&args);
    (
        out.status.code(),
        actions(&env.log_text(), 1).split_off(before),
    )
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// The names in `dir` that start with `stem` and hold a conflict tag.
fn conflict_copies(dir: &Path, stem: &str) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(stem) && n.contains(".conflict-"))
        .collect()
}

#[test]
fn a_conflict_on_a_name_near_the_limit_gets_a_shortened_copy() {
    let env = TestEnv::new();
    // 240 bytes of UTF-8 (2-byte characters), with an extension.
    let stem = "\u{e9}".repeat(118);
    let name = format!("{stem}.txt");
    assert_eq!(name.len(), 240);
    env.write(format!("src/{name}"), "original");
    assert_eq!(pass_code(&env, &[]).0, Some(0));
    env.write(format!("src/{name}"), "source edit");
    set_mtime(&env.src().join(&name), "2020-01-01 10:00:00");
    env.write(format!("dst/{name}"), "replica edit, newer");
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("error")),
        "no error: {lines:#?}"
    );
    for side in [env.src(), env.dst()] {
        let copies = conflict_copies(&side, &stem[..20]);
        assert_eq!(copies.len(), 1, "{:?}", names(&side));
        let copy = &copies[0];
        assert!(copy.len() <= 255, "{copy}");
        assert!(copy.ends_with(".txt"), "the extension stays: {copy}");
        assert!(copy.contains(".conflict-"), "the tag stays: {copy}");
        assert_eq!(fs::read_to_string(side.join(copy)).unwrap(), "source edit");
        assert_eq!(
            fs::read_to_string(side.join(&name)).unwrap(),
            "replica edit, newer"
        );
    }
    // Settled: the next pass has nothing to do.
    let (code, again) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{again:#?}");
    assert!(
        !again.iter().any(|l| l.starts_with("conflict")
            || l.starts_with("copied")
            || l.starts_with("error")),
        "{again:#?}"
    );
}

/// A state folder that is, contains or lies inside a folder of any pair
/// (one-way or two-way, source or replica, on the command line or in a
/// pairs file) is bad input: exit 2, nothing created. Before, a state
/// folder inside a source had its live database copied every pass.
#[test]
fn a_state_folder_in_or_around_a_pairs_folder_is_refused() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.mkdir("dst");
    env.mkdir("src2");
    fs::write(env.path("pairs.txt"), "src2 dst2 1 log2.txt two-way\n").unwrap();
    let pair = ["src", "dst", "1", "log.txt"];
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "src/.st", "is inside the source folder"),
        (&[], "src", "is the source folder"),
        (&[], "dst/.st", "is inside the replica folder"),
        (&["--two-way"], "src/.st", "is inside the source folder"),
        (
            &["--two-way"],
            "dst/deep/.st",
            "is inside the replica folder",
        ),
        (&[], ".", "contains the source folder"),
        (
            &["--pairs", "pairs.txt"],
            "src2/.st",
            "is inside the source folder",
        ),
        (
            &["--pairs", "pairs.txt"],
            "dst2/.st",
            "is inside the replica folder",
        ),
    ];
    for (extra, state, why) in cases {
        let mut args = vec!["--once", "--state-dir", state];
        args.extend_from_slice(extra);
        args.extend_from_slice(&pair);
        assert_refused(&env, &args, why);
        let out = stderr_of(&env.run(&args));
        assert!(
            out.contains("state folder ") && out.contains("--state-dir"),
            "{out}"
        );
    }
    // A state folder beside them is fine.
    let mut args = vec!["--once", "--two-way", "--state-dir", "st"];
    args.extend_from_slice(&pair);
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

/// The menu's add refuses a pair whose folders hold or are inside the
/// state folder, and adds nothing.
#[test]
fn the_menu_refuses_a_pair_around_the_state_folder() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.mkdir("stp/st");
    env.mkdir("src2");
    let mut session = MenuSession::start(
        env.root(),
        ["--state-dir", "stp/st", "src", "dst", "3600", "log.txt"],
    );
    wait_log(&env.log(), "pass finished", 1);
    let cases = [
        (
            ["stp", "dst2", "10", "new1.txt"],
            "",
            "is inside the source folder",
        ),
        (
            ["src2", "stp", "10", "new2.txt"],
            "2",
            "is inside the replica folder",
        ),
        (
            ["src2", "stp/st/x", "10", "new3.txt"],
            "",
            "contains the replica folder",
        ),
    ];
    for (n, (answers, direction, why)) in cases.iter().enumerate() {
        session.send("2");
        for a in answers {
            session.send(a);
        }
        session.send(direction);
        session.wait_stdout("Not added: ", n + 1, PATIENCE);
        let out = session.stdout();
        let last = out.rsplit("Not added: ").next().unwrap();
        let last = last.lines().next().unwrap();
        assert!(
            last.contains("state folder") && last.contains(why),
            "{answers:?}: want {why:?}, got:\n{out}"
        );
    }
    assert!(!env.path("dst2").exists() && !env.path("new1.txt").exists());
    session.send("3");
    assert_eq!(
        session.wait_exit(std::time::Duration::from_secs(10)).code(),
        Some(0)
    );
}

const EXCLUDE_CACHE: &[&str] = &["--exclude", "cache/"];

/// Asserts a pass that changes nothing and says nothing but its summary.
#[track_caller]
fn assert_quiet_pass(env: &TestEnv) {
    let (code, lines) = pass_code(env, EXCLUDE_CACHE);
    assert_eq!(code, Some(0), "{lines:#?}");
    let noisy: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("started") && !l.starts_with("pass ") && *l != "stopped")
        .collect();
    assert!(
        noisy.is_empty(),
        "a settled pair's pass did something: {noisy:#?}"
    );
}

/// Item 4: a folder-only pattern leaves the file of the same name in:
/// the file meets the other side's excluded folder. The folder keeps the
/// name; the file is kept as a conflict copy on both sides. Before, the
/// file never synced and every pass said it "changed in the source".
#[test]
fn a_file_meeting_an_excluded_folder_of_its_name_becomes_a_conflict_copy() {
    let env = TestEnv::new();
    env.write("src/cache/x", "excluded on the source");
    env.write("dst/cache", "the replica's file");
    // A dry run says so and changes nothing.
    let sides = |env: &TestEnv| (snapshot(&env.src()), snapshot(&env.dst()));
    let before = sides(&env);
    let (code, lines) = pass_code(&env, &["--dry-run", "--exclude", "cache/"]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[dry run] excluded: cache in the source is an excluded folder")),
        "{lines:#?}"
    );
    assert!(sides(&env) == before, "a dry run changed something");
    let (code, lines) = pass_code(&env, EXCLUDE_CACHE);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "excluded: cache in the source is an excluded folder, which a pass never deletes or replaces; \
             it keeps the name, and the replica's entry there is kept beside it as cache.conflict-"
        )),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("changed in the")),
        "{lines:#?}"
    );
    assert_eq!(
        fs::read_to_string(env.path("src/cache/x")).unwrap(),
        "excluded on the source"
    );
    assert!(!env.path("dst/cache").exists());
    let copies = conflict_copies(&env.dst(), "cache");
    assert_eq!(copies.len(), 1, "{:?}", names(&env.dst()));
    assert_eq!(conflict_copies(&env.src(), "cache"), copies);
    for side in [env.src(), env.dst()] {
        assert_eq!(
            fs::read_to_string(side.join(&copies[0])).unwrap(),
            "the replica's file"
        );
    }
    assert_quiet_pass(&env);
}

/// Item 3: a folder that holds only excluded entries on one side, replaced
/// by a file on the other: the folder keeps the name (made again where it
/// was replaced), the file goes aside as a conflict copy on both sides.
/// Before, every pass kept the folder with an info line and the file
/// never reached the other side.
#[test]
fn a_file_replacing_a_folder_that_holds_excluded_entries_becomes_a_conflict_copy() {
    let env = TestEnv::new();
    env.write("src/d2/f", "synced");
    assert_eq!(pass_code(&env, EXCLUDE_CACHE).0, Some(0));
    env.write("dst/d2/cache/c", "excluded on the replica");
    fs::remove_dir_all(env.path("src/d2")).unwrap();
    env.write("src/d2", "the source's file");
    let (code, lines) = pass_code(&env, EXCLUDE_CACHE);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "excluded: d2 in the replica is a folder holding excluded entries (d2/cache), which a pass never \
             deletes or replaces; it keeps the name, and the source's entry there is kept beside it as d2.conflict-"
        )),
        "{lines:#?}"
    );
    assert!(env.path("src/d2").is_dir(), "the folder is made again");
    assert_eq!(names(&env.path("src/d2")), Vec::<String>::new());
    assert_eq!(names(&env.path("dst/d2")), ["cache"]);
    assert_eq!(
        fs::read_to_string(env.path("dst/d2/cache/c")).unwrap(),
        "excluded on the replica"
    );
    let copies = conflict_copies(&env.dst(), "d2");
    assert_eq!(copies.len(), 1, "{:?}", names(&env.dst()));
    assert_eq!(conflict_copies(&env.src(), "d2"), copies);
    for side in [env.src(), env.dst()] {
        assert_eq!(
            fs::read_to_string(side.join(&copies[0])).unwrap(),
            "the source's file"
        );
    }
    assert_quiet_pass(&env);
}

/// A folder deleted on one side while on the other it holds excluded
/// entries: what is not excluded goes, the folder stays and is made again
/// on the deleting side, with a warning. Before, the pass said only that
/// it kept the folder, and the sides stayed different.
#[test]
fn a_folder_deleted_while_it_holds_excluded_entries_is_made_again() {
    let env = TestEnv::new();
    env.write("src/d3/f", "synced");
    env.write("src/keep", "k");
    assert_eq!(pass_code(&env, EXCLUDE_CACHE).0, Some(0));
    env.write("dst/d3/cache/c", "excluded on the replica");
    fs::remove_dir_all(env.path("src/d3")).unwrap();
    let (code, lines) = pass_code(&env, EXCLUDE_CACHE);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines.contains(
            &"excluded: d3 was deleted in the source, but in the replica it is a folder holding excluded \
              entries (d3/cache), which a pass never deletes; the folder is kept and made again in the source"
                .to_string()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"removed d3/f from the replica".to_string()),
        "{lines:#?}"
    );
    assert_eq!(names(&env.path("src/d3")), Vec::<String>::new());
    assert_eq!(names(&env.path("dst/d3")), ["cache"]);
    assert_quiet_pass(&env);
}

/// A disk mounted inside a side (a tmpfs on dst/photos) and unmounted
/// between passes leaves a bare folder: the pass leaves it alone on both
/// sides with an error naming it, every pass, until `--new-device`
/// confirms the change. Before, the source's copies of the photos were
/// deleted with exit 0.
#[test]
fn a_disk_unmounted_inside_a_side_is_refused_not_mirrored() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    env.write("dst/b.txt", "b");
    let photos = env.mkdir("dst/photos");
    let mount = match TmpfsMount::mount(&photos, "1m") {
        Ok(m) => m,
        Err(why) => return missing_prerequisite(&format!("a tmpfs mount: {why}")),
    };
    env.write("dst/photos/p1.jpg", "photo");
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_eq!(
        fs::read_to_string(env.path("src/photos/p1.jpg")).unwrap(),
        "photo"
    );
    drop(mount);
    assert!(!env.path("dst/photos/p1.jpg").exists(), "still mounted");
    for _ in 0..2 {
        let (code, lines) = pass_code(&env, &[]);
        assert_eq!(code, Some(1), "{lines:#?}");
        let error = lines
            .iter()
            .find(|l| l.starts_with("error replica folder "))
            .unwrap_or_else(|| panic!("no error naming the folder: {lines:#?}"));
        assert!(
            error.contains("/dst/photos is now on another file system")
                && error.contains("left alone on both sides")
                && error.contains("--new-device"),
            "{error}"
        );
        assert_eq!(
            fs::read_to_string(env.path("src/photos/p1.jpg")).unwrap(),
            "photo",
            "the source's copy was deleted through the bare mountpoint"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("removed")),
            "{lines:#?}"
        );
    }
    // Confirmed: the folder is taken as it is now, and stays so.
    let (code, lines) = pass_code(&env, &["--new-device"]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/dst/photos is now on another file system")
                && l.contains("taken as confirmed")),
        "{lines:#?}"
    );
    assert!(!env.path("src/photos/p1.jpg").exists());
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
}

/// An excluded file against a folder of its name on the other side (a
/// folder re-included by `!cache/`): neither is moved aside; an error on
/// every pass until one is renamed, nothing copied into either.
#[test]
fn an_excluded_file_against_a_folder_of_its_name_is_an_error_every_pass() {
    let env = TestEnv::new();
    env.write("src/cache", "excluded file on the source");
    env.write("dst/cache/x", "the replica's folder");
    env.write("dst/other", "o");
    let excludes = ["--exclude", "cache", "--exclude", "!cache/"];
    for _ in 0..2 {
        let (code, lines) = pass_code(&env, &excludes);
        assert_eq!(code, Some(1), "{lines:#?}");
        assert!(
            lines.contains(
                &"error cache cannot be synced: in the source it is an excluded file, in the replica a folder; \
                  neither is touched. Rename one of them"
                    .to_string()
            ),
            "{lines:#?}"
        );
        assert_eq!(
            fs::read_to_string(env.path("src/cache")).unwrap(),
            "excluded file on the source"
        );
        assert_eq!(names(&env.path("dst/cache")), ["x"]);
        assert_eq!(fs::read_to_string(env.path("src/other")).unwrap(), "o");
    }
}

/// The menu shows a pair whose nested mount was refused, and option 7
/// accepts the change for the pass it starts.
#[test]
fn menu_option_7_accepts_a_changed_nested_mount() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let photos = env.mkdir("dst/photos");
    let mount = match TmpfsMount::mount(&photos, "1m") {
        Ok(m) => m,
        Err(why) => return missing_prerequisite(&format!("a tmpfs mount: {why}")),
    };
    env.write("dst/photos/p1.jpg", "photo");
    let mut session = MenuSession::start(
        env.root(),
        [
            "--two-way",
            "--state-dir",
            "state",
            "src",
            "dst",
            "3600",
            "log.txt",
        ],
    );
    wait_log(&env.log(), "pass finished", 1);
    assert!(env.path("src/photos/p1.jpg").exists());
    drop(mount);
    sync_now(&mut session, 1);
    wait_log(&env.log(), "/dst/photos is now on another file system", 1);
    // The refusal is logged before the pass's end reaches the list: list
    // until it shows.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !session
        .stdout()
        .contains("photos on another device; option 7 accepts")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the list never showed the refusal:\n{}",
            session.stdout()
        );
        session.send("1");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        env.path("src/photos/p1.jpg").exists(),
        "deleted while refused"
    );
    session.send("7");
    session.send("1");
    session.wait_stdout("Pair 1: accepting the new device (", 1, PATIENCE);
    wait_for(
        PATIENCE,
        || !env.path("src/photos/p1.jpg").exists(),
        || format!("the accepted folder was not synced:\n{}", env.log_text()),
    );
    wait_log(&env.log(), "taken as confirmed", 1);
    session.send("3");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}

/// The other way round: a disk mounted over a synced folder hides what
/// the folder held, which is no deletion: refused until confirmed.
#[test]
fn a_disk_mounted_over_a_synced_folder_is_refused_not_mirrored() {
    let env = TestEnv::new();
    env.write("src/photos/p1.jpg", "photo");
    env.write("src/a.txt", "a");
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(env.path("dst/photos/p1.jpg").exists());
    let _mount = match TmpfsMount::mount(&env.path("dst/photos"), "1m") {
        Ok(m) => m,
        Err(why) => return missing_prerequisite(&format!("a tmpfs mount: {why}")),
    };
    for _ in 0..2 {
        let (code, lines) = pass_code(&env, &[]);
        assert_eq!(code, Some(1), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("error replica folder ")
                && l.contains("/dst/photos is now on another file system")
                && l.contains("--new-device")),
            "{lines:#?}"
        );
        assert_eq!(
            fs::read_to_string(env.path("src/photos/p1.jpg")).unwrap(),
            "photo"
        );
    }
    let (code, lines) = pass_code(&env, &["--new-device"]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(!env.path("src/photos/p1.jpg").exists());
    let (code, lines) = pass_code(&env, &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
}
