//! Quitting on SIGINT, SIGTERM or SIGHUP (SIGHUP reloads instead for a
//! service with a config or pairs file), with no thread of its own: the first
//! signal sets the shared quit flag (which every worker checks between
//! files) and writes a byte into a pipe that wakes the main thread; a second
//! one exits at once with status 130. A signal handler may do little else
//! safely, so the main thread logs the signal when it wakes.
//!
//! A thread waiting for signals (what the `ctrlc` crate starts) cost every
//! run a thread: under the benchmark's tracer that was a third of a
//! no-change pass over 8 files.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::{flag, low_level::pipe};

use crate::error::Exit;

/// Exit status of a second signal.
const EXIT_AT_ONCE: i32 = Exit::Interrupted.code() as i32;

/// The quit flag and the pipe that carries a signal to the main thread.
pub struct Shutdown {
    /// Every worker stops when it is set: by a signal or by the menu.
    quit: Arc<AtomicBool>,
    /// Set by a signal only: a second signal exits at once, while a signal
    /// after the menu's Quit is only the first one.
    signalled: Arc<AtomicBool>,
    wake: OwnedFd,
    /// Readable after a SIGHUP that asks for a reload (see [`install`]).
    hangup: Option<OwnedFd>,
}

impl Shutdown {
    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP: a closed
    /// terminal or SSH session quits safely instead of killing a copy
    /// half way. `hup_reloads`: SIGHUP asks to read the config again
    /// instead (a service's `ExecReload`); the control thread waits for it
    /// on [`Shutdown::take_hangup`]'s pipe.
    pub fn install(hup_reloads: bool) -> Result<Shutdown, String> {
        let fail = |e: std::io::Error| format!("cannot install the signal handlers: {e}");
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| fail(e.into()))?;
        let quit = Arc::new(AtomicBool::new(false));
        let signalled = Arc::new(AtomicBool::new(false));
        let quitting: &[i32] = if hup_reloads {
            &[SIGINT, SIGTERM]
        } else {
            &[SIGINT, SIGTERM, SIGHUP]
        };
        let hangup = if hup_reloads {
            let (read, write) =
                pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(|e| fail(e.into()))?;
            pipe::register(SIGHUP, write).map_err(fail)?;
            Some(read)
        } else {
            None
        };
        for &signal in quitting {
            // Handlers run in the order registered: exiting on a second
            // signal must be checked before the flag is set by this one.
            flag::register_conditional_shutdown(signal, EXIT_AT_ONCE, Arc::clone(&signalled))
                .map_err(fail)?;
            flag::register(signal, Arc::clone(&signalled)).map_err(fail)?;
            flag::register(signal, Arc::clone(&quit)).map_err(fail)?;
            // Each registration owns (and keeps for good) its write end.
            let ring = rustix::io::dup(&ring).map_err(|e| fail(e.into()))?;
            pipe::register(signal, ring).map_err(fail)?;
        }
        Ok(Shutdown {
            quit,
            signalled,
            wake,
            hangup,
        })
    }

    /// The pipe a SIGHUP that asks for a reload rings, once.
    pub fn take_hangup(&mut self) -> Option<OwnedFd> {
        self.hangup.take()
    }

    /// The flag every worker checks.
    pub fn quit_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.quit)
    }

    /// Whether a signal asked to quit.
    pub fn signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    /// Readable once a signal arrived; for the menu's `poll`.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Blocks until a signal arrives (no polling loop: the thread sleeps in
    /// `poll`).
    pub fn wait(&self) {
        while !self.signalled() {
            let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
            let _ = poll(&mut fds, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menus_quit_is_not_a_first_signal() {
        let shutdown = Shutdown::install(false).expect("handlers");
        // What the menu's Quit does: stop the workers.
        shutdown.quit_flag().store(true, Ordering::SeqCst);
        // A Ctrl-C now must count as the first signal (quit safely), not
        // the second (exit at once): its handler checks this flag.
        assert!(!shutdown.signalled());
    }
}
