//! foldersync: keeps replica folders an exact copy of their source folders.
//!
//! The module list is the architecture:
//!
//! - `cli` (what was typed), `config` (validated pairs; `config::pairs_file`
//!   parses a pairs file), `app` (the modes: menu, `--no-menu`, `--once`),
//!   `error` (what a run ends with, and its exit status).
//! - `daemon`: `supervisor` owns the pairs' threads, `worker` runs one
//!   pair's passes on its triggers (`waiting`: how it waits between them;
//!   `watch`: a watched pair's inotify watch), `gate` keeps chained pairs apart,
//!   `shutdown` turns signals into the quit flag.
//! - `ui`: the console: the menu on the main thread (a line editor at a
//!   terminal) and the `--once` progress line.
//! - `pass`: one sync pass, a pipeline of `walk` (both trees, folder by
//!   folder, on a pool of workers), `filter`, `plan` (pure: what an entry
//!   needs), `apply` (does it through `replica`, which in a dry run only
//!   pretends) and `report` (one log line and one count per outcome).
//! - `twoway`: a two-way pair's pass: `scan` both sides, the `archive`
//!   of the last sync (SQLite), `reconcile` (pure: what each path needs),
//!   `apply` (re-checks each target right before touching it), `conflict`
//!   names and `report`.
//! - `excludes`: the patterns that leave paths out of a pair.
//! - `pair` (what a pass and the digests after it share: the pair's
//!   context, its stop signals, its thread count), `cache` (what was last
//!   known equal; `cache_store` keeps it in the pair's state), `digests` (big files hashed after a pass), `mounts`
//!   (what a pair learns of its roots' file systems), `replica_lock` (other
//!   processes kept out), `state` (what a pair keeps across restarts, in
//!   SQLite), `fsops` (every file system call), `logging`, `status`,
//!   `allocator` (malloc's settings for a long-running process).

pub mod allocator;
pub mod app;
mod cache;
mod cache_store;
pub mod cli;
mod config;
mod daemon;
mod digests;
mod error;
mod excludes;
mod fsops;
mod logging;
mod mounts;
mod pair;
mod pass;
mod replica_lock;
mod state;
mod status;
mod twoway;
mod ui;
