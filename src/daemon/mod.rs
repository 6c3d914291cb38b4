//! What keeps the pairs running: the supervisor owns one worker thread per
//! pair; each worker waits on its triggers and runs passes; the gate keeps
//! chained pairs' passes apart; shutdown turns signals into the quit flag;
//! actions are what the menu and `ctl` ask of one pair.

pub mod actions;
pub mod gate;
pub mod reload;
pub mod shutdown;
pub mod supervisor;
mod waiting;
pub mod watch;
pub mod worker;
