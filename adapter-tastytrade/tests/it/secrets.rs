//! The refresh token, the client secret and access tokens appear in no Debug output, error or
//! log line.

use super::*;
use adapter_tastytrade::sim::{Fault, FaultRule};
use reconcile_core::Broker;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_debug_errors_or_logs() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (sim, broker) = world().await;
    let mut seen = format!("{broker:?}");
    broker.accounts().await.unwrap();
    sim.fail_next(FaultRule::on(
        "GET",
        "/positions",
        Fault::TooManyRequests { retry_after: 0 },
    ));
    broker.positions(&"5WT00001".into()).await.unwrap();
    sim.advance(chrono::TimeDelta::minutes(20));
    broker.accounts().await.unwrap();
    let bad = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SECRET),
        SecretString::from(REFRESH),
    )
    .unwrap();
    sim.fail_next(FaultRule::on("POST", "/oauth/token", Fault::ServerError));
    let e = bad.accounts().await.expect_err("the token exchange fails");
    seen.push_str(&format!("{e} {e:?}"));
    let wrong = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SECRET),
        SecretString::from("wrong-refresh"),
    )
    .unwrap();
    let e = wrong.accounts().await.unwrap_err();
    seen.push_str(&format!("{e} {e:?} {wrong:?}"));
    seen.push_str(&String::from_utf8(capture.0.lock().unwrap().clone()).unwrap());

    assert!(seen.contains("redacted"), "the Debug output was captured");
    for secret in [
        SECRET,
        REFRESH,
        "wrong-refresh",
        "sim-access-1",
        "sim-access-2",
    ] {
        assert!(!seen.contains(secret), "{secret} leaked in:\n{seen}");
    }
}
