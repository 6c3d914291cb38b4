//! Steering a running foldersync from outside: every process (but
//! `--once`) listens on a control socket of its own (`place`: where, and
//! who may reach it), `server` answers the requests of `protocol` through
//! the supervisor, `client` is `foldersync ctl` and `attach` the menu
//! driving a running process.

pub mod attach;
pub mod client;
mod place;
pub mod protocol;
pub mod server;
mod view;
