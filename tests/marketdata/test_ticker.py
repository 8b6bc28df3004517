"""Rolling 24 h tickers against a brute-force computation over every trade."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.domain.enums import Side
from crossbook.domain.events import BookLevelChanged, OrderFilled
from crossbook.marketdata import MarketData, Ticker, quote_minor
from crossbook.marketdata.intervals import DAY_NS, HOUR_NS, SECOND_NS
from tests.marketdata.fills import OTHER_MARKET, T0, TRADE_MARKET, build, commands

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute(trades: list[OrderFilled], now: int, resolution: int, window: int = DAY_NS) -> tuple:
    """Expected (open, high, low, last, volume, quote, count, first, last id, prev close)."""
    first_key = (now - window + 1) // resolution
    inside = [t for t in trades if t.ts // resolution >= first_key]
    before = [t for t in trades if t.ts // resolution < first_key]
    prev = before[-1].price if before else 0
    if not inside:
        last = trades[-1].price if trades else 0
        return (last, last, last, last, 0, 0, 0, -1, -1, prev)
    return (
        inside[0].price, max(t.price for t in inside), min(t.price for t in inside),
        inside[-1].price, sum(t.quantity for t in inside),
        sum(t.price * t.quantity for t in inside), len(inside), inside[0].trade_id,
        inside[-1].trade_id, prev,
    )  # fmt: skip


def fields(t: Ticker) -> tuple:
    return (
        t.open, t.high, t.low, t.last, t.volume, t.quote_volume, t.count, t.first_trade_id,
        t.last_trade_id, t.prev_close,
    )  # fmt: skip


@SETTINGS
@given(
    commands,
    st.sampled_from([1, 1, 1_000_000, SECOND_NS, 60 * SECOND_NS, HOUR_NS]),
    st.lists(st.integers(0, 2 * DAY_NS), min_size=1, max_size=4),
)
def test_window_matches_brute_force(cmds: list, resolution: int, probes: list[int]) -> None:
    md = MarketData([TRADE_MARKET], ticker_resolution=resolution)
    seen: list[OrderFilled] = []
    for events in build(cmds):
        updates = md.apply(events)
        seen.extend(events)
        ts = events[0].ts
        emitted = [u for u in updates if type(u) is Ticker]
        assert len(emitted) == 1 and emitted[0] == md.ticker("TRD", ts)
        assert fields(emitted[0]) == brute(seen, ts, resolution)
        for extra in probes:  # later "now": the window slides without new trades
            t = md.ticker("TRD", ts + extra)
            assert fields(t) == brute(seen, ts + extra, resolution)
            assert t.close_time == ts + extra
            assert t.open_time == (ts + extra - DAY_NS + 1) // resolution * resolution
            assert t.last_quantity == seen[-1].quantity
    before = md.state_hash()
    md.ticker("TRD", 10**20)  # queries never change state
    assert md.state_hash() == before


@SETTINGS
@given(commands)
def test_exact_window_is_now_minus_24h_exclusive(cmds: list) -> None:
    md = MarketData([TRADE_MARKET], ticker_resolution=1)
    stream = build(cmds)
    for events in stream:
        md.apply(events)
    last_ts = stream[-1][0].ts
    for events in stream:
        t = events[0]
        if t.ts + DAY_NS - 1 >= last_ts:  # (queries never look before the last trade)
            inside = md.ticker("TRD", t.ts + DAY_NS - 1)
            assert inside.first_trade_id <= t.trade_id <= inside.last_trade_id
        outside = md.ticker("TRD", t.ts + DAY_NS)
        assert outside.count == 0 or outside.first_trade_id > t.trade_id


def test_other_markets_move_the_clock() -> None:
    md = MarketData([TRADE_MARKET, OTHER_MARKET], ticker_resolution=1)
    md.apply(build([(0, [(100, 5, False)])])[0])
    assert md.ticker("TRD").count == 1
    # a day later something happens in another market only: TRD's trade has left
    md.apply(build([(DAY_NS, [(7, 1, True)])], market="OTH", seq0=1)[0])
    t = md.ticker("TRD")
    assert (t.count, t.volume, t.open, t.last, t.prev_close, t.first_trade_id) == (
        0, 0, 100, 100, 100, -1,
    )  # fmt: skip
    assert md.ticker("OTH").count == 1


def test_ticker_arithmetic_and_book() -> None:
    md = MarketData([TRADE_MARKET], ticker_resolution=1)
    fills = build([(0, [(200, 1500, False), (100, 500, True)]), (HOUR_NS, [(150, 1000, True)])])
    for events in fills:
        md.apply(events)
    md.apply(
        [
            BookLevelChanged(3, T0 + HOUR_NS, "TRD", Side.BUY, 149, 70),
            BookLevelChanged(3, T0 + HOUR_NS, "TRD", Side.SELL, 151, 80),
        ]
    )
    t = md.ticker("TRD")
    assert (t.open, t.high, t.low, t.last, t.volume, t.count) == (200, 200, 100, 150, 3000, 3)
    assert t.quote_volume == 200 * 1500 + 100 * 500 + 150 * 1000
    assert t.price_change == -50
    assert t.price_change_percent == Fraction(-25)
    assert t.weighted_average == Fraction(500_000, 3000)
    assert t.weighted_average_price == 166
    # 2.00 x 1.500 + 1.00 x 0.500 + 1.50 x 1.000 = 5.00 QQQ = 500 minor units
    assert quote_minor(TRADE_MARKET, t.quote_volume) == 500
    assert (t.bid_price, t.bid_quantity, t.ask_price, t.ask_quantity) == (149, 70, 151, 80)
    assert (t.first_trade_id, t.last_trade_id) == (1, 3)
    empty = MarketData([TRADE_MARKET]).ticker("TRD", T0)
    assert (empty.count, empty.open, empty.last, empty.first_trade_id) == (0, 0, 0, -1)
    assert empty.price_change_percent == 0 and empty.weighted_average == 0


def test_window_memory_is_bounded() -> None:
    minute = 60 * SECOND_NS
    md = MarketData([TRADE_MARKET], ticker_resolution=minute)
    cmds = [(20 * SECOND_NS, [(100 + i % 7, 1, i % 2 == 0)]) for i in range(3 * 24 * 180)]
    for events in build(cmds):
        md.apply(events)
    w = md._markets["TRD"].window
    live = len(w.keys) - w.head
    assert live <= DAY_NS // minute + 1
    assert len(w.keys) <= 2 * live + 256
    assert len(w.hi_keys) - w.hi_head <= live and len(w.lo_keys) - w.lo_head <= live
    assert md.ticker("TRD").count == 24 * 180 + 1  # the first bucket's two older trades out
