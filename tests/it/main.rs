//! The integration tests, one binary: every test runs the real
//! `foldersync` binary on real folders (and real mounts, signals and
//! terminals) and checks what a user would see. `support` holds the
//! helpers; each other module is one concern.

mod attach;
mod cache_limit;
mod chains;
mod cli;
mod config_file;
mod console;
mod crash;
mod ctl;
mod devices;
mod digest_store;
mod digests;
mod excludes;
mod faults;
mod guards;
mod hostile;
mod input_fuzz;
mod kill_points;
mod links;
mod logfile;
mod menu;
mod metrics;
mod model;
mod nas;
mod parallel;
mod reload;
mod small_things;
mod smoke;
mod sparse;
mod stress;
mod support;
mod sync;
mod systemd;
mod two_way;
mod two_way_edges;
mod two_way_edits;
mod two_way_losses;
mod two_way_model;
mod two_way_pause;
mod two_way_rules;
mod watch;
mod watch_hardened;
mod watch_model;
