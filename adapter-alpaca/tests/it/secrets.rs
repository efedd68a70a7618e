//! The key id, the secret key and an OAuth token appear in no Debug output, error or log line.

use super::*;
use adapter_alpaca::sim::{Fault, FaultRule};
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
    sim.accept_oauth_token("oauth-token-77f1");
    let mut seen = format!("{broker:?}");
    broker.accounts().await.unwrap();
    sim.fail_next(FaultRule::on(
        "GET",
        "/v2/positions",
        Fault::TooManyRequests { retry_after: 0 },
    ));
    let decorated = client(&sim).with_rate(60_000).decorated();
    decorated.positions(&acct()).await.unwrap();
    sim.fail_next(FaultRule::on("GET", "/v2/account", Fault::ServerError));
    let e = client(&sim)
        .accounts()
        .await
        .expect_err("the account read fails");
    seen.push_str(&format!("{e} {e:?}"));
    let wrong = AlpacaBroker::new(
        sim.base_url(),
        SecretString::from(KEY_ID),
        SecretString::from("wrong-secret-31"),
    )
    .unwrap();
    let e = wrong.accounts().await.unwrap_err();
    seen.push_str(&format!("{e} {e:?} {wrong:?}"));
    let oauth =
        AlpacaBroker::with_oauth(sim.base_url(), SecretString::from("oauth-token-77f1")).unwrap();
    oauth.accounts().await.unwrap();
    seen.push_str(&format!("{oauth:?}"));
    seen.push_str(&String::from_utf8(capture.0.lock().unwrap().clone()).unwrap());

    assert!(seen.contains("redacted"), "the Debug output was captured");
    for secret in [KEY_ID, SECRET_KEY, "wrong-secret-31", "oauth-token-77f1"] {
        assert!(!seen.contains(secret), "{secret} leaked in:\n{seen}");
    }
}
