//! Quitting on SIGINT or SIGTERM: the first signal sets the shared quit flag
//! (which every worker checks between files) and wakes the main thread
//! through a pipe; a second signal exits at once.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};

/// The quit flag and the pipe that carries a signal to the main thread.
pub struct Shutdown {
    quit: Arc<AtomicBool>,
    wake: OwnedFd,
}

impl Shutdown {
    /// Installs the signal handler. Starts a thread (ctrlc's), so call it
    /// after logging is set up.
    pub fn install() -> Result<Shutdown, String> {
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| format!("cannot create the signal pipe: {e}"))?;
        let quit = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&quit);
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("foldersync: second signal: exiting at once");
                std::process::exit(130);
            }
            log::info!("signal received: stopping every pair at the next file boundary (again to exit at once)");
            let _ = rustix::io::write(&ring, b"q");
        })
        .map_err(|e| format!("cannot install the signal handler: {e}"))?;
        Ok(Shutdown { quit, wake })
    }

    /// The flag every worker checks.
    pub fn quit_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.quit)
    }

    /// Readable once a signal arrived; for the menu's `poll`.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Blocks until a signal arrives (no polling loop: the thread sleeps in
    /// `poll`).
    pub fn wait(&self) {
        while !self.quit.load(Ordering::SeqCst) {
            let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
            let _ = poll(&mut fds, None);
        }
    }
}
