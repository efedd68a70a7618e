//! The simulator's world: accounts, orders and positions in TastyTrade's own terms (its status
//! words, its actions, unsigned prices with an effect), and the rules the real API applies to
//! them. Written from the API's documentation, apart from the adapter's wire types, so that the
//! adapter's tests compare two readings of the API rather than one.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// The versions the order API serves (`Accept-Version`), oldest first. Without the header the
/// oldest serves; a date older than every version is refused with 406.
pub const VERSIONS: &[&str] = &["20250813", "20251101", "20261012"];
/// From this version on, order search needs `start-date` or `start-at`, and `/orders/live`
/// takes `status[]` and `underlying-symbol`.
pub const SEARCH_NEEDS_START: &str = "20261012";

/// Terminal statuses: no further updates.
pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "Filled" | "Cancelled" | "Expired" | "Rejected" | "Removed" | "Partially Removed"
    )
}

/// One fill of one leg.
#[derive(Debug, Clone)]
pub struct Fill {
    /// The fill id (`fill-id`).
    pub id: String,
    /// How much filled.
    pub quantity: Decimal,
    /// At what price.
    pub price: Decimal,
    /// When.
    pub at: DateTime<Utc>,
}

/// One leg of an order.
#[derive(Debug, Clone)]
pub struct Leg {
    /// `Equity`, `Equity Option`, …
    pub instrument_type: String,
    /// The instrument (OCC, padded, for options).
    pub symbol: String,
    /// `Buy to Close`, `Sell to Open`, …
    pub action: String,
    /// The leg's quantity.
    pub quantity: Decimal,
    /// What is left to fill (`remaining-quantity`).
    pub remaining: Decimal,
    /// Its fills.
    pub fills: Vec<Fill>,
}

impl Leg {
    /// Whether the leg buys.
    pub fn buys(&self) -> bool {
        self.action.starts_with("Buy")
    }

    /// Whether the leg closes a position.
    pub fn closes(&self) -> bool {
        self.action.ends_with("to Close")
    }
}

/// An order, as TastyTrade keeps it.
#[derive(Debug, Clone)]
pub struct Order {
    /// The order id.
    pub id: u64,
    /// The account number.
    pub account: String,
    /// TastyTrade's status word (`Received`, `Live`, `Cancel Requested`, …).
    pub status: String,
    /// `Limit`, `Stop`, …
    pub order_type: String,
    /// `GTC`, `Day`, …
    pub time_in_force: String,
    /// For GTD orders.
    pub gtc_date: Option<NaiveDate>,
    /// Unsigned, with `price_effect`.
    pub price: Option<Decimal>,
    /// `Debit` or `Credit`.
    pub price_effect: Option<String>,
    /// The stop trigger.
    pub stop_trigger: Option<Decimal>,
    /// The underlying symbol.
    pub underlying: String,
    /// Its instrument type.
    pub underlying_instrument_type: String,
    /// The legs.
    pub legs: Vec<Leg>,
    /// The client's id, echoed back.
    pub external_identifier: Option<String>,
    /// The client's tag.
    pub source: Option<String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// When it went live.
    pub live_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub terminal_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The order it replaced.
    pub replaces: Option<u64>,
    /// The order that replaced it.
    pub replacing: Option<u64>,
    /// Whether it was replaced.
    pub edited: bool,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// While `Contingent`, what it waits for.
    pub contingent_status: Option<String>,
    /// Whether a user cancelled it.
    pub cancelled_by_user: bool,
}

impl Order {
    /// The order's size: its largest leg.
    pub fn size(&self) -> Decimal {
        self.legs
            .iter()
            .map(|l| l.quantity)
            .max()
            .unwrap_or_default()
    }

    /// Whether it can still trade.
    pub fn is_working(&self) -> bool {
        !is_terminal(&self.status)
    }

    fn finish(&mut self, status: &str, now: DateTime<Utc>) {
        self.status = status.to_owned();
        self.updated_at = now;
        self.terminal_at = Some(now);
        if status == "Cancelled" {
            self.cancelled_at = Some(now);
        }
    }
}

/// A position: signed here, unsigned with a direction on the wire.
#[derive(Debug, Clone)]
pub struct Position {
    /// The account number.
    pub account: String,
    /// The instrument.
    pub symbol: String,
    /// Its instrument type.
    pub instrument_type: String,
    /// The underlying symbol.
    pub underlying: String,
    /// Signed: negative is short.
    pub quantity: Decimal,
    /// The average open price.
    pub average_open_price: Decimal,
    /// The previous close.
    pub close_price: Decimal,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account number.
    pub number: String,
    /// Its nickname.
    pub nickname: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Whether it is closed.
    pub closed: bool,
}

/// A change the exchange confirms after the request that asked for it: the next request sees
/// it done, the answer to the asking request does not.
#[derive(Debug, Clone)]
enum Confirm {
    Live(u64),
    Cancelled(u64),
}

/// Why the API refuses a request: status, code, message, and the preflight errors if any.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The error code.
    pub code: String,
    /// The message.
    pub message: String,
    /// Preflight errors: code and message.
    pub errors: Vec<(String, String)>,
}

impl Refusal {
    /// A refusal with no preflight errors.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            errors: Vec::new(),
        }
    }

    fn preflight(code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status: 422,
            code: "preflight_check_failure".to_owned(),
            message: "One or more preflight checks failed".to_owned(),
            errors: vec![(code.to_owned(), message)],
        }
    }
}

/// A new order or a replacement, as a request body says it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `order-type`.
    pub order_type: Option<String>,
    /// `time-in-force`.
    pub time_in_force: Option<String>,
    /// `gtc-date`.
    pub gtc_date: Option<NaiveDate>,
    /// `price`, unsigned.
    pub price: Option<Decimal>,
    /// `price-effect`.
    pub price_effect: Option<String>,
    /// `stop-trigger`.
    pub stop_trigger: Option<Decimal>,
    /// `legs`; `None` when left out (a replacement keeps the original's).
    pub legs: Option<Vec<Leg>>,
    /// `external-identifier`.
    pub external_identifier: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `advanced-instructions.strict-position-effect-validation`.
    pub strict: bool,
}

/// The simulator's state.
pub struct State {
    /// The OAuth client secret it accepts.
    pub client_secret: String,
    /// The refresh token it accepts.
    pub refresh_token: String,
    /// Access tokens issued, with their expiry.
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// How many were issued.
    pub issued: u64,
    /// The clock.
    pub now: DateTime<Utc>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Orders by id.
    pub orders: BTreeMap<u64, Order>,
    /// The last id given.
    pub next_id: u64,
    /// Positions.
    pub positions: Vec<Position>,
    confirms: Vec<Confirm>,
    /// While set, confirmations wait (to observe `Cancel Requested` and friends).
    pub hold_confirmations: bool,
    /// When set, the clock follows the wall clock, shifted by this much.
    pub wall_clock: Option<TimeDelta>,
}

const ORDER_TYPES: &[&str] = &[
    "Limit",
    "Market",
    "Marketable Limit",
    "Stop",
    "Stop Limit",
    "Notional Market",
];
const TIMES_IN_FORCE: &[&str] = &[
    "Day",
    "GTC",
    "GTD",
    "Ext",
    "Ext Overnight",
    "GTC Ext",
    "GTC Ext Overnight",
    "IOC",
];
const ACTIONS: &[&str] = &[
    "Buy to Open",
    "Buy to Close",
    "Sell to Open",
    "Sell to Close",
    "Buy",
    "Sell",
];

/// The instrument type of a symbol: an OCC option symbol (root padded to six, `YYMMDD`, `C`/`P`,
/// eight strike digits) or an equity.
pub fn instrument_type(symbol: &str) -> &'static str {
    let b = symbol.as_bytes();
    let occ = b.len() == 21
        && b[6..12].iter().all(u8::is_ascii_digit)
        && matches!(b[12], b'C' | b'P')
        && b[13..].iter().all(u8::is_ascii_digit);
    if occ { "Equity Option" } else { "Equity" }
}

/// The underlying of a symbol: an option's root, or the symbol.
pub fn underlying_of(symbol: &str) -> String {
    if instrument_type(symbol) == "Equity Option" {
        symbol[..6].trim_end().to_owned()
    } else {
        symbol.to_owned()
    }
}

/// When an OCC option expires: its date, at 21:00 UTC (the close, in winter).
pub fn expires_at(symbol: &str) -> Option<DateTime<Utc>> {
    if instrument_type(symbol) != "Equity Option" {
        return None;
    }
    let d = NaiveDate::parse_from_str(&format!("20{}", &symbol[6..12]), "%Y%m%d").ok()?;
    Some(d.and_hms_opt(21, 0, 0)?.and_utc())
}

impl State {
    pub fn new(now: DateTime<Utc>, client_secret: &str, refresh_token: &str) -> Self {
        Self {
            client_secret: client_secret.to_owned(),
            refresh_token: refresh_token.to_owned(),
            tokens: HashMap::new(),
            issued: 0,
            now,
            accounts: Vec::new(),
            orders: BTreeMap::new(),
            next_id: 500_000_000,
            positions: Vec::new(),
            confirms: Vec::new(),
            hold_confirmations: false,
            wall_clock: None,
        }
    }

    /// Moves the clock to the wall clock's time, when it follows it.
    pub fn tick(&mut self) {
        if let Some(shift) = self.wall_clock {
            self.now = Utc::now() + shift;
        }
    }

    /// Applies the confirmations earlier requests asked for.
    pub fn confirm(&mut self) {
        self.tick();
        if self.hold_confirmations {
            return;
        }
        let now = self.now;
        for c in std::mem::take(&mut self.confirms) {
            match c {
                Confirm::Live(id) => {
                    if let Some(o) = self.orders.get_mut(&id)
                        && matches!(
                            o.status.as_str(),
                            "Received" | "Routed" | "In Flight" | "Contingent"
                        )
                    {
                        o.status = "Live".to_owned();
                        o.contingent_status = None;
                        o.live_at = Some(now);
                        o.updated_at = now;
                    }
                }
                Confirm::Cancelled(id) => {
                    if let Some(o) = self.orders.get_mut(&id)
                        && !is_terminal(&o.status)
                    {
                        o.finish("Cancelled", now);
                    }
                }
            }
        }
    }

    pub fn add_account(&mut self, number: &str) {
        if !self.accounts.iter().any(|a| a.number == number) {
            self.accounts.push(Account {
                number: number.to_owned(),
                nickname: "Individual".to_owned(),
                opened_at: self.now - TimeDelta::days(400),
                closed: false,
            });
        }
    }

    pub fn account(&self, number: &str) -> Result<&Account, Refusal> {
        self.accounts
            .iter()
            .find(|a| a.number == number)
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    "record_not_found",
                    format!("account {number} not found"),
                )
            })
    }

    pub fn order(&self, account: &str, id: &str) -> Result<&Order, Refusal> {
        id.parse::<u64>()
            .ok()
            .and_then(|id| self.orders.get(&id))
            .filter(|o| o.account == account)
            .ok_or_else(|| Refusal::new(404, "record_not_found", "order not found"))
    }

    fn held(&self, account: &str, symbol: &str) -> Decimal {
        self.positions
            .iter()
            .filter(|p| p.account == account && p.symbol == symbol)
            .map(|p| p.quantity)
            .sum()
    }

    /// Checks a complete order request (placement or dry run) and returns the order it makes,
    /// without an id. Closing legs with no position to close become opening legs, unless the
    /// request asks for strict position-effect validation, which refuses them instead.
    pub fn check_new(&self, account: &str, req: &Request) -> Result<Order, Refusal> {
        self.check(account, req, true)
    }

    /// A dry run: the checks of a placement, and the warnings the real API gives (a closing leg
    /// with no position is not converted here, but announced).
    pub fn dry_run(
        &self,
        account: &str,
        req: &Request,
    ) -> Result<(Order, Vec<(String, String)>), Refusal> {
        let mut o = self.check(account, req, true)?;
        let mut warnings = Vec::new();
        if let Some(legs) = &req.legs {
            for (sent, checked) in legs.iter().zip(&mut o.legs) {
                if sent.action != checked.action {
                    warnings.push((
                        "closing_with_no_position".to_owned(),
                        format!(
                            "You cannot route a closing order without an existing position to close. This order will be updated to a {} order when routed.",
                            checked.action.to_lowercase()
                        ),
                    ));
                    checked.action.clone_from(&sent.action);
                }
            }
        }
        o.status = "Received".to_owned();
        Ok((o, warnings))
    }

    /// [`State::check_new`], with or without the closing legs' position check (a replacement
    /// keeps the original's legs, which were checked when it was placed).
    fn check(&self, account: &str, req: &Request, positions: bool) -> Result<Order, Refusal> {
        self.account(account)?;
        let order_type = req
            .order_type
            .clone()
            .ok_or_else(|| Refusal::new(400, "validation_error", "order-type is required"))?;
        if !ORDER_TYPES.contains(&order_type.as_str()) {
            return Err(Refusal::new(
                400,
                "validation_error",
                format!("unknown order-type {order_type:?}"),
            ));
        }
        let tif = req
            .time_in_force
            .clone()
            .unwrap_or_else(|| "Day".to_owned());
        if !TIMES_IN_FORCE.contains(&tif.as_str()) {
            return Err(Refusal::new(
                400,
                "validation_error",
                format!("unknown time-in-force {tif:?}"),
            ));
        }
        let mut legs = req.legs.clone().unwrap_or_default();
        if legs.is_empty() {
            return Err(Refusal::new(400, "validation_error", "legs are required"));
        }
        for l in &legs {
            if !ACTIONS.contains(&l.action.as_str()) {
                return Err(Refusal::new(
                    400,
                    "validation_error",
                    format!("unknown action {:?}", l.action),
                ));
            }
            if l.quantity <= Decimal::ZERO {
                return Err(Refusal::new(
                    400,
                    "validation_error",
                    "leg quantities must be positive",
                ));
            }
        }
        let options = legs
            .iter()
            .filter(|l| l.instrument_type == "Equity Option")
            .count();
        if options == 0 && legs.len() > 1 {
            return Err(Refusal::preflight(
                "too_many_legs",
                "equity orders take one leg",
            ));
        }
        if legs.len() > 4 {
            return Err(Refusal::preflight(
                "too_many_legs",
                "option orders take at most four legs",
            ));
        }
        let mut symbols: Vec<&str> = legs.iter().map(|l| l.symbol.as_str()).collect();
        symbols.sort_unstable();
        symbols.dedup();
        if symbols.len() != legs.len() {
            return Err(Refusal::preflight(
                "duplicate_legs",
                "each leg needs its own symbol",
            ));
        }
        let priced = matches!(
            order_type.as_str(),
            "Limit" | "Stop Limit" | "Marketable Limit"
        );
        let stopped = matches!(order_type.as_str(), "Stop" | "Stop Limit");
        if priced && req.price.is_none() {
            return Err(Refusal::new(
                400,
                "validation_error",
                "price is required for this order type",
            ));
        }
        if !priced && req.price.is_some() {
            return Err(Refusal::preflight(
                "price_not_allowed",
                format!("{order_type} orders cannot carry a price"),
            ));
        }
        if stopped && req.stop_trigger.is_none() {
            return Err(Refusal::new(
                400,
                "validation_error",
                "stop-trigger is required for stop orders",
            ));
        }
        if order_type == "Market" && tif.starts_with("GTC") {
            return Err(Refusal::preflight(
                "gtc_market_orders_not_supported",
                "market orders cannot be GTC",
            ));
        }
        if req.price.is_some() {
            let effect = req.price_effect.clone().ok_or_else(|| {
                Refusal::new(
                    400,
                    "validation_error",
                    "price-effect is required with a price",
                )
            })?;
            if effect == "Credit" && legs.iter().all(Leg::buys) {
                return Err(Refusal::preflight(
                    "cant_buy_for_credit",
                    "an order that only buys cannot be for a credit",
                ));
            }
        }
        for l in &mut legs {
            if !positions || !l.closes() {
                continue;
            }
            let held = self.held(account, &l.symbol);
            let closable = if l.buys() {
                held < Decimal::ZERO && -held >= l.quantity
            } else {
                held > Decimal::ZERO && held >= l.quantity
            };
            if !closable {
                if req.strict {
                    return Err(Refusal::preflight(
                        "closing_order_without_position",
                        format!("{} {} has no position to close", l.action, l.symbol),
                    ));
                }
                // Documented trap: without the strict flag a close becomes an open.
                l.action = l.action.replace("to Close", "to Open");
            }
        }
        for l in &mut legs {
            l.remaining = l.quantity;
        }
        let first = &legs[0];
        Ok(Order {
            id: 0,
            account: account.to_owned(),
            status: "Received".to_owned(),
            order_type,
            time_in_force: tif,
            gtc_date: req.gtc_date,
            price: req.price,
            price_effect: req.price.and(req.price_effect.clone()),
            stop_trigger: req.stop_trigger,
            underlying: underlying_of(&first.symbol),
            underlying_instrument_type: "Equity".to_owned(),
            legs,
            external_identifier: req.external_identifier.clone(),
            source: req.source.clone(),
            received_at: self.now,
            live_at: None,
            cancelled_at: None,
            terminal_at: None,
            updated_at: self.now,
            replaces: None,
            replacing: None,
            edited: false,
            reject_reason: None,
            contingent_status: None,
            cancelled_by_user: false,
        })
    }

    /// Places an order: `Routed` now, `Live` once the next request comes.
    pub fn place(&mut self, account: &str, req: &Request) -> Result<Order, Refusal> {
        let mut o = self.check_new(account, req)?;
        self.next_id += 1;
        o.id = self.next_id;
        o.status = "Routed".to_owned();
        self.orders.insert(o.id, o.clone());
        self.confirms.push(Confirm::Live(o.id));
        Ok(o)
    }

    /// Cancel-replaces: only price, type, time in force and stop trigger may change; legs left
    /// out keep the original's, legs sent must equal them. The original goes `Replace
    /// Requested` and then `Cancelled`, pointing at the replacement; the replacement waits
    /// `Contingent` until then, and goes `Live`.
    pub fn replace(&mut self, account: &str, id: &str, req: &Request) -> Result<Order, Refusal> {
        let old = self.order(account, id)?.clone();
        if !old.is_working()
            || old.status == "Replace Requested"
            || old.status == "Cancel Requested"
        {
            return Err(Refusal::new(
                422,
                "cannot_update_order",
                "the order could not be replaced",
            ));
        }
        if let Some(legs) = &req.legs {
            let key = |l: &Leg| (l.symbol.clone(), l.action.clone(), l.quantity.normalize());
            let mut want: Vec<_> = old.legs.iter().map(key).collect();
            let mut got: Vec<_> = legs.iter().map(key).collect();
            want.sort();
            got.sort();
            if want != got {
                return Err(Refusal::new(
                    422,
                    "cannot_update_order",
                    "a replacement cannot change the legs",
                ));
            }
        }
        let mut new = old.clone();
        new.order_type = req.order_type.clone().unwrap_or(old.order_type.clone());
        new.time_in_force = req
            .time_in_force
            .clone()
            .unwrap_or(old.time_in_force.clone());
        new.price = req.price.or(old.price);
        new.price_effect = req.price_effect.clone().or(old.price_effect.clone());
        new.stop_trigger = req.stop_trigger.or(old.stop_trigger);
        new.external_identifier = req.external_identifier.clone();
        new.source = req.source.clone().or(old.source.clone());
        // The original's legs stand; only the order's terms are checked again.
        let check = Request {
            order_type: Some(new.order_type.clone()),
            time_in_force: Some(new.time_in_force.clone()),
            gtc_date: new.gtc_date,
            price: new.price,
            price_effect: new.price_effect.clone(),
            stop_trigger: new.stop_trigger,
            legs: Some(old.legs.clone()),
            external_identifier: None,
            source: None,
            strict: false,
        };
        self.check(account, &check, false)?;
        self.next_id += 1;
        new.id = self.next_id;
        new.status = "Contingent".to_owned();
        new.contingent_status = Some("Pending Order".to_owned());
        new.replaces = Some(old.id);
        new.replacing = None;
        new.edited = false;
        new.received_at = self.now;
        new.updated_at = self.now;
        new.live_at = None;
        for l in &mut new.legs {
            l.remaining = l.quantity;
            l.fills.clear();
        }
        let now = self.now;
        if let Some(o) = self.orders.get_mut(&old.id) {
            o.status = "Replace Requested".to_owned();
            o.replacing = Some(new.id);
            o.edited = true;
            o.updated_at = now;
        }
        self.orders.insert(new.id, new.clone());
        self.confirms.push(Confirm::Cancelled(old.id));
        self.confirms.push(Confirm::Live(new.id));
        Ok(new)
    }

    /// Requests a cancel: `Cancel Requested` now, `Cancelled` once the next request comes. A
    /// finished order cannot be cancelled (422).
    pub fn cancel(&mut self, account: &str, id: &str) -> Result<Order, Refusal> {
        let o = self.order(account, id)?;
        if !o.is_working() {
            return Err(Refusal::new(
                422,
                "cannot_update_order",
                "the order could not be cancelled",
            ));
        }
        let id = o.id;
        let now = self.now;
        let o = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| Refusal::new(404, "record_not_found", "order not found"))?;
        o.status = "Cancel Requested".to_owned();
        o.cancelled_by_user = true;
        o.updated_at = now;
        let answer = o.clone();
        self.confirms.push(Confirm::Cancelled(id));
        Ok(answer)
    }

    /// Fills an order completely at its price and moves the positions its legs close or open.
    pub fn fill(&mut self, id: u64) {
        let now = self.now;
        let Some(o) = self.orders.get_mut(&id) else {
            return;
        };
        let price = o.price.unwrap_or(o.stop_trigger.unwrap_or_default());
        for (n, l) in o.legs.iter_mut().enumerate() {
            if l.remaining > Decimal::ZERO {
                l.fills.push(Fill {
                    id: format!("{id}-{n}"),
                    quantity: l.remaining,
                    price,
                    at: now,
                });
                l.remaining = Decimal::ZERO;
            }
        }
        o.finish("Filled", now);
        let (account, legs) = (o.account.clone(), o.legs.clone());
        for l in legs {
            let delta = if l.buys() { l.quantity } else { -l.quantity };
            match self
                .positions
                .iter_mut()
                .find(|p| p.account == account && p.symbol == l.symbol)
            {
                Some(p) => {
                    p.quantity += delta;
                    p.updated_at = now;
                }
                None => self.positions.push(Position {
                    account: account.clone(),
                    symbol: l.symbol.clone(),
                    instrument_type: l.instrument_type.clone(),
                    underlying: underlying_of(&l.symbol),
                    quantity: delta,
                    average_open_price: price,
                    close_price: price,
                    created_at: now,
                    updated_at: now,
                }),
            }
        }
    }

    /// Cancels an order "by hand", outside any client: it is `Cancelled` at once.
    pub fn cancel_by_hand(&mut self, id: u64) {
        let now = self.now;
        if let Some(o) = self.orders.get_mut(&id) {
            o.cancelled_by_user = true;
            o.finish("Cancelled", now);
        }
    }

    /// The orders `/orders/live` lists: every order of the current (UTC) day in any status,
    /// and older ones still working; newest first.
    pub fn live(&self, account: &str) -> Vec<&Order> {
        let today = self.now.date_naive();
        let mut out: Vec<&Order> = self
            .orders
            .values()
            .filter(|o| {
                o.account == account
                    && (o.is_working()
                        || o.received_at.date_naive() == today
                        || o.updated_at.date_naive() == today)
            })
            .collect();
        out.sort_by_key(|o| std::cmp::Reverse((o.received_at, o.id)));
        out
    }
}
