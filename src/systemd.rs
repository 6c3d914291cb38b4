//! Running under systemd: the `Type=notify` protocol (a datagram of
//! `KEY=VALUE` lines to `$NOTIFY_SOCKET`: `READY=1` once the pairs are up,
//! `STATUS=` a one-line summary after every pass, `STOPPING=1`,
//! `WATCHDOG=1` every half `$WATCHDOG_USEC`), and knowing when stderr is
//! the journal. The protocol is a few lines, so no crate: `sd-notify`
//! would add nothing but a dependency.

use std::collections::HashMap;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use crate::daemon::supervisor::{PairView, Supervisor, lock};
use crate::status::State;

/// The service manager's socket, when there is one.
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
    /// namespace); `None` when not run by a service manager that asks.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_str()?;
        let to = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name).ok()?,
            None => SocketAddr::from_pathname(name).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, to })
    }

    /// Sends one message; the manager's absence is no reason to fail.
    pub fn send(&self, message: &str) {
        let _ = self.socket.send_to_addr(message.as_bytes(), &self.to);
    }
}

/// Whether stderr is the journal: `$JOURNAL_STREAM` names its device and
/// inode (systemd sets it for a unit whose stderr goes to the journal).
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = rustix::fs::fstat(rustix::stdio::stderr()) else {
        return false;
    };
    dev.parse() == Ok(meta.st_dev) && ino.parse() == Ok(meta.st_ino)
}

/// The thread that tells the manager how the pairs are doing: a status
/// after every pass and the watchdog's keep-alive. The app owns it.
pub struct Reporter {
    stop: Sender<()>,
    thread: JoinHandle<Notifier>,
}

impl Reporter {
    /// Says `READY=1` and starts reporting; `passes` carries the number of
    /// each pair whose pass just ended.
    pub fn start(
        notifier: Notifier,
        supervisor: Arc<Mutex<Supervisor>>,
        passes: Receiver<usize>,
    ) -> Result<Reporter, String> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0)
            .map(|u| Duration::from_micros(u) / 2);
        let status = summary(&lock(&supervisor).views(), &HashMap::new());
        notifier.send(&format!("READY=1\nSTATUS={status}"));
        let thread = thread::Builder::new()
            .name("systemd".into())
            .spawn(move || {
                report(&notifier, &supervisor, &passes, &stopped, watchdog);
                notifier
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Reporter { stop, thread })
    }

    /// Stops reporting and says `STOPPING=1`.
    pub fn stopping(self) {
        let _ = self.stop.send(());
        if let Ok(notifier) = self.thread.join() {
            notifier.send("STOPPING=1\nSTATUS=stopping every pair");
        }
    }
}

/// The reporter's loop: until stopped, a status after each pass and a
/// keep-alive every `watchdog`.
fn report(
    notifier: &Notifier,
    supervisor: &Mutex<Supervisor>,
    passes: &Receiver<usize>,
    stopped: &Receiver<()>,
    watchdog: Option<Duration>,
) {
    let mut good: HashMap<usize, Instant> = HashMap::new();
    let mut next_ping = watchdog.map(|w| Instant::now() + w);
    if next_ping.is_some() {
        notifier.send("WATCHDOG=1");
    }
    loop {
        let tick = crossbeam_channel::at(next_ping.unwrap_or_else(far_future));
        select! {
            recv(stopped) -> _ => return,
            recv(passes) -> id => {
                let Ok(id) = id else { return };
                let views = lock(supervisor).views();
                let clean = views.iter().any(|v| {
                    v.id == id && v.status.last.is_some_and(|l| l.is_clean())
                });
                if clean {
                    good.insert(id, Instant::now());
                }
                notifier.send(&format!("STATUS={}", summary(&views, &good)));
            }
            recv(tick) -> _ => {
                notifier.send("WATCHDOG=1");
                next_ping = watchdog.map(|w| Instant::now() + w);
            }
        }
    }
}

/// A deadline that never comes, for a select without a watchdog.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// The one-line summary: pairs, passes running, errors, held deletions,
/// time since the last good pass.
pub fn summary(views: &[PairView], good: &HashMap<usize, Instant>) -> String {
    let running = views
        .iter()
        .filter(|v| !matches!(v.status.state, State::Stopped))
        .count();
    let syncing = views
        .iter()
        .filter(|v| matches!(v.status.state, State::Syncing { .. }))
        .count();
    let failing = views
        .iter()
        .filter(|v| v.status.last.is_some_and(|l| !l.is_clean()) || v.status.crashed.is_some())
        .count();
    let held: u64 = views
        .iter()
        .filter_map(|v| v.status.last.map(|l| l.held_deletions))
        .sum();
    let last_good = good
        .values()
        .max()
        .map_or("no good pass yet".to_string(), |t| {
            format!("last good pass {} s ago", t.elapsed().as_secs())
        });
    format!(
        "{running} of {} pairs running, {syncing} syncing, {failing} with errors, {held} deletions held; {last_good}",
        views.len()
    )
}
