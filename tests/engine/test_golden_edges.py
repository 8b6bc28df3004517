"""Golden scenarios: combinations at the edges of the contract (stops with STP / FOK /
IOC, triggers after an amend, quote-sized orders under STP, id collisions)."""

from __future__ import annotations

from crossbook.domain.enums import SelfTradePrevention as STP
from crossbook.domain.enums import Side, TimeInForce

from .golden.harness import (
    Harness,
    amend,
    buy,
    check_book,
    market_buy,
    scenario,
    sell,
    stop_limit,
    stop_market,
    unchanged,
)

BUY, SELL = Side.BUY, Side.SELL


def test_explicit_order_id_collides_with_a_later_seq() -> None:
    """#3 was given explicitly; the command with seq 3 (order id 3 by default) is refused."""
    h = Harness()
    h.setup(sell(1, 100, 5, order_id=3), buy(2, 90, 1))
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
              #2     o2     90        1       1
        ASKS  id  owner  price  visible  leaves
              #3     o1    100        5       5
        """,
    )
    unchanged(h, command=sell(2, 101, 1), events="rejected #3 o2 duplicate_order_id")


def test_quote_sized_market_expired_by_stp_reports_quote_leaves() -> None:
    h = Harness()
    h.setup(sell(2, 100, 3), sell(1, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2    100        3       3
                  #2     o1    100        5       5
        """,
        command=market_buy(1, quote=1000, stp=STP.EXPIRE_TAKER),
        events="""
            accepted #3 o1 buy market ioc px=0 quote=1000
            fill t1 3@100 taker #3 o1 buy left=700 maker #1 o2 left=0
            expired #3 o1 leaves=700 self_trade_taker
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    100        5       5
        """,
    )


def test_quote_sized_market_skips_own_maker_and_keeps_spending() -> None:
    h = Harness()
    h.setup(sell(2, 100, 3), sell(1, 100, 5), sell(2, 101, 10))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2    100        3       3
                  #2     o1    100        5       5
                  #3     o2    101       10      10
        """,
        command=market_buy(1, quote=1000),
        events="""
            accepted #4 o1 buy market ioc px=0 quote=1000
            fill t1 3@100 taker #4 o1 buy left=700 maker #1 o2 left=0
            expired #2 o1 leaves=5 self_trade_maker
            fill t2 6@101 taker #4 o1 buy left=94 maker #3 o2 left=4
            expired #4 o1 leaves=94 market
            level sell 100 0
            level sell 101 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o2    101        4       4
        """,
    )


def test_amend_that_trades_triggers_stops() -> None:
    h = Harness()
    h.setup(
        buy(1, 99, 5),
        sell(2, 101, 8),
        stop_market(3, SELL, stop=99, qty=2),
        buy(4, 90, 5),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
                  #4     o4     90        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        8       8
            STOPS id  owner  side  type         stop  price  leaves
                  #3     o3  sell  stop_market    99      0       2
        """,
        command=amend(2, 2, price=99),
        events="""
            amended #2 o2 px=99 qty=8 leaves=8 priority=lost
            fill t1 5@99 taker #2 o2 sell left=3 maker #1 o1 left=0
            triggered #3 o3 stop=99 last=99
            fill t2 2@90 taker #3 o3 sell left=0 maker #4 o4 left=3
            level buy 90 3
            level buy 99 0
            level sell 99 3
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #4     o4     90        3       3
            ASKS  id  owner  price  visible  leaves
                  #2     o2     99        3       3
        """,
    )


def test_triggered_stop_market_into_an_empty_side_expires() -> None:
    h = Harness()
    h.setup(sell(1, 100, 1), stop_market(2, SELL, stop=100, qty=3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
            STOPS id  owner  side  type         stop  price  leaves
                  #2     o2  sell  stop_market   100      0       3
        """,
        command=buy(3, 100, 1),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #3 o3 buy left=0 maker #1 o1 left=0
            triggered #2 o2 stop=100 last=100
            expired #2 o2 leaves=3 market
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


STOP_BOOK = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
          #1     o1    100        1       1
          #2     o1    101        2       2
    STOPS id  owner  side  type        stop  price  leaves
          #3     o2   buy  stop_limit   100    101       5
"""


def test_triggered_fok_stop_limit_that_cannot_fill_expires() -> None:
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        sell(1, 101, 2),
        stop_limit(2, BUY, stop=100, price=101, qty=5, time_in_force=TimeInForce.FOK),
    )
    scenario(
        h,
        before=STOP_BOOK,
        command=buy(3, 100, 1),
        events="""
            accepted #4 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o3 buy left=0 maker #1 o1 left=0
            triggered #3 o2 stop=100 last=100
            expired #3 o2 leaves=5 fok
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    101        2       2
        """,
    )


def test_triggered_ioc_stop_limit_fills_and_expires_the_rest() -> None:
    h = Harness()
    h.setup(
        sell(1, 100, 1),
        sell(1, 101, 2),
        stop_limit(2, BUY, stop=100, price=101, qty=5, time_in_force=TimeInForce.IOC),
    )
    scenario(
        h,
        before=STOP_BOOK,
        command=buy(3, 100, 1),
        events="""
            accepted #4 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o3 buy left=0 maker #1 o1 left=0
            triggered #3 o2 stop=100 last=100
            fill t2 2@101 taker #3 o2 buy left=3 maker #2 o1 left=0
            expired #3 o2 leaves=3 ioc
            level sell 100 0
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_triggered_stop_uses_its_own_stp_mode() -> None:
    h = Harness()
    h.setup(
        sell(2, 100, 1),
        sell(1, 101, 5),
        stop_market(1, BUY, stop=100, qty=2, stp=STP.EXPIRE_TAKER),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2    100        1       1
                  #2     o1    101        5       5
            STOPS id  owner  side  type         stop  price  leaves
                  #3     o1   buy  stop_market   100      0       2
        """,
        command=buy(3, 100, 1),
        events="""
            accepted #4 o3 buy limit gtc px=100 qty=1
            fill t1 1@100 taker #4 o3 buy left=0 maker #1 o2 left=0
            triggered #3 o1 stop=100 last=100
            expired #3 o1 leaves=2 self_trade_taker
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    101        5       5
        """,
    )


def test_trades_in_another_market_do_not_trigger_stops() -> None:
    h = Harness()
    h.setup(
        stop_market(2, BUY, stop=100, qty=1),
        sell(1, 100, 1),
        sell(1, 100, 20, market="XYZ"),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o1    100       20      20
        """,
        command=buy(3, 100, 20, market="XYZ"),
        events="""
            accepted #4 o3 buy limit gtc px=100 qty=20
            fill t1 20@100 taker #4 o3 buy left=0 maker #3 o1 left=0
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
        symbol="XYZ",
    )
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #2     o1    100        1       1
        STOPS id  owner  side  type         stop  price  leaves
              #1     o2   buy  stop_market   100      0       1
        """,
    )
