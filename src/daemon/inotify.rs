//! One inotify instance and the thread that reads it, through rustix (a
//! dependency already): the thread sleeps in `poll` on the instance and
//! on a pipe that wakes it for a command or to stop, and hands each event
//! to its [`Handler`]. Dropping the [`Reader`] stops and joins the thread,
//! and closing the instance removes all its watches at once.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify::{self, CreateFlags, Event};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};

/// What reads one instance's events.
pub(super) trait Handler: Send + 'static {
    /// What the owner may ask of the thread.
    type Command: Send + 'static;
    /// One event.
    fn event(&mut self, fd: BorrowedFd<'_>, event: &Event<'_>);
    /// The queue was read empty: how long to wait for more before
    /// [`Handler::idle`], if at all (a folder moved out is known only by
    /// its `IN_MOVED_TO` not coming).
    fn batch_end(&mut self) -> Option<Duration>;
    /// That wait passed with no event.
    fn idle(&mut self, fd: BorrowedFd<'_>);
    fn command(&mut self, fd: BorrowedFd<'_>, command: Self::Command);
    /// Reading failed: the thread ends.
    fn failed(&mut self, why: String);
}

/// A new inotify instance, not blocking its reads.
pub(super) fn instance() -> Result<OwnedFd, String> {
    inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)
        .map_err(|e| format!("cannot start inotify: {e}"))
}

/// The reading thread of one instance; its one owner joins it on drop.
pub(super) struct Reader<C> {
    commands: Sender<C>,
    stop: Arc<AtomicBool>,
    /// The pipe's write end: a byte wakes the thread.
    ring: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl<C: Send + 'static> Reader<C> {
    /// Reads `fd`'s events on a thread named `name`, handing them to
    /// `handler`.
    pub(super) fn spawn<H: Handler<Command = C>>(
        name: &str,
        fd: OwnedFd,
        handler: H,
    ) -> Result<Reader<C>, String> {
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(|e| format!("cannot make a pipe: {e}"))?;
        let (commands, inbox) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || read_loop(&fd, &wake, &inbox, &stopped, handler))
            .map_err(|e| format!("cannot start the watch's thread: {e}"))?;
        Ok(Reader {
            commands,
            stop,
            ring,
            thread: Some(thread),
        })
    }

    /// Hands `command` to the thread, woken for it.
    pub(super) fn send(&self, command: C) {
        let _ = self.commands.send(command);
        let _ = rustix::io::write(&self.ring, &[1]);
    }
}

impl<C> Drop for Reader<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(&self.ring, &[1]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: sleeps in `poll` until events, a command or the stop come.
fn read_loop<H: Handler>(
    fd: &OwnedFd,
    wake: &OwnedFd,
    inbox: &Receiver<H::Command>,
    stop: &AtomicBool,
    mut handler: H,
) {
    // Room for many events per read (each is 16 bytes and a name).
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut wait: Option<Duration> = None;
    loop {
        let timeout = wait.map(|d| Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut fds = [
            PollFd::new(fd, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return handler.failed(format!("cannot wait for change events: {e}")),
        }
        let (events, woken) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if woken {
            let mut byte = [0u8; 64];
            while matches!(rustix::io::read(wake, &mut byte), Ok(n) if n > 0) {}
            if stop.load(Ordering::SeqCst) {
                return;
            }
            for command in inbox.try_iter() {
                handler.command(fd.as_fd(), command);
            }
        }
        if events {
            let mut reader = inotify::Reader::new(fd, &mut buf);
            loop {
                match reader.next() {
                    Ok(event) => handler.event(fd.as_fd(), &event),
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => continue,
                    Err(e) => {
                        return handler.failed(format!("cannot read change events: {e}"));
                    }
                }
            }
            wait = handler.batch_end();
        } else if !woken && wait.take().is_some() {
            handler.idle(fd.as_fd());
        }
    }
}
