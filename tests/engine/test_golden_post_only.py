"""Golden scenarios: post-only limit orders."""

from __future__ import annotations

import pytest

from .golden.harness import Harness, buy, check_book, scenario, sell, unchanged

BOOK = """
    BIDS  id  owner  price  visible  leaves
          #1     o1     99        5       5
    ASKS  id  owner  price  visible  leaves
          #2     o2    101        5       5
"""


def setup() -> Harness:
    h = Harness()
    h.setup(buy(1, 99, 5), sell(2, 101, 5))
    check_book(h, BOOK)
    return h


def test_post_only_buy_inside_the_spread_rests() -> None:
    h = setup()
    scenario(
        h,
        before=BOOK,
        command=buy(3, 100, 4, post_only=True),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=4 post_only
            level buy 100 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #3     o3    100        4       4
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        5       5
        """,
    )


def test_post_only_sell_joining_the_best_ask_rests() -> None:
    h = setup()
    scenario(
        h,
        before=BOOK,
        command=sell(3, 101, 4, post_only=True),
        events="""
            accepted #3 o3 sell limit gtc px=101 qty=4 post_only
            level sell 101 9
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        5       5
                  #3     o3    101        4       4
        """,
    )


def test_post_only_on_an_empty_side_rests_at_any_price() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
        """,
        command=buy(2, 1000, 1, post_only=True),
        events="""
            accepted #2 o2 buy limit gtc px=1000 qty=1 post_only
            level buy 1000 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2   1000        1       1
                  #1     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
        """,
    )


@pytest.mark.parametrize(
    ("owner", "side", "price"),
    [
        (3, "buy", 101),  # at the best ask
        (3, "buy", 150),  # through it
        (3, "sell", 99),  # at the best bid
        (3, "sell", 1),  # through it
        (2, "buy", 101),  # against one's own ask: still would take
        (1, "sell", 99),  # against one's own bid
    ],
)
def test_post_only_that_would_take_is_rejected(owner: int, side: str, price: int) -> None:
    h = setup()
    make = buy if side == "buy" else sell
    unchanged(
        h,
        command=make(owner, price, 3, post_only=True),
        events=f"rejected #3 o{owner} post_only_would_take",
    )
