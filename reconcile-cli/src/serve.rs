//! `reconcile sim`: a broker simulator in its own process, for users' own trading code and
//! tests, and for runs of `reconcile` that must outlive each other (a kill -9 sweep). It follows
//! the wall clock, serves until SIGINT or SIGTERM, and prints its base URL first.

use crate::CliError;
use crate::args::{SimArgs, SimBroker};
use reconcile_core::BrokerSnapshot;
use std::io::Write;
use std::process::ExitCode;

/// A credential from the environment, or a made-up one (announced on stdout).
fn credential(name: &str, made_up: &mut Vec<(String, String)>) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let v = format!(
                "sim-{}-{:08x}",
                name.to_lowercase(),
                nanos ^ std::process::id()
            );
            made_up.push((name.to_owned(), v.clone()));
            v
        }
    }
}

pub fn run(a: &SimArgs) -> Result<ExitCode, CliError> {
    let seed = match &a.seed {
        Some(path) => {
            let text = crate::read(path)?;
            BrokerSnapshot::from_json(&text).map_err(|source| CliError::Snapshot {
                path: path.clone(),
                source,
            })?
        }
        None => BrokerSnapshot::from_json(match a.broker {
            SimBroker::Tastytrade => crate::demo::BROKER,
            SimBroker::Alpaca => crate::demo::ALPACA_BROKER,
        })
        .map_err(|e| CliError::Other(e.to_string()))?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let mut made_up = Vec::new();
        let (base, server) = match a.broker {
            SimBroker::Tastytrade => {
                let secret = credential(adapter_tastytrade::ENV_CLIENT_SECRET, &mut made_up);
                let refresh = credential(adapter_tastytrade::ENV_REFRESH_TOKEN, &mut made_up);
                let sim =
                    adapter_tastytrade::sim::Sim::start_on(a.listen, seed.as_of, &secret, &refresh)
                        .await
                        .map_err(|e| {
                            CliError::Other(format!("cannot listen on {}: {e}", a.listen))
                        })?;
                sim.seed(&seed);
                sim.follow_wall_clock();
                (sim.base_url(), Box::new(sim) as Box<dyn std::any::Any>)
            }
            SimBroker::Alpaca => {
                let key = credential(adapter_alpaca::ENV_KEY_ID, &mut made_up);
                let secret = credential(adapter_alpaca::ENV_SECRET_KEY, &mut made_up);
                let sim = adapter_alpaca::sim::Sim::start_on(a.listen, seed.as_of, &key, &secret)
                    .await
                    .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", a.listen)))?;
                sim.seed(&seed);
                sim.follow_wall_clock();
                (sim.base_url(), Box::new(sim) as Box<dyn std::any::Any>)
            }
        };
        let mut out = std::io::stdout().lock();
        let mut lines = vec![base];
        lines.extend(made_up.iter().map(|(k, v)| format!("{k}={v}")));
        for l in lines {
            writeln!(out, "{l}").map_err(CliError::Stdout)?;
        }
        out.flush().map_err(CliError::Stdout)?;
        drop(out);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::Other(format!("cannot watch for SIGTERM: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        drop(server);
        Ok(ExitCode::SUCCESS)
    })
}
