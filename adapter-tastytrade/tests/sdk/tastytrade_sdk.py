"""The public tastytrade SDK (tastyware/tastytrade), unchanged, against the simulator.

Usage: python tastytrade_sdk.py BASE_URL CLIENT_SECRET REFRESH_TOKEN ACCOUNT

Each step prints "ok: <step>"; the first failure prints its traceback and exits 1. The SDK's
pydantic models refuse answers that lack a field the real API sends, so every call here is a
check of the simulator's fields as much as of its behaviour.
"""

import asyncio
import sys
import traceback
from datetime import date
from decimal import Decimal

import tastytrade.session

BASE, SECRET, REFRESH, NUMBER = sys.argv[1:5]
# The SDK has no base-URL option: its module constant is read when a session is made.
tastytrade.session.API_URL = BASE

from tastytrade import Account, Session  # noqa: E402
from tastytrade.order import (  # noqa: E402
    AdvancedInstructions,
    InstrumentType,
    Leg,
    LimitOrder,
    OrderAction,
    OrderTimeInForce,
)
from tastytrade.utils import TastytradeError  # noqa: E402

SHORT = "QQQ   251219C00640000"
LONG = "QQQ   251219C00645000"


def ok(step):
    print(f"ok: {step}", flush=True)


def spread(price, cid=None, strict=True, short=SHORT):
    return LimitOrder(
        time_in_force=OrderTimeInForce.GTC,
        legs=[
            Leg(instrument_type=InstrumentType.EQUITY_OPTION, symbol=short,
                action=OrderAction.BUY_TO_CLOSE, quantity=Decimal(1)),
            Leg(instrument_type=InstrumentType.EQUITY_OPTION, symbol=LONG,
                action=OrderAction.SELL_TO_CLOSE, quantity=Decimal(1)),
        ],
        price=Decimal(price),
        external_identifier=cid,
        advanced_instructions=AdvancedInstructions(strict_position_effect_validation=strict)
        if strict else None,
    )


async def main():
    async with Session(SECRET, REFRESH) as session:
        accounts = await Account.get(session)
        assert [a.account_number for a in accounts] == [NUMBER], accounts
        ok("accounts")
        acct = await Account.get(session, NUMBER)
        assert acct.account_number == NUMBER and acct.opened_at is not None
        ok("one account")
        try:
            await Account.get(session, "NOPE0000")
            raise AssertionError("an unknown account was found")
        except TastytradeError as e:
            assert "record_not_found" in str(e), e
        ok("unknown account is an error")

        positions = await acct.get_positions(session)
        held = {p.symbol: (p.quantity, p.quantity_direction) for p in positions}
        assert held == {SHORT: (1, "Short"), LONG: (1, "Long")}, held
        assert all(p.multiplier == 100 for p in positions)
        ok("positions")

        live = await acct.get_live_orders(session)
        by_id = {o.id: o for o in live}
        assert by_id[412345601].status == "Live", by_id
        assert by_id[412345601].price == Decimal("-0.60"), by_id[412345601].price  # a debit
        ok("live orders")

        history = await acct.get_order_history(session, start_date=date(2025, 11, 1), page_offset=None)
        assert any(o.id == 412345603 and o.status == "Cancelled" for o in history), history
        ok("order history, every page")

        one = await acct.get_order(session, 412345601)
        assert one.legs[0].symbol == SHORT and one.underlying_symbol == "QQQ"
        ok("one order")

        dry = await acct.place_order(session, spread("-0.45", "sdk-dry"), dry_run=True)
        assert dry.order.status == "Received" and dry.buying_power_effect is not None
        assert dry.fee_calculation is not None
        ok("dry run")

        placed = await acct.place_order(session, spread("-0.45", "sdk-1"), dry_run=False)
        assert placed.order.external_identifier == "sdk-1", placed.order
        assert placed.order.price == Decimal("-0.45")
        ok("placement with an external identifier")

        new = await acct.replace_order(session, placed.order.id, spread("-0.40"))
        assert new.id != placed.order.id and new.replaces_order_id == placed.order.id, new
        assert len(new.legs) == 2 and new.underlying_symbol == "QQQ", new
        old = await acct.get_order(session, placed.order.id)
        assert old.status == "Cancelled" and old.replacing_order_id == new.id, old
        assert old.edited
        now = await acct.get_order(session, new.id)
        assert now.status == "Live" and now.price == Decimal("-0.40"), now
        ok("replace without legs keeps the legs")

        # Other legs in the model change nothing: the SDK leaves legs out of a replacement.
        newer = await acct.replace_order(
            session, new.id, spread("-0.35", short="QQQ   251219C00650000"))
        assert newer.legs[0].symbol == SHORT and newer.price == Decimal("-0.35"), newer
        ok("replace sends no legs")

        await acct.delete_order(session, newer.id)
        gone = await acct.get_order(session, newer.id)
        assert gone.status == "Cancelled", gone
        ok("cancel")
        try:
            await acct.delete_order(session, newer.id)
            raise AssertionError("a finished order was cancelled again")
        except TastytradeError as e:
            assert "cannot_update_order" in str(e), e
        ok("cancelling a finished order is refused")

        loose = await acct.place_order(
            session, spread("-0.10", "sdk-loose", strict=False, short="QQQ   251219C00700000"), dry_run=False)
        assert loose.order.legs[0].action == "Buy to Open", loose.order.legs
        ok("a close with no position opens one without the strict flag")
        try:
            await acct.place_order(
                session, spread("-0.10", "sdk-strict", short="QQQ   251219C00700000"), dry_run=False)
            raise AssertionError("a close with no position went through with the strict flag")
        except TastytradeError as e:
            assert "preflight_check_failure" in str(e) or "closing_order_without_position" in str(e), e
        ok("the strict flag refuses it")


try:
    asyncio.run(main())
except Exception:
    traceback.print_exc()
    sys.exit(1)
