//! The `reconcile` command. `main` maps the outcome to an exit status: 0 in sync (or every fix
//! applied), 1 discrepancies remain, 2 error. Results go to stdout, diagnostics to stderr.
//! Flags become a validated [`config::Config`] before anything runs.

mod args;
mod config;
mod demo;
mod live;
mod output;
mod progress;
mod retarget;
mod serve;
mod sources;
mod watch;

use args::Cli;
use clap::Parser;
use config::{Config, Files, Job, Verbosity};
use reconcile_core::{BrokerSnapshot, LocalSnapshot, Policy, Report, SnapshotError, diff, plan};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc: a snapshot pair of 100 MB is millions of small strings, and the system allocator
/// was a fifth of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Everything that ends a command with status 2.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Usage(#[from] config::UsageError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Snapshot {
        path: PathBuf,
        source: SnapshotError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Diff(#[from] reconcile_core::DiffError),
    #[error("writing JSON failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing to stdout failed: {0}")]
    Stdout(std::io::Error),
    #[error("{0}")]
    Other(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Config::from_cli(cli, &config::ProcessEnv)
        .map_err(CliError::from)
        .and_then(|c| {
            init_logging(c.verbosity);
            run(c.job)
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reconcile: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, at the level `-q`/`-v` give, or as `RUST_LOG` says when it is set
/// (`target=level,…`, such as `reconcile_core=debug,adapter_tastytrade=trace`).
fn init_logging(verbosity: Verbosity) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbosity {
        Verbosity::Quiet => LevelFilter::ERROR,
        Verbosity::Normal => LevelFilter::WARN,
        Verbosity::Debug => LevelFilter::DEBUG,
        Verbosity::Trace => LevelFilter::TRACE,
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(level));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(true),
        )
        .with(filter)
        .try_init();
}

fn run(job: Job) -> Result<ExitCode, CliError> {
    match job {
        Job::Diff(files) => run_diff(&files),
        Job::Plan { files, policy, out } => run_plan(&files, &policy, out.as_deref()),
        Job::Run { sides, policy, out } => live::run(&sides, &policy, out.as_deref()),
        Job::Watch(w) => watch::run(&w),
        Job::Retarget(r) => retarget::run(&r),
        Job::Apply { plan, sides } => live::apply(&plan, &sides),
        Job::Export(e) => live::export(e),
        Job::Import { file, store } => live::import(&file, &store),
        Job::Demo(which) => demo::run(which),
        Job::Unlock { account, store } => live::unlock(&account, &store),
        Job::Sim(a) => serve::run(&a),
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|source| CliError::Write {
        path: path.to_owned(),
        source,
    })
}

fn load(f: &Files) -> Result<(LocalSnapshot, BrokerSnapshot), CliError> {
    // The two files are parsed at once, the broker's on a thread of its own.
    std::thread::scope(|s| {
        let broker = s.spawn(|| {
            load_one(
                &f.broker,
                BrokerSnapshot::from_reader,
                BrokerSnapshot::from_json,
            )
        });
        let local = load_one(
            &f.local,
            LocalSnapshot::from_reader,
            LocalSnapshot::from_json,
        );
        let broker = broker
            .join()
            .map_err(|_| CliError::Other("parsing the broker snapshot failed".to_owned()))?;
        Ok((local?, broker?))
    })
}

/// Reads a snapshot a piece at a time, so that its whole text is never held beside what is
/// parsed from it; a file that cannot be read so is read whole, to name its problem.
fn load_one<T>(
    path: &Path,
    streamed: impl FnOnce(std::fs::File) -> Option<T>,
    whole: impl FnOnce(&str) -> Result<T, SnapshotError>,
) -> Result<T, CliError> {
    if let Ok(file) = std::fs::File::open(path)
        && let Some(snapshot) = streamed(file)
    {
        return Ok(snapshot);
    }
    whole(&read(path)?).map_err(|source| CliError::Snapshot {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)?;
    out.flush().map_err(CliError::Stdout)
}

fn status(r: &Report) -> ExitCode {
    if r.in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_diff(f: &Files) -> Result<ExitCode, CliError> {
    let (local, broker) = load(f)?;
    let r = diff(&local, &broker, &f.options)?;
    if f.json {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let stdout = |e: serde_json::Error| match e.is_io() {
            true => CliError::Stdout(e.into()),
            false => e.into(),
        };
        r.write_json(&mut out).map_err(stdout)?;
        out.flush().map_err(CliError::Stdout)?;
    } else {
        emit(&output::report_table(&r, f.all))?;
    }
    let code = status(&r);
    // The process ends here: the OS takes the memory back at once, where freeing a few
    // million small allocations one by one would take a twentieth of the run.
    std::mem::forget((local, broker, r));
    Ok(code)
}

fn run_plan(f: &Files, policy: &Policy, out: Option<&Path>) -> Result<ExitCode, CliError> {
    let (local, broker) = load(f)?;
    let r = diff(&local, &broker, &f.options)?;
    let mut p = plan(&r, policy);
    p.fingerprint = Some(reconcile_core::fingerprint(&local, &broker)?);
    if let Some(out) = out {
        write(out, &p.to_json()?)?;
    }
    if f.json {
        emit(&p.to_json()?)?;
    } else {
        emit(&output::plan_table(&r, &p, f.all))?;
    }
    Ok(status(&r))
}
