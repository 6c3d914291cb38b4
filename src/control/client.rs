//! `foldersync ctl`: finds the running foldersync (the only one, or the one
//! running `--config FILE`), sends one request and prints the answer.
//! Every failure is one line on stderr and a non-zero exit, at once.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::place::{self, Probe};
use super::protocol::{self, Command, Failure, Request, Response, VERSION};
use crate::error::{Error, Exit};

/// How long an answer may take: a stop waits for the file in hand.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one request against the chosen process and prints its answer
/// (`json`: the data as JSON, for scripts).
pub fn run(config: Option<&Path>, command: Command, json: bool) -> Result<Exit, Error> {
    let mut stream = choose(config)?;
    let response = ask(&mut stream, &command)?;
    if let Some(failure) = response.failure {
        // "Cannot stop: ..." after "foldersync: ".
        let text = response.message.trim_end().trim_end_matches('.');
        let mut chars = text.chars();
        let message: String = chars
            .next()
            .map(|c| c.to_lowercase().chain(chars).collect())
            .unwrap_or_default();
        return Err(match failure {
            Failure::BadInput => Error::Usage(message),
            Failure::Refused => Error::Setup(message),
        });
    }
    let text = if json {
        serde_json::to_string_pretty(&response.data).unwrap_or_default() + "\n"
    } else {
        response.message
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') || text.is_empty() {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .map_err(|e| Error::Setup(format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

/// Sends one request on a connection and reads its response.
pub fn ask(stream: &mut UnixStream, command: &Command) -> Result<Response, Error> {
    let lost = |e: std::io::Error| Error::Setup(format!("the control socket: {e}"));
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(lost)?;
    let request = Request {
        v: VERSION,
        command: command.clone(),
    };
    // A refused client is answered before it asks: read that answer even
    // when the request could not be written.
    let sent = protocol::send(stream, &request);
    let mut input = BufReader::new(stream.try_clone().map_err(lost)?);
    let line = match (protocol::receive_line(&mut input), sent) {
        (Ok(Some(line)), _) => line,
        (_, Err(e)) | (Err(e), Ok(())) => return Err(lost(e)),
        (Ok(None), Ok(())) => {
            return Err(Error::Setup(
                "the process closed the control socket without an answer".into(),
            ));
        }
    };
    serde_json::from_str(&line).map_err(|e| {
        Error::Setup(format!(
            "the control socket answered something unreadable: {e}"
        ))
    })
}

/// The one running process, or the one running `config`.
pub fn choose(config: Option<&Path>) -> Result<UnixStream, Error> {
    let dir = place::folder();
    let sockets = match place::sockets(&dir) {
        Ok(sockets) => sockets,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::Setup(format!("{}: {e}", dir.display()))),
    };
    let mut alive = Vec::new();
    let mut denied = None;
    for path in sockets {
        match place::probe(&path) {
            Probe::Alive(stream) => alive.push((path, stream)),
            Probe::Stale => {}
            Probe::Denied(e) | Probe::Other(e) => denied = Some(format!("{}: {e}", path.display())),
        }
    }
    if let Some(config) = config {
        return pick(alive, config, &dir);
    }
    match alive.len() {
        1 => Ok(alive.pop().expect("one").1),
        0 => Err(Error::Setup(denied.unwrap_or_else(|| {
            format!(
                "no foldersync is running (no control socket in {})",
                dir.display()
            )
        }))),
        n => Err(Error::Usage(format!(
            "{n} foldersync processes are running ({}); name one with --config FILE",
            alive
                .iter()
                .map(|(p, _)| pid_of(p))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The process whose config (or pairs) file is `config`.
fn pick(alive: Vec<(PathBuf, UnixStream)>, config: &Path, dir: &Path) -> Result<UnixStream, Error> {
    let wanted = std::fs::canonicalize(config)
        .map_err(|e| Error::Usage(format!("{}: {e}", config.display())))?;
    for (_, mut stream) in alive {
        let Ok(hello) = ask(&mut stream, &Command::Hello) else {
            continue;
        };
        if hello.data["config"].as_str().map(PathBuf::from) == Some(wanted.clone()) {
            return Ok(stream);
        }
    }
    Err(Error::Setup(format!(
        "no foldersync running {} has a control socket in {}",
        wanted.display(),
        dir.display()
    )))
}

/// `1234` for `.../1234.sock`.
fn pid_of(socket: &Path) -> String {
    socket
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}
