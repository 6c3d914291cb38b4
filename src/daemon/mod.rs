//! What keeps the pairs running: the supervisor owns one worker thread per
//! pair; each worker waits on its triggers and runs passes; the gate keeps
//! chained pairs' passes apart; shutdown turns signals into the quit flag;
//! actions are what the menu and `ctl` ask of one pair.

pub mod actions;
mod coalesce;
pub mod gate;
mod inotify;
pub mod reload;
mod root_guard;
pub mod shutdown;
pub mod supervisor;
mod tree;
mod waiting;
pub mod watch;
pub mod worker;
