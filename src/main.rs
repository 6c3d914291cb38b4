//! foldersync: keeps replica folders an exact copy of their source folders.
//!
//! The module list is the architecture: `cli` (what was typed), `config`
//! (validated pairs), `app` (the modes), `menu` (main thread), `supervisor`
//! (owns the worker threads), `worker` (one pair's schedule), `pass` (one
//! sync pass, with `pass::schedule` sharing its work out), `decide` (what a
//! file needs), `cache`, `digests` (big files hashed after a pass), `fsops`
//! (every file system call), `logging`, `shutdown` (signals), `status`.

mod app;
mod cache;
mod cli;
mod config;
mod decide;
mod digests;
mod fsops;
mod logging;
mod menu;
mod mounts;
mod pass;
mod shutdown;
mod status;
mod supervisor;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    app::run(cli::Cli::parse())
}
