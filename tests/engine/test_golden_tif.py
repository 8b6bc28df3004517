"""Golden scenarios: IOC and FOK time in force (FOK counting incl. icebergs and STP)."""

from __future__ import annotations

import pytest

from crossbook.domain.enums import SelfTradePrevention as STP
from crossbook.domain.enums import TimeInForce

from .golden.harness import Harness, buy, check_book, market_buy, scenario, sell, unchanged

IOC = TimeInForce.IOC
FOK = TimeInForce.FOK


def test_ioc_partial_fill_expires_the_rest() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
        """,
        command=buy(2, 101, 8, time_in_force=IOC),
        events="""
            accepted #2 o2 buy limit ioc px=101 qty=8
            fill t1 5@100 taker #2 o2 buy left=3 maker #1 o1 left=0
            expired #2 o2 leaves=3 ioc
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_ioc_that_cannot_trade_expires_whole() -> None:
    h = Harness()
    h.setup(sell(1, 105, 5))
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #1     o1    105        5       5
    """,
    )
    unchanged(
        h,
        command=buy(2, 100, 4, time_in_force=IOC),
        events="""
            accepted #2 o2 buy limit ioc px=100 qty=4
            expired #2 o2 leaves=4 ioc
        """,
    )


def test_ioc_full_fill_has_no_expiry() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
        """,
        command=buy(2, 100, 5, time_in_force=IOC),
        events="""
            accepted #2 o2 buy limit ioc px=100 qty=5
            fill t1 5@100 taker #2 o2 buy left=0 maker #1 o1 left=0
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_fok_fills_across_levels() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 101, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2    101        5       5
        """,
        command=buy(3, 101, 8, time_in_force=FOK),
        events="""
            accepted #3 o3 buy limit fok px=101 qty=8
            fill t1 5@100 taker #3 o3 buy left=3 maker #1 o1 left=0
            fill t2 3@101 taker #3 o3 buy left=0 maker #2 o2 left=2
            level sell 100 0
            level sell 101 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        2       2
        """,
    )


def test_fok_unfillable_touches_nothing() -> None:
    """Only 5 offered at <= 100 (the 101 level is beyond the limit): FOK for 8 expires."""
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 101, 5))
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #1     o1    100        5       5
              #2     o2    101        5       5
    """,
    )
    unchanged(
        h,
        command=buy(3, 100, 8, time_in_force=FOK),
        events="""
            accepted #3 o3 buy limit fok px=100 qty=8
            expired #3 o3 leaves=8 fok
        """,
    )


def test_fok_market_by_quantity() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 150, 5))
    unchanged(
        h,
        command=market_buy(3, qty=11, time_in_force=FOK),
        events="""
            accepted #3 o3 buy market fok px=0 qty=11
            expired #3 o3 leaves=11 fok
        """,
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2    150        5       5
        """,
        command=market_buy(3, qty=10, time_in_force=FOK),
        events="""
            accepted #4 o3 buy market fok px=0 qty=10
            fill t1 5@100 taker #4 o3 buy left=5 maker #1 o1 left=0
            fill t2 5@150 taker #4 o3 buy left=0 maker #2 o2 left=0
            level sell 100 0
            level sell 150 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_fok_counts_the_hidden_part_of_icebergs() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=2))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2      10
        """,
        command=buy(2, 100, 7, time_in_force=FOK),
        events="""
            accepted #2 o2 buy limit fok px=100 qty=7
            fill t1 2@100 taker #2 o2 buy left=5 maker #1 o1 left=8
            fill t2 2@100 taker #2 o2 buy left=3 maker #1 o1 left=6
            fill t3 2@100 taker #2 o2 buy left=1 maker #1 o1 left=4
            fill t4 1@100 taker #2 o2 buy left=0 maker #1 o1 left=3
            level sell 100 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       3
        """,
    )


OWN_FIRST = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
          #1     o1    100        5       5
          #2     o2    100        5       5
"""


@pytest.mark.parametrize("stp", [STP.EXPIRE_TAKER, STP.EXPIRE_BOTH])
def test_fok_walk_stops_at_own_order(stp: STP) -> None:
    """Own maker first in the queue: the count stops there (0 < 5) and nothing happens."""
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5))
    check_book(h, OWN_FIRST)
    unchanged(
        h,
        command=buy(1, 100, 5, time_in_force=FOK, stp=stp),
        events="""
            accepted #3 o1 buy limit fok px=100 qty=5
            expired #3 o1 leaves=5 fok
        """,
    )


def test_fok_expire_taker_fills_what_precedes_own_order() -> None:
    h = Harness()
    h.setup(sell(2, 100, 5), sell(1, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2    100        5       5
                  #2     o1    100        5       5
        """,
        command=buy(1, 100, 5, time_in_force=FOK, stp=STP.EXPIRE_TAKER),
        events="""
            accepted #3 o1 buy limit fok px=100 qty=5
            fill t1 5@100 taker #3 o1 buy left=0 maker #1 o2 left=0
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o1    100        5       5
        """,
    )


def test_fok_expire_maker_skips_own_order_in_the_count() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5))
    scenario(
        h,
        before=OWN_FIRST,
        command=buy(1, 100, 5, time_in_force=FOK, stp=STP.EXPIRE_MAKER),
        events="""
            accepted #3 o1 buy limit fok px=100 qty=5
            expired #1 o1 leaves=5 self_trade_maker
            fill t1 5@100 taker #3 o1 buy left=0 maker #2 o2 left=0
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_fok_expire_maker_insufficient_leaves_own_order_alone() -> None:
    """Own 5 skipped, 3 from others < 5: FOK expires and the own maker is NOT expired."""
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 3))
    unchanged(
        h,
        command=buy(1, 100, 5, time_in_force=FOK, stp=STP.EXPIRE_MAKER),
        events="""
            accepted #3 o1 buy limit fok px=100 qty=5
            expired #3 o1 leaves=5 fok
        """,
    )


def test_fok_stp_none_counts_and_trades_with_own_order() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5))
    scenario(
        h,
        before=OWN_FIRST,
        command=buy(1, 100, 8, time_in_force=FOK, stp=STP.NONE),
        events="""
            accepted #3 o1 buy limit fok px=100 qty=8
            fill t1 5@100 taker #3 o1 buy left=3 maker #1 o1 left=0
            fill t2 3@100 taker #3 o1 buy left=0 maker #2 o2 left=2
            level sell 100 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        2       2
        """,
    )
