//! Where the database is: a `postgres://` (or `postgresql://`) URL, completed from the standard
//! `PG*` environment variables, with reconcile's own `schema` parameter and libpq's `sslmode`
//! (TLS through rustls, never OpenSSL). Whatever names the database in a message names the host,
//! the port, the database and the user — never the password.

use std::str::FromStr;
use std::time::Duration;

/// How the connection is encrypted (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is not verified (libpq's `require`).
    Require,
    /// TLS with the certificate verified against the web's root authorities and the host name
    /// (`verify-full`; `verify-ca` is taken as this stricter mode).
    VerifyFull,
}

/// The parsed, completed connection settings.
#[derive(Clone)]
pub struct Settings {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
    pub(crate) schema: String,
    display: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.display)
            .field("schema", &self.schema)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Something to read `PG*` variables from (the process environment, or a map in tests).
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The default schema: reconcile's tables live apart from an application's.
pub const DEFAULT_SCHEMA: &str = "reconcile";

fn bad(url: &str, why: impl std::fmt::Display) -> String {
    format!("{}: {why}", redact(url))
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a postgres:// URL)".to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    // A password can also be a query parameter.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.starts_with("password=") {
                        "password=[redacted]".to_owned()
                    } else {
                        kv.to_owned()
                    }
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A valid unquoted identifier: what `schema=` may name.
fn valid_schema(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

impl Settings {
    /// Parses `url`, taking what it leaves out from `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE` and `PGSSLMODE` (then libpq's defaults: localhost, 5432, the
    /// user `postgres`, a database named like the user).
    ///
    /// # Errors
    /// A message naming the (redacted) URL and what is wrong with it.
    pub fn parse(url: &str, env: &dyn Env) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(url, "not a postgres:// or postgresql:// URL"));
        }
        // Our own parameters, and sslmode (tokio-postgres knows fewer modes than libpq).
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut sslmode = None;
        let mut passed = Vec::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| bad(url, format!("parameter {k} is not UTF-8")))?
                .into_owned();
            match k {
                "schema" => schema = v,
                "sslmode" => sslmode = Some(v),
                _ => passed.push(kv),
            }
        }
        if !valid_schema(&schema) {
            return Err(bad(
                url,
                format!("schema {schema:?} is not a plain lower-case identifier"),
            ));
        }
        // libpq takes PGPORT for a URL that names no port (tokio-postgres would take 5432): it is
        // written into the URL, after the host.
        let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host_part = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let has_port = host_part
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'));
        let authority = match env.var("PGPORT") {
            Some(p) if !has_port && !host_part.is_empty() => {
                p.parse::<u16>()
                    .map_err(|_| bad(url, format!("PGPORT {p:?} is not a port")))?;
                format!("{authority}:{p}")
            }
            _ => authority.to_owned(),
        };
        let base = format!("{scheme}://{authority}{path}");
        let rebuilt = if passed.is_empty() {
            base
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| bad(url, e))?;
        if config.get_hosts().is_empty() {
            config.host(env.var("PGHOST").as_deref().unwrap_or("localhost"));
        }
        if config.get_ports().is_empty() {
            let port = match env.var("PGPORT") {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| bad(url, format!("PGPORT {p:?} is not a port")))?,
                None => 5432,
            };
            config.port(port);
        }
        if config.get_user().is_none() {
            config.user(env.var("PGUSER").as_deref().unwrap_or("postgres"));
        }
        if config.get_password().is_none()
            && let Some(p) = env.var("PGPASSWORD")
        {
            config.password(p);
        }
        if config.get_dbname().is_none() {
            let db = env
                .var("PGDATABASE")
                .or_else(|| config.get_user().map(str::to_owned))
                .unwrap_or_else(|| "postgres".to_owned());
            config.dbname(&db);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("reconcile");
        let tls = match sslmode.or_else(|| env.var("PGSSLMODE")).as_deref() {
            None | Some("prefer" | "allow") => Tls::Prefer,
            Some("disable") => Tls::Disable,
            Some("require") => Tls::Require,
            Some("verify-ca" | "verify-full") => Tls::VerifyFull,
            Some(other) => {
                return Err(bad(
                    url,
                    format!(
                        "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                ));
            }
        };
        config.ssl_mode(match tls {
            Tls::Disable => tokio_postgres::config::SslMode::Disable,
            Tls::Prefer => tokio_postgres::config::SslMode::Prefer,
            Tls::Require | Tls::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let display = format!(
            "postgres://{}@{host}:{}/{}",
            config.get_user().unwrap_or(""),
            config.get_ports().first().copied().unwrap_or(5432),
            config.get_dbname().unwrap_or("")
        );
        Ok(Self {
            config,
            tls,
            schema,
            display,
        })
    }

    /// The database, for messages: user, host, port and name; no password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The schema reconcile's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Env for Map {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    #[test]
    fn a_url_is_completed_from_the_environment_and_never_shows_its_password() {
        let env = Map(HashMap::from([
            ("PGPASSWORD", "hunter2"),
            ("PGPORT", "6543"),
        ]));
        let s =
            Settings::parse("postgres://desk@db.internal/trading?schema=recon_1", &env).unwrap();
        assert_eq!(s.display(), "postgres://desk@db.internal:6543/trading");
        assert_eq!(s.schema(), "recon_1");
        assert_eq!(s.config.get_password(), Some(&b"hunter2"[..]));
        let s = Settings::parse(
            "postgresql://desk:s3cret@h:5432/d?sslmode=require",
            &Map(HashMap::new()),
        )
        .unwrap();
        assert_eq!(s.tls, Tls::Require);
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!s.display().contains("s3cret"));
    }

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let env = Map(HashMap::new());
        for (url, why) in [
            ("mysql://u:pw@h/d", "not a postgres"),
            ("postgres://u:pw@h/d?schema=Drop%20Table", "schema"),
            ("postgres://u:pw@h/d?sslmode=sometimes", "sslmode"),
            ("postgres://u:pw@h:notaport/d", "postgres://u@h:notaport/d"),
        ] {
            let err = Settings::parse(url, &env).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("pw"), "{err}");
        }
    }

    #[test]
    fn redaction_covers_the_userinfo_and_the_query() {
        assert_eq!(
            redact("postgres://u:pw@h:1/d?password=pw&x=1"),
            "postgres://u@h:1/d?password=[redacted]&x=1"
        );
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
