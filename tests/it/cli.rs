//! The command line: help, version, bad input (exit 2, one line, nothing
//! created), the pairs file, fractional intervals, console verbosity.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::support::*;

/// The same check in `--once` mode and in the default menu mode (stdin
/// closed), which must refuse the same input before starting anything.
#[track_caller]
fn assert_refused_in_every_mode(env: &TestEnv, args: &[&str], want: &str) {
    let mut once = vec!["--once"];
    once.extend_from_slice(args);
    assert_refused(env, &once, want);
    assert_refused(env, args, want);
}

#[test]
fn help_lists_every_option_and_exits_0() {
    let env = TestEnv::new();
    let before = snapshot(env.root());
    let out = env.run(["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    for want in [
        "SOURCE",
        "REPLICA",
        "INTERVAL",
        "LOGFILE",
        "--pairs <FILE>",
        "--once",
        "--no-menu",
        "--checksum",
        "--dry-run",
        "--verbose",
        "--quiet",
        "--help",
        "--version",
    ] {
        assert!(text.contains(want), "--help lacks {want}:\n{text}");
    }
    assert_eq!(snapshot(env.root()), before);
}

#[test]
fn version_prints_the_package_version_and_exits_0() {
    let env = TestEnv::new();
    let out = env.run(["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout_of(&out).trim(),
        format!("foldersync {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn fewer_than_four_positionals_is_a_usage_error_that_creates_nothing() {
    let env = TestEnv::new();
    let before = snapshot(env.root());
    for args in [
        &["--once", "src", "dst", "1"][..],
        &["--once", "src", "dst"],
        &["--once", "src"],
        &["src", "dst", "1"],
    ] {
        let out = env.run(args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("<LOGFILE>"),
            "{args:?} should name LOGFILE:\n{err}"
        );
        assert_eq!(snapshot(env.root()), before, "{args:?} created something");
    }
}

#[test]
fn once_or_no_menu_without_any_pair_is_refused() {
    let env = TestEnv::new();
    assert_refused(&env, &["--once"], "--once needs at least one pair");
    assert_refused(&env, &["--no-menu"], "--no-menu needs at least one pair");
}

#[test]
fn missing_or_non_folder_source_is_refused_and_creates_nothing() {
    let env = TestEnv::new();
    env.write("file.txt", "not a folder");
    assert_refused_in_every_mode(&env, &["nosuch", "dst", "1", "log.txt"], "source nosuch");
    assert_refused_in_every_mode(&env, &["file.txt", "dst", "1", "log.txt"], "not a folder");
}

#[test]
fn bad_intervals_are_refused_and_create_nothing() {
    let env = TestEnv::new();
    for (interval, want) in [
        ("0", "must be more than zero"),
        ("0.0", "must be more than zero"),
        ("abc", "is not a number"),
        ("", "is not a number"),
        ("inf", "is not a number"),
        ("NaN", "is not a number"),
        ("1e12", "longer than a year"),
        ("999999999999999999999", "longer than a year"),
    ] {
        assert_refused_in_every_mode(&env, &["src", "dst", interval, "log.txt"], want);
    }
    // A negative number after `--`, where it cannot be taken for an option.
    assert_refused(
        &env,
        &["--once", "--", "src", "dst", "-1", "log.txt"],
        "must be more than zero",
    );
}

#[test]
fn replica_equal_to_inside_or_containing_the_source_is_refused() {
    let env = TestEnv::new();
    env.mkdir("src/sub");
    symlink("src", env.path("srclink")).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["src", "src", "1", "log.txt"],
            "is the source folder itself",
        ),
        (
            &["src", "./src/", "1", "log.txt"],
            "is the source folder itself",
        ),
        (
            &["src", "srclink", "1", "log.txt"],
            "is the source folder itself",
        ),
        (
            &["src", "src/sub/../", "1", "log.txt"],
            "is the source folder itself",
        ),
        (
            &["src", "src/new", "1", "log.txt"],
            "is inside the source folder",
        ),
        (
            &["src", "src/sub", "1", "log.txt"],
            "is inside the source folder",
        ),
        (
            &["src", "srclink/new", "1", "log.txt"],
            "is inside the source folder",
        ),
        (&["src", ".", "1", "log.txt"], "contains the source folder"),
        (
            &["src/sub", "src", "1", "log.txt"],
            "contains the source folder",
        ),
        (
            &["src", "src/..", "1", "log.txt"],
            "contains the source folder",
        ),
    ];
    for (args, want) in cases {
        assert_refused_in_every_mode(&env, args, want);
    }
}

#[test]
fn log_file_that_is_a_folder_or_in_a_missing_folder_is_refused() {
    let env = TestEnv::new();
    env.mkdir("logs");
    assert_refused_in_every_mode(&env, &["src", "dst", "1", "logs"], "is a folder");
    assert_refused_in_every_mode(
        &env,
        &["src", "dst", "1", "nodir/log.txt"],
        "does not exist",
    );
    // Inside the replica, where a pass would delete it.
    env.mkdir("dst");
    assert_refused_in_every_mode(
        &env,
        &["src", "dst", "1", "dst/log.txt"],
        "inside the replica folder",
    );
}

#[test]
fn replica_in_a_missing_folder_is_refused() {
    let env = TestEnv::new();
    assert_refused_in_every_mode(&env, &["src", "nodir/dst", "1", "log.txt"], "parent folder");
}

/// Writes `pairs.txt` in the env root.
fn pairs_file(env: &TestEnv, text: &str) {
    fs::write(env.path("pairs.txt"), text).unwrap();
}

#[test]
fn pairs_file_with_comments_blank_lines_and_quoted_fields_runs_with_the_positional_pair() {
    let env = TestEnv::new();
    env.write("src/a.txt", "positional");
    env.write("my src/b.txt", "quoted with spaces");
    env.write("src3/sub/c.txt", "tabs");
    pairs_file(
        &env,
        "# pairs for the test\n\
         \n\
         \x20  # an indented comment\n\
         \"my src\" \"my dst\" 0.5 \"my log.txt\"\n\
         \tsrc3\t\tdst3   2   log3.txt  \n",
    );
    let out = env.run([
        "--once",
        "--pairs",
        "pairs.txt",
        "src",
        "dst",
        "1",
        "log.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_mirror(&env.src(), &env.dst());
    assert_mirror(&env.path("my src"), &env.path("my dst"));
    assert_mirror(&env.path("src3"), &env.path("dst3"));
    assert_action(&env.log_text(), 1, "copied a.txt (10 bytes)");
    assert_action(
        &read_text(&env.path("my log.txt")),
        2,
        "copied b.txt (18 bytes)",
    );
    assert_action(
        &read_text(&env.path("log3.txt")),
        3,
        "copied sub/c.txt (4 bytes)",
    );
    assert!(read_text(&env.path("my log.txt")).contains("every 0.5 s"));
}

#[test]
fn pairs_file_line_that_does_not_parse_names_file_and_line_and_creates_nothing() {
    let env = TestEnv::new();
    env.mkdir("src2");
    let good = "src2 dst2 1 log2.txt\n";
    let cases = [
        (
            format!("# c\n\n{good}src2 dst3 1\n"),
            "pairs.txt:4: expected 4 fields",
        ),
        (
            format!("{good}src2 dst3 1 log3.txt extra\n"),
            "pairs.txt:2: after the four fields only the words watch and two-way (or one-way) may follow, each once, not \"extra\"",
        ),
        (
            format!("{good}src2 dst3 1 log3.txt watch extra\n"),
            "pairs.txt:2: after the four fields only the words",
        ),
        (
            format!("{good}\"src2 dst3 1 log3.txt\n"),
            "pairs.txt:2: a quoted field has no closing quote",
        ),
        (
            format!("{good}src2 dst3 zero log3.txt\n"),
            "pairs.txt:2: interval \"zero\"",
        ),
        (
            format!("\n{good}nosuch dst3 1 log3.txt\n"),
            "pairs.txt:3: source nosuch",
        ),
        (
            format!("{good}src2 src2/in 1 log3.txt\n"),
            "pairs.txt:2: replica src2/in is inside",
        ),
    ];
    for (text, want) in cases {
        pairs_file(&env, &text);
        assert_refused(
            &env,
            &[
                "--once",
                "--pairs",
                "pairs.txt",
                "src",
                "dst",
                "1",
                "log.txt",
            ],
            want,
        );
        assert_refused(&env, &["--pairs", "pairs.txt"], want);
    }
}

#[test]
fn missing_pairs_file_is_refused() {
    let env = TestEnv::new();
    assert_refused(
        &env,
        &["--once", "--pairs", "nosuch.txt"],
        "pairs file nosuch.txt",
    );
}

#[test]
fn pairs_whose_replicas_are_the_same_or_nest_are_refused() {
    let env = TestEnv::new();
    env.mkdir("src2");
    env.mkdir("dst"); // a replica left by an earlier run
    env.mkdir("outer");
    env.mkdir("made");
    symlink("made", env.path("madelink")).unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "src2 dst 1 log2.txt",
            &["src", "dst"],
            "two pairs write into the same replica",
        ),
        (
            "src2 ./x/../dst 1 log2.txt",
            &["src", "dst"],
            "two pairs write into the same replica",
        ),
        (
            "src2 dst/inner 1 log2.txt",
            &["src", "dst"],
            "is inside replica",
        ),
        (
            "src2 outer 1 log2.txt",
            &["src", "outer/dst"],
            "is inside replica",
        ),
        (
            "src2 outer/../outer/ 1 log2.txt",
            &["src", "outer/dst"],
            "is inside replica",
        ),
        // Through a symlink to an existing folder.
        (
            "src2 madelink/r 1 log2.txt",
            &["src", "made/r"],
            "two pairs write into the same replica",
        ),
        (
            "src2 madelink/inner 1 log2.txt",
            &["src", "made"],
            "is inside replica",
        ),
    ];
    for (line, pair, want) in cases {
        pairs_file(&env, &format!("{line}\n"));
        let mut args = vec!["--pairs", "pairs.txt"];
        args.extend_from_slice(pair);
        args.extend(["1", "log.txt"]);
        assert_refused_in_every_mode(&env, &args, want);
    }
    // Two lines of the pairs file alone.
    pairs_file(&env, "src made/r 1 l1.txt\nsrc2 madelink/r 1 l2.txt\n");
    assert_refused_in_every_mode(
        &env,
        &["--pairs", "pairs.txt"],
        "two pairs write into the same replica",
    );
}

#[test]
fn fractional_interval_runs_passes_without_the_menu_until_sigterm() {
    let env = TestEnv::new();
    env.write("src/a.txt", "half a second");
    let (s, d, l) = (env.src(), env.dst(), env.log());
    let mut session = MenuSession::start(
        env.root(),
        [
            OsStr::new("--no-menu"),
            s.as_os_str(),
            d.as_os_str(),
            OsStr::new("0.5"),
            l.as_os_str(),
        ],
    );
    wait_log(&l, "pass finished", 3);
    assert!(env.log_text().contains("every 0.5 s"), "{}", env.log_text());
    assert!(!session.stdout().contains("Choose an option"));
    signal(session.child.id(), "TERM");
    let status = session.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_mirror(&s, &d);
    assert_action(&env.log_text(), 1, "stopped");
}

#[test]
fn quiet_and_verbose_change_the_console_only() {
    let env = TestEnv::new();
    env.write("src/a.txt", "x");
    let quiet = env.once_ok(&["-q"]);
    assert_eq!(stderr_of(&quiet), "", "-q printed more than warnings");
    assert_action(&env.log_text(), 1, "copied a.txt (1 bytes)");

    fs::remove_dir_all(env.dst()).unwrap();
    let normal = env.once_ok(&[]);
    let err = stderr_of(&normal);
    assert!(err.contains("pair 1: copied a.txt (1 bytes)"), "{err}");
    assert!(!err.contains("pass started"), "{err}");

    fs::remove_dir_all(env.dst()).unwrap();
    let verbose = env.once_ok(&["-v"]);
    let err = stderr_of(&verbose);
    assert!(err.contains("pair 1: pass started"), "{err}");
    assert!(err.contains("pair 1: copied a.txt (1 bytes)"), "{err}");
    // The log file always gets every action, whatever the console shows.
    assert_eq!(count(&env.log_text(), "copied a.txt (1 bytes)"), 3);
}

#[test]
fn negative_interval_is_reported_as_a_bad_interval() {
    let env = TestEnv::new();
    assert_refused_in_every_mode(
        &env,
        &["src", "dst", "-1", "log.txt"],
        "interval \"-1\" must be more than zero",
    );
    assert_refused(
        &env,
        &["--once", "src", "dst", "-0.5", "log.txt"],
        "interval \"-0.5\" must be more than zero",
    );
}

#[test]
fn replica_given_as_a_dangling_symlink_to_another_pairs_replica_is_refused() {
    // `alias -> dst`, and dst does not exist yet: the first pass of pair 1
    // creates dst, and pair 2 would then write into it through the link.
    let env = TestEnv::new();
    env.write("src/a.txt", "one");
    env.write("src2/b.txt", "two");
    symlink("dst", env.path("alias")).unwrap();
    pairs_file(&env, "src2 alias 1 log2.txt\n");
    assert_refused_in_every_mode(
        &env,
        &["--pairs", "pairs.txt", "src", "dst", "1", "log.txt"],
        "two pairs write into the same replica",
    );
    // Alone, such a pair syncs into the folder the link leads to.
    symlink("alias", env.path("alias2")).unwrap();
    let out = env.run(["--once", "src", "alias2", "1", "log.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn generate_writes_a_man_page_and_completion_scripts_to_stdout_and_nothing_else() {
    let env = TestEnv::new();
    let before = snapshot(env.root());
    for (what, want) in [
        ("man", ".TH foldersync 1"),
        ("complete-bash", "complete -F _foldersync"),
        ("complete-zsh", "#compdef foldersync"),
        // With subcommands (ctl), fish completes options under a condition.
        (
            "complete-fish",
            "complete -c foldersync -n \"__fish_foldersync_needs_command\" -l no-menu",
        ),
    ] {
        let out = env.run(["--generate", what]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr_of(&out));
        assert!(text.contains(want), "{what}: no {want:?} in:\n{text}");
        // roff escapes a dash.
        let text = text.replace("\\-", "-");
        assert!(text.contains("max-delete"), "{what} lacks an option");
        assert!(out.stderr.is_empty(), "{what}: {}", stderr_of(&out));
    }
    assert_eq!(snapshot(env.root()), before);
    // With a pair it is a usage error: it would not sync anything.
    let out = env.run(["--generate", "man", "src", "dst", "1", "l"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(snapshot(env.root()), before);
}
