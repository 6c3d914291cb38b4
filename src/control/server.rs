//! The control socket's listening side: a thread of its own that accepts
//! one connection at a time and answers its requests through the same
//! supervisor functions as the menu. The thread sleeps in `poll` on the
//! socket and on a pipe that [`Server::stop`] rings; the app owns the
//! server and so joins the thread.

use std::io::{BufReader, ErrorKind};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{debug, warn};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};
use serde_json::json;

use super::place::{self, Probe};
use super::protocol::{self, Command, Failure, Response};
use super::view;
use crate::config::RawPair;
use crate::daemon::actions::{self, Action};
use crate::daemon::supervisor::{Supervisor, lock};
use crate::logging::Logs;
use crate::ui::render;

/// How long a client may take to send its next request: the server
/// answers one client at a time, and a silent one must not hold it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the config again and applies it; the sentence to show.
pub type Reload = Box<dyn Fn(&Mutex<Supervisor>) -> Result<String, String> + Send>;

/// What the server answers from.
pub struct Context {
    pub supervisor: Arc<Mutex<Supervisor>>,
    /// The config or pairs file this process runs, canonical: how `ctl
    /// --config FILE` picks it among several.
    pub config: Option<PathBuf>,
    /// `None`: nothing to reload (pairs from the command line only).
    pub reload: Option<Reload>,
    /// Readable after a SIGHUP that asks for a reload.
    pub hangup: Option<OwnedFd>,
    /// Where attached menus' connections get their log lines.
    pub logs: Logs,
}

/// A listening control socket.
pub struct Server {
    path: PathBuf,
    ring: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Makes the socket and starts answering on it.
    pub fn start(context: Context) -> Result<Server, String> {
        let dir = place::folder();
        place::make_folder(&dir)?;
        place::remove_stale(&dir);
        let path = place::own_socket(&dir);
        let fail = |e: std::io::Error| format!("control socket {}: {e}", path.display());
        if let Probe::Alive(_) = place::probe(&path) {
            return Err(fail(ErrorKind::AddrInUse.into()));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(fail)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| fail(e.into()))?;
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || listen(&listener, &wake, &context))
            .map_err(fail)?;
        debug!("control socket: {}", path.display());
        Ok(Server {
            path,
            ring,
            thread: Some(thread),
        })
    }

    /// Stops answering (after the request in hand), joins the thread and
    /// removes the socket.
    pub fn stop(mut self) {
        let _ = rustix::io::write(&self.ring, b"q");
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts and serves clients until the pipe rings.
fn listen(listener: &UnixListener, wake: &OwnedFd, context: &Context) {
    loop {
        let mut fds = vec![
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        if let Some(hangup) = &context.hangup {
            fds.push(PollFd::new(hangup, PollFlags::IN));
        }
        if poll(&mut fds, None).is_err() {
            continue; // EINTR: a signal
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        if fds.get(2).is_some_and(|fd| !fd.revents().is_empty()) {
            drop(fds);
            hung_up(context);
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => serve(stream, wake, context),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => warn!("control socket: cannot accept a connection: {e}"),
        }
    }
}

/// A SIGHUP asked for a reload: empties the pipe (several signals, one
/// reload) and reloads; the reload logs what it did.
fn hung_up(context: &Context) {
    if let Some(hangup) = &context.hangup {
        let mut buf = [0u8; 64];
        while rustix::io::read(hangup, &mut buf).is_ok_and(|n| n > 0) {}
    }
    log::info!("SIGHUP: reading the pairs again");
    if let Some(reload) = &context.reload {
        let _ = reload(&context.supervisor);
    }
}

/// Answers one client's requests until it closes, falls silent or is not
/// allowed.
fn serve(stream: UnixStream, wake: &OwnedFd, context: &Context) {
    let mut out = stream;
    if let Err(why) = allowed(&out) {
        let _ = protocol::send(&mut out, &Response::failed(Failure::Refused, why));
        return;
    }
    let _ = out.set_nonblocking(false);
    let _ = out.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = out.set_write_timeout(Some(CLIENT_TIMEOUT));
    let Ok(input) = out.try_clone() else { return };
    let mut input = BufReader::new(input);
    loop {
        if input.buffer().is_empty() && !request_comes(&out, wake) {
            return;
        }
        let response = match protocol::receive_line(&mut input) {
            Ok(None) => return,
            Ok(Some(line)) => match protocol::parse_request(&line) {
                Ok(Command::Follow) => {
                    let said = Response::done("following", serde_json::Value::Null);
                    if protocol::send(&mut out, &said).is_ok() {
                        context.logs.follow(out);
                    }
                    return;
                }
                Ok(command) => answer(command, context),
                Err(refusal) => refusal,
            },
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                Response::failed(Failure::BadInput, e.to_string())
            }
            Err(_) => return,
        };
        if protocol::send(&mut out, &response).is_err() {
            return;
        }
    }
}

/// Waits for a client's next request: whether one comes, before the
/// client's time is up and before the server is stopped (a client that
/// keeps its connection open must not hold the process's exit).
fn request_comes(stream: &UnixStream, wake: &OwnedFd) -> bool {
    let mut fds = [
        PollFd::new(stream, PollFlags::IN),
        PollFd::new(wake, PollFlags::IN),
    ];
    let limit = rustix::event::Timespec {
        tv_sec: CLIENT_TIMEOUT.as_secs() as i64,
        tv_nsec: 0,
    };
    loop {
        match poll(&mut fds, Some(&limit)) {
            Ok(n) if n > 0 => return fds[1].revents().is_empty(),
            Err(rustix::io::Errno::INTR) => continue,
            _ => return false,
        }
    }
}

/// Only this user and root may steer the process; the folder's mode keeps
/// others out already, this holds if it was loosened.
fn allowed(stream: &UnixStream) -> Result<(), String> {
    let peer = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| format!("permission denied: cannot learn who connected: {e}"))?;
    let me = rustix::process::geteuid();
    if peer.uid == me || peer.uid.is_root() {
        Ok(())
    } else {
        Err(format!(
            "permission denied: this foldersync runs as user {}, and user {} is neither it nor root",
            me.as_raw(),
            peer.uid.as_raw()
        ))
    }
}

/// Does one request.
fn answer(command: Command, context: &Context) -> Response {
    let (pair, action) = match command {
        Command::Hello => {
            let data = json!({
                "pid": std::process::id(),
                "config": context.config.as_ref().map(|c| c.to_string_lossy()),
                "version": env!("CARGO_PKG_VERSION"),
            });
            return Response::done("", data);
        }
        Command::Status => {
            let views = lock(&context.supervisor).views();
            return Response::done(
                render::list(&views),
                json!({ "pairs": view::pairs(&views) }),
            );
        }
        Command::Reload => {
            return match &context.reload {
                None => Response::failed(
                    Failure::Refused,
                    "this foldersync was started without --config or --pairs: there is nothing to read again",
                ),
                Some(reload) => match reload(&context.supervisor) {
                    Ok(said) => Response::done(said, serde_json::Value::Null),
                    Err(why) => Response::failed(Failure::Refused, why),
                },
            };
        }
        Command::Add { pair } => {
            let raw = RawPair {
                source: pair.source.into(),
                replica: pair.replica.into(),
                interval: pair.interval,
                log_file: pair.log.into(),
                watch: pair.watch,
                two_way: pair.two_way,
                name: None,
                options: Default::default(),
                excludes: Default::default(),
            };
            return match actions::add_pair(&mut lock(&context.supervisor), raw) {
                Ok(said) => Response::done(said, serde_json::Value::Null),
                Err(why) => Response::failed(Failure::Refused, why),
            };
        }
        Command::Quit => {
            // The way a service manager stops it: the main thread wakes
            // and stops every pair at its next file boundary.
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            return Response::done(
                "Stopping every pair; foldersync exits once they have stopped.",
                serde_json::Value::Null,
            );
        }
        Command::Follow => unreachable!("answered by serve"),
        Command::Sync { pair } => (pair, Action::SyncNow),
        Command::Stop { pair } => (pair, Action::Stop),
        Command::Start { pair } => (pair, Action::Start),
        Command::Approve { pair } => (pair, Action::ApproveDeletions),
        Command::AcceptDevice { pair } => (pair, Action::AcceptNewDevice),
    };
    let mut supervisor = lock(&context.supervisor);
    let Some(id) = supervisor.find(&pair) else {
        let names: Vec<String> = supervisor.views().iter().map(|v| v.name()).collect();
        return Response::failed(
            Failure::BadInput,
            format!(
                "there is no pair {pair:?} (the pairs: {})",
                names.join(", ")
            ),
        );
    };
    match action.perform(&mut supervisor, id) {
        Ok(said) => Response::done(said, serde_json::Value::Null),
        Err(why) => Response::failed(Failure::Refused, why),
    }
}
