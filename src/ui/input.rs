//! Reading the menu's answers: whole lines from a pipe, or from a line
//! editor at a terminal. Both wait for a signal at the same time, so
//! SIGINT or SIGTERM ends the menu at once.

use std::io::{self, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};
use rustyline::config::{Behavior, CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};

use super::complete::PathHelper;
use crate::logging::Logs;

/// The longest line kept; the rest of a longer one is dropped.
const MAX_LINE: usize = 64 * 1024;

/// One answer.
pub enum Line {
    Text(String),
    EndOfInput,
    Signal,
}

/// What a prompt asks for: Tab completes paths only where one is asked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Path,
    Other,
}

/// Where answers come from.
pub enum Input<'a> {
    Plain(PlainInput<'a>),
    Editor(EditorInput<'a>),
}

impl<'a> Input<'a> {
    /// A line editor when a person sits at the menu and the terminal
    /// supports one; plain lines otherwise.
    pub fn new(wake: BorrowedFd<'a>, logs: &Logs) -> Self {
        if super::menu_at_terminal() {
            match EditorInput::start(wake, logs) {
                Ok(editor) => return Input::Editor(editor),
                Err(e) => log::debug!("no line editor ({e}); reading plain lines"),
            }
        }
        Input::Plain(PlainInput::new(wake))
    }

    /// Shows `prompt` (its last line is the one answered on) and reads one
    /// answer.
    pub fn ask(&mut self, prompt: &str, kind: Kind) -> Line {
        match self {
            Input::Plain(plain) => {
                say(&mut io::stdout(), prompt);
                plain.next_line()
            }
            Input::Editor(editor) => editor.ask(prompt, kind),
        }
    }
}

/// Writes and flushes; a closed stdout is not worth dying for.
pub fn say(out: &mut impl Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Answers from rustyline, whose `readline` runs on a thread of its own:
/// it cannot be woken by a signal, and the main thread must be, so the main
/// thread waits in `poll` on the signal pipe and on a pipe this thread
/// rings when an answer is ready.
pub struct EditorInput<'a> {
    wake: BorrowedFd<'a>,
    requests: Option<Sender<(String, Kind)>>,
    answers: Receiver<rustyline::Result<String>>,
    ready: OwnedFd,
    /// The terminal's settings before raw mode, put back when a signal ends
    /// the menu while `readline` still holds the terminal.
    saved: Termios,
    logs: Logs,
    /// `None` once joined, or left behind in `readline` after a signal.
    thread: Option<JoinHandle<()>>,
    /// Whether `readline` is waiting for the user now.
    reading: bool,
}

impl<'a> EditorInput<'a> {
    fn start(wake: BorrowedFd<'a>, logs: &Logs) -> Result<Self, String> {
        let saved = tcgetattr(rustix::stdio::stdin()).map_err(|e| e.to_string())?;
        let config = Config::builder()
            .auto_add_history(false)
            .completion_type(CompletionType::List)
            .behavior(Behavior::Stdio)
            .build();
        let mut editor: Editor<PathHelper, DefaultHistory> =
            Editor::with_config(config).map_err(|e| e.to_string())?;
        editor.set_helper(Some(PathHelper::default()));
        // Fails on a terminal rustyline cannot drive (TERM=dumb).
        let mut printer = editor
            .create_external_printer()
            .map_err(|e| e.to_string())?;
        let (ready, ring) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| e.to_string())?;
        let (requests, asked) = crossbeam_channel::unbounded::<(String, Kind)>();
        let (answer, answers) = crossbeam_channel::unbounded();
        let thread = thread::Builder::new()
            .name("menu-input".into())
            .spawn(move || {
                for (prompt, kind) in asked {
                    if let Some(helper) = editor.helper_mut() {
                        helper.paths = kind == Kind::Path;
                    }
                    let line = editor.readline(&prompt);
                    if let Ok(text) = &line
                        && !text.trim().is_empty()
                    {
                        let _ = editor.add_history_entry(text.as_str());
                    }
                    if answer.send(line).is_err() {
                        return;
                    }
                    let _ = rustix::io::write(&ring, b"a");
                }
            })
            .map_err(|e| e.to_string())?;
        // Records print above the prompt only if they went to the same
        // terminal; stderr redirected to a file keeps getting them.
        if io::IsTerminal::is_terminal(&io::stderr()) {
            logs.set_console_sink(Some(Box::new(move |line| {
                let _ = printer.print(line);
            })));
        }
        Ok(EditorInput {
            wake,
            requests: Some(requests),
            answers,
            ready,
            saved,
            logs: logs.clone(),
            thread: Some(thread),
            reading: false,
        })
    }

    fn ask(&mut self, prompt: &str, kind: Kind) -> Line {
        let (above, last) = match prompt.rfind('\n') {
            Some(i) => prompt.split_at(i + 1),
            None => ("", prompt),
        };
        say(&mut io::stdout(), above);
        let Some(requests) = &self.requests else {
            return Line::EndOfInput;
        };
        if requests.send((last.to_string(), kind)).is_err() {
            return Line::EndOfInput;
        }
        self.reading = true;
        loop {
            let mut fds = [
                PollFd::new(&self.ready, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Line::EndOfInput,
            }
            if !fds[1].revents().is_empty() {
                return Line::Signal;
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            let _ = rustix::io::read(&self.ready, &mut [0u8; 1]);
            let Ok(answer) = self.answers.try_recv() else {
                continue;
            };
            self.reading = false;
            return match answer {
                Ok(text) => Line::Text(text),
                // Ctrl-C arrives as a key in raw mode: it does what the
                // SIGINT it would have been does (quit safely; a second one
                // exits at once), through the same handler.
                Err(ReadlineError::Interrupted) => {
                    let _ = signal_hook::low_level::raise(signal_hook::consts::SIGINT);
                    Line::Signal
                }
                // Ctrl-D, or a terminal that went away.
                Err(_) => Line::EndOfInput,
            };
        }
    }
}

impl Drop for EditorInput<'_> {
    /// Gives the console back to stderr and the terminal back to the shell.
    fn drop(&mut self) {
        self.logs.set_console_sink(None);
        self.requests = None;
        if self.reading {
            // A signal came while `readline` holds the terminal in raw
            // mode; it cannot be woken, so its thread is left to end with
            // the process and the settings are put back here.
            let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
            say(&mut io::stdout(), "\n");
        } else if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whole lines from stdin, waiting in `poll` on stdin and the signal pipe
/// together. It behaves the same on a pipe and a terminal without editing.
pub struct PlainInput<'a> {
    wake: BorrowedFd<'a>,
    buf: Vec<u8>,
    ended: bool,
    /// Dropping the rest of a line longer than `MAX_LINE`.
    skipping: bool,
}

impl<'a> PlainInput<'a> {
    fn new(wake: BorrowedFd<'a>) -> Self {
        PlainInput {
            wake,
            buf: Vec::new(),
            ended: false,
            skipping: false,
        }
    }

    fn next_line(&mut self) -> Line {
        let stdin = rustix::stdio::stdin();
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Line::Text(decode(&line[..pos]));
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Line::EndOfInput;
                }
                let line = std::mem::take(&mut self.buf);
                return Line::Text(decode(&line));
            }
            let mut fds = [
                PollFd::new(&stdin, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.ended = true;
                    continue;
                }
            }
            if !fds[1].revents().is_empty() {
                return Line::Signal;
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match rustix::io::read(stdin, &mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => {
                    let mut data = &chunk[..n];
                    if self.skipping {
                        match data.iter().position(|&b| b == b'\n') {
                            Some(pos) => {
                                self.skipping = false;
                                data = &data[pos + 1..];
                            }
                            None => data = &[],
                        }
                    }
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > MAX_LINE && !self.buf.contains(&b'\n') {
                        self.buf.truncate(MAX_LINE);
                        self.buf.push(b'\n');
                        self.skipping = true;
                    }
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => self.ended = true,
            }
        }
    }
}

/// A line as text: invalid UTF-8 replaced, the trailing `\r` of a Windows
/// line ending dropped.
fn decode(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}
