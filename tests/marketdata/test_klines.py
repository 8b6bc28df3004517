"""Klines: interval boundaries against the calendar, candles against brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.domain.enums import Side
from crossbook.domain.events import BookLevelChanged, OrderFilled
from crossbook.marketdata import INTERVALS, KlineUpdate, MarketData, interval_bounds
from crossbook.marketdata.intervals import (
    DAY_NS,
    MINUTE_NS,
    civil_from_days,
    days_from_civil,
)
from tests.marketdata.fills import T0, TRADE_MARKET, build, commands

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def test_intervals_are_binance_s() -> None:
    assert list(INTERVALS) == [
        "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
        "1M",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        interval_bounds("2d", 0)


@given(st.integers(-719_162, 2_932_896))  # datetime's range: years 1 .. 9999
def test_civil_calendar_round_trip(days: int) -> None:
    date = (EPOCH + timedelta(days=days)).date()
    assert civil_from_days(days) == (date.year, date.month, date.day)
    assert days_from_civil(date.year, date.month, date.day) == days


@given(st.integers(0, 4_102_444_800 * 10**9))  # 1970 .. 2100
def test_interval_bounds_match_the_calendar(ts: int) -> None:
    dt = EPOCH + timedelta(microseconds=ts // 1000)
    for name, (length, _) in INTERVALS.items():
        start, end = interval_bounds(name, ts)
        assert start <= ts <= end
        nxt, _ = interval_bounds(name, end + 1)
        assert nxt == end + 1  # candles tile time
        assert start % MINUTE_NS == 0
        if name == "1M":
            assert start == ns(datetime(dt.year, dt.month, 1, tzinfo=UTC))
        elif name == "1w":
            monday = datetime(dt.year, dt.month, dt.day, tzinfo=UTC) - timedelta(days=dt.weekday())
            assert start == ns(monday)
        else:
            assert start % length == 0 and end - start + 1 == length  # epoch aligned


def test_known_boundaries() -> None:
    feb29 = ns(datetime(2024, 2, 29, 13, 5, tzinfo=UTC))
    assert interval_bounds("1M", feb29) == (
        ns(datetime(2024, 2, 1, tzinfo=UTC)), ns(datetime(2024, 3, 1, tzinfo=UTC)) - 1
    )  # fmt: skip
    dec = ns(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert interval_bounds("1M", dec)[1] + 1 == ns(datetime(2026, 1, 1, tzinfo=UTC))
    # 2026-01-01 is a Thursday: its week started Monday 2025-12-29
    assert interval_bounds("1w", T0)[0] == ns(datetime(2025, 12, 29, tzinfo=UTC))
    # 3d candles count from the epoch: 20454 days to 2026-01-01, 20454 = 3 * 6818
    assert interval_bounds("3d", T0)[0] == T0
    assert interval_bounds("3d", T0 - 1)[0] == T0 - 3 * DAY_NS


def brute_candles(trades: list[OrderFilled], interval: str) -> list[tuple]:
    groups: dict[int, list[OrderFilled]] = {}
    for t in trades:
        groups.setdefault(interval_bounds(interval, t.ts)[0], []).append(t)
    out = []
    for start in sorted(groups):
        g = groups[start]
        buys = [t for t in g if t.taker_side is Side.BUY]
        out.append((
            start, interval_bounds(interval, start)[1], g[0].price, max(t.price for t in g),
            min(t.price for t in g), g[-1].price, sum(t.quantity for t in g),
            sum(t.price * t.quantity for t in g), len(g), g[0].trade_id, g[-1].trade_id,
            sum(t.quantity for t in buys), sum(t.price * t.quantity for t in buys),
        ))  # fmt: skip
    return out


def fields(k: KlineUpdate) -> tuple:
    return (
        k.open_time, k.close_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume,
        k.count, k.first_trade_id, k.last_trade_id, k.taker_buy_volume,
        k.taker_buy_quote_volume,
    )  # fmt: skip


@SETTINGS
@given(commands)
def test_candles_match_brute_force(cmds: list) -> None:
    md = MarketData([TRADE_MARKET])
    trades: list[OrderFilled] = []
    last_emitted: dict[tuple[str, int], KlineUpdate] = {}
    for events in build(cmds):
        ts = events[0].ts
        updates = md.apply(events)
        trades.extend(events)
        klines = [u for u in updates if type(u) is KlineUpdate]
        touched = [k for k in klines if not k.closed]
        assert [k.interval for k in touched] == list(INTERVALS)  # every interval, in order
        for k in klines:
            assert k.open_time <= ts or k.closed
            if k.closed:  # a closed candle is final: equal to its last open state
                assert fields(k) == fields(last_emitted[k.interval, k.open_time])
            last_emitted[k.interval, k.open_time] = k
    now = trades[-1].ts
    for name in INTERVALS:
        stored = md.klines("TRD", name, limit=1000)
        expected = brute_candles(trades, name)
        assert [fields(k) for k in stored] == expected
        assert [k.closed for k in stored] == [k.close_time < now for k in stored]
        assert all(not k.closed for k in stored[-1:])
        # every candle but the open one was emitted closed exactly once
        for k in stored[:-1]:
            assert last_emitted[name, k.open_time].closed


def test_time_closes_candles_without_trades() -> None:
    md = MarketData([TRADE_MARKET])
    md.apply(build([(0, [(100, 1, False)])])[0])
    # 90 s later only the book changes: the 1m candle is closed and reported as such
    later = T0 + 90 * 10**9
    updates = md.apply([BookLevelChanged(2, later, "TRD", Side.BUY, 99, 5)])
    closed = [u for u in updates if type(u) is KlineUpdate]
    assert [(k.interval, k.closed) for k in closed] == [("1m", True)]
    assert md.klines("TRD", "1m")[-1].closed
    assert not md.klines("TRD", "3m")[-1].closed
    # a week later: everything but 1M closes (January is not over)
    updates = md.apply([BookLevelChanged(3, T0 + 8 * DAY_NS, "TRD", Side.BUY, 99, 0)])
    assert [k.interval for k in updates if type(k) is KlineUpdate] == list(INTERVALS)[1:-1]


def test_history_is_bounded_and_queries() -> None:
    md = MarketData([TRADE_MARKET], kline_history=5)
    cmds = [(MINUTE_NS, [(100 + i, 1 + i, i % 2 == 0)]) for i in range(20)]
    for events in build(cmds):
        md.apply(events)
    rows = md.klines("TRD", "1m", limit=1000)
    assert len(rows) == 6  # 5 closed + the open one
    opens = [k.open_time for k in rows]
    assert opens == [T0 + (i + 1) * MINUTE_NS for i in range(14, 20)]
    assert [k.open for k in rows] == list(range(114, 120))
    assert md.klines("TRD", "1m", limit=2) == rows[-2:]
    assert md.klines("TRD", "1m", start=opens[1], limit=2) == rows[1:3]
    assert md.klines("TRD", "1m", start=opens[1] + 1, end=opens[3]) == rows[2:4]
    assert md.klines("TRD", "1m", end=opens[2]) == rows[:3]
    assert md.klines("TRD", "1m", start=opens[-1] + 1) == []
    assert md.klines("TRD", "1m", limit=0) == []
    assert md.klines("TRD", "1m", now=opens[-1] + MINUTE_NS)[-1].closed
    with pytest.raises(ValueError):
        md.klines("TRD", "7m")
    with pytest.raises(KeyError):
        md.klines("NOPE", "1m")
    assert len(md.klines("TRD", "1h")) == 1


def test_candle_boundaries_are_inclusive_of_close_time() -> None:
    md = MarketData([TRADE_MARKET])
    end = T0 + MINUTE_NS - 1  # the last nanosecond of the first 1m candle
    md.apply(build([(0, [(100, 1, False)])])[0])
    # at close_time exactly: nothing closes, the trade joins the candle
    assert not [u for u in md.apply([BookLevelChanged(2, end, "TRD", Side.BUY, 1, 1)])
                if type(u) is KlineUpdate]  # fmt: skip
    md.apply(build([(end - T0, [(105, 2, True)])], seq0=2, id0=1)[0])
    assert [(k.open_time, k.count, k.close) for k in md.klines("TRD", "1m")] == [(T0, 2, 105)]
    # one nanosecond later, with no trade: the candle closes
    later = [u for u in md.apply([BookLevelChanged(4, end + 1, "TRD", Side.BUY, 1, 0)])
             if type(u) is KlineUpdate]  # fmt: skip
    assert [(k.interval, k.open_time, k.closed) for k in later] == [("1m", T0, True)]
    md.apply(build([(end + 1 - T0, [(107, 1, True)])], seq0=4, id0=2)[0])
    assert [(k.open_time, k.count) for k in md.klines("TRD", "1m")] == [
        (T0, 2), (T0 + MINUTE_NS, 1),
    ]  # fmt: skip
