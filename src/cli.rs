//! What the user typed: the command-line definition. Checking that it makes
//! sense is `config`'s job.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// Keeps replica folders an exact copy of their source folders, re-syncing
/// each pair every INTERVAL seconds, with a console menu to list, add and
/// stop pairs.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "With no pair at all, foldersync starts with the menu alone.\n\
                  Examples:\n  \
                  foldersync ./dev ./devcopy 10 log.txt\n  \
                  foldersync --pairs pairs.txt --no-menu\n  \
                  foldersync --once --dry-run ~/docs /mnt/usb/docs 60 sync.log"
)]
pub struct Cli {
    /// Source folder to mirror.
    #[arg(value_name = "SOURCE", requires_all = ["replica", "interval", "log_file"])]
    pub source: Option<PathBuf>,

    /// Replica folder; becomes an exact copy of SOURCE (created if missing;
    /// its parent folder must exist).
    #[arg(value_name = "REPLICA")]
    pub replica: Option<PathBuf>,

    /// Seconds between passes: a positive number, fractions allowed (0.5),
    /// or with a unit: 30s, 5m, 1h.
    #[arg(value_name = "INTERVAL", allow_negative_numbers = true)]
    pub interval: Option<String>,

    /// Log file, appended to (created if missing; its folder must exist).
    #[arg(value_name = "LOGFILE")]
    pub log_file: Option<PathBuf>,

    /// Also start every pair listed in FILE: one pair a line, the same four
    /// fields separated by white space (and the word watch to watch it),
    /// "double quotes" around a field with spaces; blank lines and lines
    /// starting with # are skipped.
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,

    /// Run exactly one pass of every pair (concurrently), then exit: status
    /// 0 when every pass finished without an error, 1 otherwise.
    #[arg(long, conflicts_with = "no_menu")]
    pub once: bool,

    /// Watch the pair's source and sync each change as it happens; the full
    /// pass still runs every INTERVAL (a pairs-file line asks the same by
    /// ending with the word watch).
    #[arg(long, requires = "source", conflicts_with = "once")]
    pub watch: bool,

    /// Make the pair two-way: both folders are edited, and each change goes
    /// to the other side; an edit made on both sides keeps both versions
    /// (a pairs-file line asks the same by ending with the word two-way).
    #[arg(long, requires = "source")]
    pub two_way: bool,

    /// Run the pairs without the menu until SIGINT or SIGTERM (for running
    /// as a service).
    #[arg(long)]
    pub no_menu: bool,

    /// Hash every file on every pass instead of trusting unchanged size and
    /// mtime.
    #[arg(long)]
    pub checksum: bool,

    /// Log every action a pass would take; change nothing in the replica.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Flush every copied file to disk (fsync) before renaming it into
    /// place.
    #[arg(long)]
    pub fsync: bool,

    /// Let a pass empty the replica when the source folder is empty.
    /// Without it, an empty source with a non-empty replica (an unmounted
    /// disk, a share that did not come up) is an error and nothing is
    /// deleted.
    #[arg(long)]
    pub allow_empty_source: bool,

    /// A pass that would remove more than N entries (files, links, folders
    /// and everything in them) removes none: it does the rest of its work,
    /// holds the removals and reports an error naming them; menu option 6
    /// lets them through for one pass.
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,

    /// Leave out what PATTERN matches, in every pair (repeatable). Gitignore
    /// syntax, matched against paths relative to the pair's root: `*.tmp`,
    /// `/build/` (at the root only), `cache/` (folders only), `**/logs`,
    /// `!keep.log` (re-include). A source folder's own `.foldersyncignore`
    /// adds that pair's patterns.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Read exclude patterns from FILE, one a line (as --exclude; blank
    /// lines and lines starting with # are skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,

    /// Remove what the replica holds at excluded paths (within
    /// --max-delete). Without it, excluded replica entries are left alone.
    #[arg(long)]
    pub delete_excluded: bool,

    /// Bound each pair's cache of file digests to SIZE (e.g. 64MiB, 500K,
    /// 1G); the folders used least recently are evicted first. Without it
    /// the cache keeps every file (about 50 bytes each, name included).
    #[arg(long, value_name = "SIZE", value_parser = crate::config::parse_size)]
    pub cache_limit: Option<usize>,

    /// Sync up to N folders at once within each pass (default: two per
    /// core, at most 8; 1 works through the tree one folder at a time).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,

    /// Keep each pair's state (the devices its folders were on) in DIR,
    /// one file per pair [default: $XDG_STATE_HOME/foldersync, else
    /// ~/.local/state/foldersync].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Take the devices the pairs' folders are on now, and remember them:
    /// for a source or replica disk replaced on purpose, which passes
    /// otherwise refuse (an unmounted disk's bare mountpoint looks the
    /// same).
    #[arg(long)]
    pub new_device: bool,

    /// More on the console: every action and debug records (the log file
    /// always gets every action; so does the console when piped).
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Only warnings and errors on the console. (With the menu at a
    /// terminal, the console by default shows pairs starting and stopping,
    /// pass summaries, warnings and errors, not each file's action.)
    #[arg(short, long)]
    pub quiet: bool,

    /// Read the pairs and their options from FILE, a TOML config file
    /// (see docs/service.md). With `ctl` or `attach`: steer the process
    /// that runs FILE (its --config or --pairs file).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Serve every pair's counters at http://ADDR/metrics in Prometheus's
    /// text format (e.g. 127.0.0.1:9108; anyone who reaches ADDR reads
    /// them, so keep it local).
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    pub metrics: Option<String>,

    /// Check the config file FILE as a run would (every key, every value,
    /// every pair and their overlaps), start nothing: exit 0, or 2 with
    /// FILE:LINE:COLUMN: and the reason on stderr.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["once", "no_menu", "config"])]
    pub check_config: Option<PathBuf>,

    /// Steer a running foldersync, or attach its menu.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Write a man page or a shell completion script to stdout and exit.
    #[arg(long, value_enum, value_name = "WHAT", exclusive = true)]
    pub generate: Option<Generate>,
}

/// Steering a running foldersync through its control socket.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask the running foldersync (the only one, or the one started with
    /// --config FILE) for its pairs, or to act on one. Pairs are named by
    /// their config file name, or by their number.
    Ctl {
        #[command(subcommand)]
        request: CtlRequest,
    },
    /// The numbered menu, driving the running foldersync (the only one, or
    /// the one started with --config FILE): its log lines scroll above the
    /// prompt; option 3 or Ctrl-D detaches and leaves it running, option 8
    /// stops it.
    Attach,
}

/// What `ctl` asks.
#[derive(Subcommand, Debug, Clone)]
pub enum CtlRequest {
    /// Every pair, as the menu's list shows it.
    Status {
        /// The same as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Start a pass of pair NAME now.
    Sync { name: String },
    /// Stop pair NAME (it finishes or abandons the file in hand).
    Stop { name: String },
    /// Start a stopped (or crashed) pair NAME again.
    Start { name: String },
    /// Let the deletions held back in pair NAME's last pass through.
    Approve { name: String },
    /// Accept the new device pair NAME's last pass refused.
    AcceptDevice { name: String },
    /// Read the config or pairs file again (as SIGHUP does).
    Reload,
    /// Start a new pair, as the menu's add does (with the running
    /// process's command-line options).
    Add {
        source: PathBuf,
        replica: PathBuf,
        /// Seconds between passes (10, 0.5, 5m).
        interval: String,
        log_file: PathBuf,
        /// Both folders are edited.
        #[arg(long)]
        two_way: bool,
        /// Sync each change as it happens.
        #[arg(long)]
        watch: bool,
    },
}

/// What `--generate` writes.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Generate {
    /// The man page (roff), for `man 1 foldersync`.
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

/// Writes the man page or completion script, both made from the definition
/// above, so they never fall behind it.
pub fn generate(what: Generate, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut command = Cli::command();
    let shell = match what {
        Generate::Man => return clap_mangen::Man::new(command).render(out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "foldersync", out);
    Ok(())
}
