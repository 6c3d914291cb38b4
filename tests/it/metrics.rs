//! `--metrics ADDR` (issue 25): every pair's counters in Prometheus's text
//! format, scraped over HTTP with curl, a real client.

use std::process::Command;

use crate::support::*;

/// `curl URL`: the HTTP status and the body.
fn curl(url: &str) -> Option<(String, String)> {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.to_string(), body.to_string()))
}

#[test]
fn metrics_are_scraped_over_http_and_follow_the_passes() {
    if Command::new("curl").arg("--version").output().is_err() {
        return missing_prerequisite("curl is not installed");
    }
    let env = TestEnv::new();
    env.write("src/a.txt", "abc");
    let run = Runtime::new();
    let mut session = run.start(
        env.root(),
        [
            "--no-menu",
            "--metrics",
            "127.0.0.1:0",
            "src",
            "dst",
            "3600",
            "log.txt",
        ],
    );
    session.wait_stderr("/metrics", 1, PATIENCE);
    let stderr = session.stderr();
    let url = stderr
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .expect("the address in the log")
        .to_string();
    run.wait_passes(None, "1", 1);
    let (code, body) = curl(&url).expect("curl runs");
    assert_eq!(code, "200", "{body}");
    for line in [
        "# TYPE foldersync_passes_total counter",
        "foldersync_passes_total{pair=\"1\"} 1",
        "foldersync_failed_passes_total{pair=\"1\"} 0",
        "foldersync_files_copied_total{pair=\"1\"} 1",
        "foldersync_bytes_written_total{pair=\"1\"} 3",
        "foldersync_held_deletions{pair=\"1\"} 0",
        "foldersync_running{pair=\"1\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    assert!(body.contains("foldersync_last_pass_end_timestamp_seconds{pair=\"1\"} "));
    env.write("src/b.txt", "de");
    run.ctl_ok(&["sync", "1"]);
    run.wait_passes(None, "1", 2);
    let (_, body) = curl(&url).expect("curl runs");
    assert!(
        body.lines()
            .any(|l| l == "foldersync_files_copied_total{pair=\"1\"} 2"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "foldersync_bytes_written_total{pair=\"1\"} 5"),
        "{body}"
    );
    let (code, _) = curl(&url.replace("/metrics", "/other")).expect("curl runs");
    assert_eq!(code, "404");
    signal(session.child.id(), "TERM");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn an_address_that_cannot_be_used_is_refused_at_start() {
    let env = TestEnv::new();
    let out = env.run([
        "--no-menu",
        "--metrics",
        "nowhere:x",
        "src",
        "dst",
        "1",
        "log.txt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr_of(&out);
    assert!(
        said.starts_with("foldersync: --metrics nowhere:x: "),
        "{said}"
    );
    assert!(!env.log().exists(), "a pair started");
}
