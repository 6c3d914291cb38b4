//! What every test module shares, imported as `use crate::support::*;`:
//! `env` (a temporary folder to sync, running the binary, snapshots and the
//! mirror check, a piped menu session), `checks` (log lines, waits, running
//! without the capabilities that let root ignore permissions), `safety`
//! (seeded randomness, fd-relative snapshots past PATH_MAX, kill helpers,
//! tmpfs mounts), `sshfs` (a real sshd and sshfs mount on 127.0.0.1) and
//! `userns` (a user namespace with its own inotify watch limit) and
//! `control` (`foldersync ctl` against a process in a runtime folder of
//! the test's own).
#![allow(dead_code)] // each test module uses a different part of it

mod checks;
mod control;
mod env;
mod safety;
mod sshfs;
mod userns;

pub use checks::*;
pub use control::*;
pub use env::*;
pub use safety::*;
pub use sshfs::*;
pub use userns::*;
