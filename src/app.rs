//! The program's modes, wired together: validate everything first, then set
//! up logging and signals, start the pairs, and run the menu, wait for a
//! signal (`--no-menu`) or wait for one pass of each (`--once`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use log::{LevelFilter, info, warn};

use crate::cli::{self, Cli};
use crate::config::sources::Sources;
use crate::config::{self, PairSpec, RawPair, SyncOptions};
use crate::control::server::{Context, Reload, Server};
use crate::daemon::reload;
use crate::daemon::shutdown::Shutdown;
use crate::daemon::supervisor::{Supervisor, lock};
use crate::error::{Error, Exit};
use crate::excludes::{ExcludeLists, Patterns};
use crate::logging::{self, ConsoleFilter, ConsoleSpec, Logs};
use crate::metrics::Metrics;
use crate::state::State;
use crate::systemd::{Notifier, Reporter};
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
    match &cli.command {
        Some(cli::Command::Ctl { request }) => {
            return finish(ctl(cli.config.as_deref(), request.clone()));
        }
        Some(cli::Command::Attach) => {
            return finish(crate::control::attach::run(cli.config.as_deref()));
        }
        None => {}
    }
    if let Some(file) = &cli.check_config {
        return check_config(&cli, file).into();
    }
    finish(try_run(cli))
}

/// `--check-config FILE`: the pairs a run would start, validated as a run
/// would, nothing started. Errors start with `FILE:LINE:COLUMN:`, as a
/// compiler's do, for editors.
fn check_config(cli: &Cli, file: &std::path::Path) -> Exit {
    let sources = Sources {
        config_file: Some(file.to_path_buf()),
        ..sources(cli)
    };
    match sources.load() {
        Ok(specs) => {
            let names: Vec<String> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.name.clone().unwrap_or_else(|| (i + 1).to_string()))
                .collect();
            println!(
                "{}: valid, {} {}: {}",
                file.display(),
                specs.len(),
                if specs.len() == 1 { "pair" } else { "pairs" },
                names.join(", ")
            );
            Exit::Success
        }
        Err(e) => {
            eprintln!("{e}");
            Exit::Usage
        }
    }
}

/// The exit status of a run, its error said on stderr.
fn finish(result: Result<Exit, Error>) -> ExitCode {
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("foldersync: {e}");
            e.exit().into()
        }
    }
}

/// `foldersync ctl`: one request to the running process.
fn ctl(config: Option<&std::path::Path>, request: cli::CtlRequest) -> Result<Exit, Error> {
    use crate::control::protocol::Command;
    use cli::CtlRequest as R;
    let (command, json) = match request {
        R::Status { json } => (Command::Status, json),
        R::Sync { name } => (Command::Sync { pair: name }, false),
        R::Stop { name } => (Command::Stop { pair: name }, false),
        R::Start { name } => (Command::Start { pair: name }, false),
        R::Approve { name } => (Command::Approve { pair: name }, false),
        R::AcceptDevice { name } => (Command::AcceptDevice { pair: name }, false),
        R::Reload => (Command::Reload, false),
        R::Add {
            source,
            replica,
            interval,
            log_file,
            two_way,
            watch,
        } => {
            // The process may run elsewhere: paths as meant here.
            let path = |p: std::path::PathBuf| {
                let p = std::path::absolute(&p).unwrap_or(p);
                p.to_string_lossy().into_owned()
            };
            let pair = crate::control::protocol::NewPair {
                source: path(source),
                replica: path(replica),
                interval,
                log: path(log_file),
                two_way,
                watch,
            };
            (Command::Add { pair }, false)
        }
    };
    crate::control::client::run(config, command, json)
}

/// Where the pairs come from, and the command line's options for them.
fn sources(cli: &Cli) -> Sources {
    let positional = match (&cli.source, &cli.replica, &cli.interval, &cli.log_file) {
        (Some(source), Some(replica), Some(interval), Some(log_file)) => Some(RawPair {
            source: source.clone(),
            replica: replica.clone(),
            interval: interval.clone(),
            log_file: log_file.clone(),
            watch: cli.watch,
            two_way: cli.two_way,
            name: None,
            options: SyncOptions::default(),
            excludes: ExcludeLists::default(),
        }),
        _ => None,
    };
    Sources {
        positional,
        pairs_file: cli.pairs.clone(),
        config_file: cli.config.clone(),
        options: SyncOptions {
            checksum: cli.checksum,
            dry_run: cli.dry_run,
            fsync: cli.fsync,
            allow_empty_source: cli.allow_empty_source,
            delete_excluded: cli.delete_excluded,
            max_delete: cli.max_delete,
            cache_limit: cli.cache_limit,
            jobs: cli.jobs,
        },
        excludes: ExcludeLists {
            patterns: cli.exclude.clone(),
            files: cli.exclude_from.clone(),
        },
    }
}

/// Every pair the command line names, validated, checked for overlaps.
fn pairs_from_cli(cli: &Cli, sources: &Sources) -> Result<Vec<PairSpec>, String> {
    let specs = sources.load()?;
    if specs.is_empty() && (cli.once || cli.no_menu) {
        let mode = if cli.once { "--once" } else { "--no-menu" };
        return Err(format!(
            "{mode} needs at least one pair: SOURCE REPLICA INTERVAL LOGFILE, --pairs FILE or --config FILE"
        ));
    }
    Ok(specs)
}

fn try_run(cli: Cli) -> Result<Exit, Error> {
    let sources = sources(&cli);
    let specs = pairs_from_cli(&cli, &sources)?;
    let patterns = Arc::new(Patterns::load(&cli.exclude, &cli.exclude_from)?);
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
        journal: crate::systemd::stderr_is_journal(),
    };
    raise_open_file_limit();
    // Before any thread exists: the local time offset is read then.
    let logs = logging::init(console)?;
    // A service reloads on SIGHUP; a person's terminal closing quits.
    let hup_reloads = sources.file().is_some() && !cli.once && !menu_tty;
    let shutdown = Shutdown::install(hup_reloads).map_err(Error::Setup)?;
    let mut supervisor = Supervisor::new(
        sources.options,
        sources.excludes.clone(),
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
    run_service(&cli, &sources, supervisor, specs, shutdown, &logs)
}

/// The long-running modes (the menu, `--no-menu`): starts the pairs and
/// what steers and reports them (the control socket, `--metrics`,
/// systemd), runs until quit or a signal, then stops it all.
fn run_service(
    cli: &Cli,
    sources: &Sources,
    mut supervisor: Supervisor,
    specs: Vec<PairSpec>,
    mut shutdown: Shutdown,
    logs: &Logs,
) -> Result<Exit, Error> {
    let listener = cli.metrics.as_deref().map(Metrics::bind).transpose()?;
    let notifier = Notifier::from_env();
    let (passed, passes) = crossbeam_channel::unbounded();
    if notifier.is_some() {
        supervisor.report_passes(passed);
    }
    start_all(&mut supervisor, specs)?;
    let supervisor = Arc::new(Mutex::new(supervisor));
    let server = control_socket(sources, &supervisor, shutdown.take_hangup(), logs);
    let metrics = listener.and_then(|l| {
        Metrics::start(l, Arc::clone(&supervisor))
            .inspect_err(|e| warn!("{e}; no metrics"))
            .ok()
    });
    // READY=1 once the pairs are up and ctl can reach them.
    let reporter = notifier.and_then(|n| {
        Reporter::start(n, Arc::clone(&supervisor), passes)
            .inspect_err(|e| warn!("systemd: {e}; no status reports"))
            .ok()
    });
    let end = if cli.no_menu {
        MenuEnd::EndOfInput
    } else {
        ui::run(&mut &*supervisor, shutdown.wake_fd(), logs)
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
    if let Some(reporter) = reporter {
        reporter.stopping();
    }
    if let Some(server) = server {
        server.stop();
    }
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    lock(&supervisor).shutdown();
    info!("all pairs stopped; goodbye");
    Ok(Exit::Success)
}

/// Listens on this process's control socket; without one (no runtime
/// folder to make it in) the pairs run on, and the log says why.
fn control_socket(
    sources: &Sources,
    supervisor: &Arc<Mutex<Supervisor>>,
    hangup: Option<std::os::fd::OwnedFd>,
    logs: &Logs,
) -> Option<Server> {
    let file = sources.file();
    let context = Context {
        supervisor: Arc::clone(supervisor),
        config: file.and_then(|f| std::fs::canonicalize(f).ok()),
        reload: sources.file().is_some().then(|| {
            let sources = sources.clone();
            let reload: Reload =
                Box::new(move |supervisor| reload::apply(&mut lock(supervisor), sources.load()));
            reload
        }),
        hangup,
        logs: logs.clone(),
    };
    Server::start(context)
        .inspect_err(|e| {
            warn!("{e}; running on without a control socket (neither ctl nor attach can reach this process, nor SIGHUP reload it)")
        })
        .ok()
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
