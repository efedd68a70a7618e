//! Diff two snapshot files and print report v1: the library without the CLI.
//!
//! `cargo run -p reconcile-examples --example diff_files -- LOCAL.json BROKER.json`

use reconcile_core::{BrokerSnapshot, DiffOptions, LocalSnapshot, diff};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(local), Some(broker)) = (args.next(), args.next()) else {
        eprintln!("usage: diff_files LOCAL.json BROKER.json");
        return ExitCode::from(2);
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let result = (|| -> Result<bool, String> {
        let local =
            LocalSnapshot::from_json(&read(&local)?).map_err(|e| format!("{local}: {e}"))?;
        let broker =
            BrokerSnapshot::from_json(&read(&broker)?).map_err(|e| format!("{broker}: {e}"))?;
        let report = diff(&local, &broker, &DiffOptions::default()).map_err(|e| e.to_string())?;
        print!("{}", report.to_json().map_err(|e| e.to_string())?);
        Ok(report.in_sync)
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
