//! Commands that read a store and a broker: run, apply, export, import.

use crate::CliError;
use crate::config::{Export, Sides};
use crate::sources::{BrokerUrl, StoreUrl};
use chrono::Utc;
use reconcile_core::broker::ReadOnly;
use reconcile_core::memory::InMemoryBroker;
use reconcile_core::{
    ApplyOptions, ApplyReport, Broker, BrokerSnapshot, ChangeBatch, LocalChange, LocalSnapshot,
    Plan, Policy, Reconciler, Report, RunId, Store,
};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("cannot start the runtime: {e}")))
}

/// A broker, and the simulator behind it when there is one (kept alive for the command).
pub(crate) struct OpenBroker {
    pub(crate) broker: Arc<dyn Broker>,
    _sim: Option<Box<dyn std::any::Any>>,
}

fn read_broker_snapshot(path: &std::path::Path) -> Result<BrokerSnapshot, CliError> {
    let text = crate::read(path)?;
    BrokerSnapshot::from_json(&text).map_err(|source| CliError::Snapshot {
        path: path.to_owned(),
        source,
    })
}

/// Opens the broker a `--broker` value names (starting its simulator, if it is one), counting
/// its pages on the progress line when stderr is a terminal.
pub(crate) fn open_broker(
    url: &BrokerUrl,
    base_url: Option<&str>,
    rt: &tokio::runtime::Runtime,
) -> Result<OpenBroker, CliError> {
    let mut opened = open_broker_inner(url, base_url, rt)?;
    opened.broker = crate::progress::Counting::wrap(opened.broker);
    Ok(opened)
}

fn open_broker_inner(
    url: &BrokerUrl,
    base_url: Option<&str>,
    rt: &tokio::runtime::Runtime,
) -> Result<OpenBroker, CliError> {
    let other = |e: &dyn std::fmt::Display| CliError::Other(e.to_string());
    match url {
        BrokerUrl::Snapshot(path) => {
            // The file holds the history it was written with: all of it is served.
            let snapshot = read_broker_snapshot(path)?;
            let memory = InMemoryBroker::from_snapshot(&snapshot).with_full_history();
            Ok(OpenBroker {
                broker: Arc::new(ReadOnly::new(
                    memory,
                    format!("snapshot:{}", path.display()),
                )),
                _sim: None,
            })
        }
        BrokerUrl::Tastytrade => {
            let base = base_url.unwrap_or(adapter_tastytrade::PRODUCTION);
            let b = adapter_tastytrade::TastytradeBroker::from_env(base).map_err(|e| other(&e))?;
            Ok(OpenBroker {
                broker: Arc::new(b.decorated()),
                _sim: None,
            })
        }
        BrokerUrl::TastytradeSim(path) => {
            let snapshot = match path {
                Some(path) => read_broker_snapshot(path)?,
                None => BrokerSnapshot::from_json(crate::demo::BROKER).map_err(|e| other(&e))?,
            };
            let (secret, refresh) = ("sim-client-secret", "sim-refresh-token");
            let sim = rt
                .block_on(adapter_tastytrade::sim::Sim::start(
                    snapshot.as_of,
                    secret,
                    refresh,
                ))
                .map_err(|e| other(&e))?;
            sim.seed(&snapshot);
            let b = adapter_tastytrade::TastytradeBroker::new(
                sim.base_url(),
                secrecy::SecretString::from(secret),
                secrecy::SecretString::from(refresh),
            )
            .map_err(|e| other(&e))?
            .with_rate(200);
            Ok(OpenBroker {
                broker: Arc::new(b.decorated()),
                _sim: Some(Box::new(sim)),
            })
        }
        BrokerUrl::Alpaca | BrokerUrl::AlpacaLive => {
            let base = match (url, base_url) {
                (BrokerUrl::AlpacaLive, _) => adapter_alpaca::LIVE,
                (_, Some(b)) => b,
                _ => adapter_alpaca::PAPER,
            };
            let b = adapter_alpaca::AlpacaBroker::from_env(base).map_err(|e| other(&e))?;
            Ok(OpenBroker {
                broker: Arc::new(b.decorated()),
                _sim: None,
            })
        }
        BrokerUrl::AlpacaSim(path) => {
            let snapshot = match path {
                Some(path) => read_broker_snapshot(path)?,
                None => {
                    BrokerSnapshot::from_json(crate::demo::ALPACA_BROKER).map_err(|e| other(&e))?
                }
            };
            let (key, secret) = ("sim-key-id", "sim-secret-key");
            let sim = rt
                .block_on(adapter_alpaca::sim::Sim::start(snapshot.as_of, key, secret))
                .map_err(|e| other(&e))?;
            sim.seed(&snapshot);
            sim.set_rate_limit(None);
            let b = adapter_alpaca::AlpacaBroker::new(
                sim.base_url(),
                secrecy::SecretString::from(key),
                secrecy::SecretString::from(secret),
            )
            .map_err(|e| other(&e))?
            .with_rate(60_000);
            Ok(OpenBroker {
                broker: Arc::new(b.decorated()),
                _sim: Some(Box::new(sim)),
            })
        }
    }
}

pub(crate) fn store(
    url: &StoreUrl,
    rt: &tokio::runtime::Runtime,
) -> Result<Arc<dyn Store>, CliError> {
    rt.block_on(url.open()).map_err(other)
}

fn run_id() -> RunId {
    RunId::new(format!(
        "run-{}-{}",
        Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    ))
}

/// This machine's name, for run lock records.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Options for a real run started now, its locks held from this machine.
pub(crate) fn apply_options() -> ApplyOptions {
    let options = ApplyOptions::new(run_id(), Utc::now()).on_host(hostname());
    match crate::progress::actions() {
        Some(p) => options.with_progress(p),
        None => options,
    }
}

/// Asks before destructive steps unless `--yes`; away from a terminal the answer is no.
fn confirm(plan: &Plan, yes: bool) -> Result<bool, CliError> {
    let destructive = plan
        .actions
        .iter()
        .filter(|a| a.action.is_destructive())
        .count();
    ask(
        &format!(
            "apply {} actions, {destructive} of them destructive?",
            plan.actions.len()
        ),
        &format!("{destructive} destructive actions"),
        destructive,
        yes,
    )
}

/// Asks `question` when `destructive` steps would follow, unless `--yes`; away from a terminal
/// the answer is no, and `what` is named in the refusal.
pub(crate) fn ask(
    question: &str,
    what: &str,
    destructive: usize,
    yes: bool,
) -> Result<bool, CliError> {
    if yes || destructive == 0 {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("reconcile: {what} need --yes when not run at a terminal; nothing applied");
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Other(format!("reading the answer failed: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub(crate) fn show(
    sides: &Sides,
    before: &Report,
    plan: &Plan,
    applied: Option<&ApplyReport>,
) -> Result<ExitCode, CliError> {
    crate::progress::done();
    let last = applied.and_then(|a| a.verify.as_ref()).unwrap_or(before);
    if sides.json {
        crate::emit(&last.to_json()?)?;
    } else {
        let mut out = crate::output::plan_table(before, plan, sides.all);
        if let Some(a) = applied {
            out.push_str(&crate::output::apply_table(a));
        }
        crate::emit(&out)?;
    }
    let all_done =
        applied.is_some_and(|a| !a.results.is_empty() && a.all_done() && a.stale.is_empty());
    Ok(if last.in_sync || all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn run(sides: &Sides, policy: &Policy, out: Option<&Path>) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let (b, s) = (
        open_broker(&sides.broker, sides.base_url.as_deref(), &rt)?,
        store(&sides.store, &rt)?,
    );
    let mut rec = Reconciler::new(b.broker.as_ref(), s.as_ref())
        .with_options(sides.options.clone())
        .with_policy(policy.clone());
    rec.settle = sides.settle;
    let now = Utc::now();
    let (report, plan) = rt.block_on(rec.plan(now)).map_err(other)?;
    if let Some(out) = out {
        crate::write(out, &plan.to_json()?)?;
    }
    // With a fix on, apply even an empty plan: under the lock it heals what a dead run left.
    if !policy.any_fix() {
        return show(sides, &report, &plan, None);
    }
    confirm_and_apply(&rt, &rec, sides, &report, &plan)
}

/// Asks (unless `--yes`), applies the approved plan with a fresh run id, and shows the outcome.
fn confirm_and_apply(
    rt: &tokio::runtime::Runtime,
    rec: &Reconciler<'_>,
    sides: &Sides,
    report: &Report,
    plan: &Plan,
) -> Result<ExitCode, CliError> {
    if !confirm(plan, sides.yes)? {
        return show(sides, report, plan, None);
    }
    let applied = rt
        .block_on(rec.apply(plan, &apply_options()))
        .map_err(other)?;
    show(sides, report, plan, Some(&applied))
}

pub fn apply(plan_path: &Path, sides: &Sides) -> Result<ExitCode, CliError> {
    let text = crate::read(plan_path)?;
    let plan = Plan::from_json(&text).map_err(|source| CliError::Snapshot {
        path: plan_path.to_owned(),
        source,
    })?;
    crate::config::check_broker_fixes(&sides.broker, &plan.policy)?;
    let rt = runtime()?;
    let (b, s) = (
        open_broker(&sides.broker, sides.base_url.as_deref(), &rt)?,
        store(&sides.store, &rt)?,
    );
    let mut rec = Reconciler::new(b.broker.as_ref(), s.as_ref())
        .with_options(sides.options.clone())
        .with_policy(plan.policy.clone());
    rec.settle = sides.settle;
    let now = Utc::now();
    let report = rt.block_on(rec.diff(now)).map_err(other)?;
    confirm_and_apply(&rt, &rec, sides, &report, &plan)
}

pub fn export(e: Export) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let now = Utc::now();
    let (text, out) = match e {
        Export::Local {
            store: url,
            scope,
            out,
        } => {
            let s = store(&url, &rt)?;
            (
                rt.block_on(s.load(&scope, now)).map_err(other)?.to_json()?,
                out,
            )
        }
        Export::Broker {
            broker: url,
            base_url,
            accounts,
            scope,
            since,
            out,
        } => {
            let opened = open_broker(&url, base_url.as_deref(), &rt)?;
            let b = &opened.broker;
            let accounts = if accounts.is_empty() {
                rt.block_on(b.accounts()).map_err(other)?
            } else {
                accounts.iter().map(|x| x.as_str().into()).collect()
            };
            let since = since.unwrap_or(now - chrono::TimeDelta::days(7));
            let mut snap = rt
                .block_on(reconcile_core::read_broker(
                    b.as_ref(),
                    &accounts,
                    since,
                    now,
                ))
                .map_err(other)?;
            snap.orders
                .retain(|o| scope.includes(&o.account, &o.underlying));
            if let Some(ps) = &mut snap.positions {
                ps.retain(|p| scope.includes(&p.account, p.underlying()));
            }
            (snap.to_json()?, out)
        }
    };
    match &out {
        Some(path) => crate::write(path, &text)?,
        None => crate::emit(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import(file: &Path, url: &StoreUrl) -> Result<ExitCode, CliError> {
    let text = crate::read(file)?;
    let snap = LocalSnapshot::from_json(&text).map_err(|source| CliError::Snapshot {
        path: file.to_owned(),
        source,
    })?;
    let rt = runtime()?;
    let s = store(url, &rt)?;
    let existing = rt
        .block_on(s.load(&reconcile_core::Scope::all(), snap.as_of))
        .map_err(other)?;
    let known: std::collections::BTreeSet<_> =
        existing.positions.iter().map(|p| p.id.clone()).collect();
    let kept = snap
        .positions
        .iter()
        .filter(|p| known.contains(&p.id))
        .count();
    let mut changes: Vec<LocalChange> = snap
        .positions
        .iter()
        .map(|p| LocalChange::InsertPosition {
            position: p.clone(),
        })
        .collect();
    changes.extend(
        snap.intents
            .iter()
            .map(|i| LocalChange::PutIntent { intent: i.clone() }),
    );
    rt.block_on(s.apply(&ChangeBatch {
        changes,
        audit: Vec::new(),
    }))
    .map_err(other)?;
    eprintln!(
        "imported {} positions and {} intents from {}{}",
        snap.positions.len() - kept,
        snap.intents.len(),
        file.display(),
        if kept > 0 {
            format!(" ({kept} already present were kept as they were)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn unlock(account: &str, url: &StoreUrl) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let s = store(url, &rt)?;
    match rt.block_on(s.unlock(&account.into())).map_err(other)? {
        reconcile_core::Unlock::NotLocked => {
            eprintln!("account {account} is not locked");
            Ok(ExitCode::SUCCESS)
        }
        reconcile_core::Unlock::Cleared(l) => {
            eprintln!(
                "account {account}: cleared the lock record of {}, which is gone",
                l.holder
            );
            Ok(ExitCode::SUCCESS)
        }
        reconcile_core::Unlock::HeldByLiveHolder(l) => Err(CliError::Other(format!(
            "account {account} is held by {}, which is alive: not unlocked",
            l.holder
        ))),
    }
}
