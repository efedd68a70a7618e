//! The simulator's world in Alpaca's own terms: orders with snake_case statuses and classes,
//! child orders for the legs of groups, signed positions, shares held for open orders. Written
//! from the API's documentation, apart from the adapter's wire types.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Statuses after which an order never changes again.
pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "filled" | "canceled" | "expired" | "rejected" | "replaced"
    )
}

/// An order (or a child order: a leg of a bracket, OCO, OTO or mleg order).
#[derive(Debug, Clone)]
pub struct Order {
    /// A UUID.
    pub id: String,
    /// The client's id, or one the simulator made up.
    pub client_order_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// When it filled.
    pub filled_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub canceled_at: Option<DateTime<Utc>>,
    /// When it was replaced.
    pub replaced_at: Option<DateTime<Utc>>,
    /// The order that replaced it.
    pub replaced_by: Option<String>,
    /// The order it replaced.
    pub replaces: Option<String>,
    /// The instrument (`""` on an mleg parent).
    pub symbol: String,
    /// `us_equity`, `us_option` (`""` on an mleg parent).
    pub asset_class: String,
    /// Quantity.
    pub qty: Decimal,
    /// How much filled.
    pub filled_qty: Decimal,
    /// Average fill price.
    pub filled_avg_price: Option<Decimal>,
    /// `""` (simple), `bracket`, `oco`, `oto`, `mleg`.
    pub order_class: String,
    /// `market`, `limit`, `stop`, `stop_limit` (`""` on mleg legs).
    pub kind: String,
    /// `buy`, `sell` (`""` on an mleg parent).
    pub side: String,
    /// `buy_to_open`, … when given.
    pub position_intent: Option<String>,
    /// `day`, `gtc`, …
    pub time_in_force: String,
    /// Limit price (an mleg parent's is net: positive a debit).
    pub limit_price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// `pending_new`, `new`, `held`, `filled`, …
    pub status: String,
    /// The parent, for a child order.
    pub parent: Option<String>,
    /// An mleg leg's share of the quantity.
    pub ratio_qty: Option<Decimal>,
}

impl Order {
    /// Whether it can still trade.
    pub fn is_open(&self) -> bool {
        !is_terminal(&self.status)
    }
}

/// A position: signed quantity.
#[derive(Debug, Clone)]
pub struct Position {
    /// The instrument.
    pub symbol: String,
    /// `us_equity`, `us_option`.
    pub asset_class: String,
    /// Signed: negative is short.
    pub qty: Decimal,
    /// Average entry price.
    pub avg_entry_price: Decimal,
    /// The price the simulator marks it at (and fills market orders at).
    pub current_price: Decimal,
}

/// A refusal: the HTTP status, Alpaca's eight-digit code, the message, and extra fields (the
/// held-quantity details of a 403).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The code (none for some 403s).
    pub code: Option<u64>,
    /// The message.
    pub message: String,
    /// More fields of the body.
    pub extra: Vec<(String, String)>,
}

impl Refusal {
    /// A refusal with a code and no extra fields.
    pub fn new(status: u16, code: u64, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Some(code),
            message: message.into(),
            extra: Vec::new(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, 40_010_001, message)
    }
}

/// `take_profit` and `stop_loss` of a request.
#[derive(Debug, Clone, Default)]
pub struct Exits {
    /// The take profit's limit price.
    pub take_profit: Option<Decimal>,
    /// The stop loss's stop price.
    pub stop_price: Option<Decimal>,
    /// The stop loss's limit price (a stop-limit).
    pub stop_limit: Option<Decimal>,
}

/// One leg of an mleg request.
#[derive(Debug, Clone)]
pub struct LegRequest {
    /// OCC symbol.
    pub symbol: String,
    /// Its share.
    pub ratio_qty: Decimal,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// The position effect.
    pub position_intent: Option<String>,
}

/// A placement request as its body says it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `symbol`.
    pub symbol: Option<String>,
    /// `qty`.
    pub qty: Option<Decimal>,
    /// `notional`.
    pub notional: Option<Decimal>,
    /// `side`.
    pub side: Option<String>,
    /// `type`.
    pub kind: Option<String>,
    /// `time_in_force`.
    pub time_in_force: Option<String>,
    /// `limit_price`.
    pub limit_price: Option<Decimal>,
    /// `stop_price`.
    pub stop_price: Option<Decimal>,
    /// `client_order_id`.
    pub client_order_id: Option<String>,
    /// `order_class`.
    pub order_class: Option<String>,
    /// `position_intent`.
    pub position_intent: Option<String>,
    /// `take_profit`, `stop_loss`.
    pub exits: Exits,
    /// mleg `legs`.
    pub legs: Vec<LegRequest>,
    /// `extended_hours`.
    pub extended_hours: bool,
}

/// A replacement's body.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// New quantity.
    pub qty: Option<Decimal>,
    /// New time in force.
    pub time_in_force: Option<String>,
    /// New limit price.
    pub limit_price: Option<Decimal>,
    /// New stop price.
    pub stop_price: Option<Decimal>,
    /// The replacement's client order id.
    pub client_order_id: Option<String>,
}

#[derive(Debug, Clone)]
enum Confirm {
    Accepted(String),
    Canceled(String),
    Replaced(String),
}

/// The simulator's state.
pub struct State {
    /// The key id it accepts.
    pub key_id: String,
    /// The secret key it accepts.
    pub secret_key: String,
    /// An OAuth token it accepts, if any.
    pub oauth_token: Option<String>,
    /// The account's UUID.
    pub account_id: String,
    /// The account number.
    pub account_number: String,
    /// The clock.
    pub now: DateTime<Utc>,
    /// When set, the clock follows the wall clock, shifted by this much.
    pub wall_clock: Option<TimeDelta>,
    /// Orders by id.
    pub orders: BTreeMap<String, Order>,
    /// Every client order id ever used: Alpaca never forgets one.
    pub used_client_ids: BTreeSet<String>,
    /// Positions.
    pub positions: Vec<Position>,
    counter: u64,
    confirms: Vec<Confirm>,
    /// While set, confirmations wait.
    pub hold_confirmations: bool,
    /// Requests allowed per rolling minute (`None`: no limit).
    pub rate_limit: Option<u32>,
    /// When the requests of the last minute came, by the wall clock.
    pub recent: VecDeque<std::time::Instant>,
}

fn sub_penny(p: Decimal) -> bool {
    let places = p.normalize().scale();
    if p.abs() >= Decimal::ONE {
        places > 2
    } else {
        places > 4
    }
}

/// Whether a symbol is an OCC option symbol (compact or padded).
pub fn is_option(symbol: &str) -> bool {
    let s = symbol.replace(' ', "");
    let b = s.as_bytes();
    b.len() >= 16
        && b[b.len() - 15..b.len() - 9].iter().all(u8::is_ascii_digit)
        && matches!(b[b.len() - 9], b'C' | b'P')
        && b[b.len() - 8..].iter().all(u8::is_ascii_digit)
}

/// An option's root, or the symbol itself.
pub fn underlying_of(symbol: &str) -> String {
    let s = symbol.replace(' ', "");
    if is_option(&s) {
        s[..s.len() - 15].to_owned()
    } else {
        s
    }
}

impl State {
    /// An empty account.
    pub fn new(now: DateTime<Utc>, key_id: &str, secret_key: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            secret_key: secret_key.to_owned(),
            oauth_token: None,
            account_id: "904837e3-3b76-47ec-b432-046db621571b".to_owned(),
            account_number: "PA3ALPACA01".to_owned(),
            now,
            wall_clock: None,
            orders: BTreeMap::new(),
            used_client_ids: BTreeSet::new(),
            positions: Vec::new(),
            counter: 0,
            confirms: Vec::new(),
            hold_confirmations: false,
            rate_limit: Some(200),
            recent: VecDeque::new(),
        }
    }

    /// A fresh UUID (version 4 in shape, sequential in content).
    pub fn uuid(&mut self) -> String {
        self.counter += 1;
        let n = self.counter;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            0x5151_0000u64 | (n >> 32),
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }

    /// Moves the clock to the wall clock, when it follows it, and applies the confirmations
    /// earlier requests asked for.
    pub fn tick(&mut self) {
        if let Some(shift) = self.wall_clock {
            self.now = Utc::now() + shift;
        }
        if self.hold_confirmations {
            return;
        }
        let now = self.now;
        for c in std::mem::take(&mut self.confirms) {
            match c {
                Confirm::Accepted(id) => {
                    let market = self
                        .orders
                        .get(&id)
                        .is_some_and(|o| o.kind == "market" && o.parent.is_none());
                    if let Some(o) = self
                        .orders
                        .get_mut(&id)
                        .filter(|o| o.status == "pending_new")
                    {
                        o.status = "new".to_owned();
                        o.updated_at = now;
                    }
                    if market {
                        self.fill(&id);
                    }
                }
                Confirm::Canceled(id) => {
                    if let Some(o) = self.orders.get_mut(&id).filter(|o| o.is_open()) {
                        o.status = "canceled".to_owned();
                        o.canceled_at = Some(now);
                        o.updated_at = now;
                    }
                }
                Confirm::Replaced(id) => {
                    if let Some(o) = self.orders.get_mut(&id).filter(|o| o.is_open()) {
                        o.status = "replaced".to_owned();
                        o.replaced_at = Some(now);
                        o.updated_at = now;
                    }
                }
            }
        }
    }

    /// Counts a request against the rolling-minute limit; `false` when it is over.
    pub fn admit(&mut self) -> bool {
        let Some(limit) = self.rate_limit else {
            return true;
        };
        let now = std::time::Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= limit as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// The children of a group, in the order they were made.
    pub fn children(&self, id: &str) -> Vec<&Order> {
        let mut c: Vec<&Order> = self
            .orders
            .values()
            .filter(|o| o.parent.as_deref() == Some(id))
            .collect();
        c.sort_by_key(|o| o.id.clone());
        c
    }

    fn position(&self, symbol: &str) -> Option<&Position> {
        self.positions.iter().find(|p| p.symbol == symbol)
    }

    /// Shares of `symbol` open orders hold: each open sell (or, for a short, buy) once per
    /// group, the larger leg of a group counting for the group.
    pub fn held_for_orders(&self, symbol: &str, selling: bool) -> Decimal {
        let mut by_group: BTreeMap<String, Decimal> = BTreeMap::new();
        for o in self.orders.values() {
            let side_ok = (o.side == "sell") == selling && !o.side.is_empty();
            if o.symbol != symbol || !o.is_open() || !side_ok {
                continue;
            }
            // The entry of a bracket holds nothing; its exits hold once, as one group.
            let group = match (&o.parent, o.order_class.as_str()) {
                (Some(p), _) => p.clone(),
                (None, "oco") => o.id.clone(),
                (None, _) => o.id.clone(),
            };
            let e = by_group.entry(group).or_default();
            *e = (*e).max(o.qty - o.filled_qty);
        }
        by_group.values().copied().sum()
    }

    /// What a position has available for new closing orders.
    pub fn available(&self, symbol: &str) -> Decimal {
        self.position(symbol).map_or(Decimal::ZERO, |p| {
            let held = self.held_for_orders(symbol, p.qty > Decimal::ZERO);
            p.qty.abs() - held
        })
    }

    fn check_shares(&self, symbol: &str, side: &str, qty: Decimal) -> Result<(), Refusal> {
        let Some(p) = self.position(symbol) else {
            return Ok(());
        };
        let closing =
            (p.qty > Decimal::ZERO && side == "sell") || (p.qty < Decimal::ZERO && side == "buy");
        if !closing {
            return Ok(());
        }
        let available = self.available(symbol);
        if qty > available {
            let held = self.held_for_orders(symbol, p.qty > Decimal::ZERO);
            return Err(Refusal {
                status: 403,
                code: Some(40_310_000),
                message: format!(
                    "insufficient qty available for order (requested: {}, available: {})",
                    qty.normalize(),
                    available.normalize()
                ),
                extra: vec![
                    ("available".to_owned(), available.normalize().to_string()),
                    (
                        "existing_qty".to_owned(),
                        p.qty.abs().normalize().to_string(),
                    ),
                    ("held_for_orders".to_owned(), held.normalize().to_string()),
                    ("symbol".to_owned(), symbol.to_owned()),
                ],
            });
        }
        Ok(())
    }

    /// A closing position intent needs a position to close, the right way round. (The
    /// simulator's wording: Alpaca's exact message for this refusal is not documented.)
    fn check_intent(&self, symbol: &str, intent: Option<&str>) -> Result<(), Refusal> {
        let held = self.position(symbol).map_or(Decimal::ZERO, |p| p.qty);
        let ok = match intent {
            Some("sell_to_close") => held > Decimal::ZERO,
            Some("buy_to_close") => held < Decimal::ZERO,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(
                403,
                40_310_000,
                format!("position intent mismatch: no position in {symbol} to close"),
            ))
        }
    }

    fn client_id(&mut self, given: Option<&str>) -> Result<String, Refusal> {
        match given {
            Some(c) if c.len() > 128 => Err(Refusal::invalid(
                "client_order_id must be no more than 128 characters",
            )),
            Some(c) if self.used_client_ids.contains(c) => {
                Err(Refusal::invalid("client_order_id must be unique"))
            }
            Some(c) => Ok(c.to_owned()),
            None => Ok(self.uuid()),
        }
    }

    fn price_ok(p: Option<Decimal>, what: &str) -> Result<(), Refusal> {
        match p {
            Some(p) if sub_penny(p) => Err(Refusal::new(
                422,
                42_210_000,
                format!(
                    "invalid {what} {}. sub-penny increment does not fulfill minimum pricing criteria",
                    p.normalize()
                ),
            )),
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &mut self,
        cid: String,
        symbol: &str,
        class: &str,
        kind: &str,
        side: &str,
        qty: Decimal,
        tif: &str,
        limit: Option<Decimal>,
        stop: Option<Decimal>,
        parent: Option<String>,
        status: &str,
    ) -> Order {
        let now = self.now;
        Order {
            id: self.uuid(),
            client_order_id: cid,
            created_at: now,
            updated_at: now,
            submitted_at: now,
            filled_at: None,
            canceled_at: None,
            replaced_at: None,
            replaced_by: None,
            replaces: None,
            symbol: symbol.to_owned(),
            asset_class: if symbol.is_empty() {
                String::new()
            } else if is_option(symbol) {
                "us_option".to_owned()
            } else {
                "us_equity".to_owned()
            },
            qty,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            order_class: class.to_owned(),
            kind: kind.to_owned(),
            side: side.to_owned(),
            position_intent: None,
            time_in_force: tif.to_owned(),
            limit_price: limit,
            stop_price: stop,
            status: status.to_owned(),
            parent,
            ratio_qty: None,
        }
    }

    /// Places an order: simple, `oco`, `bracket` or `mleg`. The answer is the parent (with its
    /// children when nested); new orders are `pending_new` until the next request.
    pub fn place(&mut self, req: &Request) -> Result<String, Refusal> {
        let class = req.order_class.clone().unwrap_or_default();
        let class = if class == "simple" {
            String::new()
        } else {
            class
        };
        let kind = req
            .kind
            .clone()
            .ok_or_else(|| Refusal::invalid("type is required"))?;
        let tif = req
            .time_in_force
            .clone()
            .ok_or_else(|| Refusal::invalid("time_in_force is required"))?;
        if !matches!(
            kind.as_str(),
            "market" | "limit" | "stop" | "stop_limit" | "trailing_stop"
        ) {
            return Err(Refusal::invalid(format!("invalid type {kind:?}")));
        }
        if !matches!(tif.as_str(), "day" | "gtc" | "opg" | "cls" | "ioc" | "fok") {
            return Err(Refusal::invalid(format!("invalid time_in_force {tif:?}")));
        }
        if matches!(kind.as_str(), "limit" | "stop_limit") && req.limit_price.is_none() {
            return Err(Refusal::invalid(
                "limit_price is required for this order type",
            ));
        }
        if matches!(kind.as_str(), "stop" | "stop_limit") && req.stop_price.is_none() {
            return Err(Refusal::invalid(
                "stop_price is required for this order type",
            ));
        }
        Self::price_ok(req.limit_price, "limit_price")?;
        Self::price_ok(req.stop_price, "stop_price")?;
        if req.extended_hours && !(kind == "limit" && tif == "day") {
            return Err(Refusal::invalid(
                "extended hours order must be DAY limit orders",
            ));
        }
        let cid = self.client_id(req.client_order_id.as_deref())?;
        let qty = match (req.qty, req.notional) {
            (Some(q), None) if q > Decimal::ZERO => q,
            (None, Some(_)) => return Err(Refusal::invalid("notional orders are not simulated")),
            _ => return Err(Refusal::invalid("qty is required and must be positive")),
        };
        let id = match class.as_str() {
            "mleg" => self.place_mleg(req, cid, &kind, &tif, qty)?,
            "" | "oco" | "bracket" | "oto" => {
                let symbol = req
                    .symbol
                    .clone()
                    .ok_or_else(|| Refusal::invalid("symbol is required"))?
                    .replace(' ', "");
                let side = req
                    .side
                    .clone()
                    .ok_or_else(|| Refusal::invalid("side is required"))?;
                if side != "buy" && side != "sell" {
                    return Err(Refusal::invalid(format!("invalid side {side:?}")));
                }
                if is_option(&symbol) {
                    if tif != "day" {
                        return Err(Refusal::invalid("options orders must be day orders"));
                    }
                    if !qty.fract().is_zero() {
                        return Err(Refusal::invalid("qty must be integer for options"));
                    }
                }
                match class.as_str() {
                    "oco" => self.place_oco(req, cid, &symbol, &side, qty, &tif, &kind)?,
                    "bracket" | "oto" => {
                        self.place_bracket(req, cid, &class, &symbol, &side, qty, &tif, &kind)?
                    }
                    _ => {
                        self.check_intent(&symbol, req.position_intent.as_deref())?;
                        self.check_shares(&symbol, &side, qty)?;
                        let mut o = self.new_order(
                            cid,
                            &symbol,
                            "",
                            &kind,
                            &side,
                            qty,
                            &tif,
                            req.limit_price,
                            req.stop_price,
                            None,
                            "pending_new",
                        );
                        o.position_intent.clone_from(&req.position_intent);
                        let id = o.id.clone();
                        self.orders.insert(id.clone(), o);
                        id
                    }
                }
            }
            other => return Err(Refusal::invalid(format!("invalid order_class {other:?}"))),
        };
        if let Some(o) = self.orders.get(&id) {
            self.used_client_ids.insert(o.client_order_id.clone());
        }
        self.confirms.push(Confirm::Accepted(id.clone()));
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn place_oco(
        &mut self,
        req: &Request,
        cid: String,
        symbol: &str,
        side: &str,
        qty: Decimal,
        tif: &str,
        kind: &str,
    ) -> Result<String, Refusal> {
        if kind != "limit" {
            return Err(Refusal::invalid("oco orders must be limit orders"));
        }
        let take = req
            .exits
            .take_profit
            .or(req.limit_price)
            .ok_or_else(|| Refusal::invalid("take_profit.limit_price is required"))?;
        let stop = req
            .exits
            .stop_price
            .ok_or_else(|| Refusal::invalid("stop_loss.stop_price is required"))?;
        Self::price_ok(Some(take), "take_profit.limit_price")?;
        Self::price_ok(Some(stop), "stop_loss.stop_price")?;
        // Exit-only: the shares must be there, once for the pair.
        if self.position(symbol).is_none() {
            return Err(Refusal::new(
                403,
                40_310_000,
                "oco orders must close a position",
            ));
        }
        self.check_shares(symbol, side, qty)?;
        let parent = self.new_order(
            cid,
            symbol,
            "oco",
            "limit",
            side,
            qty,
            tif,
            Some(take),
            None,
            None,
            "pending_new",
        );
        let pid = parent.id.clone();
        self.orders.insert(pid.clone(), parent);
        let leg_cid = self.uuid();
        let stop_kind = if req.exits.stop_limit.is_some() {
            "stop_limit"
        } else {
            "stop"
        };
        let child = self.new_order(
            leg_cid,
            symbol,
            "oco",
            stop_kind,
            side,
            qty,
            tif,
            req.exits.stop_limit,
            Some(stop),
            Some(pid.clone()),
            "held",
        );
        self.used_client_ids.insert(child.client_order_id.clone());
        self.orders.insert(child.id.clone(), child);
        Ok(pid)
    }

    #[allow(clippy::too_many_arguments)]
    fn place_bracket(
        &mut self,
        req: &Request,
        cid: String,
        class: &str,
        symbol: &str,
        side: &str,
        qty: Decimal,
        tif: &str,
        kind: &str,
    ) -> Result<String, Refusal> {
        if !matches!(kind, "market" | "limit") {
            return Err(Refusal::invalid(
                "bracket orders must be market or limit orders",
            ));
        }
        if !matches!(tif, "day" | "gtc") {
            return Err(Refusal::invalid("bracket orders must be day or gtc"));
        }
        let take = req.exits.take_profit;
        let stop = req.exits.stop_price;
        if class == "bracket" && (take.is_none() || stop.is_none()) {
            return Err(Refusal::invalid(
                "bracket orders need a take_profit and a stop_loss",
            ));
        }
        let entry = self.new_order(
            cid,
            symbol,
            class,
            kind,
            side,
            qty,
            tif,
            req.limit_price,
            None,
            None,
            "pending_new",
        );
        let pid = entry.id.clone();
        self.orders.insert(pid.clone(), entry);
        let exit_side = if side == "buy" { "sell" } else { "buy" };
        if let Some(t) = take {
            let c = self.uuid();
            let o = self.new_order(
                c,
                symbol,
                class,
                "limit",
                exit_side,
                qty,
                tif,
                Some(t),
                None,
                Some(pid.clone()),
                "held",
            );
            self.used_client_ids.insert(o.client_order_id.clone());
            self.orders.insert(o.id.clone(), o);
        }
        if let Some(s) = stop {
            let c = self.uuid();
            let k = if req.exits.stop_limit.is_some() {
                "stop_limit"
            } else {
                "stop"
            };
            let o = self.new_order(
                c,
                symbol,
                class,
                k,
                exit_side,
                qty,
                tif,
                req.exits.stop_limit,
                Some(s),
                Some(pid.clone()),
                "held",
            );
            self.used_client_ids.insert(o.client_order_id.clone());
            self.orders.insert(o.id.clone(), o);
        }
        Ok(pid)
    }

    fn place_mleg(
        &mut self,
        req: &Request,
        cid: String,
        kind: &str,
        tif: &str,
        qty: Decimal,
    ) -> Result<String, Refusal> {
        if !matches!(kind, "market" | "limit") {
            return Err(Refusal::invalid(
                "mleg orders must be market or limit orders",
            ));
        }
        if tif != "day" {
            return Err(Refusal::invalid("options orders must be day orders"));
        }
        if !(2..=4).contains(&req.legs.len()) {
            return Err(Refusal::invalid("mleg orders take 2 to 4 legs"));
        }
        let mut seen = BTreeSet::new();
        for l in &req.legs {
            if !seen.insert(l.symbol.replace(' ', "")) {
                return Err(Refusal::invalid("mleg legs need distinct symbols"));
            }
            if !is_option(&l.symbol) {
                return Err(Refusal::invalid(format!(
                    "{} is not an option contract",
                    l.symbol
                )));
            }
            self.check_intent(&l.symbol.replace(' ', ""), l.position_intent.as_deref())?;
        }
        let mut parent = self.new_order(
            cid,
            "",
            "mleg",
            kind,
            "",
            qty,
            tif,
            req.limit_price,
            None,
            None,
            "pending_new",
        );
        parent.asset_class = String::new();
        let pid = parent.id.clone();
        self.orders.insert(pid.clone(), parent);
        for l in &req.legs {
            let side = l.side.clone().unwrap_or_else(|| {
                if l.position_intent
                    .as_deref()
                    .is_some_and(|p| p.starts_with("buy"))
                {
                    "buy"
                } else {
                    "sell"
                }
                .to_owned()
            });
            let c = self.uuid();
            let mut o = self.new_order(
                c,
                &l.symbol.replace(' ', ""),
                "mleg",
                "",
                &side,
                qty * l.ratio_qty,
                tif,
                None,
                None,
                Some(pid.clone()),
                "pending_new",
            );
            o.ratio_qty = Some(l.ratio_qty);
            o.position_intent.clone_from(&l.position_intent);
            self.used_client_ids.insert(o.client_order_id.clone());
            let oid = o.id.clone();
            self.orders.insert(oid.clone(), o);
            self.confirms.push(Confirm::Accepted(oid));
        }
        Ok(pid)
    }

    /// The orders of one group: the parent and its children.
    fn group(&self, id: &str) -> Vec<String> {
        let root = self
            .orders
            .get(id)
            .and_then(|o| o.parent.clone())
            .unwrap_or_else(|| id.to_owned());
        let mut ids = vec![root.clone()];
        ids.extend(self.children(&root).iter().map(|o| o.id.clone()));
        ids
    }

    /// Requests a cancel (204): `pending_cancel` until the next request, then `canceled`.
    /// Cancelling one order of a group cancels the group.
    pub fn cancel(&mut self, id: &str) -> Result<(), Refusal> {
        let o = self
            .orders
            .get(id)
            .ok_or_else(|| Refusal::new(404, 40_410_000, "order not found"))?;
        if !o.is_open() || o.status == "pending_replace" {
            return Err(Refusal::new(
                422,
                42_210_000,
                format!("order is already in \"{}\" state", o.status),
            ));
        }
        let now = self.now;
        let class = o.order_class.clone();
        let targets = if matches!(class.as_str(), "oco" | "bracket" | "oto" | "mleg") {
            self.group(id)
        } else {
            vec![id.to_owned()]
        };
        for t in targets {
            if let Some(o) = self.orders.get_mut(&t).filter(|o| o.is_open()) {
                o.status = "pending_cancel".to_owned();
                o.updated_at = now;
                self.confirms.push(Confirm::Canceled(t));
            }
        }
        Ok(())
    }

    /// Replaces an order (a new id; the original `pending_replace`, then `replaced`). The
    /// order must have reached the exchange.
    pub fn replace(&mut self, id: &str, patch: &Patch) -> Result<String, Refusal> {
        let old = self
            .orders
            .get(id)
            .cloned()
            .ok_or_else(|| Refusal::new(404, 40_410_000, "order not found"))?;
        if !old.is_open() || matches!(old.status.as_str(), "pending_cancel" | "pending_replace") {
            return Err(Refusal::new(
                422,
                42_210_000,
                format!("order is in \"{}\" state", old.status),
            ));
        }
        if matches!(old.status.as_str(), "pending_new" | "accepted") {
            return Err(Refusal::new(
                422,
                42_210_000,
                "unable to replace order, order isn't sent to exchange yet",
            ));
        }
        Self::price_ok(patch.limit_price, "limit_price")?;
        Self::price_ok(patch.stop_price, "stop_price")?;
        let cid = self.client_id(patch.client_order_id.as_deref())?;
        let mut new = old.clone();
        new.id = self.uuid();
        new.client_order_id = cid;
        new.replaces = Some(old.id.clone());
        new.replaced_by = None;
        new.status = "pending_new".to_owned();
        new.created_at = self.now;
        new.updated_at = self.now;
        new.submitted_at = self.now;
        if let Some(q) = patch.qty {
            new.qty = q;
        }
        if let Some(t) = &patch.time_in_force {
            new.time_in_force.clone_from(t);
        }
        if patch.limit_price.is_some() {
            new.limit_price = patch.limit_price;
        }
        if patch.stop_price.is_some() {
            new.stop_price = patch.stop_price;
        }
        let now = self.now;
        if let Some(o) = self.orders.get_mut(id) {
            o.status = "pending_replace".to_owned();
            o.replaced_by = Some(new.id.clone());
            o.updated_at = now;
        }
        // A replaced parent hands its children to the replacement.
        for c in self.orders.values_mut() {
            if c.parent.as_deref() == Some(id) {
                c.parent = Some(new.id.clone());
            }
        }
        self.used_client_ids.insert(new.client_order_id.clone());
        let nid = new.id.clone();
        self.orders.insert(nid.clone(), new);
        self.confirms.push(Confirm::Replaced(id.to_owned()));
        self.confirms.push(Confirm::Accepted(nid.clone()));
        Ok(nid)
    }

    /// Fills an order completely at its limit (or stop, or the position's price) and moves the
    /// position. A filled exit cancels the rest of its group; a filled bracket entry releases
    /// its exits (the take profit goes `new`, the stop stays `held`).
    pub fn fill(&mut self, id: &str) {
        let now = self.now;
        let Some(o) = self.orders.get(id).cloned() else {
            return;
        };
        if !o.is_open() {
            return;
        }
        let mark = self.position(&o.symbol).map(|p| p.current_price);
        let price = o
            .limit_price
            .or(o.stop_price)
            .or(mark)
            .unwrap_or(Decimal::ONE)
            .abs();
        let legs: Vec<Order> = if o.order_class == "mleg" && o.parent.is_none() {
            self.children(id).into_iter().cloned().collect()
        } else {
            vec![o.clone()]
        };
        for l in &legs {
            let delta = if l.side == "buy" { l.qty } else { -l.qty };
            match self.positions.iter_mut().find(|p| p.symbol == l.symbol) {
                Some(p) => {
                    if (p.qty > Decimal::ZERO) == (delta > Decimal::ZERO) && !p.qty.is_zero() {
                        let total = p.qty.abs() + delta.abs();
                        p.avg_entry_price =
                            (p.avg_entry_price * p.qty.abs() + price * delta.abs()) / total;
                    }
                    p.qty += delta;
                }
                None => self.positions.push(Position {
                    symbol: l.symbol.clone(),
                    asset_class: l.asset_class.clone(),
                    qty: delta,
                    avg_entry_price: price,
                    current_price: price,
                }),
            }
            if let Some(x) = self.orders.get_mut(&l.id) {
                x.status = "filled".to_owned();
                x.filled_qty = x.qty;
                x.filled_avg_price = Some(price);
                x.filled_at = Some(now);
                x.updated_at = now;
            }
        }
        if let Some(x) = self.orders.get_mut(id) {
            x.status = "filled".to_owned();
            x.filled_qty = x.qty;
            x.filled_avg_price = Some(price);
            x.filled_at = Some(now);
            x.updated_at = now;
        }
        self.positions.retain(|p| !p.qty.is_zero());
        match (&o.parent, o.order_class.as_str()) {
            // An exit filled: the rest of its group is cancelled.
            (Some(p), "oco" | "bracket" | "oto") => {
                let p = p.clone();
                self.cancel_rest(&p, id);
            }
            (None, "oco") => self.cancel_rest(id, id),
            // A bracket's entry filled: its exits activate.
            (None, "bracket" | "oto") => {
                let exits: Vec<String> = self.children(id).iter().map(|c| c.id.clone()).collect();
                for (n, e) in exits.iter().enumerate() {
                    if let Some(x) = self.orders.get_mut(e) {
                        if n == 0 && x.kind == "limit" {
                            x.status = "new".to_owned();
                        }
                        x.updated_at = now;
                    }
                }
            }
            _ => {}
        }
    }

    fn cancel_rest(&mut self, group: &str, filled: &str) {
        let now = self.now;
        let mut ids = vec![group.to_owned()];
        ids.extend(self.children(group).iter().map(|c| c.id.clone()));
        for i in ids {
            if i == filled {
                continue;
            }
            if let Some(o) = self.orders.get_mut(&i).filter(|o| o.is_open()) {
                o.status = "canceled".to_owned();
                o.canceled_at = Some(now);
                o.updated_at = now;
            }
        }
    }

    /// Cancels an order by hand (with its group), at once.
    pub fn cancel_by_hand(&mut self, id: &str) {
        let now = self.now;
        for i in self.group(id) {
            if let Some(o) = self.orders.get_mut(&i).filter(|o| o.is_open()) {
                o.status = "canceled".to_owned();
                o.canceled_at = Some(now);
                o.updated_at = now;
            }
        }
    }
}
