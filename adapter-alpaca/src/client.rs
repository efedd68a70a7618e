//! `AlpacaBroker`: the HTTP client for the trading API v2. Each trait call is one request (the
//! account lookup that stamps orders and positions, a refused cancel's check, and a duplicate
//! client order id's lookup aside); 429 answers become `RateLimited`, 5xx and dropped
//! connections `Transport`. Pacing and retries are policy, composed around the client by
//! [`AlpacaBroker::decorated`]: `Retrying` never re-sends a placement or a replacement.

use crate::{mapping, wire};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use governor::Quota;
use reconcile_core::broker::{Paced, Retrying};
use reconcile_core::{
    AccountId, Broker, BrokerError, BrokerPosition, CancelOutcome, ClientOrderId, OcoOrders, Order,
    OrderId, Page, PageToken, PlaceOrder, ReplaceOrder,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The paper-trading API (the default).
pub const PAPER: &str = "https://paper-api.alpaca.markets";
/// The live API: real money, only when asked for.
pub const LIVE: &str = "https://api.alpaca.markets";
/// Environment variable holding the API key id.
pub const ENV_KEY_ID: &str = "APCA_API_KEY_ID";
/// Environment variable holding the API secret key.
pub const ENV_SECRET_KEY: &str = "APCA_API_SECRET_KEY";
/// The largest page the order list serves.
pub const PAGE_SIZE: usize = 500;
/// Client order ids are kept to this length (the older documented limit; the newer is 128).
pub const MAX_CLIENT_ORDER_ID: usize = 48;

const NAME: &str = "alpaca";

/// Why a broker could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required environment variable is missing.
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// How requests authenticate.
enum Credentials {
    /// `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`.
    Keys {
        id: SecretString,
        secret: SecretString,
    },
    /// `Authorization: Bearer` (Connect apps).
    OAuth(SecretString),
}

/// The Alpaca [`Broker`], undecorated: see [`AlpacaBroker::decorated`].
pub struct AlpacaBroker {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    account: Mutex<Option<AccountId>>,
    requests: AtomicU64,
    per_minute: NonZeroU32,
}

/// The Alpaca client as production code uses it: paced, with idempotent calls retried.
pub type DecoratedAlpaca = Retrying<Paced<AlpacaBroker>>;

impl std::fmt::Debug for AlpacaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpacaBroker")
            .field("base", &self.base)
            .field("credentials", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn protocol(endpoint: &str, message: impl Into<String>) -> BrokerError {
    BrokerError::Protocol {
        broker: NAME.to_owned(),
        endpoint: endpoint.to_owned(),
        message: message.into(),
    }
}

/// A time as Alpaca's order list wants it: UTC, `Z`, microseconds.
fn query_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Everything but RFC 3986's unreserved characters is escaped in a query value or a path.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Whether `id` has the shape of an Alpaca order id (a UUID). Any other id names no Alpaca
/// order, for certain: it is not sent (Alpaca answers 422, "order_id is missing").
fn is_order_id(id: &OrderId) -> bool {
    let parts: Vec<&str> = id.as_str().split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .user_agent(format!("reconcile/{}", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .build()
        .map_err(|e| BuildError::Http(e.to_string()))
}

impl AlpacaBroker {
    fn build(base: impl Into<String>, credentials: Credentials) -> Result<Self, BuildError> {
        // The ring provider, installed once per process; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = http_client(Duration::from_secs(10))?;
        Ok(Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            credentials,
            account: Mutex::new(None),
            requests: AtomicU64::new(0),
            per_minute: NonZeroU32::new(190).unwrap_or(NonZeroU32::MIN),
        })
    }

    /// A broker for `base` ([`PAPER`], [`LIVE`], a proxy or the simulator) with API keys.
    ///
    /// # Errors
    /// [`BuildError::Http`] if the TLS stack cannot be set up.
    pub fn new(
        base: impl Into<String>,
        key_id: SecretString,
        secret_key: SecretString,
    ) -> Result<Self, BuildError> {
        Self::build(
            base,
            Credentials::Keys {
                id: key_id,
                secret: secret_key,
            },
        )
    }

    /// A broker for `base` with an OAuth access token (Connect apps).
    ///
    /// # Errors
    /// [`BuildError::Http`] if the TLS stack cannot be set up.
    pub fn with_oauth(base: impl Into<String>, token: SecretString) -> Result<Self, BuildError> {
        Self::build(base, Credentials::OAuth(token))
    }

    /// A broker with keys from `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`.
    ///
    /// # Errors
    /// [`BuildError::MissingEnv`] naming the missing variable.
    pub fn from_env(base: impl Into<String>) -> Result<Self, BuildError> {
        let get = |k: &'static str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or(BuildError::MissingEnv(k))
        };
        Self::new(base, get(ENV_KEY_ID)?, get(ENV_SECRET_KEY)?)
    }

    /// Sets the pace [`AlpacaBroker::decorated`] keeps (default 190 a minute: paid plans allow
    /// up to 1,000).
    #[must_use]
    pub fn with_rate(mut self, per_minute: u32) -> Self {
        self.per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Sets the request timeout (default 10 s).
    ///
    /// # Errors
    /// [`BuildError::Http`] if the client cannot be rebuilt.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, BuildError> {
        self.http = http_client(timeout)?;
        Ok(self)
    }

    /// The client composed as production code uses it: its rate (190 requests a minute by
    /// default) in bursts of at most 10, so that no rolling minute ever holds more than the
    /// rate plus 10 (the documented 200), and its idempotent calls retried on 429, 5xx and lost
    /// connections.
    pub fn decorated(self) -> DecoratedAlpaca {
        let quota = Quota::per_minute(self.per_minute)
            .allow_burst(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
        Retrying::new(Paced::new(self, quota))
    }

    /// How many HTTP requests this broker has sent.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn transport(endpoint: &str, e: &reqwest::Error) -> BrokerError {
        BrokerError::Transport {
            broker: NAME.to_owned(),
            endpoint: endpoint.to_owned(),
            message: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                e.to_string()
            },
        }
    }

    /// One request; 429 is `RateLimited` (waiting as `Retry-After` or `X-Ratelimit-Reset`
    /// says), 5xx is `Transport`. Returns the status and the body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, String), BrokerError> {
        let endpoint = path.split('?').next().unwrap_or(path).to_owned();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        req = match &self.credentials {
            Credentials::Keys { id, secret } => req
                .header("APCA-API-KEY-ID", id.expose_secret())
                .header("APCA-API-SECRET-KEY", secret.expose_secret()),
            Credentials::OAuth(t) => {
                req.header("Authorization", format!("Bearer {}", t.expose_secret()))
            }
        };
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Self::transport(&endpoint, &e))?;
        let status = resp.status();
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let retry_after = header("Retry-After")
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
            .or_else(|| {
                let reset = header("X-Ratelimit-Reset")?;
                let wait = reset - Utc::now().timestamp();
                Some(Duration::from_secs(u64::try_from(wait.max(1)).unwrap_or(1)))
            });
        let text = resp
            .text()
            .await
            .map_err(|e| Self::transport(&endpoint, &e))?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(BrokerError::RateLimited {
                broker: NAME.to_owned(),
                retry_after,
            });
        }
        if status.is_server_error() {
            let err: wire::ErrorBody = serde_json::from_str(&text).unwrap_or_default();
            return Err(BrokerError::Transport {
                broker: NAME.to_owned(),
                endpoint,
                message: format!("{status} {}", err.message()).trim().to_owned(),
            });
        }
        Ok((status, text))
    }

    fn parse<T: DeserializeOwned>(endpoint: &str, text: &str) -> Result<T, BrokerError> {
        serde_json::from_str(text).map_err(|e| protocol(endpoint, e.to_string()))
    }

    fn refused(endpoint: &str, status: StatusCode, text: &str) -> BrokerError {
        let err: wire::ErrorBody = serde_json::from_str(text).unwrap_or_default();
        let message = format!("{status} {} {}", err.code(), err.message())
            .replace("  ", " ")
            .trim()
            .to_owned();
        match status {
            StatusCode::NOT_FOUND => BrokerError::NotFound {
                broker: NAME.to_owned(),
                what: endpoint.to_owned(),
            },
            StatusCode::UNAUTHORIZED => BrokerError::Unauthenticated {
                broker: NAME.to_owned(),
                message,
            },
            // A 403 is a business refusal (buying power, held shares), unless it is the bare
            // "forbidden." of bad credentials.
            StatusCode::FORBIDDEN if err.code.is_none() => BrokerError::Unauthenticated {
                broker: NAME.to_owned(),
                message,
            },
            s if s.is_client_error() => BrokerError::Rejected {
                broker: NAME.to_owned(),
                message,
            },
            _ => protocol(endpoint, message),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BrokerError> {
        let (status, text) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(Self::refused(path, status, &text));
        }
        Self::parse(path, &text)
    }

    /// The account the keys trade, read once: it stamps every order and position.
    async fn account_number(&self) -> Result<AccountId, BrokerError> {
        let cached = self
            .account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(a) = cached {
            return Ok(a);
        }
        let a: wire::Account = self.get("/v2/account").await?;
        let id = AccountId::new(a.account_number);
        *self
            .account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.clone());
        Ok(id)
    }

    /// Checks that `account` is the one the keys trade.
    async fn check_account(&self, account: &AccountId) -> Result<(), BrokerError> {
        let mine = self.account_number().await?;
        if &mine == account {
            Ok(())
        } else {
            Err(BrokerError::NotFound {
                broker: NAME.to_owned(),
                what: format!("account {account} (these keys trade {mine})"),
            })
        }
    }

    fn map_all(
        endpoint: &str,
        items: &[wire::Order],
        account: &AccountId,
    ) -> Result<Vec<Order>, BrokerError> {
        let mut out = Vec::new();
        for o in items {
            out.extend(mapping::orders(o, account).map_err(|m| protocol(endpoint, m))?);
        }
        Ok(out)
    }

    /// One page of `GET /v2/orders`, newest first. The next page is everything submitted
    /// before (`until`, exclusive) a row three from the end, plus a microsecond: pages overlap
    /// (the orders of one group share a submit time), and the list drops the repeats.
    async fn orders_page(
        &self,
        account: &AccountId,
        query: &str,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        self.check_account(account).await?;
        let mut path = format!("/v2/orders?{query}&nested=true&limit={PAGE_SIZE}&direction=desc");
        if let Some(PageToken(until)) = &page {
            path.push_str(&format!("&until={}", encode(until)));
        }
        let rows: Vec<wire::Order> = self.get(&path).await?;
        let next = if rows.len() < PAGE_SIZE {
            None
        } else {
            let edge = rows
                .get(rows.len().saturating_sub(3))
                .and_then(|o| o.submitted_at)
                .ok_or_else(|| {
                    protocol("/v2/orders", "a full page whose edge has no submitted_at")
                })?;
            Some(PageToken(query_time(edge + TimeDelta::microseconds(1))))
        };
        Ok(Page {
            items: Self::map_all("/v2/orders", &rows, account)?,
            next,
        })
    }

    fn body<T: serde::Serialize>(endpoint: &str, value: &T) -> Result<Vec<u8>, BrokerError> {
        serde_json::to_vec(value).map_err(|e| protocol(endpoint, e.to_string()))
    }

    /// The order carrying `cid` (and, nested, its group), or `None` on a 404.
    async fn by_client_order_id(
        &self,
        account: &AccountId,
        cid: &ClientOrderId,
    ) -> Result<Vec<Order>, BrokerError> {
        let path = format!(
            "/v2/orders:by_client_order_id?client_order_id={}&nested=true",
            encode(cid.as_str())
        );
        match self.get::<wire::Order>(&path).await {
            Ok(o) => mapping::orders(&o, account)
                .map_err(|m| protocol("/v2/orders:by_client_order_id", m)),
            Err(BrokerError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// A placement's answer; a duplicate client order id means our earlier request did reach
    /// Alpaca, so the existing order is looked up (never sent again).
    async fn placed(
        &self,
        account: &AccountId,
        cid: &ClientOrderId,
        status: StatusCode,
        text: &str,
    ) -> Result<Vec<Order>, BrokerError> {
        if status.is_success() {
            let o: wire::Order = Self::parse("/v2/orders", text)?;
            return mapping::orders(&o, account).map_err(|m| protocol("/v2/orders", m));
        }
        let err: wire::ErrorBody = serde_json::from_str(text).unwrap_or_default();
        if status == StatusCode::UNPROCESSABLE_ENTITY
            && err.message().contains("client_order_id must be unique")
        {
            let found = self.by_client_order_id(account, cid).await?;
            if !found.is_empty() {
                tracing::info!(%cid, "placement answered a duplicate client order id: the order exists");
                return Ok(found);
            }
        }
        Err(Self::refused("/v2/orders", status, text))
    }
}

#[async_trait]
impl Broker for AlpacaBroker {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    fn supports_oco(&self) -> bool {
        true
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        Ok(vec![self.account_number().await?])
    }

    async fn working_orders_page(
        &self,
        account: &AccountId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let mut p = self.orders_page(account, "status=open", page).await?;
        p.items.retain(|o| o.status.is_working());
        Ok(p)
    }

    async fn order_history_page(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        // `after` is exclusive too: from a microsecond before `since`.
        let after = query_time(since - TimeDelta::microseconds(1));
        self.orders_page(
            account,
            &format!("status=all&after={}", encode(&after)),
            page,
        )
        .await
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        self.check_account(account).await?;
        let rows: Vec<wire::Position> = self.get("/v2/positions").await?;
        Ok(rows.iter().map(|p| mapping::position(p, account)).collect())
    }

    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        self.check_account(account).await?;
        if !is_order_id(id) {
            return Ok(None);
        }
        let path = format!("/v2/orders/{}?nested=true", encode(id.as_str()));
        match self.get::<wire::Order>(&path).await {
            Ok(o) => {
                let all =
                    mapping::orders(&o, account).map_err(|m| protocol("/v2/orders/{id}", m))?;
                Ok(all.into_iter().find(|x| &x.id == id))
            }
            Err(BrokerError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find_by_client_order_id_page(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
        _page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        self.check_account(account).await?;
        Ok(Page::last(
            self.by_client_order_id(account, client_order_id).await?,
        ))
    }

    async fn cancel(
        &self,
        account: &AccountId,
        id: &OrderId,
    ) -> Result<CancelOutcome, BrokerError> {
        self.check_account(account).await?;
        if !is_order_id(id) {
            return Err(BrokerError::NotFound {
                broker: NAME.to_owned(),
                what: format!("order {id} (not an Alpaca order id)"),
            });
        }
        let path = format!("/v2/orders/{}", encode(id.as_str()));
        let (status, text) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() {
            return Ok(CancelOutcome::Requested);
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            // Not cancelable: finished (nothing to do), or busy being replaced (refused).
            if let Some(o) = self.order(account, id).await?
                && !o.status.is_working()
            {
                return Ok(CancelOutcome::AlreadyDone);
            }
        }
        Err(Self::refused(&path, status, &text))
    }

    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError> {
        self.check_account(&order.account).await?;
        if order.client_order_id.as_str().len() > MAX_CLIENT_ORDER_ID {
            return Err(BrokerError::Rejected {
                broker: NAME.to_owned(),
                message: format!(
                    "client order id {} is longer than {MAX_CLIENT_ORDER_ID}",
                    order.client_order_id
                ),
            });
        }
        let body = mapping::new_order(order).map_err(|m| BrokerError::Rejected {
            broker: NAME.to_owned(),
            message: m,
        })?;
        let (status, text) = self
            .call(
                Method::POST,
                "/v2/orders",
                Some(Self::body("/v2/orders", &body)?),
            )
            .await?;
        let all = self
            .placed(&order.account, &order.client_order_id, status, &text)
            .await?;
        all.into_iter()
            .next()
            .ok_or_else(|| protocol("/v2/orders", "a placement answered no order"))
    }

    async fn place_oco(
        &self,
        take_profit: &PlaceOrder,
        stop_loss: &PlaceOrder,
    ) -> Result<OcoOrders, BrokerError> {
        self.check_account(&take_profit.account).await?;
        let body = mapping::new_oco(take_profit, stop_loss).map_err(|m| BrokerError::Rejected {
            broker: NAME.to_owned(),
            message: m,
        })?;
        let (status, text) = self
            .call(
                Method::POST,
                "/v2/orders",
                Some(Self::body("/v2/orders", &body)?),
            )
            .await?;
        let all = self
            .placed(
                &take_profit.account,
                &take_profit.client_order_id,
                status,
                &text,
            )
            .await?;
        match all.as_slice() {
            [tp, sl, ..] => Ok(OcoOrders {
                take_profit: tp.clone(),
                stop_loss: sl.clone(),
            }),
            _ => Err(protocol(
                "/v2/orders",
                "an OCO placement answered without its stop leg",
            )),
        }
    }

    async fn replace(
        &self,
        original: &Order,
        changes: &ReplaceOrder,
    ) -> Result<Order, BrokerError> {
        self.check_account(&original.account).await?;
        let path = format!("/v2/orders/{}", encode(original.id.as_str()));
        let body = wire::Replace {
            qty: changes.quantity.map(|q| q.normalize().to_string()),
            limit_price: changes.limit_price.map(|p| p.normalize().to_string()),
            stop_price: changes.stop_price.map(|p| p.normalize().to_string()),
            // Sent, or Alpaca makes a new one up and tracking by client id breaks.
            client_order_id: Some(changes.client_order_id.to_string()),
        };
        let (status, text) = self
            .call(Method::PATCH, &path, Some(Self::body(&path, &body)?))
            .await?;
        if !status.is_success() {
            return Err(Self::refused(&path, status, &text));
        }
        let o: wire::Order = Self::parse(&path, &text)?;
        mapping::orders(&o, &original.account)
            .map_err(|m| protocol(&path, m))?
            .into_iter()
            .next()
            .ok_or_else(|| protocol(&path, "a replacement answered no order"))
    }
}
