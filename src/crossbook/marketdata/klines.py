"""Candles of one market for one interval: the open candle plus bounded history.

Invariants: history holds closed candles in increasing ``open_time`` with at most
``history`` entries (oldest dropped); the open candle, when there is one, starts after
every candle in history. A candle closes when an event of its market arrives after its
``close_time`` (or on the first trade of a later candle).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from typing import Any

from crossbook.marketdata.intervals import INTERVALS, month_bounds
from crossbook.marketdata.records import KlineUpdate


class Series:
    __slots__ = (
        "active",
        "close",
        "close_time",
        "count",
        "first_id",
        "high",
        "history",
        "interval",
        "last_id",
        "length",
        "low",
        "market",
        "offset",
        "open",
        "open_time",
        "quote",
        "taker_quote",
        "taker_volume",
        "volume",
    )

    def __init__(self, market: str, interval: str, history: int) -> None:
        self.market = market
        self.interval = interval
        self.length, self.offset = INTERVALS[interval]
        self.history: deque[KlineUpdate] = deque(maxlen=history)
        self.active = False
        self.open_time = self.close_time = 0
        self.open = self.high = self.low = self.close = 0
        self.volume = self.quote = self.count = 0
        self.first_id = self.last_id = -1
        self.taker_volume = self.taker_quote = 0

    def bounds(self, ts: int) -> tuple[int, int]:
        length = self.length
        if length == 0:
            return month_bounds(ts)
        start = (ts - self.offset) // length * length + self.offset
        return start, start + length - 1

    def current(self, closed: bool = False) -> KlineUpdate:
        return KlineUpdate(
            self.market, self.interval, self.open_time, self.close_time, self.open, self.high,
            self.low, self.close, self.volume, self.quote, self.count, closed, self.first_id,
            self.last_id, self.taker_volume, self.taker_quote,
        )  # fmt: skip

    def roll(self) -> KlineUpdate:
        """Close the open candle: it moves to history; returns its final state."""
        final = self.current(True)
        self.history.append(final)
        self.active = False
        return final

    def add(
        self, ts: int, open_: int, high: int, low: int, close: int, volume: int, quote: int,
        count: int, first_id: int, last_id: int, taker_volume: int, taker_quote: int,
    ) -> KlineUpdate | None:  # fmt: skip
        """Add one command's trades (all at ``ts``). Returns the candle it closed, if any.
        A ``ts`` before the open candle (time going backwards) joins the open candle."""
        closed = None
        if self.active and ts > self.close_time:
            closed = self.roll()
        if not self.active:
            self.active = True
            self.open_time, self.close_time = self.bounds(ts)
            self.open, self.high, self.low, self.close = open_, high, low, close
            self.volume, self.quote, self.count = volume, quote, count
            self.first_id, self.last_id = first_id, last_id
            self.taker_volume, self.taker_quote = taker_volume, taker_quote
            return closed
        if high > self.high:
            self.high = high
        if low < self.low:
            self.low = low
        self.close = close
        self.volume += volume
        self.quote += quote
        self.count += count
        self.last_id = last_id
        self.taker_volume += taker_volume
        self.taker_quote += taker_quote
        return closed

    def query(self, start: int | None, end: int | None, limit: int, now: int) -> list[KlineUpdate]:
        """Candles with ``start <= open_time <= end``: the first ``limit`` of them when
        ``start`` is given, else the last ``limit``; ascending. The open candle is
        included, ``closed`` when ``now`` is past its close time."""
        rows = list(self.history)
        if self.active:
            rows.append(self.current(now > self.close_time))
        opens = [k.open_time for k in rows]
        lo = 0 if start is None else bisect_left(opens, start)
        hi = len(rows) if end is None else bisect_right(opens, end)
        if limit <= 0 or hi <= lo:
            return []
        if start is not None:
            return rows[lo : min(hi, lo + limit)]
        return rows[max(lo, hi - limit) : hi]

    # ------------------------------------------------------------------ snapshot

    def to_snapshot(self) -> list[Any]:
        rows = [
            [
                k.open_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.count,
                k.first_trade_id, k.last_trade_id, k.taker_buy_volume, k.taker_buy_quote_volume,
            ]
            for k in self.history
        ]  # fmt: skip
        current = None
        if self.active:
            current = [
                self.open_time, self.open, self.high, self.low, self.close, self.volume,
                self.quote, self.count, self.first_id, self.last_id, self.taker_volume,
                self.taker_quote,
            ]  # fmt: skip
        return [self.interval, rows, current]

    def load_snapshot(self, row: list[Any]) -> None:
        _, rows, current = row
        self.history.clear()
        for r in rows:
            o_t = r[0]
            self.history.append(
                KlineUpdate(
                    self.market, self.interval, o_t, self.bounds(o_t)[1], r[1], r[2], r[3],
                    r[4], r[5], r[6], r[7], True, r[8], r[9], r[10], r[11],
                )
            )  # fmt: skip
        self.active = current is not None
        if current is not None:
            (
                self.open_time, self.open, self.high, self.low, self.close, self.volume,
                self.quote, self.count, self.first_id, self.last_id, self.taker_volume,
                self.taker_quote,
            ) = current  # fmt: skip
            self.close_time = self.bounds(self.open_time)[1]
