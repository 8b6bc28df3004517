"""Golden scenarios: stop-limit and stop-market orders, triggers and cascades."""

from __future__ import annotations

import pytest

from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import Side, Trigger

from .golden.harness import (
    Harness,
    buy,
    cancel,
    check_book,
    check_events,
    market_sell,
    scenario,
    sell,
    stop_limit,
    stop_market,
    unchanged,
)

BUY, SELL = Side.BUY, Side.SELL
ABOVE, BELOW = Trigger.AT_OR_ABOVE, Trigger.AT_OR_BELOW


def test_stop_limit_waits_off_book() -> None:
    h = Harness()
    h.setup(sell(1, 105, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    105        5       5
        """,
        command=stop_limit(2, BUY, stop=104, price=106, qty=3),
        events="""
            accepted #2 o2 buy stop_limit gtc px=106 qty=3 stop=104
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    105        5       5
            STOPS id  owner  side  type        stop  price  leaves
                  #2     o2   buy  stop_limit   104    106       3
        """,
    )


def test_buy_stop_market_triggered_by_last_trade() -> None:
    """AUTO on a buy = at or above: the trade at 100 fires the stop at 100."""
    h = Harness()
    h.setup(sell(1, 100, 1), sell(1, 105, 10), stop_market(3, BUY, stop=100, qty=5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
                  #2     o1    105       10      10
            STOPS id  owner  side  type         stop  price  leaves
                  #3     o3   buy  stop_market   100      0       5
        """,
        command=buy(4, 100, 1),
        events="""
            accepted #4 o4 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o4 buy left=0 maker #1 o1 left=0
            triggered #3 o3 stop=100 last=100
            fill t2 5@105 taker #3 o3 buy left=0 maker #2 o1 left=5
            level sell 100 0
            level sell 105 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    105        5       5
        """,
    )


def test_sell_stop_limit_triggered_fills_then_rests() -> None:
    """AUTO on a sell = at or below: the trade at 100 fires the stop at 100; it sells
    3 @98 (its limit is 97) and rests the remaining 2 at 97."""
    h = Harness()
    h.setup(buy(1, 100, 2), buy(1, 98, 3), stop_limit(2, SELL, stop=100, price=97, qty=5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
                  #2     o1     98        3       3
            ASKS  id  owner  price  visible  leaves
            STOPS id  owner  side  type        stop  price  leaves
                  #3     o2  sell  stop_limit   100     97       5
        """,
        command=sell(4, 100, 2),
        events="""
            accepted #4 o4 sell limit gtc px=100 qty=2
            fill t1 2@100 taker #4 o4 sell left=0 maker #1 o1 left=0
            triggered #3 o2 stop=100 last=100
            fill t2 3@98 taker #3 o2 sell left=2 maker #2 o1 left=0
            level buy 98 0
            level buy 100 0
            level sell 97 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o2     97        2       2
        """,
    )


def test_sell_stop_not_triggered_by_a_trade_above_it() -> None:
    h = Harness()
    h.setup(buy(1, 101, 2), stop_market(2, SELL, stop=100, qty=5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    101        2       2
            ASKS  id  owner  price  visible  leaves
            STOPS id  owner  side  type         stop  price  leaves
                  #2     o2  sell  stop_market   100      0       5
        """,
        command=sell(3, 101, 1),
        events="""
            accepted #3 o3 sell limit gtc px=101 qty=1
            fill t1 1@101 taker #3 o3 sell left=0 maker #1 o1 left=1
            level buy 101 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    101        1       1
            ASKS  id  owner  price  visible  leaves
            STOPS id  owner  side  type         stop  price  leaves
                  #2     o2  sell  stop_market   100      0       5
        """,
    )


def test_explicit_at_or_below_on_a_buy() -> None:
    """A buy stop with an explicit AT_OR_BELOW trigger fires when the price drops to it."""
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        buy(2, 100, 1),  # trade at 100: last price 100
        buy(3, 95, 1),
        stop_limit(4, BUY, stop=95, price=95, qty=4, trigger=BELOW),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #3     o3     95        1       1
            ASKS  id  owner  price  visible  leaves
            STOPS id  owner  side  type        stop  price  leaves
                  #4     o4   buy  stop_limit    95     95       4
        """,
        command=market_sell(5, qty=1),
        events="""
            accepted #5 o5 sell market ioc px=0 qty=1
            fill t2 1@95 taker #5 o5 sell left=0 maker #3 o3 left=0
            triggered #4 o4 stop=95 last=95
            level buy 95 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #4     o4     95        4       4
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_explicit_at_or_above_on_a_sell() -> None:
    """A take-profit: sell stop firing when the price rises to 110."""
    h = Harness()
    h.setup(
        sell(1, 110, 2),
        stop_limit(2, SELL, stop=110, price=108, qty=3, trigger=ABOVE),
        buy(3, 100, 5),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #3     o3    100        5       5
            ASKS  id  owner  price  visible  leaves
                  #1     o1    110        2       2
            STOPS id  owner  side  type        stop  price  leaves
                  #2     o2  sell  stop_limit   110    108       3
        """,
        command=buy(4, 110, 2),
        events="""
            accepted #4 o4 buy limit gtc px=110 qty=2
            fill t1 2@110 taker #4 o4 buy left=0 maker #1 o1 left=0
            triggered #2 o2 stop=110 last=110
            level sell 108 3
            level sell 110 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #3     o3    100        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    108        3       3
        """,
    )


def test_cascade_one_stop_triggers_the_next() -> None:
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        sell(1, 101, 1),
        sell(1, 102, 5),
        stop_market(2, BUY, stop=100, qty=1),
        stop_market(3, BUY, stop=101, qty=1),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
                  #2     o1    101        1       1
                  #3     o1    102        5       5
            STOPS id  owner  side  type         stop  price  leaves
                  #4     o2   buy  stop_market   100      0       1
                  #5     o3   buy  stop_market   101      0       1
        """,
        command=buy(4, 100, 1),
        events="""
            accepted #6 o4 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #6 o4 buy left=0 maker #1 o1 left=0
            triggered #4 o2 stop=100 last=100
            fill t2 1@101 taker #4 o2 buy left=0 maker #2 o1 left=0
            triggered #5 o3 stop=101 last=101
            fill t3 1@102 taker #5 o3 buy left=0 maker #3 o1 left=4
            level sell 100 0
            level sell 101 0
            level sell 102 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o1    102        4       4
        """,
    )


def test_stops_collected_together_fire_in_acceptance_order_with_collection_price() -> None:
    """#3 (stop 100) and #4 (stop 99) both hold at 100: they fire in the order accepted
    (not by stop price), and both report last=100 although #3's fill moved it to 105."""
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        sell(1, 105, 10),
        stop_market(2, BUY, stop=100, qty=2),
        stop_market(3, BUY, stop=99, qty=2),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
                  #2     o1    105       10      10
            STOPS id  owner  side  type         stop  price  leaves
                  #3     o2   buy  stop_market   100      0       2
                  #4     o3   buy  stop_market    99      0       2
        """,
        command=buy(4, 100, 1),
        events="""
            accepted #5 o4 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #5 o4 buy left=0 maker #1 o1 left=0
            triggered #3 o2 stop=100 last=100
            fill t2 2@105 taker #3 o2 buy left=0 maker #2 o1 left=8
            triggered #4 o3 stop=99 last=100
            fill t3 2@105 taker #4 o3 buy left=0 maker #2 o1 left=6
            level sell 100 0
            level sell 105 6
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    105        6       6
        """,
    )


def test_quote_sized_stop_shows_its_budget_as_leaves() -> None:
    """OpenOrder.leaves is "everything still open", in the unit the order is sized in
    (events.py): for a stop market sized by quote amount, its budget."""
    h = Harness()
    h.setup(sell(1, 100, 1), stop_market(2, BUY, stop=100, quote=500))
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #1     o1    100        1       1
        STOPS id  owner  side  type         stop  price  leaves
              #2     o2   buy  stop_market   100      0     500
    """,
    )


def test_triggered_stop_market_by_quote_amount() -> None:
    """Budget 500 at 110: 4 units (440), 60 left expires."""
    h = Harness()
    h.setup(sell(1, 100, 1), sell(1, 110, 10), stop_market(2, BUY, stop=100, quote=500))
    check_events(
        h.run(buy(3, 100, 1)),
        """
        accepted #4 o3 buy limit gtc px=100 qty=1
        fill t1 1@100 taker #4 o3 buy left=0 maker #1 o1 left=0
        triggered #3 o2 stop=100 last=100
        fill t2 4@110 taker #3 o2 buy left=60 maker #2 o1 left=6
        expired #3 o2 leaves=60 market
        level sell 100 0
        level sell 110 6
    """,
    )
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #2     o1    110        6       6
    """,
    )


def test_triggered_iceberg_stop_limit_rests_showing_its_display() -> None:
    h = Harness()
    h.setup(sell(1, 100, 1), stop_limit(2, BUY, stop=100, price=100, qty=10, display_quantity=3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
            STOPS id  owner  side  type        stop  price  leaves
                  #2     o2   buy  stop_limit   100    100      10
        """,
        command=buy(3, 100, 1),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #3 o3 buy left=0 maker #1 o1 left=0
            triggered #2 o2 stop=100 last=100
            level buy 100 3
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2    100        3      10
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_triggered_stop_joins_the_back_of_its_level() -> None:
    """The stop limit fires at 100 and joins the 99 bid level behind the resting #2."""
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        buy(2, 99, 4),
        stop_limit(3, BUY, stop=100, price=99, qty=2),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     99        4       4
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
            STOPS id  owner  side  type        stop  price  leaves
                  #3     o3   buy  stop_limit   100     99       2
        """,
        command=buy(4, 100, 1),
        events="""
            accepted #4 o4 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o4 buy left=0 maker #1 o1 left=0
            triggered #3 o3 stop=100 last=100
            level buy 99 6
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     99        4       4
                  #3     o3     99        2       2
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_cancelled_stop_never_fires() -> None:
    h = Harness()
    h.setup(sell(1, 100, 2), stop_market(2, BUY, stop=100, qty=1))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
            STOPS id  owner  side  type         stop  price  leaves
                  #2     o2   buy  stop_market   100      0       1
        """,
        command=cancel(2, 2),
        events="""
            cancelled #2 o2 leaves=1 user
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
        """,
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
        """,
        command=buy(3, 100, 1),
        events="""
            accepted #4 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o3 buy left=0 maker #1 o1 left=1
            level sell 100 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
        """,
    )


# ------------------------------------------------- STOP_WOULD_TRIGGER_IMMEDIATELY


def traded_at_100() -> Harness:
    h = Harness()
    h.setup(sell(1, 100, 1), buy(2, 100, 1), buy(1, 90, 1), sell(2, 110, 1))
    return h


@pytest.mark.parametrize(
    "command",
    [
        stop_limit(3, BUY, stop=100, price=101, qty=1),  # AUTO buy: 100 >= 100
        stop_market(3, BUY, stop=90, qty=1),  # AUTO buy: 100 >= 90
        stop_market(3, SELL, stop=100, qty=1),  # AUTO sell: 100 <= 100
        stop_limit(3, SELL, stop=110, price=109, qty=1),  # AUTO sell: 100 <= 110
        stop_limit(3, BUY, stop=110, price=110, qty=1, trigger=BELOW),  # 100 <= 110
        stop_market(3, SELL, stop=90, qty=1, trigger=ABOVE),  # 100 >= 90
        stop_market(3, SELL, stop=100, qty=1, trigger=ABOVE),  # 100 >= 100
    ],
    ids=lambda c: f"{c.side}-{c.type}-{c.trigger}-stop{c.stop_price}",
)
def test_stop_would_trigger_immediately(command: PlaceOrder) -> None:
    h = traded_at_100()
    unchanged(h, command=command, events="rejected #5 o3 stop_would_trigger_immediately")


@pytest.mark.parametrize(
    "command",
    [
        stop_limit(3, BUY, stop=101, price=101, qty=1),
        stop_market(3, SELL, stop=99, qty=1),
        stop_limit(3, BUY, stop=99, price=99, qty=1, trigger=BELOW),
        stop_market(3, SELL, stop=101, qty=1, trigger=ABOVE),
    ],
    ids=lambda c: f"{c.side}-{c.type}-{c.trigger}-stop{c.stop_price}",
)
def test_stop_not_yet_triggered_is_accepted(command: PlaceOrder) -> None:
    h = traded_at_100()
    out = h.run(command)
    assert [type(e).__name__ for e in out] == ["OrderAccepted"]
    assert [o.order_id for o in h.engine.open_orders("ABC") if o.is_stop] == [5]


def test_stop_with_no_last_price_is_accepted_at_any_stop() -> None:
    h = Harness()
    h.setup(sell(1, 100, 1))
    out = h.run(stop_market(3, BUY, stop=1, qty=1))
    assert [type(e).__name__ for e in out] == ["OrderAccepted"]
    out = h.run(stop_market(3, SELL, stop=10**6, qty=1))
    assert [type(e).__name__ for e in out] == ["OrderAccepted"]


def test_stop_rejection_leaves_book_untouched() -> None:
    h = traded_at_100()
    unchanged(
        h,
        command=stop_market(3, BUY, stop=100, qty=1, client_order_id="s1"),
        events="rejected #5 o3 stop_would_trigger_immediately cid=s1",
    )
