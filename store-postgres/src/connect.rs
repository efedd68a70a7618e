//! Opening a session: plain TCP or rustls (ring), the connection driven by a task of its own.

use crate::settings::{Settings, Tls};
use reconcile_core::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::Client;

/// libpq's `require` and `prefer`: the channel is encrypted, the certificate not checked (its
/// signatures on the handshake still are).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What went wrong, as a person reads it: the server's own message and SQLSTATE for a database
/// error, the cause chain for the rest (tokio-postgres prints only "db error" by itself).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(crate) fn backend(settings: &Settings, what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: "postgres".to_owned(),
        message: format!(
            "{} (schema {}): {what}: {e}",
            settings.display(),
            settings.schema()
        ),
    }
}

fn tls_config(verify: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth()
    })
}

/// Drives a session's connection until it ends.
fn drive<S, T>(conn: tokio_postgres::Connection<S, T>)
where
    tokio_postgres::Connection<S, T>:
        std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
}

/// A new session to the database of `settings` (TLS as its `sslmode` asks), its connection
/// driven by a task spawned on the current runtime: for stores over an application's own
/// tables.
///
/// # Errors
/// [`StoreError::Backend`] naming the database (never the password).
pub async fn session(settings: &Settings) -> Result<Client, StoreError> {
    let fail = |e: &dyn std::fmt::Display| backend(settings, "cannot connect", e);
    let pg = |e: tokio_postgres::Error| backend(settings, "cannot connect", &describe(&e));
    match settings.tls {
        Tls::Disable => {
            let (client, conn) = settings
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(pg)?;
            drive(conn);
            Ok(client)
        }
        tls => {
            let config = tls_config(tls == Tls::VerifyFull).map_err(|e| fail(&e))?;
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
            let (client, conn) = settings.config.connect(connector).await.map_err(pg)?;
            drive(conn);
            Ok(client)
        }
    }
}
