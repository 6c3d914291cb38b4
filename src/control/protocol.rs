//! What goes over the control socket: one JSON object a line each way, a
//! request and then its response, as many as the client sends. JSON (with
//! `serde_json`) because `ctl status --json` hands the same data to scripts,
//! and a line of it is easy to frame and to read in a debugger (`socat`).
//! Every message carries the protocol's version, `v`; a process refuses a
//! version it does not speak, by name, rather than guess.

use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// The version this build speaks.
pub const VERSION: u32 = 1;

/// The longest request line read; a longer one is refused.
pub const MAX_LINE: u64 = 64 * 1024;

/// One request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// What a request asks.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    /// Which process this is: its pid and its config (or pairs) file.
    Hello,
    /// Every pair, as the menu's list shows it.
    Status,
    Sync {
        pair: String,
    },
    Stop {
        pair: String,
    },
    Start {
        pair: String,
    },
    Approve {
        pair: String,
    },
    AcceptDevice {
        pair: String,
    },
    /// Read the config (or pairs) file again.
    Reload,
    /// Start a pair, as the menu's add does (`attach`).
    Add {
        pair: NewPair,
    },
    /// Send this connection the log lines a person at the menu sees, from
    /// now on; the connection carries nothing else after the answer.
    Follow,
    /// Stop every pair and exit, as SIGTERM does.
    Quit,
}

/// A pair as the menu's add asks for it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NewPair {
    pub source: String,
    pub replica: String,
    pub interval: String,
    pub log: String,
    pub two_way: bool,
    pub watch: bool,
}

/// Why a request failed, for the client's exit status.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The request itself is wrong: an unknown pair, a bad line.
    BadInput,
    /// The process could not do it (the pair is syncing already, ...).
    Refused,
}

/// One response: `message` for a person, `data` for a script.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Response {
    pub v: u32,
    /// `None`: done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn done(message: impl Into<String>, data: serde_json::Value) -> Self {
        Response {
            v: VERSION,
            failure: None,
            message: message.into(),
            data,
        }
    }

    pub fn failed(failure: Failure, message: impl Into<String>) -> Self {
        Response {
            v: VERSION,
            failure: Some(failure),
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }
}

/// Writes one message as a line.
pub fn send(out: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Reads one line (at most [`MAX_LINE`] bytes); `None` at the end of the
/// stream.
pub fn receive_line(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    let read = input.by_ref().take(MAX_LINE).read_line(&mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && read as u64 == MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(Some(line))
}

/// Parses a request line; the response to send when it is not one this
/// version understands.
pub fn parse_request(line: &str) -> Result<Command, Response> {
    #[derive(Deserialize)]
    struct Versioned {
        v: u32,
    }
    let bad = |why: String| Response::failed(Failure::BadInput, why);
    let version: Versioned =
        serde_json::from_str(line).map_err(|e| bad(format!("not a request: {e}")))?;
    if version.v != VERSION {
        return Err(bad(format!(
            "protocol version {} is not spoken here (this foldersync speaks {VERSION}); use the foldersync that started the process",
            version.v
        )));
    }
    serde_json::from_str::<Request>(line)
        .map(|r| r.command)
        .map_err(|e| bad(format!("not a request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_as_one_line() {
        let request = Request {
            v: VERSION,
            command: Command::AcceptDevice {
                pair: "docs".into(),
            },
        };
        let mut line = Vec::new();
        send(&mut line, &request).expect("to memory");
        let text = String::from_utf8(line).expect("utf-8");
        assert_eq!(
            text,
            "{\"v\":1,\"cmd\":\"accept-device\",\"pair\":\"docs\"}\n"
        );
        assert_eq!(parse_request(&text), Ok(request.command));
    }

    #[test]
    fn another_version_and_garbage_are_refused_by_name() {
        let other = parse_request("{\"v\":2,\"cmd\":\"status\"}").unwrap_err();
        assert!(other.message.contains("version 2"), "{}", other.message);
        let garbage = parse_request("status").unwrap_err();
        assert_eq!(garbage.failure, Some(Failure::BadInput));
        let unknown = parse_request("{\"v\":1,\"cmd\":\"explode\"}").unwrap_err();
        assert!(unknown.message.contains("explode"), "{}", unknown.message);
    }
}
