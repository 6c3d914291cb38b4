//! The console: the numbered menu on the main thread and the `--once`
//! progress line.
//!
//! Piped or redirected, the menu reads plain lines and prints plain text,
//! as scripts and the tests expect. With stdin and stdout on a terminal a
//! line editor reads the answers instead, so that log records print above
//! the prompt and what was typed so far is redrawn under them.

mod backend;
mod complete;
mod input;
mod menu;
pub mod progress;
pub mod render;

use std::io::IsTerminal;

pub use backend::Backend;
pub use menu::{MenuEnd, run};

/// Whether a person sits at the menu: stdin and stdout both terminals.
pub fn menu_at_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Whether colour is wanted on stderr: a terminal that is not `dumb`, and no
/// `NO_COLOR` (see no-color.org: set and not empty).
pub fn color_on_stderr() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}
