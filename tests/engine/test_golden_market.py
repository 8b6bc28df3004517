"""Golden scenarios: market orders sized by base quantity and by quote amount."""

from __future__ import annotations

from crossbook.domain.markets import Market

from .golden.harness import ABC, Harness, buy, market_buy, market_sell, scenario, sell

EMPTY = """
    BIDS  id  owner  price  visible  leaves
    ASKS  id  owner  price  visible  leaves
"""


def test_market_buy_by_quantity_sweeps_levels_and_expires_the_rest() -> None:
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
        command=market_buy(3, qty=15),
        events="""
            accepted #3 o3 buy market ioc px=0 qty=15
            fill t1 5@100 taker #3 o3 buy left=10 maker #1 o1 left=0
            fill t2 5@101 taker #3 o3 buy left=5 maker #2 o2 left=0
            expired #3 o3 leaves=5 market
            level sell 100 0
            level sell 101 0
        """,
        after=EMPTY,
    )


def test_market_sell_by_quantity_fully_filled() -> None:
    h = Harness()
    h.setup(buy(1, 100, 5), buy(2, 98, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2     98        5       5
            ASKS  id  owner  price  visible  leaves
        """,
        command=market_sell(3, qty=7),
        events="""
            accepted #3 o3 sell market ioc px=0 qty=7
            fill t1 5@100 taker #3 o3 sell left=2 maker #1 o1 left=0
            fill t2 2@98 taker #3 o3 sell left=0 maker #2 o2 left=3
            level buy 98 3
            level buy 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     98        3       3
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_market_on_empty_book_expires() -> None:
    h = Harness()
    scenario(
        h,
        before=EMPTY,
        command=market_buy(1, qty=5),
        events="""
            accepted #1 o1 buy market ioc px=0 qty=5
            expired #1 o1 leaves=5 market
        """,
        after=EMPTY,
    )
    scenario(
        h,
        before=EMPTY,
        command=market_sell(1, quote=500),
        events="""
            accepted #2 o1 sell market ioc px=0 quote=500
            expired #2 o1 leaves=500 market
        """,
        after=EMPTY,
    )


def test_market_buy_by_quote_with_leftover_budget() -> None:
    """1000 to spend: 5@100 (500 left), then 500 // 101 = 4 @101 (96 left), 96 < 101: stop."""
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
        command=market_buy(3, quote=1000),
        events="""
            accepted #3 o3 buy market ioc px=0 quote=1000
            fill t1 5@100 taker #3 o3 buy left=500 maker #1 o1 left=0
            fill t2 4@101 taker #3 o3 buy left=96 maker #2 o2 left=1
            expired #3 o3 leaves=96 market
            level sell 100 0
            level sell 101 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        1       1
        """,
    )


def test_market_buy_by_quote_spends_exactly() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100       10      10
        """,
        command=market_buy(2, quote=500),
        events="""
            accepted #2 o2 buy market ioc px=0 quote=500
            fill t1 5@100 taker #2 o2 buy left=0 maker #1 o1 left=5
            level sell 100 5
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
        """,
    )


def test_market_sell_by_quote_amount_to_receive() -> None:
    """Receive 700: 5@100 (200 left), 200 // 99 = 2 @99 (2 left), 2 < 99: stop."""
    h = Harness()
    h.setup(buy(1, 100, 5), buy(2, 99, 5))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2     99        5       5
            ASKS  id  owner  price  visible  leaves
        """,
        command=market_sell(3, quote=700),
        events="""
            accepted #3 o3 sell market ioc px=0 quote=700
            fill t1 5@100 taker #3 o3 sell left=200 maker #1 o1 left=0
            fill t2 2@99 taker #3 o3 sell left=2 maker #2 o2 left=3
            expired #3 o3 leaves=2 market
            level buy 99 3
            level buy 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #2     o2     99        3       3
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_market_buy_by_quote_rounds_down_to_the_step() -> None:
    """XYZ has step 10: 2500 // 100 = 25 -> 20; then 500 // 100 = 5 -> 0: stop."""
    h = Harness()
    h.setup(sell(1, 100, 100, market="XYZ"))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100      100     100
        """,
        command=market_buy(2, quote=2500, market="XYZ"),
        events="""
            accepted #2 o2 buy market ioc px=0 quote=2500
            fill t1 20@100 taker #2 o2 buy left=500 maker #1 o1 left=80
            expired #2 o2 leaves=500 market
            level sell 100 80
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100       80      80
        """,
        symbol="XYZ",
    )


DEC = Market(
    symbol="DEC",
    base="D",
    quote="E",
    base_scale=2,
    quote_scale=2,
    price_scale=1,
    tick_size=1,
    step_size=1,
    min_quantity=1,
    max_quantity=1_000_000,
    min_notional=0,
)


def test_market_buy_by_quote_with_fractional_notionals() -> None:
    """Prices in tenths, quantities and quote in hundredths: notional_divisor = 1000.

    Budget 1.00 quote = 100 minor = 100_000 scaled.
    12.3 x 0.05: 100_000 // 12_300 = 8 >= 5; costs 61_500 -> 38_500 left (leaves 38).
    12.4 x 0.03: 38_500 // 12_400 = 3;       costs 37_200 ->  1_300 left (leaves 1).
    1_300 // 12_400 = 0: stop, expire 1 (0.01 quote, rounded down).
    """
    h = Harness((ABC, DEC))
    h.setup(sell(1, 123, 5, market="DEC"), sell(2, 124, 10, market="DEC"))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    123        5       5
                  #2     o2    124       10      10
        """,
        command=market_buy(3, quote=100, market="DEC"),
        events="""
            accepted #3 o3 buy market ioc px=0 quote=100
            fill t1 5@123 taker #3 o3 buy left=38 maker #1 o1 left=0
            fill t2 3@124 taker #3 o3 buy left=1 maker #2 o2 left=7
            expired #3 o3 leaves=1 market
            level sell 123 0
            level sell 124 7
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    124        7       7
        """,
        symbol="DEC",
    )


def test_capped_market_buy_stops_at_its_budget() -> None:
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
        command=market_buy(3, qty=8, quote=800),
        events="""
            accepted #3 o3 buy market ioc px=0 qty=8 quote=800
            fill t1 5@100 taker #3 o3 buy left=3 maker #1 o1 left=0
            fill t2 2@101 taker #3 o3 buy left=1 maker #2 o2 left=3
            expired #3 o3 leaves=1 market
            level sell 100 0
            level sell 101 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        3       3
        """,
    )


def test_capped_market_buy_stops_at_its_quantity() -> None:
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
        command=market_buy(3, qty=6, quote=100_000),
        events="""
            accepted #3 o3 buy market ioc px=0 qty=6 quote=100000
            fill t1 5@100 taker #3 o3 buy left=1 maker #1 o1 left=0
            fill t2 1@101 taker #3 o3 buy left=0 maker #2 o2 left=4
            level sell 100 0
            level sell 101 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    101        4       4
        """,
    )
