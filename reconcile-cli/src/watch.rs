//! `reconcile watch`: the seed's "every 30 minutes" task. Each cycle is a `run` — read, diff,
//! plan, apply the fixes switched on, verify — on a jittered interval. A failed read (or a
//! refused lock) skips the cycle, and repeated failures back off, doubling up to eight
//! intervals, until a cycle succeeds again; the store is reopened after a failure, so a database
//! that went away is found again when it returns. SIGINT or SIGTERM ends it between two actions:
//! the action in progress finishes and is recorded, the lock is released, exit 0.

use crate::CliError;
use crate::config::Sides;
use chrono::{TimeDelta, Utc};
use reconcile_core::{Policy, Reconciler, Report, StopFlag, Store};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `watch` was asked to do.
#[derive(Debug)]
pub struct Watch {
    pub sides: Sides,
    pub policy: Policy,
    pub interval: TimeDelta,
    pub max_cycles: Option<u64>,
    pub metrics: Option<SocketAddr>,
}

/// The last cycle, for the health view.
#[derive(Debug, Default, Clone)]
struct Health {
    cycles_ok: u64,
    cycles_failed: u64,
    last_at: Option<chrono::DateTime<Utc>>,
    last_ok: bool,
    last_duration: f64,
    last_report: Option<Report>,
    last_actions: (usize, usize),
    consecutive_failures: u32,
}

impl Health {
    /// The Prometheus text exposition format (version 0.0.4).
    fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in lines {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "reconcile_cycles_total",
            "counter",
            "Watch cycles, by outcome.",
            vec![
                ("{outcome=\"ok\"}".into(), self.cycles_ok.to_string()),
                (
                    "{outcome=\"failed\"}".into(),
                    self.cycles_failed.to_string(),
                ),
            ],
        );
        metric(
            "reconcile_last_cycle_timestamp_seconds",
            "gauge",
            "When the last cycle ended (Unix time).",
            vec![(
                String::new(),
                self.last_at.map_or(0, |t| t.timestamp()).to_string(),
            )],
        );
        metric(
            "reconcile_last_cycle_success",
            "gauge",
            "1 if the last cycle read both sides (and applied what it could), 0 if it failed.",
            vec![(String::new(), u8::from(self.last_ok).to_string())],
        );
        metric(
            "reconcile_last_cycle_duration_seconds",
            "gauge",
            "How long the last cycle took.",
            vec![(String::new(), format!("{:.3}", self.last_duration))],
        );
        metric(
            "reconcile_consecutive_failures",
            "gauge",
            "Cycles failed in a row (0 after a good one).",
            vec![(String::new(), self.consecutive_failures.to_string())],
        );
        if let Some(r) = &self.last_report {
            metric(
                "reconcile_in_sync",
                "gauge",
                "1 if the last good cycle ended in sync.",
                vec![(String::new(), u8::from(r.in_sync).to_string())],
            );
            metric(
                "reconcile_category",
                "gauge",
                "Entries per report category after the last good cycle.",
                r.counts()
                    .iter()
                    .map(|(k, n)| (format!("{{category=\"{k}\"}}"), n.to_string()))
                    .collect(),
            );
            metric(
                "reconcile_last_cycle_actions",
                "gauge",
                "Actions of the last good cycle's plan: done, and planned.",
                vec![
                    ("{state=\"done\"}".into(), self.last_actions.0.to_string()),
                    (
                        "{state=\"planned\"}".into(),
                        self.last_actions.1.to_string(),
                    ),
                ],
            );
        }
        out
    }
}

/// Serves the health view on `addr`: any request gets the metrics.
async fn serve_metrics(
    addr: SocketAddr,
    health: Arc<Mutex<Health>>,
) -> Result<SocketAddr, CliError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Other(format!("cannot listen on {addr} for metrics: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Other(format!("metrics listener: {e}")))?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let health = health.clone();
            tokio::spawn(async move {
                // The whole request head is read before answering: a client whose request
                // arrives in pieces must not find the connection closed under it.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = health
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .prometheus();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}

/// The wait before the next cycle: the interval, doubled per failure in a row up to eight
/// intervals, then spread by ±10 % so that several watchers do not beat in step.
fn next_wait(interval: Duration, failures: u32, seed: u64) -> Duration {
    let factor = 1u32 << failures.min(3);
    let base = interval.saturating_mul(factor);
    // A cheap spread from the clock and the pid; no crate for one random number.
    let r = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let spread = u32::try_from((r >> 33) % 2001).unwrap_or(1000); // 0..=2000: -10 % .. +10 %
    base.saturating_mul(9_000 + spread) / 10_000
}

/// A line on stderr for the operator; a closed stderr must not end a watcher.
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn counts_line(r: &Report) -> String {
    let nonzero: Vec<String> = r
        .counts()
        .iter()
        .filter(|(k, n)| *n > 0 && *k != "matched")
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let mut s = format!(
        "{} (matched {}",
        if r.in_sync { "in sync" } else { "out of sync" },
        r.summary.matched
    );
    for n in nonzero {
        s.push_str(", ");
        s.push_str(&n);
    }
    s.push(')');
    s
}

pub fn run(w: &Watch) -> Result<ExitCode, CliError> {
    let rt = crate::live::runtime()?;
    let opened = crate::live::open_broker(&w.sides.broker, w.sides.base_url.as_deref(), &rt)?;
    let stop = StopFlag::new();
    let health = Arc::new(Mutex::new(Health::default()));
    rt.block_on(async {
        let notify = Arc::new(tokio::sync::Notify::new());
        {
            let (stop, notify) = (stop.clone(), notify.clone());
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| CliError::Other(format!("cannot watch for SIGTERM: {e}")))?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                stop.set();
                notify.notify_waiters();
            });
        }
        if let Some(addr) = w.metrics {
            let bound = serve_metrics(addr, health.clone()).await?;
            note(&format!(
                "reconcile watch: metrics on http://{bound}/metrics"
            ));
        }
        let interval = w.interval.to_std().unwrap_or(Duration::from_secs(1800));
        let mut store: Option<Arc<dyn Store>> = None;
        let mut cycle = 0u64;
        loop {
            cycle += 1;
            let started = Instant::now();
            let now = Utc::now();
            let outcome = one_cycle(w, opened.broker.as_ref(), &mut store, &stop, now).await;
            let took = started.elapsed();
            let failures = {
                let mut h = health
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                h.last_at = Some(Utc::now());
                h.last_duration = took.as_secs_f64();
                match &outcome {
                    Ok((report, done, planned)) => {
                        h.cycles_ok += 1;
                        h.last_ok = true;
                        h.consecutive_failures = 0;
                        h.last_report = Some(report.clone());
                        h.last_actions = (*done, *planned);
                    }
                    Err(_) => {
                        h.cycles_failed += 1;
                        h.last_ok = false;
                        h.consecutive_failures += 1;
                    }
                }
                h.consecutive_failures
            };
            let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let line = match &outcome {
                Ok((report, done, planned)) if w.sides.json => {
                    serde_json::to_string(report).map_err(|e| CliError::Other(e.to_string()))?
                }
                Ok((report, done, planned)) => format!(
                    "{stamp} cycle {cycle}: {}; actions {done}/{planned}; {:.2}s",
                    counts_line(report),
                    took.as_secs_f64()
                ),
                Err(e) if w.sides.json => serde_json::json!({
                    "at": stamp, "cycle": cycle, "error": e.to_string()
                })
                .to_string(),
                Err(e) => format!(
                    "{stamp} cycle {cycle}: skipped: {e}; {:.2}s",
                    took.as_secs_f64()
                ),
            };
            crate::progress::done();
            crate::emit(&format!("{line}\n"))?;
            if stop.is_set() || w.max_cycles.is_some_and(|m| cycle >= m) {
                break;
            }
            let seed = u64::from(std::process::id())
                ^ u64::from(Utc::now().timestamp_subsec_nanos())
                ^ cycle;
            let wait = next_wait(interval, failures, seed);
            if failures > 0 {
                note(&format!(
                    "reconcile watch: {failures} failed cycle(s) in a row; next in {:.1}s",
                    wait.as_secs_f64()
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = notify.notified() => {}
            }
            if stop.is_set() {
                break;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One cycle: the final report, the actions done and planned; an error skips the cycle.
async fn one_cycle(
    w: &Watch,
    broker: &dyn reconcile_core::Broker,
    store: &mut Option<Arc<dyn Store>>,
    stop: &StopFlag,
    now: chrono::DateTime<Utc>,
) -> Result<(Report, usize, usize), String> {
    if store.is_none() {
        *store = Some(w.sides.store.open().await.map_err(|e| e.to_string())?);
    }
    let Some(s) = store.as_ref() else {
        return Err("no store".to_owned());
    };
    let mut rec = Reconciler::new(broker, s.as_ref())
        .with_options(w.sides.options.clone())
        .with_policy(w.policy.clone());
    rec.settle = w.sides.settle;
    let result = async {
        let (report, plan) = rec.plan(now).await.map_err(|e| e.to_string())?;
        if !w.policy.any_fix() {
            return Ok((report, 0, plan.actions.len()));
        }
        let options = crate::live::apply_options().stopped_by(stop.clone());
        let applied = rec
            .apply(&plan, &options)
            .await
            .map_err(|e| e.to_string())?;
        let done = applied
            .results
            .iter()
            .filter(|r| r.outcome.is_done())
            .count();
        let last = applied.verify.clone().unwrap_or(report);
        Ok((last, done, plan.actions.len()))
    }
    .await;
    if result.is_err() {
        // The store may be what failed (a database that went away): open it afresh next time.
        *store = None;
    }
    result
}
