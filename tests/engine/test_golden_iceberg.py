"""Golden scenarios: iceberg orders (display quantity), refresh to the back of the queue."""

from __future__ import annotations

from .golden.harness import Harness, buy, cancel, scenario, sell


def test_iceberg_shows_only_its_display_quantity() -> None:
    h = Harness()
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
        command=sell(1, 100, 10, display_quantity=3),
        events="""
            accepted #1 o1 sell limit gtc px=100 qty=10 display=3
            level sell 100 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3      10
        """,
    )


def test_iceberg_refresh_goes_to_the_back_of_the_queue() -> None:
    """#1 shows 3; once those 3 fill it shows 3 more but behind #2, so #2 fills next."""
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=3), sell(2, 100, 3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3      10
                  #2     o2    100        3       3
        """,
        command=buy(3, 100, 4),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=4
            fill t1 3@100 taker #3 o3 buy left=1 maker #1 o1 left=7
            fill t2 1@100 taker #3 o3 buy left=0 maker #2 o2 left=2
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        2       2
                  #1     o1    100        3       7
        """,
    )


def test_iceberg_refreshes_repeatedly_and_last_slice_is_the_remainder() -> None:
    h = Harness()
    h.setup(sell(1, 100, 7, display_quantity=3), sell(2, 101, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       7
                  #2     o2    101        5       5
        """,
        command=buy(3, 101, 9),
        events="""
            accepted #3 o3 buy limit gtc px=101 qty=9
            fill t1 3@100 taker #3 o3 buy left=6 maker #1 o1 left=4
            fill t2 3@100 taker #3 o3 buy left=3 maker #1 o1 left=1
            fill t3 1@100 taker #3 o3 buy left=2 maker #1 o1 left=0
            fill t4 2@101 taker #3 o3 buy left=0 maker #2 o2 left=3
            level sell 100 0
            level sell 101 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        3       3
        """,
    )


def test_partial_fill_of_the_visible_slice_keeps_priority() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=4), sell(2, 100, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        4      10
                  #2     o2    100        5       5
        """,
        command=buy(3, 100, 3),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=3
            fill t1 3@100 taker #3 o3 buy left=0 maker #1 o1 left=7
            level sell 100 6
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       7
                  #2     o2    100        5       5
        """,
    )
    # the fill is capped by the visible 1; the refreshed slice goes behind #2
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        1       7
                  #2     o2    100        5       5
        """,
        command=buy(4, 100, 2),
        events="""
            accepted #4 o4 buy limit gtc px=100 qty=2
            fill t2 1@100 taker #4 o4 buy left=1 maker #1 o1 left=6
            fill t3 1@100 taker #4 o4 buy left=0 maker #2 o2 left=4
            level sell 100 8
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        4       4
                  #1     o1    100        4       6
        """,
    )


def test_refresh_that_restores_the_level_total_emits_no_level_change() -> None:
    """The level shows 3 before and 3 after (fresh slice): no BookLevelChanged."""
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3      10
        """,
        command=buy(2, 100, 3),
        events="""
            accepted #2 o2 buy limit gtc px=100 qty=3
            fill t1 3@100 taker #2 o2 buy left=0 maker #1 o1 left=7
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       7
        """,
    )


def test_iceberg_taker_rests_showing_its_display() -> None:
    h = Harness()
    h.setup(sell(1, 100, 3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
        """,
        command=buy(2, 100, 10, display_quantity=2),
        events="""
            accepted #2 o2 buy limit gtc px=100 qty=10 display=2
            fill t1 3@100 taker #2 o2 buy left=7 maker #1 o1 left=0
            level buy 100 2
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2    100        2       7
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_iceberg_taker_fills_beyond_its_display() -> None:
    """The display only limits what rests visibly, not what the taker can take."""
    h = Harness()
    h.setup(sell(1, 100, 8))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        8       8
        """,
        command=buy(2, 100, 10, display_quantity=2),
        events="""
            accepted #2 o2 buy limit gtc px=100 qty=10 display=2
            fill t1 8@100 taker #2 o2 buy left=2 maker #1 o1 left=0
            level buy 100 2
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2    100        2       2
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_cancel_iceberg_reports_hidden_leaves() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10, display_quantity=3), sell(2, 100, 2))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3      10
                  #2     o2    100        2       2
        """,
        command=cancel(1, 1),
        events="""
            cancelled #1 o1 leaves=10 user
            level sell 100 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        2       2
        """,
    )
