//! Quitting on SIGINT, SIGTERM or SIGHUP, with no thread of its own: the first
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

/// Exit status of a second signal: 128 + SIGINT, as a shell reports it.
const EXIT_AT_ONCE: i32 = 130;

/// The quit flag and the pipe that carries a signal to the main thread.
pub struct Shutdown {
    quit: Arc<AtomicBool>,
    wake: OwnedFd,
}

impl Shutdown {
    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP: a closed
    /// terminal or SSH session quits safely instead of killing a copy
    /// half way.
    pub fn install() -> Result<Shutdown, String> {
        let fail = |e: std::io::Error| format!("cannot install the signal handlers: {e}");
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| fail(e.into()))?;
        let quit = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            // Handlers run in the order registered: exiting on a second
            // signal must be checked before the flag is set by this one.
            flag::register_conditional_shutdown(signal, EXIT_AT_ONCE, Arc::clone(&quit))
                .map_err(fail)?;
            flag::register(signal, Arc::clone(&quit)).map_err(fail)?;
            // Each registration owns (and keeps for good) its write end.
            let ring = rustix::io::dup(&ring).map_err(|e| fail(e.into()))?;
            pipe::register(signal, ring).map_err(fail)?;
        }
        Ok(Shutdown { quit, wake })
    }

    /// The flag every worker checks.
    pub fn quit_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.quit)
    }

    /// Whether quitting was asked for (by a signal, unless the menu's quit
    /// set it).
    pub fn quitting(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }

    /// Readable once a signal arrived; for the menu's `poll`.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Blocks until a signal arrives (no polling loop: the thread sleeps in
    /// `poll`).
    pub fn wait(&self) {
        while !self.quitting() {
            let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
            let _ = poll(&mut fds, None);
        }
    }
}
