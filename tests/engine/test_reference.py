"""Hand-checked cases for the reference engine, a few per rule of docs/matching.md."""

from __future__ import annotations

from typing import Any

import pytest

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trigger,
)
from crossbook.domain.events import (
    AmendRejected,
    BookLevelChanged,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.engine.reference import ReferenceEngine
from tests.engine.strategies import NOTIONAL, PLAIN, SCALED

BUY, SELL = Side.BUY, Side.SELL
M = "PLAIN"


class Driver:
    """Feeds commands with increasing seq (ts = seq * 10) to a reference engine."""

    def __init__(self) -> None:
        self.engine = ReferenceEngine([PLAIN, NOTIONAL, SCALED])
        self.seq = 0

    def _next(self) -> tuple[int, int]:
        self.seq += 1
        return self.seq, self.seq * 10

    def place(self, side: Side, price: int = 0, quantity: int = 0, **kw: Any) -> list[Event]:
        seq, ts = self._next()
        kw.setdefault("market", M)
        kw.setdefault("owner", 1)
        return self.engine.execute(
            PlaceOrder(seq=seq, ts=ts, side=side, price=price, quantity=quantity, **kw)
        )

    def cancel(self, owner: int = 1, **kw: Any) -> list[Event]:
        seq, ts = self._next()
        kw.setdefault("market", M)
        return self.engine.execute(CancelOrder(seq=seq, ts=ts, owner=owner, **kw))

    def cancel_all(self, owner: int = 1, market: str = M) -> list[Event]:
        seq, ts = self._next()
        return self.engine.execute(CancelAll(seq=seq, ts=ts, market=market, owner=owner))

    def amend(self, owner: int = 1, **kw: Any) -> list[Event]:
        seq, ts = self._next()
        kw.setdefault("market", M)
        return self.engine.execute(AmendOrder(seq=seq, ts=ts, owner=owner, **kw))

    def depth(self, market: str = M) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return self.engine.depth(market)


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def only(events: list[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def rejected(events: list[Event]) -> RejectReason:
    assert len(events) == 1, events
    e = events[0]
    assert isinstance(e, OrderRejected | CancelRejected | AmendRejected), e
    return e.reason


@pytest.fixture
def d() -> Driver:
    return Driver()


# -- sequencing and ids ------------------------------------------------------------------


def test_old_seq_is_ignored(d: Driver) -> None:
    d.place(BUY, 100, 5)
    assert d.engine.last_seq == 1
    again = PlaceOrder(seq=1, ts=99, market=M, owner=1, side=BUY, price=100, quantity=5)
    assert d.engine.execute(again) == []
    assert d.engine.execute(PlaceOrder(seq=0, ts=0, market=M, owner=1, side=BUY)) == []
    assert d.depth() == ([(100, 5)], [])
    # A rejected command still advances last_seq.
    d.place(BUY, 0, 5)
    assert d.engine.last_seq == 2


def test_order_id_defaults_to_seq_and_events_carry_the_command(d: Driver) -> None:
    ev = d.place(BUY, 100, 5)
    assert ev[0] == OrderAccepted(
        1,
        10,
        M,
        1,
        1,
        "",
        BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
        100,
        5,
        0,
        0,
        0,
        False,
        Trigger.AUTO,
    )
    assert ev[1] == BookLevelChanged(1, 10, M, BUY, 100, 5)
    ev = d.place(BUY, 100, 5, order_id=77)
    assert ev[0].order_id == 77  # type: ignore[union-attr]
    assert [o.order_id for o in d.engine.open_orders(M)] == [1, 77]


def test_trade_ids_count_per_market(d: Driver) -> None:
    d.place(SELL, 100, 5, owner=2)
    d.place(SELL, 1000, 50, owner=2, market="SCALED")
    f1 = only(d.place(BUY, 100, 1), OrderFilled)
    f2 = only(d.place(BUY, 100, 1), OrderFilled)
    f3 = only(d.place(BUY, 1000, 20, market="SCALED"), OrderFilled)
    assert [f.trade_id for f in f1 + f2 + f3] == [1, 2, 1]


# -- validation --------------------------------------------------------------------------


def test_unknown_market_keeps_the_given_market(d: Driver) -> None:
    ev = d.place(BUY, 100, 5, market="XYZ")
    assert ev == [OrderRejected(1, 10, "XYZ", 1, 1, "", RejectReason.UNKNOWN_MARKET)]


def test_duplicate_order_id_and_client_order_id(d: Driver) -> None:
    d.place(BUY, 100, 5, order_id=9, client_order_id="x")
    assert rejected(d.place(BUY, 100, 5, order_id=9)) is RejectReason.DUPLICATE_ORDER_ID
    # duplicate order id wins over duplicate client order id
    ev = d.place(BUY, 100, 5, order_id=9, client_order_id="x")
    assert rejected(ev) is RejectReason.DUPLICATE_ORDER_ID
    ev = d.place(BUY, 100, 5, client_order_id="x")
    assert rejected(ev) is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    # another owner may use the same client id; so may the same owner in another market
    assert kinds(d.place(BUY, 99, 5, owner=2, client_order_id="x"))[0] == "OrderAccepted"
    assert kinds(d.place(BUY, 100, 5, market="NOTIONAL", client_order_id="x"))[0] == (
        "OrderAccepted"
    )
    # once closed, both ids can be reused
    d.cancel(order_id=9)
    assert kinds(d.place(BUY, 100, 5, order_id=9, client_order_id="x"))[0] == "OrderAccepted"


def test_stop_orders_count_as_open_for_duplicates(d: Driver) -> None:
    d.place(BUY, 0, 5, type=OrderType.STOP_MARKET, stop_price=105, time_in_force=TimeInForce.IOC,
            client_order_id="s")  # fmt: skip
    assert rejected(d.place(BUY, 100, 5, order_id=1)) is RejectReason.DUPLICATE_ORDER_ID
    ev = d.place(BUY, 100, 5, client_order_id="s")
    assert rejected(ev) is RejectReason.DUPLICATE_CLIENT_ORDER_ID


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"price": 0}, RejectReason.INVALID_PRICE),
        ({"price": -5}, RejectReason.INVALID_PRICE),
        ({"market": "SCALED", "price": 1001, "quantity": 50}, RejectReason.PRICE_NOT_ON_TICK),
        ({"type": OrderType.MARKET, "price": 100, "time_in_force": TimeInForce.IOC},
         RejectReason.INVALID_ORDER),
        ({"type": OrderType.STOP_LIMIT, "stop_price": 0}, RejectReason.INVALID_STOP_PRICE),
        ({"market": "SCALED", "price": 1000, "quantity": 50, "type": OrderType.STOP_LIMIT,
          "stop_price": 1002}, RejectReason.INVALID_STOP_PRICE),
        ({"stop_price": 100}, RejectReason.INVALID_ORDER),
        ({"trigger": Trigger.AT_OR_ABOVE}, RejectReason.INVALID_ORDER),
        ({"type": OrderType.STOP_LIMIT, "stop_price": 101, "post_only": True},
         RejectReason.INVALID_ORDER),
        ({"quantity": -1}, RejectReason.INVALID_QUANTITY),
        ({"quote_quantity": -1}, RejectReason.INVALID_QUANTITY),
        ({"quote_quantity": 100}, RejectReason.INVALID_ORDER),
        ({"quantity": 0}, RejectReason.INVALID_QUANTITY),
        ({"type": OrderType.MARKET, "price": 0, "quantity": 0,
          "time_in_force": TimeInForce.IOC}, RejectReason.INVALID_QUANTITY),
        ({"type": OrderType.MARKET, "price": 0, "quote_quantity": 100,
          "time_in_force": TimeInForce.FOK}, RejectReason.INVALID_TIME_IN_FORCE),
        ({"market": "SCALED", "price": 1000, "quantity": 52}, RejectReason.QUANTITY_NOT_ON_STEP),
        ({"market": "SCALED", "price": 1000, "quantity": 5}, RejectReason.QUANTITY_TOO_LOW),
        ({"quantity": 1001}, RejectReason.QUANTITY_TOO_HIGH),
        ({"market": "NOTIONAL", "type": OrderType.MARKET, "price": 0, "quantity": 0,
          "quote_quantity": 499, "time_in_force": TimeInForce.IOC},
         RejectReason.NOTIONAL_TOO_LOW),
        ({"type": OrderType.MARKET, "price": 0}, RejectReason.INVALID_TIME_IN_FORCE),
        ({"type": OrderType.MARKET, "price": 0, "quantity": 0, "quote_quantity": 100,
          "time_in_force": TimeInForce.FOK}, RejectReason.INVALID_TIME_IN_FORCE),
        ({"post_only": True, "time_in_force": TimeInForce.IOC},
         RejectReason.INVALID_TIME_IN_FORCE),
        ({"display_quantity": -1}, RejectReason.INVALID_DISPLAY_QUANTITY),
        ({"display_quantity": 5}, RejectReason.INVALID_DISPLAY_QUANTITY),  # not < quantity
        ({"display_quantity": 2, "time_in_force": TimeInForce.IOC},
         RejectReason.INVALID_DISPLAY_QUANTITY),
        ({"market": "SCALED", "price": 1000, "quantity": 50, "display_quantity": 12},
         RejectReason.INVALID_DISPLAY_QUANTITY),
        ({"market": "SCALED", "price": 1000, "quantity": 50, "display_quantity": 5},
         RejectReason.INVALID_DISPLAY_QUANTITY),
        ({"type": OrderType.MARKET, "price": 0, "time_in_force": TimeInForce.IOC,
          "display_quantity": 2}, RejectReason.INVALID_DISPLAY_QUANTITY),
        ({"market": "NOTIONAL", "price": 99}, RejectReason.NOTIONAL_TOO_LOW),  # 99*5 < 500
        ({"market": "SCALED", "price": 1000, "quantity": 10}, RejectReason.NOTIONAL_TOO_LOW),
    ],
)  # fmt: skip
def test_place_validation(d: Driver, kw: dict[str, Any], reason: RejectReason) -> None:
    fields: dict[str, Any] = {"price": 100, "quantity": 5} | kw
    price, quantity = fields.pop("price"), fields.pop("quantity")
    assert rejected(d.place(BUY, price, quantity, **fields)) is reason
    assert d.engine.open_orders(fields.get("market", M)) == []


def test_min_notional_boundary(d: Driver) -> None:
    assert kinds(d.place(BUY, 100, 5, market="NOTIONAL"))[0] == "OrderAccepted"  # 500 == 500
    # SCALED: 1000 (100.0) * 15 (0.15) = 15.00 quote == min_notional 1500 minor units
    assert kinds(d.place(BUY, 1000, 15, market="SCALED"))[0] == "OrderAccepted"
    ev = d.place(BUY, 995, 15, market="SCALED")  # 14.925 < 15.00
    assert rejected(ev) is RejectReason.NOTIONAL_TOO_LOW


def test_market_orders_by_quantity_skip_the_min_notional(d: Driver) -> None:
    ev = d.place(BUY, 0, 1, market="NOTIONAL", type=OrderType.MARKET,
                 time_in_force=TimeInForce.IOC)  # fmt: skip
    assert kinds(ev) == ["OrderAccepted", "OrderExpired"]


def test_stop_would_trigger_immediately(d: Driver) -> None:
    stop = {"type": OrderType.STOP_MARKET, "time_in_force": TimeInForce.IOC}
    # No last price yet: any stop is accepted and does not fire.
    assert kinds(d.place(SELL, 0, 1, stop_price=100, **stop)) == ["OrderAccepted"]
    d.cancel(order_id=1)
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)  # last = 100
    assert rejected(d.place(BUY, 0, 1, stop_price=100, **stop)) is (
        RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY
    )
    assert rejected(d.place(SELL, 0, 1, stop_price=100, **stop)) is (
        RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY
    )
    assert kinds(d.place(BUY, 0, 1, stop_price=101, **stop)) == ["OrderAccepted"]
    assert kinds(d.place(SELL, 0, 1, stop_price=99, **stop)) == ["OrderAccepted"]
    # explicit trigger direction
    ev = d.place(SELL, 0, 1, stop_price=99, trigger=Trigger.AT_OR_ABOVE, **stop)
    assert rejected(ev) is RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY
    assert kinds(d.place(SELL, 0, 1, stop_price=101, trigger=Trigger.AT_OR_ABOVE, **stop)) == [
        "OrderAccepted"
    ]


def test_post_only(d: Driver) -> None:
    d.place(SELL, 101, 5, owner=2)
    d.place(BUY, 99, 5, owner=2)
    assert rejected(d.place(BUY, 101, 5, post_only=True)) is RejectReason.POST_ONLY_WOULD_TAKE
    assert rejected(d.place(SELL, 99, 5, post_only=True)) is RejectReason.POST_ONLY_WOULD_TAKE
    # the maker's owner does not matter
    assert rejected(d.place(BUY, 102, 5, owner=2, post_only=True)) is (
        RejectReason.POST_ONLY_WOULD_TAKE
    )
    assert kinds(d.place(BUY, 100, 5, post_only=True)) == ["OrderAccepted", "BookLevelChanged"]
    assert kinds(d.place(SELL, 100, 5, owner=3, post_only=True))[0] == "OrderRejected"


def test_first_failing_check_wins(d: Driver) -> None:
    # off tick price and bad quantity: the price check (4) comes before sizing (6)
    ev = d.place(BUY, 1001, -5, market="SCALED")
    assert rejected(ev) is RejectReason.PRICE_NOT_ON_TICK
    # market order with both a price and a post-only flag: price (4) first
    ev = d.place(BUY, 100, 5, type=OrderType.MARKET, post_only=True)
    assert rejected(ev) is RejectReason.INVALID_ORDER
    # quantity too high and bad display quantity: 7 before 9
    ev = d.place(BUY, 100, 5000, display_quantity=-1)
    assert rejected(ev) is RejectReason.QUANTITY_TOO_HIGH


# -- matching ----------------------------------------------------------------------------


def test_simple_cross_fills_at_the_maker_price(d: Driver) -> None:
    d.place(SELL, 100, 10, owner=2)
    ev = d.place(BUY, 101, 4)
    assert ev[1:] == [
        OrderFilled(2, 20, M, 1, 100, 4, BUY, 2, 1, 0, 1, 2, 6),
        BookLevelChanged(2, 20, M, SELL, 100, 6),
    ]
    assert d.depth() == ([], [(100, 6)])


def test_price_time_priority_and_resting_remainder(d: Driver) -> None:
    d.place(SELL, 101, 3, owner=2)  # 1
    d.place(SELL, 100, 3, owner=3)  # 2
    d.place(SELL, 100, 3, owner=4)  # 3
    d.place(SELL, 102, 3, owner=2)  # 4
    ev = d.place(BUY, 101, 10)  # 5: takes 2, 3, then 1, rests 1 at 101
    fills = only(ev, OrderFilled)
    assert [(f.maker_order_id, f.price, f.quantity, f.taker_leaves) for f in fills] == [
        (2, 100, 3, 7),
        (3, 100, 3, 4),
        (1, 101, 3, 1),
    ]
    assert only(ev, BookLevelChanged) == [
        BookLevelChanged(5, 50, M, BUY, 101, 1),
        BookLevelChanged(5, 50, M, SELL, 100, 0),
        BookLevelChanged(5, 50, M, SELL, 101, 0),
    ]
    assert d.depth() == ([(101, 1)], [(102, 3)])


def test_level_changes_buy_side_first_then_by_price(d: Driver) -> None:
    d.place(BUY, 98, 1)
    d.place(BUY, 97, 1)
    d.place(SELL, 103, 1)
    d.place(SELL, 102, 1)
    ev = d.cancel_all()
    assert [(e.side, e.price) for e in only(ev, BookLevelChanged)] == [
        (BUY, 97),
        (BUY, 98),
        (SELL, 102),
        (SELL, 103),
    ]
    assert [e.order_id for e in only(ev, OrderCancelled)] == [1, 2, 3, 4]


def test_unchanged_level_emits_nothing(d: Driver) -> None:
    d.place(SELL, 100, 5, owner=2)
    d.place(SELL, 100, 5, owner=3)
    # amend moves 5 from order 1 to ... nothing; take 5 and add 5 at the same level
    ev = d.place(BUY, 100, 5)
    assert only(ev, BookLevelChanged) == [BookLevelChanged(3, 30, M, SELL, 100, 5)]
    ev = d.amend(owner=3, order_id=2, quantity=5)
    assert rejected(ev) is RejectReason.AMEND_NO_CHANGE


def test_ioc_limit_expires_the_rest(d: Driver) -> None:
    d.place(SELL, 100, 3, owner=2)
    ev = d.place(BUY, 100, 5, time_in_force=TimeInForce.IOC)
    assert ev[-2] == OrderExpired(2, 20, M, 2, 1, "", 2, ExpireReason.IOC)
    assert d.depth() == ([], [])
    ev = d.place(BUY, 100, 5, time_in_force=TimeInForce.IOC)  # nothing to take
    assert kinds(ev) == ["OrderAccepted", "OrderExpired"]


def test_fok(d: Driver) -> None:
    d.place(SELL, 100, 3, owner=2)
    d.place(SELL, 101, 3, owner=2)
    ev = d.place(BUY, 100, 4, time_in_force=TimeInForce.FOK)
    assert ev[1:] == [OrderExpired(3, 30, M, 3, 1, "", 4, ExpireReason.FOK)]
    ev = d.place(BUY, 101, 6, time_in_force=TimeInForce.FOK)
    assert [f.quantity for f in only(ev, OrderFilled)] == [3, 3]
    assert d.depth() == ([], [])


def test_fok_counts_hidden_iceberg_quantity(d: Driver) -> None:
    d.place(SELL, 100, 10, owner=2, display_quantity=2)
    ev = d.place(BUY, 100, 7, time_in_force=TimeInForce.FOK)
    assert [f.quantity for f in only(ev, OrderFilled)] == [2, 2, 2, 1]
    assert d.depth() == ([], [(100, 1)])


@pytest.mark.parametrize(
    ("stp", "outcome"),
    [
        (SelfTradePrevention.NONE, "fills"),  # own order counts: 2 + 3 >= 5
        (SelfTradePrevention.EXPIRE_MAKER, "expires"),  # own skipped: 3 < 5
        (SelfTradePrevention.EXPIRE_TAKER, "expires"),  # walk stops at own: 0 < 5
        (SelfTradePrevention.EXPIRE_BOTH, "expires"),
    ],
)
def test_fok_walk_and_self_trade_prevention(
    d: Driver, stp: SelfTradePrevention, outcome: str
) -> None:
    d.place(SELL, 100, 2, owner=1)
    d.place(SELL, 100, 3, owner=2)
    ev = d.place(BUY, 100, 5, time_in_force=TimeInForce.FOK, stp=stp)
    if outcome == "fills":
        assert [f.maker_order_id for f in only(ev, OrderFilled)] == [1, 2]
    else:
        assert ev[1:] == [OrderExpired(3, 30, M, 3, 1, "", 5, ExpireReason.FOK)]
        assert d.depth() == ([], [(100, 5)])


def test_fok_expire_maker_fills_from_others(d: Driver) -> None:
    d.place(SELL, 100, 2, owner=1)
    d.place(SELL, 100, 3, owner=2)
    ev = d.place(BUY, 100, 3, time_in_force=TimeInForce.FOK)  # default stp EXPIRE_MAKER
    assert kinds(ev) == ["OrderAccepted", "OrderExpired", "OrderFilled", "BookLevelChanged"]
    assert ev[1] == OrderExpired(3, 30, M, 1, 1, "", 2, ExpireReason.SELF_TRADE_MAKER)
    assert d.depth() == ([], [])


def test_self_trade_prevention_modes(d: Driver) -> None:
    d.place(SELL, 100, 2, owner=2)  # 1
    d.place(SELL, 100, 2, owner=1)  # 2 (own)
    d.place(SELL, 100, 2, owner=2)  # 3
    # EXPIRE_TAKER: fills 2 from order 1, then expires with 3 left; does not rest
    ev = d.place(BUY, 100, 5, stp=SelfTradePrevention.EXPIRE_TAKER)
    assert kinds(ev) == ["OrderAccepted", "OrderFilled", "OrderExpired", "BookLevelChanged"]
    assert ev[2] == OrderExpired(4, 40, M, 4, 1, "", 3, ExpireReason.SELF_TRADE_TAKER)
    assert d.depth() == ([], [(100, 4)])
    # EXPIRE_BOTH: maker first, then taker
    ev = d.place(BUY, 100, 5, stp=SelfTradePrevention.EXPIRE_BOTH)
    assert ev[1:3] == [
        OrderExpired(5, 50, M, 2, 1, "", 2, ExpireReason.SELF_TRADE_MAKER),
        OrderExpired(5, 50, M, 5, 1, "", 5, ExpireReason.SELF_TRADE_TAKER),
    ]
    assert d.depth() == ([], [(100, 2)])
    # NONE: trades with itself
    d.place(SELL, 99, 1, owner=1)  # 6
    ev = d.place(BUY, 99, 1, stp=SelfTradePrevention.NONE)
    assert only(ev, OrderFilled)[0].maker_owner == 1


def test_market_order_by_quantity(d: Driver) -> None:
    d.place(SELL, 100, 2, owner=2)
    d.place(SELL, 105, 2, owner=2)
    ev = d.place(BUY, 0, 5, type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
    assert [(f.price, f.quantity, f.taker_leaves) for f in only(ev, OrderFilled)] == [
        (100, 2, 3),
        (105, 2, 1),
    ]
    assert only(ev, OrderExpired) == [OrderExpired(3, 30, M, 3, 1, "", 1, ExpireReason.MARKET)]


def test_market_order_by_quote_amount(d: Driver) -> None:
    d.place(SELL, 100, 2, owner=2)
    d.place(SELL, 101, 5, owner=2)
    q = {"type": OrderType.MARKET, "time_in_force": TimeInForce.IOC}
    ev = d.place(BUY, 0, 0, quote_quantity=350, **q)
    # 2 @ 100 = 200, then 150 // 101 = 1 @ 101, 49 left < 101: stop; expire 49
    assert [(f.price, f.quantity, f.taker_leaves) for f in only(ev, OrderFilled)] == [
        (100, 2, 150),
        (101, 1, 49),
    ]
    assert only(ev, OrderExpired) == [OrderExpired(3, 30, M, 3, 1, "", 49, ExpireReason.MARKET)]
    # an exact budget leaves nothing: no expiry
    ev = d.place(BUY, 0, 0, quote_quantity=202, **q)
    assert kinds(ev) == ["OrderAccepted", "OrderFilled", "BookLevelChanged"]
    assert only(ev, OrderFilled)[0].taker_leaves == 0
    # a sell sized by what it should receive
    d.place(BUY, 90, 10, owner=2)
    ev = d.place(SELL, 0, 0, quote_quantity=200, **q)
    assert [(f.quantity, f.taker_leaves) for f in only(ev, OrderFilled)] == [(2, 20)]
    assert only(ev, OrderExpired)[0].leaves == 20


def test_quote_sized_order_rounds_down_to_step_and_quote_unit(d: Driver) -> None:
    # SCALED: price 1000 = 100.0 quote/base; step 5 = 0.05 base; quote minor 0.01
    d.place(SELL, 1005, 100, owner=2, market="SCALED")
    ev = d.place(BUY, 0, 0, market="SCALED", type=OrderType.MARKET,
                 time_in_force=TimeInForce.IOC, quote_quantity=2000)  # fmt: skip
    # 20.00 quote at 100.5: 0.199 base -> 0.15 on the step; costs 15.075: 4.925 left
    fill = only(ev, OrderFilled)[0]
    assert (fill.quantity, fill.taker_leaves) == (15, 492)
    assert only(ev, OrderExpired)[0].leaves == 492


def test_quote_sized_self_trade_leaves_in_quote_units(d: Driver) -> None:
    d.place(SELL, 100, 1, owner=2)
    d.place(SELL, 100, 5, owner=1)
    ev = d.place(BUY, 0, 0, quote_quantity=300, type=OrderType.MARKET,
                 time_in_force=TimeInForce.IOC, stp=SelfTradePrevention.EXPIRE_TAKER)  # fmt: skip
    assert only(ev, OrderExpired) == [
        OrderExpired(3, 30, M, 3, 1, "", 200, ExpireReason.SELF_TRADE_TAKER)
    ]


def test_iceberg_replenishes_at_the_back(d: Driver) -> None:
    d.place(SELL, 100, 6, owner=2, display_quantity=2)  # 1
    d.place(SELL, 100, 3, owner=3)  # 2
    assert d.depth() == ([], [(100, 5)])
    ev = d.place(BUY, 100, 4)
    assert [(f.maker_order_id, f.quantity, f.maker_leaves) for f in only(ev, OrderFilled)] == [
        (1, 2, 4),
        (2, 2, 1),
    ]
    assert d.depth() == ([], [(100, 3)])  # 2 shown by the iceberg + 1
    ev = d.place(BUY, 100, 2)
    assert [(f.maker_order_id, f.quantity) for f in only(ev, OrderFilled)] == [(2, 1), (1, 1)]
    [o] = d.engine.open_orders(M)
    assert (o.order_id, o.leaves, o.visible) == (1, 3, 1)


# -- stops -------------------------------------------------------------------------------


def test_stops_fire_in_acceptance_order(d: Driver) -> None:
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)  # last = 100
    d.place(SELL, 102, 10, owner=2)  # 3
    d.place(BUY, 0, 2, owner=4, type=OrderType.STOP_MARKET, stop_price=102,
            time_in_force=TimeInForce.IOC)  # 4  # fmt: skip
    d.place(BUY, 102, 2, owner=4, type=OrderType.STOP_LIMIT, stop_price=101)  # 5
    assert d.depth() == ([], [(102, 10)])  # stops are not on the book
    assert [o.is_stop for o in d.engine.open_orders(M)] == [False, True, True]
    d.place(SELL, 101, 1, owner=2)  # 6
    ev = d.place(BUY, 101, 1, owner=3)  # 7: last = 101 fires 5 only
    assert kinds(ev) == [
        "OrderAccepted",
        "OrderFilled",
        "OrderTriggered",
        "OrderFilled",  # 5 takes 2 @ 102 -> last = 102
        "OrderTriggered",  # then 4
        "OrderFilled",
        "BookLevelChanged",
        "BookLevelChanged",
    ]
    assert ev[2] == OrderTriggered(7, 70, M, 5, 4, "", 101, 101)
    assert ev[4] == OrderTriggered(7, 70, M, 4, 4, "", 102, 102)
    assert d.depth() == ([], [(102, 6)])


def test_stops_collected_together_all_execute(d: Driver) -> None:
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)  # last = 100
    sl = {"type": OrderType.STOP_LIMIT, "owner": 4}
    d.place(SELL, 95, 1, stop_price=99, **sl)  # 3
    d.place(SELL, 95, 1, stop_price=98, **sl)  # 4
    d.place(BUY, 98, 5, owner=2)  # 5
    d.place(SELL, 98, 1, owner=3)  # 6: last 98 -> both fire, order 3 first
    assert [e.order_id for e in d.engine.open_orders(M)] == [5]
    assert d.depth() == ([(98, 2)], [])


def test_quote_sized_stop_market(d: Driver) -> None:
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)
    ev = d.place(BUY, 0, 0, quote_quantity=250, type=OrderType.STOP_MARKET, stop_price=101,
                 time_in_force=TimeInForce.IOC)  # fmt: skip
    assert kinds(ev) == ["OrderAccepted"]
    [o] = d.engine.open_orders(M)
    assert (o.leaves, o.visible, o.is_stop) == (250, 0, True)
    assert d.cancel(order_id=3) == [OrderCancelled(4, 40, M, 3, 1, "", 250, CancelReason.USER)]


# -- cancel ------------------------------------------------------------------------------


def test_cancel(d: Driver) -> None:
    d.place(BUY, 100, 5, client_order_id="c")
    assert d.cancel(market="XYZ", order_id=1) == [
        CancelRejected(2, 20, "XYZ", 1, 1, "", RejectReason.UNKNOWN_MARKET)
    ]
    assert rejected(d.cancel(owner=2, order_id=1)) is RejectReason.UNKNOWN_ORDER
    assert rejected(d.cancel(owner=2, client_order_id="c")) is RejectReason.UNKNOWN_ORDER
    assert rejected(d.cancel(order_id=99)) is RejectReason.UNKNOWN_ORDER
    assert rejected(d.cancel()) is RejectReason.UNKNOWN_ORDER  # no id, no client id
    ev = d.cancel(client_order_id="c")
    assert ev == [
        OrderCancelled(7, 70, M, 1, 1, "c", 5, CancelReason.USER),
        BookLevelChanged(7, 70, M, BUY, 100, 0),
    ]
    assert rejected(d.cancel(order_id=1)) is RejectReason.UNKNOWN_ORDER


def test_cancel_by_id_ignores_the_client_id(d: Driver) -> None:
    d.place(BUY, 100, 5, client_order_id="c")
    ev = d.cancel(order_id=1, client_order_id="zzz")
    assert ev[0] == OrderCancelled(2, 20, M, 1, 1, "c", 5, CancelReason.USER)


def test_cancel_all(d: Driver) -> None:
    assert d.cancel_all(market="XYZ") == [
        CancelRejected(1, 10, "XYZ", 0, 1, "", RejectReason.UNKNOWN_MARKET)
    ]
    assert d.cancel_all() == []
    d.place(BUY, 100, 5, order_id=50)
    d.place(BUY, 99, 5, owner=2)
    d.place(SELL, 0, 5, order_id=7, type=OrderType.STOP_MARKET, stop_price=90,
            time_in_force=TimeInForce.IOC)  # fmt: skip
    d.place(SELL, 101, 5, market="NOTIONAL")
    ev = d.cancel_all()
    assert ev == [
        OrderCancelled(7, 70, M, 7, 1, "", 5, CancelReason.CANCEL_ALL),
        OrderCancelled(7, 70, M, 50, 1, "", 5, CancelReason.CANCEL_ALL),
        BookLevelChanged(7, 70, M, BUY, 100, 0),
    ]
    assert d.depth() == ([(99, 5)], [])
    assert d.depth("NOTIONAL") == ([], [(101, 5)])


# -- amend -------------------------------------------------------------------------------


def test_amend_rejections(d: Driver) -> None:
    d.place(BUY, 100, 5, owner=1, client_order_id="c")  # 1
    d.place(SELL, 101, 2, owner=2)  # 2
    d.place(BUY, 101, 1, owner=3)  # 3: fills 1 of 2; last = 101
    d.place(SELL, 0, 5, owner=1, type=OrderType.STOP_MARKET, stop_price=90,
            time_in_force=TimeInForce.IOC)  # 4  # fmt: skip
    d.place(BUY, 99, 5, owner=1, post_only=True)  # 5

    def r(**kw: Any) -> RejectReason:
        return rejected(d.amend(**kw))

    assert r(market="XYZ", order_id=1, price=99) is RejectReason.UNKNOWN_MARKET
    assert r(order_id=2, price=99) is RejectReason.UNKNOWN_ORDER
    assert r(order_id=4, price=99) is RejectReason.ORDER_NOT_AMENDABLE
    assert r(order_id=1, price=-1) is RejectReason.INVALID_PRICE
    assert r(order_id=1, quantity=-1) is RejectReason.INVALID_QUANTITY
    assert r(order_id=1, quantity=1001) is RejectReason.QUANTITY_TOO_HIGH
    assert r(owner=2, order_id=2, quantity=1) is RejectReason.AMEND_QUANTITY_TOO_LOW
    assert r(order_id=1) is RejectReason.AMEND_NO_CHANGE
    assert r(order_id=1, price=100, quantity=5) is RejectReason.AMEND_NO_CHANGE
    assert r(order_id=5, price=101) is RejectReason.POST_ONLY_WOULD_TAKE
    ev = d.amend(client_order_id="c", price=-1)
    assert ev == [AmendRejected(d.seq, d.seq * 10, M, 0, 1, "c", RejectReason.INVALID_PRICE)]


def test_amend_down_keeps_priority(d: Driver) -> None:
    d.place(BUY, 100, 5, owner=1)
    d.place(BUY, 100, 5, owner=2)
    ev = d.amend(order_id=1, quantity=3)
    assert ev == [
        OrderAmended(3, 30, M, 1, 1, "", 100, 3, 3, True),
        BookLevelChanged(3, 30, M, BUY, 100, 8),
    ]
    fill = only(d.place(SELL, 100, 1, owner=3), OrderFilled)[0]
    assert fill.maker_order_id == 1


def test_amend_quantity_counts_what_filled(d: Driver) -> None:
    d.place(BUY, 100, 10, owner=1)
    d.place(SELL, 100, 4, owner=2)  # 6 left
    ev = d.amend(order_id=1, quantity=7)
    assert ev[0] == OrderAmended(3, 30, M, 1, 1, "", 100, 7, 3, True)
    assert rejected(d.amend(order_id=1, quantity=4)) is RejectReason.AMEND_QUANTITY_TOO_LOW
    [o] = d.engine.open_orders(M)
    assert (o.quantity, o.leaves, o.visible) == (7, 3, 3)


def test_amend_up_or_new_price_loses_priority(d: Driver) -> None:
    d.place(BUY, 100, 5, owner=1)
    d.place(BUY, 100, 5, owner=2)
    ev = d.amend(order_id=1, quantity=6)
    assert ev == [
        OrderAmended(3, 30, M, 1, 1, "", 100, 6, 6, False),
        BookLevelChanged(3, 30, M, BUY, 100, 11),
    ]
    fill = only(d.place(SELL, 100, 1, owner=3), OrderFilled)[0]
    assert fill.maker_order_id == 2


def test_amend_to_a_crossing_price_takes(d: Driver) -> None:
    d.place(SELL, 102, 3, owner=2)
    d.place(BUY, 100, 5, owner=1)
    ev = d.amend(order_id=2, price=102)
    assert ev == [
        OrderAmended(3, 30, M, 2, 1, "", 102, 5, 5, False),
        OrderFilled(3, 30, M, 1, 102, 3, BUY, 2, 1, 2, 1, 2, 0),
        BookLevelChanged(3, 30, M, BUY, 100, 0),
        BookLevelChanged(3, 30, M, BUY, 102, 2),
        BookLevelChanged(3, 30, M, SELL, 102, 0),
    ]


def test_amend_into_own_order_expires_by_stp(d: Driver) -> None:
    d.place(SELL, 102, 3, owner=1)
    d.place(BUY, 100, 5, owner=1, stp=SelfTradePrevention.EXPIRE_TAKER)
    ev = d.amend(order_id=2, price=103)
    assert kinds(ev) == ["OrderAmended", "OrderExpired", "BookLevelChanged"]
    assert ev[1] == OrderExpired(3, 30, M, 2, 1, "", 5, ExpireReason.SELF_TRADE_TAKER)


def test_amend_iceberg(d: Driver) -> None:
    d.place(SELL, 100, 10, owner=1, display_quantity=4)
    d.place(SELL, 100, 2, owner=2)
    d.amend(order_id=1, quantity=3)  # hidden part shrinks first: visible min(4, 3)
    assert d.depth() == ([], [(100, 5)])
    d.amend(order_id=1, quantity=9)  # grows: back of the queue, shows min(4, 9)
    assert d.depth() == ([], [(100, 6)])
    fills = only(d.place(BUY, 100, 3, owner=3), OrderFilled)
    assert [f.maker_order_id for f in fills] == [2, 1]


def test_triggers_run_after_amend(d: Driver) -> None:
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)  # last 100
    d.place(BUY, 0, 1, owner=4, type=OrderType.STOP_MARKET, stop_price=101,
            time_in_force=TimeInForce.IOC)  # 3  # fmt: skip
    d.place(SELL, 101, 5, owner=2)  # 4
    d.place(BUY, 99, 1, owner=3)  # 5
    ev = d.amend(owner=3, order_id=5, price=101)
    assert kinds(ev)[:4] == ["OrderAmended", "OrderFilled", "OrderTriggered", "OrderFilled"]


def test_default_markets_work() -> None:
    e = ReferenceEngine(DEFAULT_MARKETS)
    ev = e.execute(PlaceOrder(seq=1, ts=1, market="BTCUSDT", owner=1, side=SELL,
                              price=5_000_000, quantity=100_000))  # fmt: skip
    assert kinds(ev) == ["OrderAccepted", "BookLevelChanged"]
    ev = e.execute(PlaceOrder(seq=2, ts=2, market="BTCUSDT", owner=2, side=BUY,
                              type=OrderType.MARKET, quote_quantity=10_000_000,
                              time_in_force=TimeInForce.IOC))  # fmt: skip
    # 10 USDT at 50000.00: 0.0002 BTC = 20000 sats, on the 1000-sat step
    fill = only(ev, OrderFilled)[0]
    assert (fill.quantity, fill.taker_leaves) == (20_000, 0)


# -- readings of the contract where the text needs care ----------------------------------


def test_quote_budget_that_cannot_buy_a_step_stops_before_self_trade_prevention(
    d: Driver,
) -> None:
    """docs/matching.md, Matching: what the taker can take is computed first; if it is 0,
    matching stops before the owner check, so no maker is expired for a trade that could
    not happen. With 50 left, the own maker at 100 stays and the taker expires (MARKET)."""
    d.place(SELL, 99, 1, owner=2)
    d.place(SELL, 100, 5, owner=1)
    ev = d.place(BUY, 0, 0, quote_quantity=149, type=OrderType.MARKET,
                 time_in_force=TimeInForce.IOC, stp=SelfTradePrevention.EXPIRE_TAKER)  # fmt: skip
    assert kinds(ev) == ["OrderAccepted", "OrderFilled", "OrderExpired", "BookLevelChanged"]
    assert ev[2] == OrderExpired(3, 30, M, 3, 1, "", 50, ExpireReason.MARKET)


def test_quote_sized_dust_ends_matching(d: Driver) -> None:
    """A fill that leaves 0 quote minor units ends the order (one terminal event), even
    when a sub-unit remainder of the scaled budget is left: no STP expiry after it."""
    # SCALED: 15 (0.15 base) at 5005 (500.5 quote) costs 75.075; budget 75.08 leaves 0.005
    d.place(SELL, 5005, 15, owner=2, market="SCALED")
    d.place(SELL, 5005, 10, owner=1, market="SCALED")
    ev = d.place(BUY, 0, 0, market="SCALED", quote_quantity=7508, type=OrderType.MARKET,
                 time_in_force=TimeInForce.IOC, stp=SelfTradePrevention.EXPIRE_TAKER)  # fmt: skip
    assert kinds(ev) == ["OrderAccepted", "OrderFilled", "BookLevelChanged"]
    assert only(ev, OrderFilled)[0].taker_leaves == 0


def test_stops_do_not_fire_without_a_last_trade(d: Driver) -> None:
    # A sell stop at or below 100 would "hold" against a last price of 0: there is none.
    d.place(SELL, 0, 5, type=OrderType.STOP_MARKET, stop_price=100,
            time_in_force=TimeInForce.IOC)  # fmt: skip
    d.place(BUY, 100, 1, owner=2)
    assert [o.is_stop for o in d.engine.open_orders(M)] == [True, False]
    d.place(SELL, 101, 1, owner=3)
    ev = d.place(BUY, 101, 1, owner=4)  # last 101: still above the stop
    assert "OrderTriggered" not in kinds(ev)
    ev = d.place(SELL, 100, 1, owner=3)  # trades with #2 at 100: fires
    assert kinds(ev)[:3] == ["OrderAccepted", "OrderFilled", "OrderTriggered"]


def test_triggered_stop_limit_rests_as_an_ordinary_order(d: Driver) -> None:
    """No second OrderAccepted; once triggered it is no longer "a stop order": it shows
    its original type and stop price, ``is_stop`` False, and can be amended."""
    d.place(SELL, 100, 1, owner=2)
    d.place(BUY, 100, 1, owner=3)  # last 100
    d.place(BUY, 99, 5, type=OrderType.STOP_LIMIT, stop_price=101)  # 3
    d.place(SELL, 101, 1, owner=2)
    ev = d.place(BUY, 101, 1, owner=3)
    assert kinds(ev) == [
        "OrderAccepted",
        "OrderFilled",
        "OrderTriggered",
        "BookLevelChanged",
        "BookLevelChanged",
    ]
    [o] = d.engine.open_orders(M)
    assert (o.order_id, o.type, o.stop_price, o.is_stop, o.visible) == (
        3,
        OrderType.STOP_LIMIT,
        101,
        False,
        5,
    )
    assert kinds(d.amend(order_id=3, price=98))[0] == "OrderAmended"
