"""Alpaca's official SDK (alpacahq/alpaca-py), unchanged, against the simulator.

Usage: python alpaca_sdk.py BASE_URL KEY_ID SECRET_KEY ACCOUNT TARGET STOP FILLED CANCELLED

Each step prints "ok: <step>"; the first failure prints its traceback and exits 1. The SDK's
pydantic models refuse answers that lack a field the real API sends or spell an enum it does
not know, so every call is a check of the simulator's fields as much as of its behaviour.
"""

import sys
import traceback
import uuid
from decimal import Decimal
from datetime import datetime, timedelta, timezone

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

BASE, KEY, SECRET, NUMBER, TARGET, STOP, FILLED, CANCELLED = sys.argv[1:9]


def ok(step):
    print(f"ok: {step}", flush=True)


def refused(call, status, words):
    try:
        call()
    except APIError as e:
        assert e.status_code == status, (e.status_code, str(e))
        assert words in str(e), str(e)
        return e
    raise AssertionError(f"expected a {status}")


def main():
    client = TradingClient(KEY, SECRET, paper=True, url_override=BASE)

    account = client.get_account()
    assert account.account_number == NUMBER, account
    assert account.status.value == "ACTIVE", account.status
    ok("account")

    positions = {p.symbol: p for p in client.get_all_positions()}
    assert set(positions) == {"AAPL", "WFC"}, positions
    assert positions["WFC"].qty == "-40" and positions["WFC"].side == PositionSide.SHORT
    assert positions["AAPL"].qty_available == "0", positions["AAPL"].qty_available
    ok("positions: signed, and shares held by the OCO pair are not available")

    aapl = client.get_open_position("AAPL")
    assert aapl.qty == "100" and str(aapl.asset_id) == str(positions["AAPL"].asset_id)
    refused(lambda: client.get_open_position("TSLA"), 404, "position does not exist")
    ok("one position, and a 404 for one not held")

    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert [str(o.id) for o in nested] == [TARGET], nested
    assert nested[0].order_class == OrderClass.OCO
    assert [(str(l.id), l.status) for l in nested[0].legs] == [(STOP, OrderStatus.HELD)]
    ok("open orders, nested: the OCO parent with its held stop inside")

    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    ids = {str(o.id) for o in flat}
    assert {TARGET, STOP, FILLED, CANCELLED} <= ids, ids
    assert all(o.legs is None for o in flat), "legs are null unless nested"
    ok("all orders, flat: every row, legs null")

    after = datetime(2025, 11, 6, 9, 30, tzinfo=timezone.utc)
    window = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=after))
    assert CANCELLED not in {str(o.id) for o in window}, "after is a bound on submitted_at"
    ok("after= bounds the list")

    one = client.get_order_by_id(TARGET, GetOrderByIdRequest(nested=True))
    assert Decimal(str(one.limit_price)) == 250 and len(one.legs) == 1
    refused(lambda: client.get_order_by_id(str(uuid.uuid4())), 404, "order not found")
    ok("one order, nested, and a 404 for an unknown id")

    placed = client.submit_order(LimitOrderRequest(
        symbol="WFC", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=61, client_order_id="sdk-1"))
    assert placed.client_order_id == "sdk-1"
    assert placed.status in (OrderStatus.PENDING_NEW, OrderStatus.ACCEPTED), placed.status
    ok("placement with a client order id")

    found = client.get_order_by_client_id("sdk-1")
    assert found.id == placed.id
    ok("lookup by client order id")

    refused(lambda: client.submit_order(LimitOrderRequest(
        symbol="WFC", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=61, client_order_id="sdk-1")), 422, "client_order_id must be unique")
    ok("a reused client order id is a 422")

    new = client.replace_order_by_id(placed.id, ReplaceOrderRequest(
        limit_price=62, client_order_id="sdk-1b"))
    assert new.id != placed.id and new.replaces == placed.id, new
    old = client.get_order_by_id(placed.id)
    assert old.status == OrderStatus.REPLACED and old.replaced_by == new.id, old
    ok("replace: a new order, the old one replaced and pointing at it")

    client.cancel_order_by_id(new.id)
    assert client.get_order_by_id(new.id).status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED)
    refused(lambda: client.cancel_order_by_id(FILLED), 422, "filled")
    ok("cancel, and a 422 for a filled order")

    refused(lambda: client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=100, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
        limit_price=270, client_order_id="sdk-2")), 403, "insufficient qty available")
    ok("a sell of shares the OCO pair holds is a 403")

    client.cancel_order_by_id(TARGET)
    oco = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=100, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
        limit_price=260, order_class=OrderClass.OCO, client_order_id="sdk-oco",
        take_profit=TakeProfitRequest(limit_price=260), stop_loss=StopLossRequest(stop_price=175)))
    assert oco.order_class == OrderClass.OCO and len(oco.legs) == 1, oco
    assert Decimal(str(oco.legs[0].stop_price)) == 175, oco.legs[0].stop_price
    ok("an OCO exit once the old pair is cancelled")

    refused(lambda: client.submit_order(LimitOrderRequest(
        symbol="WFC", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price="61.005", client_order_id="sdk-3")), 422, "sub-penny")
    ok("a sub-penny price is a 422")

    bad = TradingClient(KEY, "not-the-secret", paper=True, url_override=BASE)
    refused(bad.get_account, 401, "request is not authorized")
    ok("wrong keys are a 401")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
