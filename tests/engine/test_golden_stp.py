"""Golden scenarios: self-trade prevention (the taker's mode applies)."""

from __future__ import annotations

from crossbook.domain.enums import SelfTradePrevention as STP
from crossbook.domain.enums import TimeInForce

from .golden.harness import Harness, buy, market_buy, scenario, sell

BOOK = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
          #1     o2    100        3       3
          #2     o1    100        5       5
          #3     o2    101        5       5
"""


def setup() -> Harness:
    """o1's own ask #2 sits behind o2's #1 at 100; o1 then buys 10 up to 101."""
    h = Harness()
    h.setup(sell(2, 100, 3), sell(1, 100, 5, stp=STP.NONE), sell(2, 101, 5))
    return h


def test_expire_taker() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=buy(1, 101, 10, stp=STP.EXPIRE_TAKER),
        events="""
            accepted #4 o1 buy limit gtc px=101 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            expired #4 o1 leaves=7 self_trade_taker
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    100        5       5
                  #3     o2    101        5       5
        """,
    )


def test_expire_maker() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=buy(1, 101, 10, stp=STP.EXPIRE_MAKER),
        events="""
            accepted #4 o1 buy limit gtc px=101 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            expired #2 o1 leaves=5 self_trade_maker
            fill t2 5@101 taker #4 o1 buy left=2 maker #3 o2 left=0
            level buy 101 2
            level sell 100 0
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #4     o1    101        2       2
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_expire_both() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=buy(1, 101, 10, stp=STP.EXPIRE_BOTH),
        events="""
            accepted #4 o1 buy limit gtc px=101 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            expired #2 o1 leaves=5 self_trade_maker
            expired #4 o1 leaves=7 self_trade_taker
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o2    101        5       5
        """,
    )


def test_none_lets_the_self_trade_happen() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=buy(1, 101, 10, stp=STP.NONE),
        events="""
            accepted #4 o1 buy limit gtc px=101 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            fill t2 5@100 taker #4 o1 buy left=2 maker #2 o1 left=0
            fill t3 2@101 taker #4 o1 buy left=0 maker #3 o2 left=3
            level sell 100 0
            level sell 101 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #3     o2    101        3       3
        """,
    )


def test_makers_mode_does_not_matter() -> None:
    """#1 rests with EXPIRE_BOTH, but the taker (NONE) decides: the trade happens."""
    h = Harness()
    h.setup(sell(1, 100, 5, stp=STP.EXPIRE_BOTH))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
        """,
        command=buy(1, 100, 2, stp=STP.NONE),
        events="""
            accepted #2 o1 buy limit gtc px=100 qty=2
            fill t1 2@100 taker #2 o1 buy left=0 maker #1 o1 left=3
            level sell 100 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
        """,
    )


def test_expire_taker_market_order_does_not_also_expire_as_market() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=market_buy(1, qty=10, stp=STP.EXPIRE_TAKER),
        events="""
            accepted #4 o1 buy market ioc px=0 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            expired #4 o1 leaves=7 self_trade_taker
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    100        5       5
                  #3     o2    101        5       5
        """,
    )


def test_expire_taker_ioc_does_not_also_expire_as_ioc() -> None:
    scenario(
        setup(),
        before=BOOK,
        command=buy(1, 100, 10, stp=STP.EXPIRE_TAKER, time_in_force=TimeInForce.IOC),
        events="""
            accepted #4 o1 buy limit ioc px=100 qty=10
            fill t1 3@100 taker #4 o1 buy left=7 maker #1 o2 left=0
            expired #4 o1 leaves=7 self_trade_taker
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    100        5       5
                  #3     o2    101        5       5
        """,
    )


def test_expire_maker_on_own_iceberg_expires_its_hidden_part_too() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=2), sell(2, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2      10
                  #2     o2    100        5       5
        """,
        command=buy(1, 100, 4, time_in_force=TimeInForce.IOC),
        events="""
            accepted #3 o1 buy limit ioc px=100 qty=4
            expired #1 o1 leaves=10 self_trade_maker
            fill t1 4@100 taker #3 o1 buy left=0 maker #2 o2 left=1
            level sell 100 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        1       1
        """,
    )


def test_expire_maker_removes_every_own_order_in_the_way() -> None:
    h = Harness()
    h.setup(sell(1, 100, 2), sell(1, 100, 2), sell(1, 101, 2), sell(2, 102, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
                  #2     o1    100        2       2
                  #3     o1    101        2       2
                  #4     o2    102        5       5
        """,
        command=buy(1, 101, 3),
        events="""
            accepted #5 o1 buy limit gtc px=101 qty=3
            expired #1 o1 leaves=2 self_trade_maker
            expired #2 o1 leaves=2 self_trade_maker
            expired #3 o1 leaves=2 self_trade_maker
            level buy 101 3
            level sell 100 0
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #5     o1    101        3       3
            ASKS  id  owner  price  visible  leaves
                  #4     o2    102        5       5
        """,
    )
