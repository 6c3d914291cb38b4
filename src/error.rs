//! How a run ends. Every exit status the program can give is one variant
//! of [`Exit`]; every failure before the first pass is an [`Error`].

use std::fmt;
use std::process::ExitCode;

/// The exit statuses, as scripts and cron see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every pass finished without an error (or the menu's Quit).
    Success,
    /// A `--once` pass had an error, or a pair could not start.
    PassFailed,
    /// Bad input: nothing was created or changed.
    Usage,
    /// A signal stopped a `--once` run, or a second signal ended the
    /// program at once (128 + SIGINT, as a shell reports it).
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::PassFailed => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// What keeps a run from starting, with the message the user sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Bad input (a missing source, overlapping pairs, a bad pairs file).
    Usage(String),
    /// The machine refused something the program needs (signal handlers).
    Setup(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Setup(_) => Exit::PassFailed,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Setup(m) => f.write_str(m),
        }
    }
}

/// Validation reports its problems as text: they are bad input.
impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Usage(message)
    }
}
