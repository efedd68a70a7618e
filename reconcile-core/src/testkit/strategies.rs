//! proptest strategies that generate realistic snapshot pairs: option positions with closing
//! targets, and a broker whose orders and holdings agree or disagree in every way the diff knows.

use super::build::{at, dec, holding, intent, order, position, target};
use crate::diff::DiffOptions;
use crate::model::{OrderStatus, Position, PositionState, Side, TargetStatus};
use crate::scope::Scope;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use chrono::TimeDelta;
use proptest::prelude::*;

/// The instant every generated pair is "as of".
pub const AS_OF: &str = "2025-11-07T15:00:00Z";

/// How long before [`AS_OF`] something happened, measured against the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Half the grace period ago.
    Recent,
    /// Exactly the grace period ago.
    AtGrace,
    /// A millisecond more than the grace period ago.
    PastGrace,
    /// Three hours ago (longer than any generated grace period).
    LongAgo,
}

impl Age {
    /// How long ago, for a grace period.
    pub fn ago(self, grace: TimeDelta) -> TimeDelta {
        match self {
            Age::Recent => grace / 2,
            Age::AtGrace => grace,
            Age::PastGrace => grace + TimeDelta::milliseconds(1),
            Age::LongAgo => TimeDelta::hours(3),
        }
    }
}

fn age() -> impl Strategy<Value = Age> {
    prop_oneof![
        2 => Just(Age::Recent),
        1 => Just(Age::AtGrace),
        1 => Just(Age::PastGrace),
        2 => Just(Age::LongAgo),
    ]
}

/// What became of one target at the broker.
#[derive(Debug, Clone, Copy)]
pub enum Fate {
    /// Working as expected, in this working status.
    Matched(OrderStatus),
    /// Working, but not as expected.
    Drifted(Drift),
    /// Finished with this status.
    Terminal(OrderStatus),
    /// Unknown to the broker; placed this long ago.
    NotFound {
        /// When it was placed.
        age: Age,
    },
    /// Never placed.
    Unplaced,
    /// Never placed, but an unreferenced order with its legs is working.
    UnplacedWithOrder,
    /// An intent was written; the order may or may not have reached the broker.
    Intent {
        /// When it was written.
        age: Age,
        /// The order reached the broker.
        sent: bool,
    },
    /// Settled locally.
    Settled,
    /// References the same order as the previous target.
    SharesOrder,
    /// Its order was replaced at the broker by a working one with the same legs.
    Replaced {
        /// Only the replacement names the order it replaced (`replaces`); else only the
        /// replaced order names its replacement (`replaced_by`).
        back_link: bool,
        /// Replaced twice: the first replacement was itself replaced.
        twice: bool,
    },
    /// Active, referencing its order, and that order carries the target's own client order id
    /// (as a placement this tool made would).
    OwnClientId,
    /// Unplaced, but with its own client order id and a time it was placed (a placement whose
    /// order id was never linked); the order with that client order id reached the broker or
    /// not.
    Placing {
        /// When it was placed.
        age: Age,
        /// The order reached the broker.
        sent: bool,
    },
}

/// How a drifted order differs from its target.
#[derive(Debug, Clone, Copy)]
pub enum Drift {
    /// Another limit price.
    LimitPrice,
    /// Another stop price (the target is a stop limit).
    StopPrice,
    /// Another quantity on its leg.
    Quantity,
    /// Another instrument on its leg.
    Legs,
    /// Another side on its leg.
    Side,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => prop::sample::select(vec![
            OrderStatus::Live,
            OrderStatus::Pending,
            OrderStatus::Held,
            OrderStatus::PartiallyFilled,
            OrderStatus::PendingCancel,
            OrderStatus::PendingReplace,
        ])
        .prop_map(Fate::Matched),
        1 => prop::sample::select(vec![
            Drift::LimitPrice,
            Drift::StopPrice,
            Drift::Quantity,
            Drift::Legs,
            Drift::Side,
        ])
            .prop_map(Fate::Drifted),
        2 => prop_oneof![
            Just(OrderStatus::Filled),
            Just(OrderStatus::Cancelled),
            Just(OrderStatus::Expired),
            Just(OrderStatus::Rejected)
        ]
        .prop_map(Fate::Terminal),
        1 => age().prop_map(|age| Fate::NotFound { age }),
        2 => Just(Fate::Unplaced),
        1 => Just(Fate::UnplacedWithOrder),
        1 => (age(), any::<bool>()).prop_map(|(age, sent)| Fate::Intent { age, sent }),
        1 => Just(Fate::Settled),
        1 => Just(Fate::SharesOrder),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(back_link, twice)| Fate::Replaced { back_link, twice }),
        1 => Just(Fate::OwnClientId),
        1 => (age(), any::<bool>()).prop_map(|(age, sent)| Fate::Placing { age, sent }),
    ]
}

/// What the broker holds of a position's legs.
#[derive(Debug, Clone, Copy)]
pub enum Holding {
    /// Exactly the legs.
    Exact,
    /// Nothing.
    Flat,
    /// One more of each leg, in the leg's direction.
    More,
}

fn holding_kind() -> impl Strategy<Value = Holding> {
    prop_oneof![6 => Just(Holding::Exact), 1 => Just(Holding::Flat), 1 => Just(Holding::More)]
}

#[derive(Debug, Clone)]
struct PosPlan {
    account: u8,
    underlying: u8,
    state: PositionState,
    fates: Vec<Fate>,
    holding: Holding,
    /// Shares the previous position's account, underlying and leg symbols (two positions on
    /// the same instruments: ambiguous leg fits, holdings summed across positions, and a first
    /// `SharesOrder` target referencing the previous position's last order).
    shares: bool,
}

fn pos_plan() -> impl Strategy<Value = PosPlan> {
    (
        0u8..2,
        0u8..2,
        prop_oneof![
            6 => Just(PositionState::Open),
            1 => Just(PositionState::Pending),
            1 => Just(PositionState::Closing),
            1 => Just(PositionState::Closed)
        ],
        prop::collection::vec(fate(), 0..=3),
        holding_kind(),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(account, underlying, state, fates, holding, shares)| PosPlan {
                account,
                underlying,
                state,
                fates,
                holding,
                shares,
            },
        )
}

const KEYS: [&str; 3] = ["call_spread", "put_spread_1", "put_spread_2"];
const PRICES: [&str; 3] = ["0.60", "0.55", "1.25"];

fn sym(underlying: &str, pos: usize, leg: usize) -> String {
    let strike = 100 + pos * 10 + leg;
    format!(
        "{underlying:<6}2512{:02}C{:08}",
        (pos % 28) + 1,
        strike * 1000
    )
}

/// A realistic (local, broker) pair, holdings known in most cases.
pub fn snapshot_pair() -> impl Strategy<Value = (LocalSnapshot, BrokerSnapshot)> {
    planned_pair().prop_map(|(l, b, _)| (l, b))
}

/// One generated target and what the generator made of it, for a property to judge the diff's
/// verdict against what was intended.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its position's id.
    pub position_id: String,
    /// Its position's state.
    pub state: PositionState,
    /// Its key.
    pub key: String,
    /// The order id it references, if any.
    pub order_id: Option<String>,
    /// What became of it at the broker.
    pub fate: Fate,
    /// The id of the order generated for it (listed at the broker or not, by its fate).
    pub made_order: String,
}

/// An order no target references or fits (on account `A1`, underlying `QQQ`), as generated.
#[derive(Debug, Clone)]
pub struct PlannedOrphan {
    /// Its id.
    pub order_id: String,
    /// When it was submitted; `None` for an order that has no submit time.
    pub submitted: Option<Age>,
    /// Its status is `pending` (else `live`).
    pub pending: bool,
}

/// A generated pair, what was meant for each of its targets and orphans, and the options to
/// diff it with.
#[derive(Debug, Clone)]
pub struct Case {
    /// The local records.
    pub local: LocalSnapshot,
    /// The broker's side.
    pub broker: BrokerSnapshot,
    /// Every target, with what became of it.
    pub targets: Vec<Planned>,
    /// The orders nothing explains but their age.
    pub orphans: Vec<PlannedOrphan>,
    /// The grace period the times were made against, and a scope.
    pub options: DiffOptions,
}

fn case(grace: impl Strategy<Value = TimeDelta>) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(pos_plan(), 0..8),
        prop::collection::vec((prop::option::weighted(0.8, age()), any::<bool>()), 0..4),
        0usize..3,
        prop::bool::weighted(0.9),
        grace,
    )
        .prop_map(|(plans, orphans, untracked, holdings_known, grace)| {
            build_pair(&plans, &orphans, untracked, holdings_known, grace)
        })
}

/// A pair as [`snapshot_pair`] makes it (grace period 60 s), with every target's intended fate.
pub fn planned_pair() -> impl Strategy<Value = (LocalSnapshot, BrokerSnapshot, Vec<Planned>)> {
    case(Just(TimeDelta::seconds(60))).prop_map(|c| (c.local, c.broker, c.targets))
}

/// Some of `all`, or (twice as often) none of them.
fn some_of<T: Clone + std::fmt::Debug + Ord + 'static>(
    all: Vec<T>,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![2 => Just(Vec::new()), 1 => prop::sample::subsequence(all, 1..=2)]
}

/// A scope over the generated accounts, underlyings, states and positions: everything half the
/// time, else some of each part.
pub fn scope() -> impl Strategy<Value = Scope> {
    let parts = (
        some_of(vec!["A1", "A2"]),
        some_of(vec!["QQQ", "SPY", "QCOM", "NVDA"]),
        some_of(vec![
            PositionState::Pending,
            PositionState::Open,
            PositionState::Closing,
            PositionState::Closed,
        ]),
        some_of((0..8).map(|i| format!("p{i}")).collect()),
    )
        .prop_map(|(accounts, underlyings, states, positions)| {
            let s = accounts.into_iter().fold(Scope::all(), Scope::with_account);
            let s = underlyings.into_iter().fold(s, Scope::with_underlying);
            let s = states.into_iter().fold(s, Scope::with_state);
            positions.into_iter().fold(s, Scope::with_position)
        });
    prop_oneof![Just(Scope::all()), parts]
}

/// A [`Case`] with a grace period of none, a second, a minute, ninety seconds or an hour, times
/// drawn around it (exactly at it included), and a scope.
pub fn planned_case() -> impl Strategy<Value = Case> {
    let grace = prop::sample::select(vec![0i64, 1, 60, 90, 3600]).prop_map(TimeDelta::seconds);
    (case(grace), scope()).prop_map(|(mut c, scope)| {
        c.options.scope = scope;
        c
    })
}

fn build_pair(
    plans: &[PosPlan],
    orphans: &[(Option<Age>, bool)],
    untracked: usize,
    holdings_known: bool,
    grace: TimeDelta,
) -> Case {
    let mut planned = Vec::new();
    let as_of = at(AS_OF);
    let when = |a: Age| as_of - a.ago(grace);
    let long_ago = when(Age::LongAgo);
    let recently = when(Age::Recent);
    let mut positions: Vec<Position> = Vec::new();
    let mut orders = Vec::new();
    let mut intents = Vec::new();
    let mut held = Vec::new();
    let mut next_order = 1000u32;
    // Per position: the index its symbols are made from, its account and underlying, and the
    // last order id its targets referenced or made.
    let mut made: Vec<(usize, u8, u8, Option<String>)> = Vec::new();
    for (pi, plan) in plans.iter().enumerate() {
        let (base, acc, und, inherited) = match made.last() {
            Some((base, acc, und, last)) if plan.shares => (*base, *acc, *und, last.clone()),
            _ => (pi, plan.account, plan.underlying, None),
        };
        let account = ["A1", "A2"][acc as usize];
        let underlying = ["QQQ", "SPY"][und as usize];
        let pid = format!("p{pi}");
        let mut p = position(&pid, account, underlying);
        p.state = plan.state;
        p.opened_at = Some(long_ago);
        // One short leg per target key slot, so each target closes its own leg.
        let n_legs = plan.fates.len().max(1);
        for li in 0..n_legs {
            p.legs.push(crate::model::PositionLeg {
                symbol: crate::Symbol::new(&sym(underlying, base, li)),
                quantity: dec("-1"),
            });
        }
        let mut last_order: Option<String> = inherited;
        for (ti, f) in plan.fates.iter().enumerate() {
            let s = sym(underlying, base, ti);
            let price = PRICES[ti % 3];
            let mut t = target(KEYS[ti]);
            t.limit_price = Some(dec(price));
            t.quantity = Some(dec("1"));
            t.legs.push(crate::model::TargetLeg {
                symbol: crate::Symbol::new(&s),
                side: Side::BuyToClose,
                quantity: dec("1"),
            });
            let mut o = order(&next_order.to_string(), account, underlying);
            o.limit_price = Some(dec(price));
            o.submitted_at = Some(long_ago);
            o.legs.push(crate::model::OrderLeg {
                symbol: crate::Symbol::new(&s),
                side: Side::BuyToClose,
                quantity: dec("1"),
                filled_quantity: dec("0"),
            });
            let oid = o.id.to_string();
            next_order += 1;
            match *f {
                Fate::Matched(status) => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    o.status = status;
                    orders.push(o);
                }
                Fate::Drifted(how) => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    match how {
                        Drift::LimitPrice => o.limit_price = Some(dec("9.99")),
                        Drift::StopPrice => {
                            t.stop_price = Some(dec("1.50"));
                            o.stop_price = Some(dec("1.75"));
                        }
                        Drift::Side => o.legs[0].side = Side::BuyToOpen,
                        Drift::Quantity => o.legs[0].quantity = dec("2"),
                        Drift::Legs => {
                            o.legs[0].symbol = crate::Symbol::new(&sym(underlying, base, ti + 5));
                        }
                    }
                    orders.push(o);
                }
                Fate::Terminal(st) => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    o.status = st;
                    orders.push(o);
                }
                Fate::NotFound { age } => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    t.placed_at = Some(when(age));
                }
                Fate::Unplaced => {}
                Fate::UnplacedWithOrder => orders.push(o),
                Fate::Intent { age, sent } => {
                    let cid = format!("rc-gen-{pi}-{ti}");
                    intents.push(intent(&cid, &pid, KEYS[ti], &when(age).to_rfc3339()));
                    if sent {
                        o.client_order_id = Some(cid.as_str().into());
                        o.submitted_at = Some(recently);
                        orders.push(o);
                    }
                }
                Fate::Replaced { back_link, twice } => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    let mut chain = vec![o];
                    for _ in 0..if twice { 2 } else { 1 } {
                        let last = chain.len() - 1;
                        let mut n = chain[last].clone();
                        n.id = format!("{next_order}").as_str().into();
                        next_order += 1;
                        let old = &mut chain[last];
                        old.status = OrderStatus::Replaced;
                        if back_link {
                            n.replaces = Some(old.id.clone());
                        } else {
                            old.replaced_by = Some(n.id.clone());
                        }
                        chain.push(n);
                    }
                    orders.extend(chain);
                }
                Fate::Placing { age, sent } => {
                    let cid = format!("rc-placing-{pi}-{ti}");
                    t.client_order_id = Some(cid.as_str().into());
                    t.placed_at = Some(when(age));
                    if sent {
                        o.client_order_id = Some(cid.as_str().into());
                        o.submitted_at = Some(when(age));
                        orders.push(o);
                    }
                }
                Fate::OwnClientId => {
                    let cid = format!("rc-own-{pi}-{ti}");
                    t.status = TargetStatus::Active;
                    t.order_id = Some(o.id.clone());
                    t.client_order_id = Some(cid.as_str().into());
                    o.client_order_id = Some(cid.as_str().into());
                    orders.push(o);
                }
                Fate::Settled => {
                    t.status = TargetStatus::Filled;
                    t.order_id = Some(o.id.clone());
                }
                Fate::SharesOrder => match &last_order {
                    Some(prev) => {
                        t.status = TargetStatus::Active;
                        t.order_id = Some(prev.as_str().into());
                    }
                    None => {
                        t.status = TargetStatus::Active;
                        t.order_id = Some(o.id.clone());
                        orders.push(o);
                    }
                },
            }
            if let Some(id) = &t.order_id {
                last_order = Some(id.to_string());
            } else {
                last_order = Some(oid.clone());
            }
            planned.push(Planned {
                position_id: pid.clone(),
                state: plan.state,
                key: KEYS[ti].to_owned(),
                order_id: t.order_id.as_ref().map(ToString::to_string),
                fate: *f,
                made_order: oid,
            });
            p.targets.push(t);
        }
        let factor = match plan.holding {
            Holding::Exact => Some("1"),
            Holding::Flat => None,
            Holding::More => Some("2"),
        };
        if let Some(k) = factor {
            for l in &p.legs {
                let mut h = holding(account, l.symbol.as_str(), "0");
                h.quantity = l.quantity * dec(k);
                h.average_price = Some(dec("2.10"));
                held.push(h);
            }
        }
        positions.push(p);
        made.push((base, acc, und, last_order));
    }
    let mut lone = Vec::new();
    for (k, &(submitted, pending)) in orphans.iter().enumerate() {
        let mut o = order(&format!("9{k:03}"), "A1", "QQQ");
        o.limit_price = Some(dec("0.40"));
        o.submitted_at = submitted.map(when);
        if pending {
            o.status = OrderStatus::Pending;
        }
        lone.push(PlannedOrphan {
            order_id: o.id.to_string(),
            submitted,
            pending,
        });
        o.legs.push(crate::model::OrderLeg {
            symbol: crate::Symbol::new(&format!("QQQ   251231P{:08}", (400 + k) * 1000)),
            side: Side::BuyToClose,
            quantity: dec("1"),
            filled_quantity: dec("0"),
        });
        orders.push(o);
    }
    for k in 0..untracked {
        let mut h = holding("A2", ["QCOM", "NVDA"][k], ["74", "37"][k]);
        h.average_price = Some(dec(["172.30", "190.75"][k]));
        held.push(h);
    }
    let mut local = LocalSnapshot::new(as_of);
    local.positions = positions;
    local.intents = intents;
    let mut broker = BrokerSnapshot::new(as_of);
    broker.orders = orders;
    broker.positions = holdings_known.then_some(held);
    Case {
        local,
        broker,
        targets: planned,
        orphans: lone,
        options: DiffOptions {
            grace,
            ..DiffOptions::default()
        },
    }
}

/// A permutation of `0..n`.
pub fn permutation(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<_>>()).prop_shuffle()
}
