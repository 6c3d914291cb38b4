//! `foldersync attach`: the numbered menu, at this terminal, driving a
//! running foldersync through its control socket. Each request is a
//! connection of its own (the process answers one client at a time, and
//! a person may think for longer than it waits); one more connection
//! carries the process's log lines, printed above the prompt by a thread
//! this function owns and joins. Detaching (option 3, Ctrl-D) leaves the
//! service running; option 8, confirmed, stops it.

use std::io::{BufRead, BufReader};
use std::net::Shutdown as Both;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use log::LevelFilter;

use super::client;
use super::protocol::{Command, NewPair};
use crate::config::RawPair;
use crate::daemon::actions::Action;
use crate::daemon::shutdown::Shutdown;
use crate::error::{Error, Exit};
use crate::logging::{self, ConsoleFilter, ConsoleSpec, Logs};
use crate::ui::{self, Backend, MenuEnd};

/// Attaches the menu to the only running foldersync, or to the one
/// running `config`, until the user detaches.
pub fn run(config: Option<&Path>) -> Result<Exit, Error> {
    let socket = client::choose(config)?
        .peer_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
        .ok_or_else(|| Error::Setup("the control socket has no path".into()))?;
    let mut remote = Remote { socket };
    let hello = remote.ask(&Command::Hello).map_err(Error::Setup)?;
    let mut follow = remote.connect().map_err(Error::Setup)?;
    client::ask(&mut follow, &Command::Follow)?;
    let _ = follow.set_read_timeout(None);
    let logs = logging::init(ConsoleSpec {
        level: LevelFilter::Info,
        filter: ConsoleFilter::All,
        color: ui::color_on_stderr(),
        journal: false,
    })?;
    let shutdown = Shutdown::install(false).map_err(Error::Setup)?;
    let reader = follow
        .try_clone()
        .map_err(|e| Error::Setup(format!("the control socket: {e}")))?;
    let printer = logs.clone();
    let detached = Arc::new(AtomicBool::new(false));
    let said_detached = Arc::clone(&detached);
    let lines = thread::Builder::new()
        .name("attach-log".into())
        .spawn(move || print_lines(reader, &printer, &said_detached))
        .map_err(|e| Error::Setup(format!("cannot start a thread: {e}")))?;
    let pid = hello["pid"].as_u64().unwrap_or_default();
    println!(
        "Attached to foldersync {pid}. Option 3 or Ctrl-D detaches; the service keeps running."
    );
    let end = ui::run(&mut remote, shutdown.wake_fd(), &logs);
    detached.store(true, Ordering::SeqCst);
    let _ = follow.shutdown(Both::Both);
    let _ = lines.join();
    Ok(match end {
        MenuEnd::Signal => Exit::Interrupted,
        MenuEnd::Quit | MenuEnd::EndOfInput => Exit::Success,
    })
}

/// Prints the service's log lines until the connection ends: the service
/// stopped, unless `detached` says this end closed it.
fn print_lines(reader: UnixStream, logs: &Logs, detached: &AtomicBool) {
    for line in BufReader::new(reader).lines() {
        match line {
            Ok(line) => logs.print(format!("{line}\n")),
            Err(_) => return,
        }
    }
    if !detached.load(Ordering::SeqCst) {
        logs.print("foldersync: the service stopped; what you choose now fails\n".into());
    }
}

/// A running foldersync, through its socket.
struct Remote {
    socket: PathBuf,
}

impl Remote {
    fn connect(&self) -> Result<UnixStream, String> {
        UnixStream::connect(&self.socket).map_err(|e| {
            format!(
                "the service cannot be reached at {}: {e}",
                self.socket.display()
            )
        })
    }

    /// One request on a connection of its own: its data, or why not.
    fn ask(&self, command: &Command) -> Result<serde_json::Value, String> {
        self.request(command)
            .and_then(|r| r.failure.map_or(Ok(r.data), |_| Err(r.message)))
    }

    /// One request: the sentence to show, either way.
    fn say(&self, command: &Command) -> Result<String, String> {
        self.request(command).and_then(|r| match r.failure {
            None => Ok(r.message),
            Some(_) => Err(r.message),
        })
    }

    fn request(&self, command: &Command) -> Result<super::protocol::Response, String> {
        let mut stream = self.connect()?;
        client::ask(&mut stream, command).map_err(|e| e.to_string())
    }
}

impl Backend for Remote {
    fn list(&mut self) -> String {
        self.say(&Command::Status)
            .unwrap_or_else(|e| format!("{e}\n"))
    }

    fn act(&mut self, action: Action, id: usize) -> Result<String, String> {
        let pair = id.to_string();
        self.say(&match action {
            Action::Stop => Command::Stop { pair },
            Action::Start => Command::Start { pair },
            Action::SyncNow => Command::Sync { pair },
            Action::ApproveDeletions => Command::Approve { pair },
            Action::AcceptNewDevice => Command::AcceptDevice { pair },
        })
    }

    /// The service checks the source when the pair is added: only it
    /// knows the running pairs' replicas, where a source may be yet to
    /// come.
    fn check_source(&mut self, _source: &Path) -> Result<(), String> {
        Ok(())
    }

    /// The service checks the pair when it is added.
    fn check(&mut self, _raw: &RawPair) -> Result<(), String> {
        Ok(())
    }

    fn add(&mut self, raw: RawPair) -> Result<String, String> {
        let text = |p: &Path| p.to_string_lossy().into_owned();
        self.say(&Command::Add {
            pair: NewPair {
                source: text(&absolute(&raw.source)),
                replica: text(&absolute(&raw.replica)),
                interval: raw.interval,
                log: text(&absolute(&raw.log_file)),
                two_way: raw.two_way,
                watch: raw.watch,
            },
        })
    }

    fn attached(&self) -> bool {
        true
    }

    fn stop_service(&mut self) -> Option<Result<String, String>> {
        Some(self.say(&Command::Quit))
    }
}

/// A path typed here, made absolute here: the service runs elsewhere.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
