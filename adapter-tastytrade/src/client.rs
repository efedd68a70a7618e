//! `TastytradeBroker`: the HTTP client. Each trait call is one request (a token refresh aside:
//! a 401 triggers one); 429 answers become `RateLimited` with the broker's `Retry-After`, 5xx and
//! dropped connections `Transport`. Pacing and retries are policy, composed around the client by
//! [`TastytradeBroker::decorated`]: `Retrying` never re-sends a placement or a replacement.

use crate::{mapping, wire};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::broker::{Paced, Retrying};
use reconcile_core::{
    AccountId, Broker, BrokerError, BrokerPosition, CancelOutcome, ClientOrderId, Order, OrderId,
    Page, PageToken, PlaceOrder, ReplaceOrder,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The production API.
pub const PRODUCTION: &str = "https://api.tastyworks.com";
/// The certification sandbox.
pub const SANDBOX: &str = "https://api.cert.tastyworks.com";
/// Environment variable holding the OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "TASTYTRADE_CLIENT_SECRET";
/// Environment variable holding the OAuth refresh token.
pub const ENV_REFRESH_TOKEN: &str = "TASTYTRADE_REFRESH_TOKEN";
/// Environment variable naming the default account.
pub const ENV_ACCOUNT: &str = "TASTYTRADE_ACCOUNT";
/// The largest page the order search serves.
pub const PAGE_SIZE: usize = 200;

const NAME: &str = "tastytrade";

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

struct Token {
    value: SecretString,
    expires: Instant,
}

/// The TastyTrade [`Broker`], undecorated: see [`TastytradeBroker::decorated`].
pub struct TastytradeBroker {
    http: reqwest::Client,
    base: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    token: Mutex<Option<Token>>,
    user_agent: String,
    rate: NonZeroU32,
    requests: AtomicU64,
}

/// The TastyTrade client as production code uses it: paced, with idempotent calls retried.
pub type DecoratedTastytrade = Retrying<Paced<TastytradeBroker>>;

impl std::fmt::Debug for TastytradeBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TastytradeBroker")
            .field("base", &self.base)
            .field("credentials", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl TastytradeBroker {
    /// A broker for `base` (production, sandbox, a proxy or the simulator) with OAuth
    /// credentials. Its pace, once [decorated](Self::decorated), is 20 requests a second in
    /// bursts of at most 20: the API publishes no quota but warns against heavy polling, and a
    /// reconcile run is a short burst (a dry run of 6,000 working orders is 33 requests); a 429
    /// still backs off as asked.
    ///
    /// # Errors
    /// [`BuildError::Http`] if the TLS stack cannot be set up.
    pub fn new(
        base: impl Into<String>,
        client_secret: SecretString,
        refresh_token: SecretString,
    ) -> Result<Self, BuildError> {
        // The ring provider, installed once per process; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let user_agent = format!("reconcile/{}", env!("CARGO_PKG_VERSION"));
        let http = reqwest::Client::builder()
            .user_agent(user_agent.clone())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            client_secret,
            refresh_token,
            token: Mutex::new(None),
            user_agent,
            rate: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            requests: AtomicU64::new(0),
        })
    }

    /// A broker with credentials from `TASTYTRADE_CLIENT_SECRET` and `TASTYTRADE_REFRESH_TOKEN`.
    ///
    /// # Errors
    /// [`BuildError::MissingEnv`] naming the missing variable.
    pub fn from_env(base: impl Into<String>) -> Result<Self, BuildError> {
        let get = |k: &'static str| {
            std::env::var(k)
                .map(SecretString::from)
                .map_err(|_| BuildError::MissingEnv(k))
        };
        Self::new(base, get(ENV_CLIENT_SECRET)?, get(ENV_REFRESH_TOKEN)?)
    }

    /// Sets the pace [`Self::decorated`] keeps, in requests per second.
    #[must_use]
    pub fn with_rate(mut self, per_second: u32) -> Self {
        self.rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// The client composed as production code uses it: paced to its rate, and its idempotent
    /// calls retried on 429 (after the time it asks for), 5xx and lost connections.
    pub fn decorated(self) -> DecoratedTastytrade {
        let rate = self.rate;
        Retrying::new(Paced::per_second(self, rate))
    }

    /// Sets the request timeout.
    ///
    /// # Errors
    /// [`BuildError::Http`] if the client cannot be rebuilt.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, BuildError> {
        self.http = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .timeout(timeout)
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(self)
    }

    /// How many HTTP requests this broker has sent (token requests included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn transport(endpoint: &str, e: &reqwest::Error) -> BrokerError {
        // reqwest's messages name the URL (host and path) but never our headers or bodies.
        let what = if e.is_timeout() {
            "timed out".to_owned()
        } else {
            e.to_string()
        };
        BrokerError::Transport {
            broker: NAME.to_owned(),
            endpoint: endpoint.to_owned(),
            message: what,
        }
    }

    async fn refresh(&self) -> Result<SecretString, BrokerError> {
        let endpoint = "/oauth/token";
        let body = wire::TokenRequest {
            grant_type: "refresh_token".to_owned(),
            refresh_token: self.refresh_token.expose_secret().to_owned(),
            client_secret: self.client_secret.expose_secret().to_owned(),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| BrokerError::Protocol {
            broker: NAME.to_owned(),
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(format!("{}{endpoint}", self.base))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| Self::transport(endpoint, &e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Self::transport(endpoint, &e))?;
        if !status.is_success() {
            let err: wire::ErrorBody = serde_json::from_str(&text).unwrap_or_default();
            return Err(BrokerError::Unauthenticated {
                broker: NAME.to_owned(),
                message: format!(
                    "token refresh refused ({status}): {} {}",
                    err.code(),
                    err.message()
                )
                .trim()
                .to_owned(),
            });
        }
        let t: wire::TokenResponse =
            serde_json::from_str(&text).map_err(|e| BrokerError::Protocol {
                broker: NAME.to_owned(),
                endpoint: endpoint.to_owned(),
                message: format!("token answer: {e}"),
            })?;
        let lasts = Duration::from_secs(u64::try_from(t.expires_in.unwrap_or(900)).unwrap_or(900));
        let value = SecretString::from(t.access_token);
        let mut slot = self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(Token {
            value: value.clone(),
            // Refresh a minute ahead of expiry.
            expires: Instant::now() + lasts.saturating_sub(Duration::from_secs(60)),
        });
        Ok(value)
    }

    async fn token(&self) -> Result<SecretString, BrokerError> {
        let cached = {
            let slot = self
                .token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.as_ref()
                .filter(|t| t.expires > Instant::now())
                .map(|t| t.value.clone())
        };
        match cached {
            Some(t) => Ok(t),
            None => self.refresh().await,
        }
    }

    /// One request with one token refresh on a 401. Returns the status and body.
    async fn once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(StatusCode, String, Option<Duration>), BrokerError> {
        let endpoint = path.split('?').next().unwrap_or(path).to_owned();
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("Authorization", format!("Bearer {}", token.expose_secret()))
                .header("Accept", "application/json");
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_vec());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| Self::transport(&endpoint, &e))?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp
                .text()
                .await
                .map_err(|e| Self::transport(&endpoint, &e))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.token
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                continue;
            }
            return Ok((status, text, retry_after));
        }
    }

    /// One request: 429 is `RateLimited` (with the broker's `Retry-After`), 5xx is `Transport`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, String), BrokerError> {
        let endpoint = path.split('?').next().unwrap_or(path).to_owned();
        let (status, text, retry_after) = self.once(&method, path, body.as_deref()).await?;
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
        serde_json::from_str(text).map_err(|e| BrokerError::Protocol {
            broker: NAME.to_owned(),
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })
    }

    fn refused(endpoint: &str, status: StatusCode, text: &str) -> BrokerError {
        let err: wire::ErrorBody = serde_json::from_str(text).unwrap_or_default();
        let message = format!("{} {}", err.code(), err.message())
            .trim()
            .to_owned();
        match status {
            StatusCode::NOT_FOUND => BrokerError::NotFound {
                broker: NAME.to_owned(),
                what: endpoint.to_owned(),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BrokerError::Unauthenticated {
                broker: NAME.to_owned(),
                message,
            },
            s if s.is_client_error() => BrokerError::Rejected {
                broker: NAME.to_owned(),
                message: format!("{status} {message}"),
            },
            _ => BrokerError::Protocol {
                broker: NAME.to_owned(),
                endpoint: endpoint.to_owned(),
                message: format!("{status} {message}"),
            },
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BrokerError> {
        let (status, text) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(Self::refused(path, status, &text));
        }
        Self::parse(path, &text)
    }

    /// One page of an order list (`page` is the 0-based offset), mapped, and the next offset.
    async fn orders_page(
        &self,
        path_and_query: &str,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let offset: i64 = match &page {
            None => 0,
            Some(PageToken(t)) => t.parse().map_err(|_| BrokerError::Protocol {
                broker: NAME.to_owned(),
                endpoint: path_and_query.to_owned(),
                message: format!("not a page offset: {t:?}"),
            })?,
        };
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let path = format!("{path_and_query}{sep}per-page={PAGE_SIZE}&page-offset={offset}");
        let env: wire::Envelope<wire::Items<wire::Order>> = self.get(&path).await?;
        let items = env
            .data
            .items
            .iter()
            .map(|o| {
                mapping::order(o).map_err(|m| BrokerError::Protocol {
                    broker: NAME.to_owned(),
                    endpoint: path_and_query.to_owned(),
                    message: m,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = match env.pagination {
            Some(p) if p.page_offset + 1 < p.total_pages => {
                Some(PageToken((p.page_offset + 1).to_string()))
            }
            _ => None,
        };
        Ok(Page { items, next })
    }

    fn account_path(account: &AccountId) -> String {
        format!("/accounts/{}", encode(account.as_str()))
    }
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[async_trait]
impl Broker for TastytradeBroker {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        let env: wire::Envelope<wire::Items<wire::AccountItem>> =
            self.get("/customers/me/accounts").await?;
        Ok(env
            .data
            .items
            .into_iter()
            .filter(|i| i.account.is_closed != Some(true))
            .map(|i| AccountId::new(i.account.account_number))
            .collect())
    }

    async fn working_orders_page(
        &self,
        account: &AccountId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        // `/orders/live` lists every status of the day: keep the working ones.
        let mut p = self
            .orders_page(
                &format!("{}/orders/live", Self::account_path(account)),
                page,
            )
            .await?;
        p.items.retain(|o| o.status.is_working());
        Ok(p)
    }

    async fn order_history_page(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let path = format!(
            "{}/orders?start-date={}&sort=Asc",
            Self::account_path(account),
            since.format("%Y-%m-%d")
        );
        self.orders_page(&path, page).await
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        let env: wire::Envelope<wire::Items<wire::Position>> = self
            .get(&format!("{}/positions", Self::account_path(account)))
            .await?;
        Ok(env.data.items.iter().map(mapping::position).collect())
    }

    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        let path = format!(
            "{}/orders/{}",
            Self::account_path(account),
            encode(id.as_str())
        );
        match self.get::<wire::Envelope<wire::Order>>(&path).await {
            Ok(env) => mapping::order(&env.data)
                .map(Some)
                .map_err(|m| BrokerError::Protocol {
                    broker: NAME.to_owned(),
                    endpoint: path,
                    message: m,
                }),
            Err(BrokerError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find_by_client_order_id_page(
        &self,
        account: &AccountId,
        cid: &ClientOrderId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        // No server-side filter exists: look through the day's orders, in every status (a
        // placement whose answer was lost may have filled or been rejected since).
        let mut p = self
            .orders_page(
                &format!("{}/orders/live", Self::account_path(account)),
                page,
            )
            .await?;
        p.items.retain(|o| o.client_order_id.as_ref() == Some(cid));
        Ok(p)
    }

    async fn cancel(
        &self,
        account: &AccountId,
        id: &OrderId,
    ) -> Result<CancelOutcome, BrokerError> {
        let path = format!(
            "{}/orders/{}",
            Self::account_path(account),
            encode(id.as_str())
        );
        let (status, text) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() {
            return Ok(CancelOutcome::Requested);
        }
        let err: wire::ErrorBody = serde_json::from_str(&text).unwrap_or_default();
        if status == StatusCode::UNPROCESSABLE_ENTITY && err.code() == "cannot_update_order" {
            // The order had already finished.
            return Ok(CancelOutcome::AlreadyDone);
        }
        Err(Self::refused(&path, status, &text))
    }

    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError> {
        let path = format!("{}/orders", Self::account_path(&order.account));
        let body =
            serde_json::to_vec(&mapping::new_order(order)).map_err(|e| BrokerError::Protocol {
                broker: NAME.to_owned(),
                endpoint: path.clone(),
                message: e.to_string(),
            })?;
        let (status, text) = self.call(Method::POST, &path, Some(body)).await?;
        if !status.is_success() {
            return Err(Self::refused(&path, status, &text));
        }
        let env: wire::Envelope<wire::Placed> = Self::parse(&path, &text)?;
        mapping::order(&env.data.order).map_err(|m| BrokerError::Protocol {
            broker: NAME.to_owned(),
            endpoint: path,
            message: m,
        })
    }

    async fn replace(&self, current: &Order, changes: &ReplaceOrder) -> Result<Order, BrokerError> {
        let path = format!(
            "{}/orders/{}",
            Self::account_path(&current.account),
            encode(current.id.as_str())
        );
        // Only price, type and time in force may change; the legs must be the original's.
        let legs = current
            .legs
            .iter()
            .map(|l| reconcile_core::TargetLeg {
                symbol: l.symbol.clone(),
                side: l.side,
                quantity: l.quantity,
            })
            .collect();
        let place = PlaceOrder {
            account: current.account.clone(),
            underlying: current.underlying.clone(),
            client_order_id: changes.client_order_id.clone(),
            order_type: current
                .order_type
                .unwrap_or(reconcile_core::OrderType::Limit),
            time_in_force: reconcile_core::TimeInForce::Gtc,
            limit_price: changes.limit_price.or(current.limit_price),
            stop_price: changes.stop_price.or(current.stop_price),
            legs,
        };
        let body =
            serde_json::to_vec(&mapping::new_order(&place)).map_err(|e| BrokerError::Protocol {
                broker: NAME.to_owned(),
                endpoint: path.clone(),
                message: e.to_string(),
            })?;
        let (status, text) = self.call(Method::PUT, &path, Some(body)).await?;
        if !status.is_success() {
            return Err(Self::refused(&path, status, &text));
        }
        let env: wire::Envelope<wire::Order> = Self::parse(&path, &text)?;
        mapping::order(&env.data).map_err(|m| BrokerError::Protocol {
            broker: NAME.to_owned(),
            endpoint: path,
            message: m,
        })
    }
}
