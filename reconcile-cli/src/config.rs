//! Raw flags become a validated [`Config`] before anything runs (ripgrep's shape): every check
//! that involves more than one flag, or the environment, happens here, before a runtime, a
//! connection or a file is opened, and fails with status 2.

use crate::args::{Cli, Command, DiffArgs, ExportArgs, Side, SidesArgs, scope};
use crate::sources::{BrokerUrl, StoreUrl};
use chrono::{DateTime, Utc};
use reconcile_core::{DiffOptions, Policy, Scope};
use std::path::PathBuf;

/// A flag combination that cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How much to log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only (`-q`).
    Quiet,
    /// Warnings and errors (the default).
    Normal,
    /// Debug (`-v`).
    Debug,
    /// Everything (`-vv`).
    Trace,
}

/// What to do, validated.
#[derive(Debug)]
pub struct Config {
    pub verbosity: Verbosity,
    pub job: Job,
}

/// Two snapshot files.
#[derive(Debug)]
pub struct Files {
    pub local: PathBuf,
    pub broker: PathBuf,
    pub options: DiffOptions,
    pub json: bool,
    pub all: bool,
}

/// A live broker and a store.
#[derive(Debug)]
pub struct Sides {
    pub broker: BrokerUrl,
    pub base_url: Option<String>,
    pub store: StoreUrl,
    pub options: DiffOptions,
    pub settle: chrono::TimeDelta,
    pub yes: bool,
    pub json: bool,
    pub all: bool,
}

/// What to export.
#[derive(Debug)]
pub enum Export {
    Local {
        store: StoreUrl,
        scope: Scope,
        out: Option<PathBuf>,
    },
    Broker {
        broker: BrokerUrl,
        base_url: Option<String>,
        accounts: Vec<String>,
        scope: Scope,
        since: Option<DateTime<Utc>>,
        out: Option<PathBuf>,
    },
}

#[derive(Debug)]
pub enum Job {
    Diff(Files),
    Plan {
        files: Files,
        policy: Policy,
        out: Option<PathBuf>,
    },
    Run {
        sides: Sides,
        policy: Policy,
        out: Option<PathBuf>,
    },
    Watch(crate::watch::Watch),
    Retarget(crate::retarget::Retarget),
    Apply {
        plan: PathBuf,
        sides: Sides,
    },
    Export(Export),
    Import {
        file: PathBuf,
        store: StoreUrl,
    },
    Demo(crate::args::SimBroker),
    Unlock {
        account: String,
        store: StoreUrl,
    },
    Sim(crate::args::SimArgs),
}

/// Reads the environment the way the commands would, so tests can replace it.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Validates the parsed flags.
    ///
    /// # Errors
    /// A [`UsageError`] naming the flags that cannot go together.
    pub fn from_cli(cli: Cli, env: &dyn Env) -> Result<Self, UsageError> {
        let verbosity = match (cli.quiet, cli.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Debug,
            (false, _) => Verbosity::Trace,
        };
        let job = match cli.command {
            Command::Diff(a) => Job::Diff(files(a)),
            Command::Plan(a) => Job::Plan {
                policy: a.fixes.policy(),
                files: files(a.diff),
                out: a.out,
            },
            Command::Run(a) => {
                let policy = a.fixes.policy();
                let sides = sides(a.sides, env)?;
                check_broker_fixes(&sides.broker, &policy)?;
                Job::Run {
                    sides,
                    policy,
                    out: a.out,
                }
            }
            Command::Watch(a) => {
                let policy = a.fixes.policy();
                let sides = sides(a.sides, env)?;
                check_broker_fixes(&sides.broker, &policy)?;
                if a.interval <= chrono::TimeDelta::zero() {
                    return Err(UsageError("--interval must be longer than zero".to_owned()));
                }
                Job::Watch(crate::watch::Watch {
                    sides,
                    policy,
                    interval: a.interval,
                    max_cycles: a.max_cycles,
                    metrics: a.metrics_listen,
                })
            }
            Command::Retarget(a) => {
                let sides = sides(a.sides, env)?;
                if a.apply
                    && let BrokerUrl::Snapshot(_) = &sides.broker
                {
                    return Err(UsageError(
                        "retarget --apply replaces orders: a snapshot file cannot".to_owned(),
                    ));
                }
                Job::Retarget(crate::retarget::Retarget {
                    sides,
                    request: reconcile_core::retarget::Request {
                        key: a.key.as_str().into(),
                        profit_pct: a.profit_percent,
                        from_pct: a.from_percent,
                        effect: a.effect,
                    },
                    apply: a.apply,
                    max_cancels: a.max_cancels,
                    max_placements: a.max_placements,
                })
            }
            Command::Apply(a) => Job::Apply {
                plan: a.plan,
                sides: sides(a.sides, env)?,
            },
            Command::Export(a) => Job::Export(export(a)?),
            Command::Import(a) => {
                if a.side != Side::Local {
                    return Err(UsageError(
                        "only a local snapshot can be imported into a store".to_owned(),
                    ));
                }
                Job::Import {
                    file: a.file,
                    store: a.store.checked().map_err(UsageError)?,
                }
            }
            Command::Demo(a) => Job::Demo(a.broker),
            Command::Unlock(a) => Job::Unlock {
                account: a.account,
                store: a.store.checked().map_err(UsageError)?,
            },
            Command::Sim(a) => Job::Sim(a),
        };
        Ok(Self { verbosity, job })
    }
}

fn files(a: DiffArgs) -> Files {
    Files {
        options: DiffOptions {
            scope: scope(&a.accounts, &a.underlyings, &a.positions),
            grace: a.grace,
            now: a.now,
        },
        local: a.local,
        broker: a.broker,
        json: a.json,
        all: a.all,
    }
}

/// `--base-url` says where a broker's real API is; it means nothing for a simulator or a file,
/// and `alpaca-live` names its host already.
fn check_base_url(broker: &BrokerUrl, base_url: Option<&String>) -> Result<(), UsageError> {
    match (broker, base_url) {
        (BrokerUrl::Tastytrade | BrokerUrl::Alpaca, _) | (_, None) => Ok(()),
        (_, Some(_)) => Err(UsageError(
            "--base-url only applies to --broker tastytrade or alpaca".to_owned(),
        )),
    }
}

fn sides(a: SidesArgs, env: &dyn Env) -> Result<Sides, UsageError> {
    check_base_url(&a.broker, a.base_url.as_ref())?;
    let mut scope = scope(&a.accounts, &a.underlyings, &a.positions);
    // `TASTYTRADE_ACCOUNT` names the account when none is given for the live API.
    if scope.accounts.is_empty()
        && matches!(a.broker, BrokerUrl::Tastytrade)
        && let Some(account) = env.var(adapter_tastytrade::ENV_ACCOUNT)
    {
        scope = scope.with_account(account.as_str());
    }
    Ok(Sides {
        options: DiffOptions {
            scope,
            grace: a.grace,
            now: None,
        },
        broker: a.broker,
        base_url: a.base_url,
        store: a.store.checked().map_err(UsageError)?,
        settle: a.settle,
        yes: a.yes,
        json: a.json,
        all: a.all,
    })
}

fn export(a: ExportArgs) -> Result<Export, UsageError> {
    let scope = scope(&a.accounts, &a.underlyings, &[]);
    match a.side {
        Side::Local => {
            if a.broker.is_some() || a.base_url.is_some() || a.since.is_some() {
                return Err(UsageError(
                    "export local reads the store: --broker, --base-url and --since do not apply"
                        .to_owned(),
                ));
            }
            let store = a
                .store
                .ok_or_else(|| UsageError("export local needs --store".to_owned()))?
                .checked()
                .map_err(UsageError)?;
            Ok(Export::Local {
                store,
                scope,
                out: a.out,
            })
        }
        Side::Broker => {
            let broker = a
                .broker
                .ok_or_else(|| UsageError("export broker needs --broker".to_owned()))?;
            check_base_url(&broker, a.base_url.as_ref())?;
            Ok(Export::Broker {
                broker,
                base_url: a.base_url,
                accounts: a.accounts,
                scope,
                since: a.since,
                out: a.out,
            })
        }
    }
}

/// Fixes that need a live broker are refused up front against a snapshot file.
pub fn check_broker_fixes(url: &BrokerUrl, policy: &Policy) -> Result<(), UsageError> {
    let BrokerUrl::Snapshot(path) = url else {
        return Ok(());
    };
    let needs: Vec<&str> = [
        (policy.cancel_orphaned, "--cancel-orphaned"),
        (policy.create_missing, "--create-missing"),
        (policy.replace_drifted, "--replace-drifted"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    if needs.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "{} change orders at the broker, but snapshot:{} is a read-only file; run them against a live broker",
        needs.join(", "),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn config(args: &[&str], env: &[(&'static str, &'static str)]) -> Result<Config, UsageError> {
        let cli = Cli::try_parse_from(std::iter::once("reconcile").chain(args.iter().copied()))
            .map_err(|e| UsageError(e.to_string()))?;
        Config::from_cli(cli, &FakeEnv(env.iter().copied().collect()))
    }

    #[test]
    fn the_account_comes_from_the_environment_for_the_live_api_only() {
        let env = [("TASTYTRADE_ACCOUNT", "5WT00009")];
        let c = config(
            &["run", "--broker", "tastytrade", "--store", "sqlite:x.db"],
            &env,
        )
        .unwrap();
        let Job::Run { sides, .. } = c.job else {
            panic!()
        };
        assert_eq!(sides.options.scope, Scope::all().with_account("5WT00009"));
        let c = config(
            &[
                "run",
                "--broker",
                "tastytrade-sim",
                "--store",
                "sqlite:x.db",
            ],
            &env,
        )
        .unwrap();
        let Job::Run { sides, .. } = c.job else {
            panic!()
        };
        assert!(sides.options.scope.accounts.is_empty());
        let c = config(
            &[
                "run",
                "--broker",
                "tastytrade",
                "--store",
                "sqlite:x.db",
                "--account",
                "A",
            ],
            &env,
        )
        .unwrap();
        let Job::Run { sides, .. } = c.job else {
            panic!()
        };
        assert_eq!(sides.options.scope, Scope::all().with_account("A"));
    }

    #[test]
    fn cross_flag_errors_are_found_before_anything_runs() {
        let e = config(
            &[
                "run",
                "--broker",
                "snapshot:b.json",
                "--store",
                "sqlite:x.db",
                "--create-missing",
            ],
            &[],
        )
        .unwrap_err();
        assert!(
            e.0.contains("--create-missing change orders at the broker"),
            "{e}"
        );
        let e = config(
            &[
                "run",
                "--broker",
                "tastytrade-sim",
                "--base-url",
                "http://x",
                "--store",
                "sqlite:x.db",
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("--base-url only applies"), "{e}");
        let e = config(&["export", "local"], &[]).unwrap_err();
        assert!(e.0.contains("--store"), "{e}");
        let e = config(
            &[
                "export",
                "local",
                "--store",
                "sqlite:x",
                "--since",
                "2025-11-01T00:00:00Z",
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("do not apply"), "{e}");
        let e = config(&["import", "broker", "b.json", "--store", "sqlite:x"], &[]).unwrap_err();
        assert!(e.0.contains("only a local snapshot"), "{e}");
        // A bad store URL is named without its password (the argument parser never sees it fail).
        for store in [
            "postgres://desk:pw-31@h/d?sslmode=sometimes",
            "mysql://desk:pw-31@h/d",
        ] {
            let e = config(&["run", "--broker", "tastytrade", "--store", store], &[]).unwrap_err();
            assert!(e.0.contains("--store"), "{e}");
            assert!(!e.0.contains("pw-31"), "{e}");
        }
        let e = config(&["diff", "--local", "l", "--broker", "b", "-q", "-v"], &[]).unwrap_err();
        assert!(e.0.contains("cannot be used with"), "{e}");
    }

    #[test]
    fn verbosity_counts() {
        let c = config(&["demo", "-vv"], &[]).unwrap();
        assert_eq!(c.verbosity, Verbosity::Trace);
        let c = config(&["-q", "demo"], &[]).unwrap();
        assert_eq!(c.verbosity, Verbosity::Quiet);
    }
}
