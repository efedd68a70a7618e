//! The live path at scale against the TastyTrade simulator over loopback HTTP, with the client
//! composed as production composes it (paced to 20 requests a second in bursts of 20, retries):
//! a dry run over 20,000 working orders, then an apply of 1,000 placements. For each: the time,
//! the HTTP requests, and the share of the allowed request rate they used.
//! `cargo run --release -p reconcile-benches --example tastytrade_scale`.

use adapter_tastytrade::TastytradeBroker;
use adapter_tastytrade::sim::Sim;
use reconcile_benches::{sqlite_store_with, workload};
use reconcile_core::{
    ApplyOptions, BrokerSnapshot, DiffOptions, LocalSnapshot, Policy, Reconciler, Scope,
    TargetStatus,
};
use secrecy::SecretString;
use std::time::{Duration, Instant};

const RATE: u32 = 20;

/// `requests` as a percentage of what the pace allows in `took`: a full burst, then `RATE` a
/// second.
fn share(requests: u64, took: Duration) -> u128 {
    let allowed_in_ms = u128::from(RATE) * 1000 + u128::from(RATE) * took.as_millis();
    u128::from(requests) * 100 * 1000 / allowed_in_ms
}

fn one_account(local: &mut LocalSnapshot, broker: &mut BrokerSnapshot) {
    for p in &mut local.positions {
        p.account = "5WT00001".into();
    }
    for o in &mut broker.orders {
        o.account = "5WT00001".into();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("reconcile-tt-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let scope = DiffOptions {
        scope: Scope::all().with_account("5WT00001"),
        ..DiffOptions::default()
    };
    let client = |sim: &Sim| {
        TastytradeBroker::new(
            sim.base_url(),
            SecretString::from("s"),
            SecretString::from("r"),
        )
        .expect("client")
        .with_rate(RATE)
    };

    // A dry run: 20,000 working orders (and the targets that reference most of them).
    let (mut local, mut broker) = workload(20_620);
    one_account(&mut local, &mut broker);
    let working = broker
        .orders
        .iter()
        .filter(|o| o.status.is_working())
        .count();
    let store = sqlite_store_with(&dir.join("dry.sqlite"), local.positions.iter().cloned());
    let sim = rt
        .block_on(Sim::start(broker.as_of, "s", "r"))
        .expect("sim");
    sim.seed(&broker);
    let decorated = client(&sim).decorated();
    let start = Instant::now();
    let report = rt
        .block_on(
            Reconciler::new(&decorated, &store)
                .with_options(scope.clone())
                .diff(broker.as_of),
        )
        .expect("dry run");
    let took = start.elapsed();
    let requests = decorated.inner().inner().request_count();
    println!(
        "dry run: {} positions, {working} working orders: {took:.2?}, {requests} requests, {}% of the allowed rate ({} matched)",
        local.positions.len(),
        share(requests, took),
        report.summary.matched
    );
    drop(sim);

    // An apply: 1,000 targets with no order, each placed.
    let (mut local, mut broker) = workload(1_000);
    one_account(&mut local, &mut broker);
    for t in local
        .positions
        .iter_mut()
        .flat_map(|p| p.targets.iter_mut())
    {
        t.status = TargetStatus::Unplaced;
        t.order_id = None;
    }
    broker.orders.clear();
    // What the account holds: each position's legs.
    broker.positions = Some(
        local
            .positions
            .iter()
            .flat_map(|p| {
                p.legs.iter().map(|l| reconcile_core::BrokerPosition {
                    account: p.account.clone(),
                    symbol: l.symbol.clone(),
                    underlying: Some(p.underlying.clone()),
                    quantity: l.quantity,
                    average_price: None,
                })
            })
            .collect(),
    );
    let store = sqlite_store_with(&dir.join("apply.sqlite"), local.positions.iter().cloned());
    let sim = rt
        .block_on(Sim::start(broker.as_of, "s", "r"))
        .expect("sim");
    sim.seed(&broker);
    let decorated = client(&sim).decorated();
    let policy = Policy {
        create_missing: true,
        max_placements: 1_000,
        ..Policy::default()
    };
    let rec = Reconciler::new(&decorated, &store)
        .with_options(scope)
        .with_policy(policy);
    let (_, plan) = rt.block_on(rec.plan(broker.as_of)).expect("plan");
    let planned = plan.actions.len();
    let before = decorated.inner().inner().request_count();
    let start = Instant::now();
    let applied = rt
        .block_on(rec.apply(&plan, &ApplyOptions::new("scale", broker.as_of)))
        .expect("apply");
    let took = start.elapsed();
    let requests = decorated.inner().inner().request_count() - before;
    println!(
        "apply: {planned} placements planned, {} carried out: {took:.2?}, {requests} requests, {}% of the allowed rate; in sync after: {:?}",
        applied.count(reconcile_core::Outcome::Applied),
        share(requests, took),
        applied.verify.as_ref().map(|v| v.in_sync)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
