//! `--metrics ADDR`: every pair's counters in Prometheus's text format,
//! over HTTP, from a thread of its own that answers one request at a time
//! (a scraper asks every few seconds). It sleeps in `poll` on the listener
//! and on a stop pipe, as the control socket's thread does; the app owns
//! it and joins it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, UNIX_EPOCH};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};

use crate::daemon::supervisor::{PairView, Supervisor, lock};
use crate::status::{State, WatchStatus};

/// How long a client may take to send its request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A listening metrics endpoint.
pub struct Metrics {
    ring: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Metrics {
    /// Listens on `addr` (`127.0.0.1:9108`), before any pair starts: the
    /// address and the reason when it cannot (bad input).
    pub fn bind(addr: &str) -> Result<TcpListener, String> {
        let fail = |e: std::io::Error| format!("--metrics {addr}: {e}");
        let listener = TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        Ok(listener)
    }

    /// Answers on `listener` from a thread of its own.
    pub fn start(
        listener: TcpListener,
        supervisor: Arc<Mutex<Supervisor>>,
    ) -> Result<Metrics, String> {
        let fail = |e: std::io::Error| format!("--metrics: {e}");
        if let Ok(addr) = listener.local_addr() {
            log::info!("metrics: http://{addr}/metrics");
        }
        let (wake, ring) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| fail(e.into()))?;
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &wake, &supervisor))
            .map_err(fail)?;
        Ok(Metrics {
            ring,
            thread: Some(thread),
        })
    }

    /// Stops listening and joins the thread.
    pub fn stop(mut self) {
        let _ = rustix::io::write(&self.ring, b"q");
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, wake: &OwnedFd, supervisor: &Mutex<Supervisor>) {
    loop {
        let mut fds = [
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        if poll(&mut fds, None).is_err() {
            continue; // EINTR
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        if let Ok((stream, _)) = listener.accept() {
            answer(stream, supervisor);
        }
    }
}

/// Reads one request's head and answers it: the metrics for `GET
/// /metrics` (or `/`), 404 for another path, 405 for another method.
fn answer(mut stream: TcpStream, supervisor: &Mutex<Supervisor>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (status, body) = match (method, path) {
        ("GET", "/metrics" | "/") => ("200 OK", render(&lock(supervisor).views())),
        ("GET", _) => (
            "404 Not Found",
            "not found: the metrics are at /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "only GET\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// How one metric is read from a pair: `None` leaves the pair out.
type Get = fn(&PairView) -> Option<f64>;

/// Every metric: its name (after `foldersync_`), type, help and value.
const METRICS: [(&str, &str, &str, Get); 13] = [
    ("passes_total", "counter", "Passes run.", |v| {
        Some(v.status.passes as f64)
    }),
    (
        "failed_passes_total",
        "counter",
        "Passes that were not clean.",
        |v| Some(v.status.failed_passes as f64),
    ),
    ("files_copied_total", "counter", "New files copied.", |v| {
        Some(v.status.totals.copied as f64)
    }),
    (
        "files_updated_total",
        "counter",
        "Files whose bytes were replaced.",
        |v| Some(v.status.totals.updated as f64),
    ),
    (
        "bytes_written_total",
        "counter",
        "File bytes written.",
        |v| Some(v.status.totals.bytes as f64),
    ),
    ("deletions_total", "counter", "Entries removed.", |v| {
        let t = &v.status.totals;
        Some((t.removed_files + t.removed_dirs) as f64)
    }),
    (
        "conflicts_total",
        "counter",
        "Two-way conflicts (both versions kept).",
        |v| Some(v.status.totals.conflicts as f64),
    ),
    ("errors_total", "counter", "Errors in passes.", |v| {
        Some(v.status.totals.errors as f64)
    }),
    (
        "held_deletions",
        "gauge",
        "Deletions the last pass held back.",
        |v| v.status.last.map(|l| l.held_deletions as f64),
    ),
    (
        "last_pass_duration_seconds",
        "gauge",
        "How long the last pass took.",
        |v| v.status.last.map(|l| l.duration.as_secs_f64()),
    ),
    (
        "last_pass_end_timestamp_seconds",
        "gauge",
        "When the last pass ended.",
        |v| {
            let end = v.status.last_end?.duration_since(UNIX_EPOCH).ok()?;
            Some(end.as_secs_f64())
        },
    ),
    (
        "watch_up",
        "gauge",
        "1: the watch runs; 0: it fell back to full passes, or a root's folder is gone.",
        |v| match v.status.watch {
            Some(WatchStatus::On(_)) => Some(1.0),
            Some(WatchStatus::FellBack(_) | WatchStatus::Off(_)) => Some(0.0),
            None => None,
        },
    ),
    (
        "running",
        "gauge",
        "1: the pair runs; 0: stopped or crashed.",
        |v| {
            let down = matches!(v.status.state, State::Stopped | State::Crashed);
            Some(if down { 0.0 } else { 1.0 })
        },
    ),
];

/// The metrics of every pair, in Prometheus's text format.
pub fn render(views: &[PairView]) -> String {
    let mut text = String::new();
    for (name, kind, help, get) in METRICS {
        let _ = writeln!(
            text,
            "# HELP foldersync_{name} {help}\n# TYPE foldersync_{name} {kind}"
        );
        for v in views {
            if let Some(value) = get(v) {
                let pair = v.name().replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(text, "foldersync_{name}{{pair=\"{pair}\"}} {value}");
            }
        }
    }
    text
}
