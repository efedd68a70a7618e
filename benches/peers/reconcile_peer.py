"""The DESIGN §4 diff in plain Python, with dicts and sets, as a Python shop would write it: the
peer `reconcile diff` is measured against (benches/README.md, "End to end").

Usage: python3 reconcile_peer.py LOCAL.json BROKER.json

Prints the report's summary as one JSON object, keys in the report's order. It reads the same
snapshot v1 files as `reconcile diff`, decimals as `Decimal` from their text, times with
`datetime.fromisoformat`. It implements every category; where the Rust diff has finer points the
generated benchmark data never reach (multi-hop replacement chains, intents without a position),
it takes the plain reading of DESIGN.
"""

import json
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

WORKING = {"pending", "held", "live", "partially_filled", "pending_cancel", "pending_replace"}
GRACE = timedelta(seconds=60)
CATEGORIES = [
    "matched", "drifted", "invalid", "adoptable", "in_flight", "orphaned", "missing",
    "conflicts", "stale_intents", "untracked_holdings", "stale_positions",
    "quantity_mismatches", "pending_filled",
]


def when(text):
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def dec(text):
    return None if text is None else Decimal(str(text))


def canon(symbol):
    """OCC symbols compare equal with or without the root's padding."""
    s = symbol.replace(" ", "")
    if len(s) >= 16 and s[-15:-9].isdigit() and s[-9] in "CP" and s[-8:].isdigit():
        return s[:-15].ljust(6) + s[-15:]
    return s


def legs_key(legs):
    return tuple(sorted((canon(l["symbol"]), l["side"], dec(l["quantity"])) for l in legs))


def drift(target, order):
    """The first field that differs: limit price, then quantity, then legs."""
    if target.get("limit_price") is not None and dec(target["limit_price"]) != dec(order.get("limit_price")):
        return "limit_price"
    if target.get("stop_price") is not None and dec(target["stop_price"]) != dec(order.get("stop_price")):
        return "stop_price"
    tq = dec(target.get("quantity"))
    if tq is not None and any(dec(l["quantity"]) != tq for l in order["legs"]):
        return "quantity"
    if target.get("legs") and legs_key(target["legs"]) != legs_key(order["legs"]):
        return "legs"
    return None


def diff(local, broker):
    now = when(broker["as_of"])
    counts = Counter()
    orders = {o["id"]: o for o in broker["orders"]}
    positions = [p for p in local["positions"] if p["state"] in ("pending", "open", "closing")]

    # Active targets by the order they reference; an order referenced twice is a conflict.
    refs = defaultdict(list)
    for p in positions:
        for t in p["targets"]:
            if t["status"] == "active" and t.get("order_id") is not None:
                refs[t["order_id"]].append((p, t))
    counts["conflicts"] = sum(1 for v in refs.values() if len(v) > 1)

    replaced_by = {}
    for oid, rs in refs.items():
        if len(rs) > 1:
            continue
        p, t = rs[0]
        o = orders.get(oid)
        if o is None:
            placed = when(t.get("placed_at"))
            counts["in_flight" if placed is not None and now - placed <= GRACE else "invalid"] += 1
        elif o["status"] in WORKING:
            counts["drifted" if drift(t, o) else "matched"] += 1
        else:
            counts["invalid"] += 1
            if o["status"] == "replaced" and o.get("replaced_by"):
                replaced_by[o["replaced_by"]] = (p, t)

    intents = {i["client_order_id"]: i for i in local.get("intents", [])}
    unplaced = [(p, t) for p in positions for t in p["targets"] if t["status"] == "unplaced"]
    by_cid = {t["client_order_id"]: (p, t) for p, t in unplaced if t.get("client_order_id")}
    fits = defaultdict(list)
    for p, t in unplaced:
        if p["state"] == "open" and t.get("legs"):
            fits[(p["account"], legs_key(t["legs"]))].append((p, t))

    adopted = set()
    carried = set()
    for o in broker["orders"]:
        if o.get("client_order_id"):
            carried.add(o["client_order_id"])
        if o["status"] not in WORKING or o["id"] in refs:
            continue
        cid = o.get("client_order_id")
        if o["id"] in replaced_by:
            counts["adoptable"] += 1
        elif cid is not None and (cid in intents or cid in by_cid):
            counts["adoptable"] += 1
            if cid in by_cid:
                adopted.add(id(by_cid[cid][1]))
        elif len(fits.get((o["account"], legs_key(o["legs"])), [])) == 1 and id(fits[(o["account"], legs_key(o["legs"]))][0][1]) not in adopted:
            counts["adoptable"] += 1
            adopted.add(id(fits[(o["account"], legs_key(o["legs"]))][0][1]))
        else:
            submitted = when(o.get("submitted_at"))
            recent = (submitted is None and o["status"] == "pending") or (submitted is not None and now - submitted <= GRACE)
            counts["in_flight" if recent else "orphaned"] += 1

    covered = {(i["position_id"], i["target_key"]): i for i in intents.values()}
    for p, t in unplaced:
        if id(t) in adopted:
            continue
        i = covered.get((p["id"], t["key"]))
        if i is not None and now - when(i["created_at"]) <= GRACE:
            counts["in_flight"] += 1
        elif p["state"] == "open":
            counts["missing"] += 1
    counts["stale_intents"] = sum(
        1 for cid, i in intents.items() if cid not in carried and now - when(i["created_at"]) > GRACE
    )

    if broker.get("positions") is not None:
        held = defaultdict(Decimal)
        for h in broker["positions"]:
            held[(h["account"], canon(h["symbol"]))] += dec(h["quantity"])
        expected = defaultdict(Decimal)
        for p in positions:
            if p["state"] in ("open", "closing"):
                for l in p["legs"]:
                    expected[(p["account"], canon(l["symbol"]))] += dec(l["quantity"])
        for p in positions:
            keys = [(p["account"], canon(l["symbol"])) for l in p["legs"]]
            if p["state"] == "open" and keys and all(held.get(k, 0) == 0 for k in keys):
                counts["stale_positions"] += 1
                for l, k in zip(p["legs"], keys):
                    expected[k] -= dec(l["quantity"])
        for p in positions:
            if p["state"] != "pending" or not p["legs"]:
                continue
            ok = True
            for l in p["legs"]:
                k, q = (p["account"], canon(l["symbol"])), dec(l["quantity"])
                excess = held.get(k, Decimal(0)) - expected[k]
                if q == 0 or excess == 0 or (excess < 0) != (q < 0) or abs(excess) < abs(q):
                    ok = False
            if ok:
                counts["pending_filled"] += 1
                for l in p["legs"]:
                    expected[(p["account"], canon(l["symbol"]))] += dec(l["quantity"])
        for k in set(held) | set(expected):
            e, h = expected.get(k, Decimal(0)), held.get(k, Decimal(0))
            if e == 0 and h != 0:
                counts["untracked_holdings"] += 1
            elif e != h:
                counts["quantity_mismatches"] += 1
    return {c: counts.get(c, 0) for c in CATEGORIES}


def main():
    with open(sys.argv[1]) as f:
        local = json.load(f)
    with open(sys.argv[2]) as f:
        broker = json.load(f)
    print(json.dumps(diff(local, broker)))


if __name__ == "__main__":
    main()
