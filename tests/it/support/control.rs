//! Driving a running foldersync through `foldersync ctl`: each test gets a
//! runtime folder of its own (`XDG_RUNTIME_DIR`), so its processes are the
//! only ones `ctl` finds there.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{MenuSession, PATIENCE, bin, run_with_timeout, stderr_of, stdout_of, wait_for};

/// A runtime folder for a test's processes and its `ctl` runs.
pub struct Runtime {
    pub dir: tempfile::TempDir,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fsrun")
            .tempdir()
            .expect("temp dir");
        Runtime { dir }
    }

    /// Where foldersync keeps its sockets in it.
    pub fn sockets(&self) -> PathBuf {
        self.dir.path().join("foldersync")
    }

    /// The environment a process started for this runtime needs.
    pub fn env(&self) -> [(&str, &str); 1] {
        [(
            "XDG_RUNTIME_DIR",
            self.dir.path().to_str().expect("utf-8 temp path"),
        )]
    }

    /// Starts foldersync in `dir` with `args`, its socket in this runtime.
    pub fn start<I, S>(&self, dir: &Path, args: I) -> MenuSession
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        MenuSession::start_with_env(dir, args, &self.env())
    }

    /// `foldersync ctl ARGS`, with a `prefix` such as `setpriv ...`.
    pub fn ctl_as(&self, prefix: &[&str], args: &[&str]) -> Output {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("ctl")
            .args(args)
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .stdin(Stdio::null());
        run_with_timeout(&mut cmd, Duration::from_secs(60))
    }

    /// `foldersync ctl ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_as(&[], args)
    }

    /// `ctl ARGS`, which must succeed; its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}\n{}",
            out.status,
            stderr_of(&out)
        );
        stdout_of(&out)
    }

    /// `ctl status --json`'s pairs (with `--config FILE` when given).
    pub fn pairs(&self, config: Option<&str>) -> Vec<serde_json::Value> {
        self.try_pairs(config)
            .unwrap_or_else(|e| panic!("ctl status --json failed: {e}"))
    }

    /// [`Runtime::pairs`], or why `ctl` failed (no process listens yet).
    pub fn try_pairs(&self, config: Option<&str>) -> Result<Vec<serde_json::Value>, String> {
        let mut args = vec!["status", "--json"];
        if let Some(file) = config {
            args.extend(["--config", file]);
        }
        let out = self.ctl(&args);
        if !out.status.success() {
            return Err(stderr_of(&out));
        }
        let value: serde_json::Value =
            serde_json::from_str(&stdout_of(&out)).expect("status --json is JSON");
        Ok(value["pairs"].as_array().expect("a list of pairs").clone())
    }

    /// Waits until the pair called `name` has had `passes` passes.
    pub fn wait_passes(&self, config: Option<&str>, name: &str, passes: u64) {
        wait_for(
            PATIENCE,
            || {
                self.try_pairs(config).is_ok_and(|pairs| {
                    pairs
                        .iter()
                        .any(|p| p["name"] == name && p["passes"].as_u64() >= Some(passes))
                })
            },
            || {
                format!(
                    "pair {name} never had {passes} passes: {:?}",
                    self.try_pairs(config)
                )
            },
        );
    }

    /// Waits until a socket is there: the process listens.
    pub fn wait_socket(&self) {
        wait_for(
            PATIENCE,
            || {
                std::fs::read_dir(self.sockets())
                    .map(|d| d.count() > 0)
                    .unwrap_or(false)
            },
            || format!("no socket appeared in {}", self.sockets().display()),
        );
    }

    /// The state of the pair called `name`.
    pub fn state(&self, name: &str) -> String {
        self.pairs(None)
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }
}
