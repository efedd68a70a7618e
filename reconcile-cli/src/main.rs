//! The `reconcile` command. `main` maps the outcome to an exit status: 0 in sync (or every fix
//! applied), 1 discrepancies remain, 2 error. Results go to stdout, diagnostics to stderr.

mod args;
mod demo;
mod live;
mod output;
mod sources;

use args::{Cli, Command, DiffArgs, PlanArgs};
use clap::Parser;
use reconcile_core::{BrokerSnapshot, LocalSnapshot, Report, SnapshotError, diff, plan};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Everything that ends a command with status 2.
#[derive(Debug, thiserror::Error)]
enum CliError {
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
    #[error("writing to stdout failed: {0}")]
    Stdout(std::io::Error),
    #[error("{0}")]
    Other(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reconcile: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Diff(a) => run_diff(&a),
        Command::Plan(a) => run_plan(&a),
        Command::Run(a) => live::run(&a),
        Command::Apply(a) => live::apply(&a),
        Command::Export(a) => live::export(&a),
        Command::Import(a) => live::import(&a),
        Command::Demo => demo::run(),
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load(a: &DiffArgs) -> Result<(LocalSnapshot, BrokerSnapshot), CliError> {
    let snap = |path: &Path, e: SnapshotError| CliError::Snapshot {
        path: path.to_owned(),
        source: e,
    };
    let local = LocalSnapshot::from_json(&read(&a.local)?).map_err(|e| snap(&a.local, e))?;
    let broker = BrokerSnapshot::from_json(&read(&a.broker)?).map_err(|e| snap(&a.broker, e))?;
    Ok((local, broker))
}

fn report(a: &DiffArgs) -> Result<(LocalSnapshot, BrokerSnapshot, Report), CliError> {
    let (local, broker) = load(a)?;
    let r = diff(&local, &broker, &a.options())?;
    Ok((local, broker, r))
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

fn run_diff(a: &DiffArgs) -> Result<ExitCode, CliError> {
    let (_, _, r) = report(a)?;
    if a.json {
        emit(&r.to_json())?;
    } else {
        emit(&output::report_table(&r))?;
    }
    Ok(status(&r))
}

fn run_plan(a: &PlanArgs) -> Result<ExitCode, CliError> {
    let (local, broker, r) = report(&a.diff)?;
    let mut p = plan(&r, &a.fixes.policy());
    p.fingerprint = Some(reconcile_core::fingerprint(&local, &broker));
    if let Some(out) = &a.out {
        std::fs::write(out, p.to_json()).map_err(|source| CliError::Write {
            path: out.clone(),
            source,
        })?;
    }
    if a.diff.json {
        emit(&p.to_json())?;
    } else {
        emit(&output::plan_table(&r, &p))?;
    }
    Ok(status(&r))
}
