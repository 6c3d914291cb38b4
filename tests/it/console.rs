//! The console at a real terminal: foldersync runs on a pseudo-terminal
//! (stdin, stdout and stderr all on it), a thread reads everything it
//! writes into a vt100 screen, and each test checks what a person would
//! see. The piped behaviour is covered by `menu.rs` and the others;
//! `attach.rs` runs `foldersync attach` on the same [`PtySession`].

use std::fs;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

use crate::support::*;

const ROWS: u16 = 30;
const COLS: u16 = 120;
const PROMPT: &str = "Choose an option (1-7): ";

/// Answers the cursor position queries (`ESC [ 6 n`) that rustyline sends
/// before each prompt, as a terminal does; unanswered, each costs it a
/// 100 ms wait and a key typed meanwhile is taken for the answer.
#[derive(Default)]
struct Replies(Vec<String>);

impl vt100::Callbacks for Replies {
    fn unhandled_csi(
        &mut self,
        screen: &mut vt100::Screen,
        i1: Option<u8>,
        _: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        if c == 'n' && i1.is_none() && params == [&[6]] {
            let (row, col) = screen.cursor_position();
            self.0.push(format!("\x1b[{};{}R", row + 1, col + 1));
        }
    }
}

struct Terminal {
    parser: vt100::Parser<Replies>,
    /// Every byte the program wrote.
    raw: Vec<u8>,
    /// The reader saw the end (the program and its children exited).
    closed: bool,
}

/// foldersync on a pseudo-terminal, its output read continuously (a
/// terminal nobody reads blocks the writer).
pub(crate) struct PtySession {
    child: Box<dyn Child + Send + Sync>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    term: Arc<Mutex<Terminal>>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PtySession {
    pub(crate) fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> PtySession {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        let mut cmd = CommandBuilder::new(bin());
        cmd.args(args);
        cmd.cwd(dir);
        cmd.env("TERM", "xterm-256color");
        cmd.env("XDG_STATE_HOME", state_home(dir));
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn foldersync");
        // Only the child holds the terminal's other end: its exit ends the
        // reader.
        drop(pair.slave);
        let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("writer")));
        let term = Arc::new(Mutex::new(Terminal {
            parser: vt100::Parser::new_with_callbacks(
                NonZeroU16::new(ROWS).unwrap(),
                NonZeroU16::new(COLS).unwrap(),
                0,
                Replies::default(),
            ),
            raw: Vec::new(),
            closed: false,
        }));
        let mut from = pair.master.try_clone_reader().expect("reader");
        let (t, w) = (Arc::clone(&term), Arc::clone(&writer));
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let replies = {
                    let mut term = t.lock().unwrap();
                    term.raw.extend_from_slice(&buf[..n]);
                    term.parser.process(&buf[..n]);
                    std::mem::take(&mut term.parser.callbacks_mut().0)
                };
                for r in replies {
                    let _ = w.lock().unwrap().write_all(r.as_bytes());
                }
            }
            t.lock().unwrap().closed = true;
        });
        PtySession {
            child,
            writer,
            term,
            master: pair.master,
            reader: Some(reader),
        }
    }

    /// Types `keys` (no Enter added).
    pub(crate) fn type_keys(&self, keys: &str) {
        let mut w = self.writer.lock().unwrap();
        w.write_all(keys.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    /// The screen's rows, right-trimmed.
    pub(crate) fn rows(&self) -> Vec<String> {
        let term = self.term.lock().unwrap();
        term.parser
            .screen()
            .rows(0, COLS)
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    /// The row the cursor is on.
    pub(crate) fn cursor_row(&self) -> String {
        let (row, _) = self.term.lock().unwrap().parser.screen().cursor_position();
        self.rows()[row as usize].clone()
    }

    /// The last row with anything on it.
    pub(crate) fn last_line(&self) -> String {
        let rows = self.rows();
        rows.iter()
            .rev()
            .find(|r| !r.is_empty())
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn screen(&self) -> String {
        self.rows().join("\n")
    }

    pub(crate) fn raw(&self) -> String {
        String::from_utf8_lossy(&self.term.lock().unwrap().raw).into_owned()
    }

    /// Waits until the screen shows `text` at least `n` times.
    #[track_caller]
    pub(crate) fn wait_screen(&self, text: &str, n: usize) {
        wait_for(
            PATIENCE,
            || self.screen().matches(text).count() >= n,
            || format!("the screen never showed {n}x {text:?}:\n{}", self.screen()),
        );
    }

    /// Waits until the prompt is the line the cursor is on.
    #[track_caller]
    pub(crate) fn wait_prompt(&self, prompt: &str) {
        wait_for(
            PATIENCE,
            || self.cursor_row().starts_with(prompt.trim_end()),
            || format!("no prompt {prompt:?} at the cursor:\n{}", self.screen()),
        );
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.process_id().expect("pid")
    }

    /// Waits for the exit and for the reader to see the end of the output;
    /// returns the exit code.
    #[track_caller]
    pub(crate) fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                wait_for(
                    PATIENCE,
                    || self.term.lock().unwrap().closed,
                    || "the terminal never closed".into(),
                );
                if let Some(r) = self.reader.take() {
                    r.join().unwrap();
                }
                return status.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "foldersync did not exit:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the terminal is back in its usual mode: lines, echo, and
    /// Ctrl-C as a signal.
    pub(crate) fn terminal_is_cooked(&self) -> bool {
        let fd = self.master.as_raw_fd().expect("master fd");
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
        let want = libc::ICANON | libc::ECHO | libc::ISIG;
        t.c_lflag & want == want
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` small files in 20 folders under `src`.
fn many_files(env: &TestEnv, n: usize) {
    for d in 0..20 {
        env.mkdir(format!("src/d{d:02}"));
    }
    for i in 0..n {
        fs::write(
            env.path(format!("src/d{:02}/f{i:05}.txt", i % 20)),
            format!("file {i}"),
        )
        .unwrap();
    }
}

#[test]
fn after_a_pass_of_thousands_of_files_the_prompt_is_the_last_line_and_no_file_line_is_shown() {
    let env = TestEnv::new();
    many_files(&env, 3000);
    let mut s = PtySession::start(env.root(), &["src", "dst", "3600", "log.txt"], &[]);
    wait_log(&env.log(), "pass finished", 1);
    s.wait_screen("pair 1: pass finished", 1);
    s.wait_prompt(PROMPT);
    assert_eq!(s.last_line(), PROMPT.trim_end(), "{}", s.screen());
    let raw = s.raw();
    assert!(raw.contains("pair 1: started: "), "{raw}");
    assert!(
        !raw.contains("pair 1: copied "),
        "a per-file line reached the terminal:\n{}",
        s.screen()
    );
    // The log file has every action all the same.
    assert_eq!(count(&env.log_text(), "] pair 1: copied "), 3000);
    // The summary on the screen leaves out its zero counts; the log's
    // keeps them for scripts.
    let screen = s.screen();
    let summary = screen
        .lines()
        .find(|l| l.contains("pair 1: pass finished"))
        .expect("a summary on the screen");
    assert!(
        summary.contains("3020 checked, 3000 copied, 21 folders created")
            && !summary.contains(" 0 "),
        "{summary}"
    );
    assert!(env.log_text().contains("0 updated, 0 touched, 0 linked"));

    // The list shows the pair; the prompt comes back last.
    s.type_keys("1\r");
    s.wait_screen("last pass: ok", 1);
    s.wait_prompt(PROMPT);
    assert_eq!(s.last_line(), PROMPT.trim_end());
    s.type_keys("3\r");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    assert!(s.screen().contains("all pairs stopped; goodbye"));
    assert!(s.terminal_is_cooked());
}

#[test]
fn a_partly_typed_answer_survives_log_output_and_is_still_the_last_line() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut s = PtySession::start(env.root(), &["src", "dst", "0.2", "log.txt"], &[]);
    s.wait_screen("pair 1: pass finished", 1);
    s.wait_prompt(PROMPT);
    s.type_keys("hel");
    s.wait_prompt(&format!("{PROMPT}hel"));
    // Three passes that change something: three summaries on the console.
    for i in 0..3 {
        env.write(format!("src/new{i}.txt"), "new");
        s.wait_screen("pair 1: pass finished", i + 2);
    }
    s.wait_prompt(&format!("{PROMPT}hel"));
    assert_eq!(s.last_line(), format!("{PROMPT}hel"), "{}", s.screen());
    // The answer is still being edited: finish it as "help", then the
    // line editor's Ctrl-U empties it and 3 quits.
    s.type_keys("p\r");
    s.wait_screen("\"help\" is not a valid choice.", 1);
    s.wait_prompt(PROMPT);
    s.type_keys("junk\x153\r");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    assert_action(&env.log_text(), 1, "stopped");
}

#[test]
fn tab_completes_paths_in_the_add_prompts_with_a_tilde_for_home() {
    let env = TestEnv::new();
    env.write("some folder/a.txt", "a");
    let root = env.root().canonicalize().unwrap();
    let home = root.display().to_string();
    let mut s = PtySession::start(env.root(), &[], &[("HOME", &home)]);
    s.wait_prompt(PROMPT);
    s.type_keys("2\r");
    s.wait_prompt("Source folder: ");
    s.type_keys(&format!("{home}/some f\t"));
    s.wait_prompt(&format!("Source folder: {home}/some folder/"));
    s.type_keys("\r");
    s.wait_prompt("Replica folder: ");
    s.type_keys("~/so\t");
    s.wait_prompt("Replica folder: ~/some folder/");
    // Not inside the source: edit the completed path back to a new one.
    s.type_keys("\x15~/dst\r");
    s.wait_prompt("Interval in seconds");
    s.type_keys("3600\r");
    s.wait_prompt("Log file: ");
    s.type_keys("~/log.txt\r");
    s.wait_prompt("Direction: one-way");
    s.type_keys("\r");
    s.wait_prompt("Watch for changes? (y/N): ");
    s.type_keys("\r");
    s.wait_screen(
        &format!("Started pair 1: {home}/some folder -> {home}/dst every 60 min."),
        1,
    );
    wait_log(&env.log(), "pass finished", 1);
    assert_mirror(&env.path("some folder"), &env.dst());
    // History: the up arrow brings back the last answers.
    s.wait_prompt(PROMPT);
    s.type_keys("\x1b[A\x1b[A");
    s.wait_prompt(&format!("{PROMPT}3600"));
    s.type_keys("\x153\r");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
}

#[test]
fn ctrl_c_at_the_prompt_quits_safely_and_a_second_exits_at_once() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut s = PtySession::start(env.root(), &["src", "dst", "3600", "log.txt"], &[]);
    s.wait_screen("pair 1: pass finished", 1);
    s.wait_prompt(PROMPT);
    s.type_keys("2\x03");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    assert!(s.screen().contains("signal received: stopping every pair"));
    assert_action(&env.log_text(), 1, "stopped");
    assert!(s.terminal_is_cooked());

    // SIGTERM while the line editor holds the terminal: it is given back.
    let mut s = PtySession::start(env.root(), &["src", "dst", "3600", "log.txt"], &[]);
    s.wait_prompt(PROMPT);
    s.type_keys("1");
    s.wait_prompt(&format!("{PROMPT}1"));
    signal(s.pid(), "TERM");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    assert!(s.terminal_is_cooked(), "left in raw mode");
}

#[test]
fn ctrl_d_at_the_prompt_closes_the_menu_and_the_pairs_run_until_sigterm() {
    let env = TestEnv::new();
    env.write("src/a.txt", "a");
    let mut s = PtySession::start(env.root(), &["src", "dst", "0.2", "log.txt"], &[]);
    s.wait_screen("pair 1: pass finished", 1);
    s.wait_prompt(PROMPT);
    s.type_keys("\x04");
    s.wait_screen("end of input: the menu is closed", 1);
    env.write("src/late.txt", "after Ctrl-D");
    let late = env.path("dst/late.txt");
    wait_for(
        PATIENCE,
        || fs::read(&late).is_ok_and(|b| b == b"after Ctrl-D"),
        || format!("the pair stopped syncing:\n{}", env.log_text()),
    );
    assert!(s.child.try_wait().unwrap().is_none(), "exited early");
    assert!(s.terminal_is_cooked(), "the menu closed in raw mode");
    signal(s.pid(), "TERM");
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    assert_action(&env.log_text(), 1, "stopped");
}

#[test]
fn once_at_a_terminal_shows_a_progress_line_then_one_summary_line() {
    let env = TestEnv::new();
    many_files(&env, 3000);
    let mut s = PtySession::start(
        env.root(),
        &["--once", "-j", "1", "src", "dst", "1", "log.txt"],
        &[],
    );
    assert_eq!(s.wait_exit(), 0, "{}", s.screen());
    let raw = s.raw();
    assert!(
        raw.contains(" files copied, ") && raw.contains("/s"),
        "no progress line was drawn:\n{raw:?}"
    );
    let lines: Vec<String> = s.rows().into_iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one summary line:\n{}", s.screen());
    assert!(
        lines[0].starts_with("pair 1: pass finished in ")
            && lines[0].contains(": 3020 checked, 3000 copied, 21 folders created"),
        "{}",
        lines[0]
    );
    assert_mirror(&env.src(), &env.dst());
}

#[test]
fn once_off_a_terminal_prints_every_action_and_no_progress_line() {
    let env = TestEnv::new();
    many_files(&env, 200);
    let out = env.once_ok(&[]);
    let err = stderr_of(&out);
    assert_eq!(count(&err, "] pair 1: copied "), 200);
    assert!(!err.contains(" files copied, "), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

/// A warning at a terminal: passes longer than their interval.
fn warning_session(env: &TestEnv, extra_env: &[(&str, &str)]) -> PtySession {
    many_files(env, 2000);
    let s = PtySession::start(
        env.root(),
        &["-j", "1", "src", "dst", "0.05", "log.txt"],
        extra_env,
    );
    s.wait_screen("longer than the 0.05 s interval", 1);
    s
}

#[test]
fn warnings_are_coloured_at_a_terminal_and_no_color_turns_colour_off() {
    let env = TestEnv::new();
    let mut s = warning_session(&env, &[]);
    s.type_keys("3\r");
    assert_eq!(s.wait_exit(), 0);
    assert!(s.raw().contains("\x1b[33m[WARN ] pair 1: the pass took"));

    let env = TestEnv::new();
    let mut s = warning_session(&env, &[("NO_COLOR", "1")]);
    s.type_keys("3\r");
    assert_eq!(s.wait_exit(), 0);
    let raw = s.raw();
    let sgr = raw.match_indices("\x1b[").find(|(i, _)| {
        let rest = &raw[i + 2..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
        end.is_some_and(|e| rest[e..].starts_with('m'))
    });
    assert!(sgr.is_none(), "a colour code with NO_COLOR: {raw:?}");
}
