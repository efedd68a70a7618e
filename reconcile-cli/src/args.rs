//! Command-line arguments, turned into validated options before anything runs.

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand};
use reconcile_core::{Policy, Scope};
use std::path::PathBuf;

/// Keeps a trading system's records in step with what the broker really holds.
#[derive(Debug, Parser)]
#[command(name = "reconcile", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log more on stderr (-v: debug, -vv: trace). `RUST_LOG` (such as
    /// `reconcile_core=debug`) overrides both this and -q.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare a local and a broker snapshot; exit 0 in sync, 1 discrepancies, 2 error.
    Diff(DiffArgs),
    /// Diff, then propose the fixes the flags allow; `--out` writes the plan as JSON.
    Plan(PlanArgs),
    /// Read the store and a broker, diff, plan and (with a fix flag) apply and verify.
    Run(RunArgs),
    /// `run` on a jittered interval, applying only the fixes switched on; a failed read skips
    /// the cycle; SIGINT/SIGTERM ends it between two actions (exit 0).
    Watch(WatchArgs),
    /// New expected prices for every target of one key by a profit percent, written as one
    /// journaled change, then the working orders replaced. A dry run unless `--apply`.
    Retarget(RetargetArgs),
    /// Apply a plan written by `plan --out` or `run --out`: re-read both sides, carry out only
    /// the actions still justified.
    Apply(ApplyArgs),
    /// Write a snapshot v1 document of one side.
    Export(ExportArgs),
    /// Load a snapshot v1 document into a store.
    Import(ImportArgs),
    /// An incident end to end against a broker simulator and an SQLite file in a temporary
    /// folder: `tastytrade` (the default) the 2025-11-07 one, `alpaca` the 2025-11-06 one.
    Demo(DemoArgs),
    /// Clear what is left of an account's run lock whose holder is gone; refuses (exit 2) while
    /// the holder is alive, naming it.
    Unlock(UnlockArgs),
    /// Serve a broker simulator until SIGINT or SIGTERM. The first line of stdout is its base
    /// URL. It accepts the credentials in the client's own environment variables, and makes up
    /// (and prints) any that are unset.
    Sim(SimArgs),
}

/// The simulators `reconcile sim` serves, and the incidents `reconcile demo` replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimBroker {
    /// TastyTrade's REST API (the 2025-11-07 incident).
    Tastytrade,
    /// Alpaca's trading API v2 (the 2025-11-06 incident).
    Alpaca,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which incident.
    #[arg(default_value = "tastytrade")]
    pub broker: SimBroker,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Which broker.
    pub broker: SimBroker,
    /// A broker snapshot v1 file to seed it with (default: the bundled incident).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Where to listen (default 127.0.0.1 on a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The account.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: String,
    /// The store: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, value_name = "STORE")]
    pub store: crate::sources::StoreUrl,
}

/// The two live sides of a run.
#[derive(Debug, Args)]
pub struct SidesArgs {
    /// The broker: `tastytrade`, `alpaca` (paper trading), `alpaca-live` (real money),
    /// `tastytrade-sim[:FILE]` or `alpaca-sim[:FILE]` (a simulator on loopback, seeded from a
    /// broker snapshot or the bundled incident) or `snapshot:FILE` (read-only).
    #[arg(long, value_name = "BROKER")]
    pub broker: crate::sources::BrokerUrl,
    /// The API host for `tastytrade` (default production; the sandbox is
    /// https://api.cert.tastyworks.com) or `alpaca` (default https://paper-api.alpaca.markets).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The store: `sqlite:PATH` (created if absent) or `postgres://USER@HOST:PORT/DB` (`?schema=`,
    /// `&sslmode=`; the password in the URL or `PGPASSWORD`).
    #[arg(long, value_name = "STORE")]
    pub store: crate::sources::StoreUrl,
    /// Only this account (repeatable).
    #[arg(long = "account", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Only this underlying (repeatable).
    #[arg(long = "underlying", value_name = "SYM")]
    pub underlyings: Vec<String>,
    /// Only this position's targets and fixes (repeatable); the others are still read.
    #[arg(long = "position", value_name = "ID")]
    pub positions: Vec<String>,
    /// How long a just-sent order may be invisible (`60s`, `2m`, `1h`, or seconds).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub grace: TimeDelta,
    /// Do not ask before destructive steps.
    #[arg(long)]
    pub yes: bool,
    /// Print report v1 (the final one) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Show every category's count, not only those that are not empty.
    #[arg(long)]
    pub all: bool,
    /// How long after an intent was written a dead run's order may still reach the broker;
    /// healing waits at most this long before it judges the order absent.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub settle: TimeDelta,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sides: SidesArgs,
    #[command(flatten)]
    pub fixes: FixArgs,
    /// Also write the plan here as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub sides: SidesArgs,
    #[command(flatten)]
    pub fixes: FixArgs,
    /// Time between cycles (`30s`, `5m`, `30m`), spread by ±10 %.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub interval: TimeDelta,
    /// Stop after this many cycles (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub max_cycles: Option<u64>,
    /// Serve the last cycle's health in the Prometheus text format on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct RetargetArgs {
    #[command(flatten)]
    pub sides: SidesArgs,
    /// The target key to retarget (`call_spread`).
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// The new profit percent: a credit position buys back at entry × (1 − P/100), a debit one
    /// sells at entry × (1 + P/100), on the instrument's tick.
    #[arg(long, value_name = "P", value_parser = parse_percent)]
    pub profit_percent: rust_decimal::Decimal,
    /// The percent the targets were set at: their basis is derived from their present price
    /// when the position's entry price is not theirs alone (one spread of a condor).
    #[arg(long, value_name = "P", value_parser = parse_percent)]
    pub from_percent: Option<rust_decimal::Decimal>,
    /// Take every target as this effect instead of reading it from its first leg.
    #[arg(long, value_name = "credit|debit", value_parser = parse_effect)]
    pub effect: Option<reconcile_core::retarget::Effect>,
    /// Write the new prices and replace the orders (default: a dry run).
    #[arg(long)]
    pub apply: bool,
    /// At most this many replacements and cancels.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_cancels: usize,
    /// At most this many placements.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_placements: usize,
}

fn parse_effect(s: &str) -> Result<reconcile_core::retarget::Effect, String> {
    s.parse().map_err(|e| format!("{e} (credit or debit)"))
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub sides: SidesArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// Our records.
    Local,
    /// What the broker holds.
    Broker,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Which side.
    pub side: Side,
    /// The store (for `local`): `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, value_name = "STORE", required_if_eq("side", "local"))]
    pub store: Option<crate::sources::StoreUrl>,
    /// The broker (for `broker`): as `run --broker` takes it.
    #[arg(long, value_name = "BROKER", required_if_eq("side", "broker"))]
    pub broker: Option<crate::sources::BrokerUrl>,
    /// The API host for `tastytrade` or `alpaca`.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Only this account (repeatable).
    #[arg(long = "account", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Only this underlying (repeatable).
    #[arg(long = "underlying", value_name = "SYM")]
    pub underlyings: Vec<String>,
    /// Order history since this instant (RFC 3339; default one day before the oldest open position).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Which side (only `local` can be imported).
    pub side: Side,
    /// The snapshot file.
    pub file: PathBuf,
    /// The store: `sqlite:PATH` (created if absent) or `postgres://USER@HOST:PORT/DB` (`?schema=`,
    /// `&sslmode=`; the password in the URL or `PGPASSWORD`).
    #[arg(long, value_name = "STORE")]
    pub store: crate::sources::StoreUrl,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Local snapshot (reconcile.local/v1).
    #[arg(long, value_name = "FILE")]
    pub local: PathBuf,
    /// Broker snapshot (reconcile.broker/v1).
    #[arg(long, value_name = "FILE")]
    pub broker: PathBuf,
    /// Only this underlying (repeatable).
    #[arg(long = "underlying", value_name = "SYM")]
    pub underlyings: Vec<String>,
    /// Only this account (repeatable).
    #[arg(long = "account", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Only this position's targets and fixes (repeatable); the others are still read.
    #[arg(long = "position", value_name = "ID")]
    pub positions: Vec<String>,
    /// How long a just-sent order may be invisible (`60s`, `2m`, `1h`, or seconds).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub grace: TimeDelta,
    /// Judge by this instant (RFC 3339) instead of the broker snapshot's `as_of`.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Print JSON (report v1, or the plan) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Show every category's count, not only those that are not empty.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub diff: DiffArgs,
    #[command(flatten)]
    pub fixes: FixArgs,
    /// Write the plan here as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The fixes a run may make, and its rails.
#[derive(Debug, Args)]
pub struct FixArgs {
    /// Clear ids of orders that are not working, mark filled targets, drop stale intents.
    #[arg(long)]
    pub clear_invalid: bool,
    /// Cancel orphaned orders.
    #[arg(long)]
    pub cancel_orphaned: bool,
    /// Place orders for missing targets.
    #[arg(long)]
    pub create_missing: bool,
    /// Create local positions for untracked holdings (with stop-loss and take-profit targets).
    #[arg(long)]
    pub backfill: bool,
    /// Link adoptable orders to their targets.
    #[arg(long)]
    pub adopt: bool,
    /// Replace drifted orders at the expected price and quantity.
    #[arg(long)]
    pub replace_drifted: bool,
    /// Promote pending positions held in full; close positions flat at the broker.
    #[arg(long)]
    pub sync_positions: bool,
    /// At most this many cancels; above it nothing destructive runs.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_cancels: usize,
    /// At most this many placements; above it nothing is placed.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_placements: usize,
    /// Plan even when the read looks broken (empty records, mostly orphaned orders).
    #[arg(long)]
    pub force: bool,
    /// A backfilled equity holding's stop, in percent below (a short's: above) its entry.
    #[arg(long, value_name = "PCT", default_value = "8", value_parser = parse_percent)]
    pub stop_loss_pct: rust_decimal::Decimal,
    /// A backfilled equity holding's take profit, in percent above (a short's: below) its entry.
    #[arg(long, value_name = "PCT", default_value = "16", value_parser = parse_percent)]
    pub take_profit_pct: rust_decimal::Decimal,
    /// Backfill option holdings too, with this stop and take profit in percent of the entry
    /// (`STOP:TARGET`, such as `50:50`). Without it they are listed for a person.
    #[arg(long, value_name = "STOP:TARGET", value_parser = parse_bracket)]
    pub options_bracket: Option<reconcile_core::BracketPolicy>,
}

/// A percentage: a decimal between 0 (exclusive) and 100 (exclusive).
pub fn parse_percent(s: &str) -> Result<rust_decimal::Decimal, String> {
    let d = reconcile_core::decimal::parse_decimal(s)
        .map_err(|_| format!("not a percentage: {s:?}"))?;
    if d > rust_decimal::Decimal::ZERO && d < rust_decimal::Decimal::ONE_HUNDRED {
        Ok(d)
    } else {
        Err(format!(
            "a percentage between 0 and 100 is needed, not {s:?}"
        ))
    }
}

/// `STOP:TARGET`, two percentages.
pub fn parse_bracket(s: &str) -> Result<reconcile_core::BracketPolicy, String> {
    let (stop, target) = s
        .split_once(':')
        .ok_or_else(|| format!("not STOP:TARGET: {s:?} (such as 50:50)"))?;
    Ok(reconcile_core::BracketPolicy {
        stop_loss_pct: parse_percent(stop)?,
        take_profit_pct: parse_percent(target)?,
    })
}

impl FixArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            adopt: self.adopt,
            clear_invalid: self.clear_invalid,
            cancel_orphaned: self.cancel_orphaned,
            create_missing: self.create_missing,
            replace_drifted: self.replace_drifted,
            backfill: self.backfill,
            sync_positions: self.sync_positions,
            max_cancels: self.max_cancels,
            max_placements: self.max_placements,
            force: self.force,
            bracket: reconcile_core::BracketPolicy {
                stop_loss_pct: self.stop_loss_pct,
                take_profit_pct: self.take_profit_pct,
            },
            options_bracket: self.options_bracket.clone(),
            ..Policy::report_only()
        }
    }
}

/// The scope the repeatable `--account` and `--underlying` flags give (none: everything).
pub fn scope(accounts: &[String], underlyings: &[String], positions: &[String]) -> Scope {
    let mut scope = Scope::all();
    for p in positions {
        scope = scope.with_position(p.as_str());
    }
    for u in underlyings {
        scope = scope.with_underlying(u.as_str());
    }
    for a in accounts {
        scope = scope.with_account(a.as_str());
    }
    scope
}

/// `60s`, `2m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<TimeDelta, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 60s, 2m or 1h)"))?;
    let d = match unit {
        "" | "s" => TimeDelta::try_seconds(n),
        "ms" => TimeDelta::try_milliseconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        _ => None,
    };
    d.ok_or_else(|| format!("not a duration: {s:?} (try 60s, 2m or 1h)"))
}

/// An RFC 3339 instant.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time: {s:?} ({e})"))
}
