//! One foldersync in a user namespace of its own (`unshare --user
//! --map-root-user`), to meet the kernel's real limit of inotify watches
//! without lowering the machine's: since Linux 5.11 that limit is counted
//! per user namespace (`/proc/sys/user/max_inotify_watches`, its own in
//! each), while `fs.inotify.max_user_watches` is the whole machine's, and
//! other tests run meanwhile.

use std::ffi::OsString;
use std::process::Command;

/// A command prefix that runs a program in a new user namespace whose
/// `user.max_inotify_watches` is `watches`, or why that cannot work here.
pub fn watch_limit_prefix(watches: usize) -> Result<Vec<OsString>, String> {
    let script = format!("echo {watches} > /proc/sys/user/max_inotify_watches && exec \"$@\"");
    let prefix: Vec<OsString> = [
        "unshare",
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        &script,
        "sh",
    ]
    .map(OsString::from)
    .to_vec();
    // Probe: the prefix must run a program, and the limit must hold in it.
    let out = Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(["cat", "/proc/sys/user/max_inotify_watches"])
        .output()
        .map_err(|e| format!("unshare cannot run: {e}"))?;
    let seen = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && seen.trim() == watches.to_string() {
        return Ok(prefix);
    }
    Err(format!(
        "a user namespace with its own user.max_inotify_watches (`unshare --user \
         --map-root-user`, Linux 5.11+) is needed; it gave {:?}, {}",
        seen.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}
