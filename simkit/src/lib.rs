//! `simkit`: what the broker simulators share. [`Kit`] sits in front of a simulator's axum
//! router: it logs every request, and consumes a queue of scripted faults before the normal
//! handler runs (429s, 5xx, answers lost after the work was done, malformed bodies, dropped
//! connections). [`serve`] binds it to loopback.
//!
//! Each simulator keeps its own wire format; the kit asks it for the bodies of the errors it
//! injects, so they are spelled as that broker spells them.
//!
//! A simulator in another process takes faults over HTTP: `POST /__sim/faults` with
//! `{"method": "POST", "path_contains": "/orders", "after": 3, "fault": "delay", "seconds": 30}`
//! (`fault` is one of `too_many_requests`, `server_error`, `delay`, `malformed`,
//! `drop_connection`; `after` lets that many matching requests through first).

pub mod sdk;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a scripted fault does to the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with a `Retry-After` of this many seconds; the request does nothing.
    TooManyRequests {
        /// Seconds.
        retry_after: u64,
    },
    /// 500 in the broker's error format; the request does nothing.
    ServerError,
    /// Do the work, then wait this long before answering (longer than the client's timeout:
    /// the broker acted, the answer is lost).
    Delay(Duration),
    /// 200 with a body that is not JSON; the request does nothing.
    Malformed,
    /// Do the work; then the headers go out and the connection drops before the body.
    DropConnection,
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only this method (`GET`, `POST`, …), if set.
    pub method: Option<String>,
    /// Only paths containing this, if set.
    pub path_contains: Option<String>,
    /// How many matching requests pass untouched before the fault strikes.
    pub after: usize,
    /// What happens.
    pub fault: Fault,
}

impl FaultRule {
    /// A fault on the next request whose method and path match.
    pub fn on(method: &str, path_contains: &str, fault: Fault) -> Self {
        Self {
            method: Some(method.to_owned()),
            path_contains: Some(path_contains.to_owned()),
            after: 0,
            fault,
        }
    }

    /// Lets `n` matching requests through before striking.
    #[must_use]
    pub fn after(mut self, n: usize) -> Self {
        self.after = n;
        self
    }

    /// A rule from the admin endpoint's JSON.
    fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let fault = match s("fault").as_deref() {
            Some("too_many_requests") => Fault::TooManyRequests {
                retry_after: n("seconds"),
            },
            Some("server_error") => Fault::ServerError,
            Some("delay") => Fault::Delay(Duration::from_secs(n("seconds"))),
            Some("malformed") => Fault::Malformed,
            Some("drop_connection") => Fault::DropConnection,
            other => return Err(format!("unknown fault {other:?}")),
        };
        Ok(Self {
            method: s("method"),
            path_contains: s("path_contains"),
            after: usize::try_from(n("after")).unwrap_or(usize::MAX),
            fault,
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Every header, as sent (secrets included: the log never leaves the test process).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl LoggedRequest {
    /// Whether it carried a bearer token.
    pub fn bearer(&self) -> bool {
        self.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))
    }

    /// Its `User-Agent`, if sent.
    pub fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }

    /// The value of a header, if sent (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a broker spells the errors the kit injects.
pub trait ErrorBodies: Send + Sync + 'static {
    /// The body of a 429.
    fn too_many_requests(&self) -> String;
    /// The body of a 500.
    fn server_error(&self) -> String;
}

/// The fault queue and the request log of one simulator.
pub struct Kit {
    faults: Mutex<VecDeque<FaultRule>>,
    log: Mutex<Vec<LoggedRequest>>,
    bodies: Box<dyn ErrorBodies>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A body that fails on its first frame: hyper then closes the connection mid-answer.
struct Dropped;

impl http_body::Body for Dropped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("connection dropped"))))
    }
}

fn plain(status: StatusCode, headers: &[(&str, String)], body: String) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header("Content-Type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    r.body(Body::from(body)).unwrap_or_default()
}

impl Kit {
    /// An empty kit whose injected errors are spelled by `bodies`.
    pub fn new(bodies: impl ErrorBodies) -> Arc<Self> {
        Arc::new(Self {
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            bodies: Box::new(bodies),
        })
    }

    /// Queues a fault for the next matching request.
    pub fn fail_next(&self, rule: FaultRule) {
        lock(&self.faults).push_back(rule);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).clone()
    }

    /// The middleware: log, then fault or pass on. Use with `axum::middleware::from_fn`.
    pub async fn handle(self: Arc<Self>, req: Request, next: Next) -> Response {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let headers = header_list(req.headers());
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        if path == "/__sim/faults" && method == "POST" {
            let rule = serde_json::from_slice(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|v| FaultRule::from_json(&v));
            return match rule {
                Ok(rule) => {
                    self.fail_next(rule);
                    plain(StatusCode::CREATED, &[], "{}".to_owned())
                }
                Err(e) => plain(
                    StatusCode::BAD_REQUEST,
                    &[],
                    serde_json::json!({ "error": e }).to_string(),
                ),
            };
        }
        let fault = {
            lock(&self.log).push(LoggedRequest {
                method: method.clone(),
                path: path.clone(),
                query,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            let mut faults = lock(&self.faults);
            let i = faults.iter().position(|r| r.matches(&method, &path));
            match i {
                Some(i) if faults[i].after > 0 => {
                    faults[i].after -= 1;
                    None
                }
                Some(i) => faults.remove(i).map(|r| r.fault),
                None => None,
            }
        };
        let req = Request::from_parts(parts, Body::from(bytes));
        match fault {
            None => next.run(req).await,
            Some(Fault::TooManyRequests { retry_after }) => plain(
                StatusCode::TOO_MANY_REQUESTS,
                &[("Retry-After", retry_after.to_string())],
                self.bodies.too_many_requests(),
            ),
            Some(Fault::ServerError) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &[],
                self.bodies.server_error(),
            ),
            Some(Fault::Malformed) => {
                plain(StatusCode::OK, &[], "{\"data\": {\"items\": [".to_owned())
            }
            Some(Fault::Delay(d)) => {
                // The work is done now; only the answer is late (and may never arrive).
                let response = next.run(req).await;
                tokio::time::sleep(d).await;
                response
            }
            Some(Fault::DropConnection) => {
                let _ = next.run(req).await;
                Response::builder()
                    .status(StatusCode::OK)
                    .header("Content-Length", "4096")
                    .body(Body::new(Dropped))
                    .unwrap_or_default()
            }
        }
    }
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A running server. Dropping it stops the server.
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (it does not, unless its task is aborted or fails).
    pub async fn wait(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` behind `kit` on `listen` (`127.0.0.1:0` for any free port).
///
/// # Errors
/// An I/O error if the address cannot be bound.
pub async fn serve(
    router: axum::Router,
    kit: Arc<Kit>,
    listen: SocketAddr,
) -> std::io::Result<Server> {
    let app = router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let kit = kit.clone();
            async move { kit.handle(req, next).await }
        },
    ));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "simulator stopped");
        }
    });
    Ok(Server { addr, task })
}
