//! Connecting: migrations once, refusals untouched, TLS when asked, and errors that name the
//! database and never the password.

use super::*;
use reconcile_core::LocalChange;
use reconcile_core::testkit::build::{at, position};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tables(schema: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={DATABASE}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut t: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn a_second_connect_finds_the_schema_made_and_keeps_the_data() {
    let s = Scratch::new("again").await;
    s.store
        .apply(&ChangeBatch {
            changes: vec![LocalChange::InsertPosition {
                position: position("1", "A", "QQQ"),
            }],
            audit: Vec::new(),
        })
        .await
        .unwrap();
    // Ten connects at once: the advisory lock makes one migrate and the others find it done.
    let url = s.url();
    let all = futures_join(10, || PostgresStore::connect(&url)).await;
    assert!(
        all.iter().all(Result::is_ok),
        "{:?}",
        all.iter()
            .filter_map(|r| r.as_ref().err())
            .collect::<Vec<_>>()
    );
    let again = PostgresStore::connect(&url).await.unwrap();
    let snap = again
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    assert_eq!(snap.positions.len(), 1);
}

async fn futures_join<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut out = Vec::new();
    let futs: Vec<_> = (0..n).map(|_| f()).collect();
    for x in futures_util::future::join_all(futs).await {
        out.push(x);
    }
    out
}

#[tokio::test]
async fn a_newer_schema_is_refused_untouched() {
    let s = Scratch::new("newer").await;
    admin(
        DATABASE,
        &format!(
            "UPDATE {}.meta SET value = '99' WHERE key = 'schema_version'",
            s.schema
        ),
    )
    .await;
    let before = tables(&s.schema).await;
    let err = PostgresStore::connect(&s.url())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 99, newer than this build's"), "{err}");
    assert!(
        err.contains("postgres://postgres@127.0.0.1:5432/reconcile_test"),
        "{err}"
    );
    assert_eq!(tables(&s.schema).await, before);
}

#[tokio::test]
async fn a_schema_of_someone_elses_tables_is_refused_untouched() {
    database().await;
    let schema = schema_name("foreign");
    admin(
        DATABASE,
        &format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.trading_position (id int)"),
    )
    .await;
    let err = PostgresStore::connect(&Scratch::url_of(&schema))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not reconcile's (trading_position)"), "{err}");
    assert_eq!(
        tables(&schema).await,
        ["trading_position"],
        "nothing was added"
    );
    admin(DATABASE, &format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn sslmode_require_runs_over_tls_and_disable_does_not() {
    let s = Scratch::new("tls").await;
    assert!(!s.store.encrypted().await.unwrap());
    let url = format!("{SERVER}/{DATABASE}?schema={}&sslmode=require", s.schema);
    let tls = PostgresStore::connect(&url).await.unwrap();
    assert!(
        tls.encrypted().await.unwrap(),
        "sslmode=require gives a TLS session"
    );
    // verify-full checks the server's certificate: the local server's is self-signed.
    let url = format!(
        "{SERVER}/{DATABASE}?schema={}&sslmode=verify-full",
        s.schema
    );
    let err = PostgresStore::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_and_never_the_password() {
    let err = PostgresStore::connect("postgres://desk:hunter2@127.0.0.1:1/trading")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("postgres://desk@127.0.0.1:1/trading"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let err = PostgresStore::connect(&format!("{SERVER}/no_such_database_here"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_database_here"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

/// A server that speaks just enough of PostgreSQL's protocol to ask for a password and refuse
/// it, as a server with password authentication does (the local one trusts every login).
async fn refusing_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 4];
                loop {
                    // Startup or SSL request: length, then code.
                    if sock.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
                    if sock.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    if body[..4] == 80_877_103u32.to_be_bytes() {
                        let _ = sock.write_all(b"N").await; // no TLS here
                        continue;
                    }
                    break;
                }
                // AuthenticationCleartextPassword, then whatever comes, then the refusal.
                let _ = sock.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await;
                let mut tag = [0u8; 1];
                if sock.read_exact(&mut tag).await.is_err()
                    || sock.read_exact(&mut len).await.is_err()
                {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
                let _ = sock.read_exact(&mut body).await;
                let mut fields = Vec::new();
                for (k, v) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "28P01"),
                    (b'M', "password authentication failed for user \"desk\""),
                ] {
                    fields.push(k);
                    fields.extend_from_slice(v.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut msg = vec![b'E'];
                msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                msg.extend_from_slice(&fields);
                let _ = sock.write_all(&msg).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_refusal_without_the_password() {
    let addr = refusing_server().await;
    let err = PostgresStore::connect(&format!("postgres://desk:not-the-one-7731@{addr}/trading"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(&format!("postgres://desk@{addr}/trading")),
        "{err}"
    );
    assert!(!err.contains("not-the-one-7731"), "{err}");
}

#[tokio::test]
async fn a_bad_url_is_refused_before_any_connection() {
    for (url, why) in [
        (
            "postgres://u:pw@127.0.0.1:5432/d?schema=Robert');DROP",
            "schema",
        ),
        ("postgres://u:pw@127.0.0.1:5432/d?sslmode=always", "sslmode"),
        ("http://127.0.0.1:5432/d", "not a postgres"),
    ] {
        let err = PostgresStore::connect(url).await.unwrap_err().to_string();
        assert!(err.contains(why), "{url}: {err}");
        assert!(!err.contains("pw"), "{err}");
    }
}
