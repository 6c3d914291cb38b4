//! The integration tests, one binary: every test runs the real
//! `foldersync` binary on real folders (and real mounts, signals and
//! terminals) and checks what a user would see. `common`, `support`,
//! `safety` and `sshfs` are the helpers; each other module is one concern.

mod cache_limit;
mod chains;
mod cli;
#[allow(dead_code)] // each test module uses a different part of it
mod common;
mod digests;
mod faults;
mod guards;
mod hostile;
mod input_fuzz;
mod kill_points;
mod links;
mod logfile;
mod menu;
mod model;
mod nas;
mod parallel;
#[allow(dead_code)] // each test module uses a different part of it
mod safety;
mod smoke;
mod sparse;
#[allow(dead_code)] // each test module uses a different part of it
mod sshfs;
mod stress;
#[allow(dead_code)] // each test module uses a different part of it
mod support;
mod sync;
