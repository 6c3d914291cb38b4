//! The program's modes, wired together: validate everything first, then set
//! up logging and signals, start the pairs, and run the menu, wait for a
//! signal (`--no-menu`) or wait for one pass of each (`--once`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use log::{LevelFilter, info};

use crate::cli::{self, Cli};
use crate::config::{self, PairSpec, RawPair, SyncOptions};
use crate::daemon::shutdown::Shutdown;
use crate::daemon::supervisor::Supervisor;
use crate::error::{Error, Exit};
use crate::excludes::{PairExcludes, Patterns};
use crate::logging::{self, ConsoleFilter, ConsoleSpec, Logs};
use crate::state::State;
use crate::ui::{self, MenuEnd};

/// Runs foldersync and returns its exit status.
pub fn run(cli: Cli) -> ExitCode {
    if let Some(what) = cli.generate {
        return match cli::generate(what, &mut std::io::stdout().lock()) {
            Ok(()) => Exit::Success.into(),
            Err(e) => {
                let e = Error::Setup(format!("cannot write to stdout: {e}"));
                eprintln!("foldersync: {e}");
                e.exit().into()
            }
        };
    }
    match try_run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("foldersync: {e}");
            e.exit().into()
        }
    }
}

/// Every pair the command line names, validated, checked for overlaps.
fn pairs_from_cli(cli: &Cli) -> Result<Vec<PairSpec>, String> {
    let mut raws = Vec::new();
    if let (Some(source), Some(replica), Some(interval), Some(log_file)) =
        (&cli.source, &cli.replica, &cli.interval, &cli.log_file)
    {
        let raw = RawPair {
            source: source.clone(),
            replica: replica.clone(),
            interval: interval.clone(),
            log_file: log_file.clone(),
            watch: cli.watch,
            two_way: cli.two_way,
        };
        raws.push((None, raw));
    }
    if let Some(file) = &cli.pairs {
        let listed = config::pairs_file::load(file)?;
        raws.extend(listed.into_iter().map(|(at, raw)| (Some(at), raw)));
    }
    let specs = config::validate_pairs(&raws, &[])?;
    config::check_overlaps(&[], &specs)?;
    if specs.is_empty() && (cli.once || cli.no_menu) {
        let mode = if cli.once { "--once" } else { "--no-menu" };
        return Err(format!(
            "{mode} needs at least one pair: SOURCE REPLICA INTERVAL LOGFILE, or --pairs FILE"
        ));
    }
    Ok(specs)
}

fn try_run(cli: Cli) -> Result<Exit, Error> {
    let specs = pairs_from_cli(&cli)?;
    let patterns = Arc::new(Patterns::load(&cli.exclude, &cli.exclude_from)?);
    // Every pair's `.foldersyncignore` checked before any log file is
    // created; each worker loads its own again when it starts.
    for spec in &specs {
        PairExcludes::load(Arc::clone(&patterns), &spec.source)?;
    }
    let state_dir = State::resolve(cli.state_dir.as_deref())?;
    // Before the state folder is made: a refused one is not created.
    let resolved = config::resolve(&state_dir).unwrap_or_else(|_| state_dir.clone());
    for spec in &specs {
        crate::state::check_place(&resolved, spec)?;
    }
    let state = State::open(state_dir, cli.dry_run)?;
    let level = if cli.quiet {
        LevelFilter::Warn
    } else if cli.verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let stderr_tty = std::io::stderr().is_terminal();
    let progress = cli.once && stderr_tty;
    let menu_tty = !cli.once && !cli.no_menu && stderr_tty && ui::menu_at_terminal();
    // A person at a terminal sees what is worth noticing; a pipe, a file
    // or `-v` gets every action, as scripts expect.
    let filter = match (cli.verbose, progress, menu_tty) {
        (false, true, _) => ConsoleFilter::NoPairInfo,
        (false, _, true) => ConsoleFilter::Lifecycle,
        _ => ConsoleFilter::All,
    };
    let console = ConsoleSpec {
        level,
        filter,
        color: ui::color_on_stderr(),
    };
    raise_open_file_limit();
    // Before any thread exists: the local time offset is read then.
    let logs = logging::init(console)?;
    let shutdown = Shutdown::install().map_err(Error::Setup)?;
    let options = SyncOptions {
        checksum: cli.checksum,
        dry_run: cli.dry_run,
        fsync: cli.fsync,
        allow_empty_source: cli.allow_empty_source,
        delete_excluded: cli.delete_excluded,
        max_delete: cli.max_delete,
        cache_limit: cli.cache_limit,
        jobs: cli.jobs,
    };
    let mut supervisor = Supervisor::new(
        options,
        patterns,
        logs.clone(),
        shutdown.quit_flag(),
        cli.once,
    );
    supervisor.keep_state(state, cli.new_device);
    if cli.once {
        let clean = run_once(&mut supervisor, specs, progress.then_some(&logs))?;
        if shutdown.signalled() {
            // The passes logged that they stopped; this says why.
            info!("signal received: the passes stopped at a file boundary");
            return Ok(Exit::Interrupted);
        }
        return Ok(if clean {
            Exit::Success
        } else {
            Exit::PassFailed
        });
    }
    start_all(&mut supervisor, specs)?;
    let end = if cli.no_menu {
        MenuEnd::EndOfInput
    } else {
        ui::run(&mut supervisor, &shutdown, &logs)
    };
    if end == MenuEnd::EndOfInput {
        if !cli.no_menu {
            info!("end of input: the menu is closed; pairs keep running until SIGINT or SIGTERM");
        }
        shutdown.wait();
    }
    if end != MenuEnd::Quit {
        info!(
            "signal received: stopping every pair at the next file boundary (again to exit at once)"
        );
    }
    info!("quitting: waiting for every pair to stop");
    supervisor.shutdown();
    info!("all pairs stopped; goodbye");
    Ok(Exit::Success)
}

/// `--once`: one pass of every pair; whether all were clean. A single pair
/// runs on this thread, so a cron job starts no pair thread; with a
/// progress line (`progress`: at a terminal) this thread draws it instead.
fn run_once(
    supervisor: &mut Supervisor,
    specs: Vec<PairSpec>,
    progress: Option<&Logs>,
) -> Result<bool, String> {
    if specs.len() == 1 && progress.is_none() {
        let spec = specs.into_iter().next().expect("one pair");
        return supervisor.run_here(spec);
    }
    start_all(supervisor, specs)?;
    if let Some(logs) = progress {
        ui::progress::show(supervisor, logs);
    }
    Ok(supervisor.wait_all())
}

/// Starts every pair; on a refusal, stops those already started.
fn start_all(supervisor: &mut Supervisor, specs: Vec<PairSpec>) -> Result<(), String> {
    supervisor.add_all(specs).inspect_err(|_| {
        supervisor.shutdown();
    })
}

/// Deep trees keep one folder handle open per level; allow as many as the
/// system lets us.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
