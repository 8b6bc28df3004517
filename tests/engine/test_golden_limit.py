"""Golden scenarios: GTC limit orders, price-time priority, execution at the maker price."""

from __future__ import annotations

from .golden.harness import Harness, buy, scenario, sell


def test_limit_rests_on_empty_book() -> None:
    h = Harness()
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
        command=buy(1, 100, 5),
        events="""
            accepted #1 o1 buy limit gtc px=100 qty=5
            level buy 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_limit_that_does_not_cross_rests_behind_the_level() -> None:
    h = Harness()
    h.setup(buy(1, 100, 5), sell(2, 102, 5), buy(3, 99, 4))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #3     o3     99        4       4
            ASKS  id  owner  price  visible  leaves
                  #2     o2    102        5       5
        """,
        command=buy(4, 100, 7),
        events="""
            accepted #4 o4 buy limit gtc px=100 qty=7
            level buy 100 12
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #4     o4    100        7       7
                  #3     o3     99        4       4
            ASKS  id  owner  price  visible  leaves
                  #2     o2    102        5       5
        """,
    )


def test_limit_partial_fill_rests_the_remainder() -> None:
    h = Harness()
    h.setup(sell(1, 101, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    101        5       5
        """,
        command=buy(2, 101, 8),
        events="""
            accepted #2 o2 buy limit gtc px=101 qty=8
            fill t1 5@101 taker #2 o2 buy left=3 maker #1 o1 left=0
            level buy 101 3
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2    101        3       3
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_limit_full_fill_partially_fills_the_maker() -> None:
    h = Harness()
    h.setup(sell(1, 101, 10), buy(2, 99, 1))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     99        1       1
            ASKS  id  owner  price  visible  leaves
                  #1     o1    101       10      10
        """,
        command=buy(3, 101, 4),
        events="""
            accepted #3 o3 buy limit gtc px=101 qty=4
            fill t1 4@101 taker #3 o3 buy left=0 maker #1 o1 left=6
            level sell 101 6
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     99        1       1
            ASKS  id  owner  price  visible  leaves
                  #1     o1    101        6       6
        """,
    )


def test_limit_sweeps_levels_at_maker_prices_and_rests_at_its_limit() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 101, 5), sell(3, 103, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2    101        5       5
                  #3     o3    103        5       5
        """,
        command=buy(4, 102, 12),
        events="""
            accepted #4 o4 buy limit gtc px=102 qty=12
            fill t1 5@100 taker #4 o4 buy left=7 maker #1 o1 left=0
            fill t2 5@101 taker #4 o4 buy left=2 maker #2 o2 left=0
            level buy 102 2
            level sell 100 0
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #4     o4    102        2       2
            ASKS  id  owner  price  visible  leaves
                  #3     o3    103        5       5
        """,
    )


def test_sell_limit_executes_at_the_higher_bid_price() -> None:
    h = Harness()
    h.setup(buy(1, 105, 3), buy(2, 104, 3), buy(3, 90, 3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    105        3       3
                  #2     o2    104        3       3
                  #3     o3     90        3       3
            ASKS  id  owner  price  visible  leaves
        """,
        command=sell(4, 100, 8),
        events="""
            accepted #4 o4 sell limit gtc px=100 qty=8
            fill t1 3@105 taker #4 o4 sell left=5 maker #1 o1 left=0
            fill t2 3@104 taker #4 o4 sell left=2 maker #2 o2 left=0
            level buy 104 0
            level buy 105 0
            level sell 100 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #3     o3     90        3       3
            ASKS  id  owner  price  visible  leaves
                  #4     o4    100        2       2
        """,
    )


def test_price_time_priority() -> None:
    """Better price first, then oldest first within a level."""
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 5), sell(3, 100, 5), sell(4, 99, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #4     o4     99        5       5
                  #1     o1    100        5       5
                  #2     o2    100        5       5
                  #3     o3    100        5       5
        """,
        command=buy(5, 100, 12),
        events="""
            accepted #5 o5 buy limit gtc px=100 qty=12
            fill t1 5@99 taker #5 o5 buy left=7 maker #4 o4 left=0
            fill t2 5@100 taker #5 o5 buy left=2 maker #1 o1 left=0
            fill t3 2@100 taker #5 o5 buy left=0 maker #2 o2 left=3
            level sell 99 0
            level sell 100 8
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        3       3
                  #3     o3    100        5       5
        """,
    )


def test_trade_ids_count_per_market() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 50, market="XYZ"))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
        """,
        command=buy(3, 100, 2),
        events="""
            accepted #3 o3 buy limit gtc px=100 qty=2
            fill t1 2@100 taker #3 o3 buy left=0 maker #1 o1 left=3
            level sell 100 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
        """,
    )
    # second trade in ABC is t2; first trade in XYZ is t1
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100       50      50
        """,
        command=buy(4, 100, 20, market="XYZ"),
        events="""
            accepted #4 o4 buy limit gtc px=100 qty=20
            fill t1 20@100 taker #4 o4 buy left=0 maker #2 o2 left=30
            level sell 100 30
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100       30      30
        """,
        symbol="XYZ",
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        3       3
        """,
        command=buy(5, 100, 1),
        events="""
            accepted #5 o5 buy limit gtc px=100 qty=1
            fill t2 1@100 taker #5 o5 buy left=0 maker #1 o1 left=2
            level sell 100 2
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        2       2
        """,
    )


def test_explicit_order_id_is_used() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5, order_id=500))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #500   o1    100        5       5
        """,
        command=buy(2, 100, 2, order_id=77, client_order_id="b-1"),
        events="""
            accepted #77 o2 buy limit gtc px=100 qty=2 cid=b-1
            fill t1 2@100 taker #77 o2 buy left=0 maker #500 o1 left=3
            level sell 100 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #500   o1    100        3       3
        """,
    )
