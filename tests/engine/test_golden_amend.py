"""Golden scenarios: AmendOrder (priority kept / lost, crossing, rejections)."""

from __future__ import annotations

import pytest

from crossbook.domain.commands import AmendOrder
from crossbook.domain.enums import SelfTradePrevention as STP
from crossbook.domain.enums import Side

from .golden.harness import (
    Harness,
    amend,
    buy,
    check_book,
    scenario,
    sell,
    stop_limit,
    unchanged,
)

TWO_ASKS = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
          #1     o1    100        5       5
          #2     o2    100        5       5
"""


def test_amend_quantity_down_keeps_priority() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5))
    scenario(
        h,
        before=TWO_ASKS,
        command=amend(1, 1, qty=3),
        events="""
            amended #1 o1 px=100 qty=3 leaves=3 priority=kept
            level sell 100 8
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
                  #2     o2    100        5       5
        """,
    )


def test_amend_quantity_down_after_partial_fill() -> None:
    """#1 10 of which 4 filled; new total 5 -> leaves 1, still first."""
    h = Harness()
    h.setup(sell(1, 100, 10), sell(2, 100, 5), buy(3, 100, 4))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        6       6
                  #2     o2    100        5       5
        """,
        command=amend(1, 1, qty=5),
        events="""
            amended #1 o1 px=100 qty=5 leaves=1 priority=kept
            level sell 100 6
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       1
                  #2     o2    100        5       5
        """,
    )


def test_amend_quantity_up_loses_priority() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5))
    scenario(
        h,
        before=TWO_ASKS,
        command=amend(1, 1, qty=8),
        events="""
            amended #1 o1 px=100 qty=8 leaves=8 priority=lost
            level sell 100 13
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        5       5
                  #1     o1    100        8       8
        """,
    )


def test_amend_price_loses_priority() -> None:
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
        command=amend(1, 1, price=101),
        events="""
            amended #1 o1 px=101 qty=5 leaves=5 priority=lost
            level sell 100 0
            level sell 101 10
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        5       5
                  #1     o1    101        5       5
        """,
    )


def test_amend_price_and_quantity_down_still_loses_priority() -> None:
    h = Harness()
    h.setup(sell(2, 99, 5), sell(1, 100, 5), sell(3, 99, 1))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2     99        5       5
                  #3     o3     99        1       1
                  #2     o1    100        5       5
        """,
        command=amend(2, 1, price=98, qty=2),
        events="""
            amended #1 o2 px=98 qty=2 leaves=2 priority=lost
            level sell 98 2
            level sell 99 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o2     98        2       2
                  #3     o3     99        1       1
                  #2     o1    100        5       5
        """,
    )


def test_amend_by_client_order_id() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5, client_order_id="a"), sell(2, 100, 5, client_order_id="a"))
    scenario(
        h,
        before=TWO_ASKS,
        command=amend(2, cid="a", qty=2),
        events="""
            amended #2 o2 px=100 qty=2 leaves=2 priority=kept cid=a
            level sell 100 7
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2    100        2       2
        """,
    )


def test_amend_that_crosses_trades_as_a_taker() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5), sell(2, 101, 8))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        8       8
        """,
        command=amend(2, 2, price=99),
        events="""
            amended #2 o2 px=99 qty=8 leaves=8 priority=lost
            fill t1 5@99 taker #2 o2 sell left=3 maker #1 o1 left=0
            level buy 99 0
            level sell 99 3
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2     99        3       3
        """,
    )


def test_amend_that_crosses_fully_fills() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5), buy(3, 98, 5), sell(2, 101, 8))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
                  #2     o3     98        5       5
            ASKS  id  owner  price  visible  leaves
                  #3     o2    101        8       8
        """,
        command=amend(2, 3, price=97, qty=7),
        events="""
            amended #3 o2 px=97 qty=7 leaves=7 priority=lost
            fill t1 5@99 taker #3 o2 sell left=2 maker #1 o1 left=0
            fill t2 2@98 taker #3 o2 sell left=0 maker #2 o3 left=3
            level buy 98 3
            level buy 99 0
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o3     98        3       3
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_amend_that_crosses_own_order_applies_its_stp_mode() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5), sell(1, 101, 8, stp=STP.EXPIRE_TAKER))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o1    101        8       8
        """,
        command=amend(1, 2, price=99),
        events="""
            amended #2 o1 px=99 qty=8 leaves=8 priority=lost
            expired #2 o1 leaves=8 self_trade_taker
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_amend_iceberg_down_shrinks_the_hidden_part_first() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=4), sell(2, 100, 1))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        4      10
                  #2     o2    100        1       1
        """,
        command=amend(1, 1, qty=6),
        events="""
            amended #1 o1 px=100 qty=6 leaves=6 priority=kept
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        4       6
                  #2     o2    100        1       1
        """,
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        4       6
                  #2     o2    100        1       1
        """,
        command=amend(1, 1, qty=3),
        events="""
            amended #1 o1 px=100 qty=3 leaves=3 priority=kept
            level sell 100 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
                  #2     o2    100        1       1
        """,
    )


def test_amend_iceberg_up_requeues_with_a_full_slice() -> None:
    """#1 (10, display 4) had 1 filled (shows 3); new total 12 -> leaves 11, shows 4,
    behind #2."""
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=4), sell(2, 100, 5), buy(3, 100, 1))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       9
                  #2     o2    100        5       5
        """,
        command=amend(1, 1, qty=12),
        events="""
            amended #1 o1 px=100 qty=12 leaves=11 priority=lost
            level sell 100 9
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        5       5
                  #1     o1    100        4      11
        """,
    )


def test_amend_post_only_to_a_non_crossing_price() -> None:
    h = Harness()
    h.setup(buy(1, 95, 5), sell(2, 105, 5, post_only=True))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     95        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    105        5       5
        """,
        command=amend(2, 2, price=96),
        events="""
            amended #2 o2 px=96 qty=5 leaves=5 priority=lost
            level sell 96 5
            level sell 105 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     95        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2     96        5       5
        """,
    )


# --------------------------------------------------------------------------- rejections

REJECT_BOOK = """
    BIDS  id  owner  price  visible  leaves
          #1     o1     95        5       5
    ASKS  id  owner  price  visible  leaves
          #2     o2    100        6       6
          #5     o2    105        5       5
    STOPS id  owner  side  type        stop  price  leaves
          #4     o2   buy  stop_limit   120    121       1
"""


def rejection_book() -> Harness:
    h = Harness()
    h.setup(
        buy(1, 95, 5),
        sell(2, 100, 10),
        buy(3, 100, 4),  # #2 has 4 filled, 6 left; last price 100
        stop_limit(2, Side.BUY, stop=120, price=121, qty=1),
        sell(2, 105, 5, post_only=True, client_order_id="po"),
        sell(2, 100, 50, market="XYZ"),
    )
    check_book(h, REJECT_BOOK)
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #6     o2    100       50      50
    """,
        "XYZ",
    )
    return h


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (amend(2, 2, qty=3, market="NOPE"), "amend_rejected #2 o2 unknown_market"),
        (amend(2, 99, qty=3), "amend_rejected #99 o2 unknown_order"),
        (amend(1, 2, qty=3), "amend_rejected #2 o1 unknown_order"),  # someone else's
        (amend(2, 6, qty=30), "amend_rejected #6 o2 unknown_order"),  # other market
        (amend(3, 3, qty=1), "amend_rejected #3 o3 unknown_order"),  # filled, closed
        (amend(2, cid="nope", qty=3), "amend_rejected #0 o2 unknown_order cid=nope"),
        (amend(1, cid="po", qty=3), "amend_rejected #0 o1 unknown_order cid=po"),
        (amend(2, 4, qty=2), "amend_rejected #4 o2 order_not_amendable"),
        (amend(2, 2, price=-5), "amend_rejected #2 o2 invalid_price"),
        (amend(2, 6, price=101, market="XYZ"), "amend_rejected #6 o2 price_not_on_tick"),
        (amend(2, 2, qty=-1), "amend_rejected #2 o2 invalid_quantity"),
        (amend(2, 6, qty=55, market="XYZ"), "amend_rejected #6 o2 quantity_not_on_step"),
        (amend(2, 6, qty=1010, market="XYZ"), "amend_rejected #6 o2 quantity_too_high"),
        (amend(2, 2, qty=1_000_001), "amend_rejected #2 o2 quantity_too_high"),
        (amend(2, 2, qty=4), "amend_rejected #2 o2 amend_quantity_too_low"),  # == filled
        (amend(2, 2, qty=3), "amend_rejected #2 o2 amend_quantity_too_low"),  # < filled
        (amend(2, 2), "amend_rejected #2 o2 amend_no_change"),
        (amend(2, 2, price=100), "amend_rejected #2 o2 amend_no_change"),
        (amend(2, 2, qty=10), "amend_rejected #2 o2 amend_no_change"),
        (amend(2, 2, price=100, qty=10), "amend_rejected #2 o2 amend_no_change"),
        (amend(2, cid="po", price=105), "amend_rejected #0 o2 amend_no_change cid=po"),
        (amend(2, 5, price=95), "amend_rejected #5 o2 post_only_would_take"),
        (amend(2, cid="po", price=90, qty=3), "amend_rejected #0 o2 post_only_would_take cid=po"),
        # first failing check wins
        (amend(2, 99, price=-1, qty=-1, market="NOPE"), "amend_rejected #99 o2 unknown_market"),
        (amend(2, 99, price=-1, qty=-1), "amend_rejected #99 o2 unknown_order"),
        (amend(2, 4, price=-1, qty=-1), "amend_rejected #4 o2 order_not_amendable"),
        (amend(2, 2, price=-1, qty=-1), "amend_rejected #2 o2 invalid_price"),
        (amend(2, 6, price=102, qty=55, market="XYZ"), "amend_rejected #6 o2 price_not_on_tick"),
        (amend(2, 2, price=90, qty=2), "amend_rejected #2 o2 amend_quantity_too_low"),
        (amend(2, 5, price=95, qty=5), "amend_rejected #5 o2 post_only_would_take"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_amend_rejections_change_nothing(command: AmendOrder, expected: str) -> None:
    h = rejection_book()
    unchanged(h, command=command, events=expected)
    check_book(h, REJECT_BOOK)
