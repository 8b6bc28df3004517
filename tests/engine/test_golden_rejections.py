"""Golden scenarios: every PlaceOrder rejection reason of docs/matching.md, in check
order, each leaving every book exactly as it was."""

from __future__ import annotations

import pytest

from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import OrderType, Side, TimeInForce, Trigger

from .golden.harness import (
    Harness,
    buy,
    check_book,
    market_buy,
    market_sell,
    place,
    sell,
    stop_limit,
    stop_market,
    unchanged,
)
from .golden.table import render_events

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK

ABC_BOOK = """
    BIDS  id  owner  price  visible  leaves
          #1     o1     99        5       5
    ASKS  id  owner  price  visible  leaves
          #2     o2    101        5       5
    STOPS id  owner  side  type        stop  price  leaves
          #3     o3  sell  stop_limit    90     89       1
"""
XYZ_BOOK = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
          #6     o2    200       20      20
"""


def book() -> Harness:
    """ABC: a bid, an ask, a stop and a trade at 100 (last price 100). XYZ: one ask.
    The command under test gets seq 7, hence order id #7."""
    h = Harness()
    h.setup(
        buy(1, 99, 5, client_order_id="dup"),
        sell(2, 101, 5),
        stop_limit(3, SELL, stop=90, price=89, qty=1),
        sell(4, 100, 1),
        buy(5, 100, 1),
        sell(2, 200, 20, market="XYZ"),
    )
    check_book(h, ABC_BOOK)
    check_book(h, XYZ_BOOK, "XYZ")
    return h


X = {"market": "XYZ"}

CASES: list[tuple[str, PlaceOrder, str]] = [
    # 1. unknown market
    ("unknown market", buy(1, 100, 5, market="NOPE"), "#7 o1 unknown_market"),
    ("unknown market, lower case", buy(1, 100, 5, market="abc"), "#7 o1 unknown_market"),
    # 2. order id open
    ("order id resting", buy(9, 98, 1, order_id=1), "#1 o9 duplicate_order_id"),
    ("order id of a stop", buy(9, 98, 1, order_id=3), "#3 o9 duplicate_order_id"),
    # 3. client order id open for the owner
    ("cid", buy(1, 98, 1, client_order_id="dup"), "#7 o1 duplicate_client_order_id cid=dup"),
    # 4. price
    ("limit price 0", buy(1, 0, 5), "#7 o1 invalid_price"),
    ("limit price < 0", sell(1, -100, 5), "#7 o1 invalid_price"),
    ("stop limit price 0", stop_limit(1, BUY, stop=120, price=0, qty=1), "#7 o1 invalid_price"),
    ("price off tick", buy(1, 101, 20, **X), "#7 o1 price_not_on_tick"),
    (
        "stop limit price off tick",
        stop_limit(1, BUY, stop=300, price=302, qty=20, **X),
        "#7 o1 price_not_on_tick",
    ),
    ("market with a price", market_buy(1, qty=5, price=100), "#7 o1 invalid_order"),
    (
        "stop market with a price",
        stop_market(1, BUY, stop=120, qty=5, price=100),
        "#7 o1 invalid_order",
    ),
    # 5. stop price
    ("stop price 0", stop_limit(1, BUY, stop=0, price=100, qty=1), "#7 o1 invalid_stop_price"),
    ("stop price < 0", stop_market(1, SELL, stop=-5, qty=1), "#7 o1 invalid_stop_price"),
    (
        "stop price off tick",
        stop_limit(1, BUY, stop=302, price=300, qty=20, **X),
        "#7 o1 invalid_stop_price",
    ),
    ("limit with stop price", buy(1, 98, 1, stop_price=50), "#7 o1 invalid_order"),
    ("limit with trigger", buy(1, 98, 1, trigger=Trigger.AT_OR_ABOVE), "#7 o1 invalid_order"),
    ("market with stop price", market_buy(1, qty=1, stop_price=5), "#7 o1 invalid_order"),
    (
        "market with trigger",
        market_sell(1, qty=1, trigger=Trigger.AT_OR_BELOW),
        "#7 o1 invalid_order",
    ),
    (
        "post-only stop limit",
        stop_limit(1, BUY, stop=120, price=121, qty=1, post_only=True),
        "#7 o1 invalid_order",
    ),
    # 6. sizing
    ("quantity < 0", buy(1, 98, -1), "#7 o1 invalid_quantity"),
    ("quote quantity < 0", market_buy(1, quote=-5), "#7 o1 invalid_quantity"),
    ("quote < 0 with quantity", market_buy(1, qty=5, quote=-5), "#7 o1 invalid_quantity"),
    ("limit with quote quantity", buy(1, 98, 5, quote_quantity=100), "#7 o1 invalid_order"),
    (
        "stop limit with quote quantity",
        stop_limit(1, BUY, stop=120, price=121, qty=1, quote_quantity=100),
        "#7 o1 invalid_order",
    ),
    ("market without size", market_buy(1), "#7 o1 invalid_quantity"),
    ("stop market without size", stop_market(1, BUY, stop=120), "#7 o1 invalid_quantity"),
    ("limit quantity 0", buy(1, 98, 0), "#7 o1 invalid_quantity"),
    (
        "stop limit quantity 0",
        stop_limit(1, BUY, stop=120, price=121, qty=0),
        "#7 o1 invalid_quantity",
    ),
    # 7. quantity / quote amount limits
    ("off step", buy(1, 200, 25, **X), "#7 o1 quantity_not_on_step"),
    ("market off step", market_buy(1, qty=25, **X), "#7 o1 quantity_not_on_step"),
    ("too low", buy(1, 200, 10, **X), "#7 o1 quantity_too_low"),
    ("market too low", market_sell(1, qty=10, **X), "#7 o1 quantity_too_low"),
    ("too high", buy(1, 200, 1010, **X), "#7 o1 quantity_too_high"),
    ("too high ABC", buy(1, 1, 1_000_001), "#7 o1 quantity_too_high"),
    (
        "stop market too high",
        stop_market(1, BUY, stop=300, qty=1010, **X),
        "#7 o1 quantity_too_high",
    ),
    ("quote below min notional", market_buy(1, quote=999, **X), "#7 o1 notional_too_low"),
    # 8. time in force
    ("market GTC", market_buy(1, qty=5, time_in_force=GTC), "#7 o1 invalid_time_in_force"),
    (
        "stop market GTC",
        stop_market(1, BUY, stop=120, qty=5, time_in_force=GTC),
        "#7 o1 invalid_time_in_force",
    ),
    (
        "quote market FOK",
        market_buy(1, quote=500, time_in_force=FOK),
        "#7 o1 invalid_time_in_force",
    ),
    (
        "quote stop market FOK",
        stop_market(1, BUY, stop=120, quote=500, time_in_force=FOK),
        "#7 o1 invalid_time_in_force",
    ),
    (
        "post-only IOC",
        buy(1, 98, 5, post_only=True, time_in_force=IOC),
        "#7 o1 invalid_time_in_force",
    ),
    (
        "post-only FOK",
        buy(1, 98, 5, post_only=True, time_in_force=FOK),
        "#7 o1 invalid_time_in_force",
    ),
    # 9. display quantity
    ("display < 0", buy(1, 98, 5, display_quantity=-1), "#7 o1 invalid_display_quantity"),
    (
        "display on market",
        market_buy(1, qty=5, display_quantity=2),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "display on stop market",
        stop_market(1, BUY, stop=120, qty=5, display_quantity=2),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "display on IOC",
        buy(1, 98, 5, time_in_force=IOC, display_quantity=2),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "display on FOK",
        buy(1, 98, 5, time_in_force=FOK, display_quantity=2),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "display off step",
        buy(1, 200, 100, display_quantity=25, **X),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "display below min qty",
        buy(1, 200, 100, display_quantity=10, **X),
        "#7 o1 invalid_display_quantity",
    ),
    ("display == quantity", buy(1, 98, 5, display_quantity=5), "#7 o1 invalid_display_quantity"),
    ("display > quantity", buy(1, 98, 5, display_quantity=6), "#7 o1 invalid_display_quantity"),
    # 10. min notional of limits
    ("limit notional", buy(1, 45, 20, **X), "#7 o1 notional_too_low"),
    (
        "stop limit notional",
        stop_limit(1, BUY, stop=300, price=45, qty=20, **X),
        "#7 o1 notional_too_low",
    ),
    # 11. stops that would fire at once (last price 100)
    (
        "buy stop <= last",
        stop_limit(1, BUY, stop=100, price=101, qty=1),
        "#7 o1 stop_would_trigger_immediately",
    ),
    (
        "sell stop >= last",
        stop_market(1, SELL, stop=100, qty=1),
        "#7 o1 stop_would_trigger_immediately",
    ),
    # 12. post-only crossing
    ("post-only buy at best ask", buy(1, 101, 1, post_only=True), "#7 o1 post_only_would_take"),
    (
        "post-only sell at own best bid",
        sell(1, 99, 1, post_only=True),
        "#7 o1 post_only_would_take",
    ),
    # ---- first failing check wins
    (
        "1 before all",
        place(
            1,
            BUY,
            market="NOPE",
            price=-1,
            quantity=-1,
            order_id=1,
            client_order_id="dup",
            display_quantity=-1,
        ),
        "#1 o1 unknown_market cid=dup",
    ),
    (
        "2 before 3",
        buy(1, 0, 0, order_id=1, client_order_id="dup"),
        "#1 o1 duplicate_order_id cid=dup",
    ),
    ("3 before 4", buy(1, 0, 0, client_order_id="dup"), "#7 o1 duplicate_client_order_id cid=dup"),
    ("4 before 5", stop_limit(1, BUY, stop=0, price=101, qty=25, **X), "#7 o1 price_not_on_tick"),
    ("4 before 6", buy(1, 0, -1), "#7 o1 invalid_price"),
    ("5 before 6", stop_limit(1, BUY, stop=0, price=200, qty=25, **X), "#7 o1 invalid_stop_price"),
    ("5 before 6 (limit)", buy(1, 98, -1, stop_price=5), "#7 o1 invalid_order"),
    ("6 before 7", buy(1, 200, -10, **X), "#7 o1 invalid_quantity"),
    ("7 before 8", market_buy(1, qty=25, time_in_force=GTC, **X), "#7 o1 quantity_not_on_step"),
    (
        "7 before 8 (quote)",
        market_buy(1, quote=999, time_in_force=FOK, **X),
        "#7 o1 notional_too_low",
    ),
    (
        "8 before 9",
        buy(1, 98, 5, time_in_force=IOC, post_only=True, display_quantity=-1),
        "#7 o1 invalid_time_in_force",
    ),
    ("9 before 10", buy(1, 45, 20, display_quantity=30, **X), "#7 o1 invalid_display_quantity"),
    (
        "9 before 11",
        stop_limit(1, BUY, stop=100, price=101, qty=5, display_quantity=5),
        "#7 o1 invalid_display_quantity",
    ),
    (
        "9 before 12",
        buy(1, 101, 5, post_only=True, display_quantity=5),
        "#7 o1 invalid_display_quantity",
    ),
]


@pytest.mark.parametrize(("name", "command", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rejection_changes_nothing(name: str, command: PlaceOrder, expected: str) -> None:
    h = book()
    unchanged(h, command=command, events=f"rejected {expected}")
    check_book(h, ABC_BOOK)
    check_book(h, XYZ_BOOK, "XYZ")


@pytest.mark.parametrize(
    "command",
    [
        place(1, BUY, type=OrderType.MARKET, quantity=5, post_only=True, time_in_force=IOC),
        place(1, BUY, type=OrderType.MARKET, quantity=5, post_only=True, time_in_force=GTC),
    ],
    ids=["ioc", "gtc"],
)
def test_post_only_market_is_rejected(command: PlaceOrder) -> None:
    """Check 8 says post-only needs GTC (INVALID_TIME_IN_FORCE) and a LIMIT type
    (INVALID_ORDER for market types), but a market order needs IOC/FOK: the contract
    does not say which of the two sub-checks comes first, so accept either reason."""
    h = book()
    state = h.state()
    out = h.run(command)
    assert render_events(out) in (
        "rejected #7 o1 invalid_time_in_force",
        "rejected #7 o1 invalid_order",
    )
    assert h.state() == state


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("order id of a closed order", buy(9, 98, 1, order_id=4)),
        ("order id taken in another market only", buy(9, 98, 1, order_id=6)),
        ("cid of another owner", buy(2, 98, 1, client_order_id="dup")),
        ("cid in another market", buy(1, 200, 20, client_order_id="dup", market="XYZ")),
        ("min notional exactly", buy(1, 50, 20, market="XYZ")),
        ("quote exactly min notional", market_buy(1, quote=1000, market="XYZ")),
        ("min quantity exactly", buy(1, 100, 20, market="XYZ")),
        ("max quantity exactly", buy(1, 5, 1000, market="XYZ")),
        ("display just below quantity", buy(1, 98, 5, display_quantity=4)),
        ("iceberg stop limit", stop_limit(1, BUY, stop=120, price=121, qty=5, display_quantity=2)),
        ("stop limit FOK", stop_limit(1, BUY, stop=120, price=121, qty=5, time_in_force=FOK)),
        ("stop market FOK", stop_market(1, BUY, stop=120, qty=5, time_in_force=FOK)),
        ("post-only just inside", buy(1, 100, 1, post_only=True)),
        ("market by quantity ignores min notional", market_sell(1, qty=20, market="XYZ")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_boundary_cases_are_accepted(name: str, command: PlaceOrder) -> None:
    h = book()
    out = h.run(command)
    assert out, name
    assert type(out[0]).__name__ == "OrderAccepted", render_events(out)
