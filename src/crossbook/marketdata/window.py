"""The rolling 24-hour window of one market's trades, for its ticker (exact integers).

Trades are aggregated into buckets of ``resolution`` ns (bucket key ``ts // resolution``).
At time ``now`` the window holds the buckets with key ``>= (now - length + 1) //
resolution``: every trade with ``now - length < ts <= now``, plus at most
``resolution - 1`` ns of older trades in the boundary bucket (``resolution=1`` is exact
per trade). Memory is bounded by ``length / resolution`` buckets.

Structures: bucket columns (key, open, close, first/last trade id and running totals of
volume, quote volume and count since the start) with a head index; sliding max/min as
monotonic lists of (key, value), one entry per bucket at most. Adding a command's trades
and evicting are amortised O(1); a query at any ``now`` is O(log n) and changes nothing
(queries never affect state or snapshots; only :meth:`add` evicts).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

_COMPACT = 256


class Window:
    __slots__ = (
        "c_count",
        "c_quote",
        "c_volume",
        "closes",
        "evicted_close",
        "evicted_count",
        "evicted_quote",
        "evicted_volume",
        "first_ids",
        "head",
        "hi_head",
        "hi_keys",
        "hi_vals",
        "keys",
        "last_ids",
        "length",
        "lo_head",
        "lo_keys",
        "lo_vals",
        "opens",
        "resolution",
    )

    def __init__(self, length: int, resolution: int) -> None:
        if length <= 0 or resolution <= 0:
            raise ValueError("window length and resolution must be positive")
        self.length = length
        self.resolution = resolution
        self.keys: list[int] = []
        self.opens: list[int] = []
        self.closes: list[int] = []
        self.first_ids: list[int] = []
        self.last_ids: list[int] = []
        self.c_volume: list[int] = []
        self.c_quote: list[int] = []
        self.c_count: list[int] = []
        self.head = 0
        self.evicted_volume = 0
        self.evicted_quote = 0
        self.evicted_count = 0
        self.evicted_close = 0
        self.hi_keys: list[int] = []
        self.hi_vals: list[int] = []
        self.hi_head = 0
        self.lo_keys: list[int] = []
        self.lo_vals: list[int] = []
        self.lo_head = 0

    def add(
        self, ts: int, open_: int, high: int, low: int, close: int, volume: int, quote: int,
        count: int, first_id: int, last_id: int,
    ) -> None:  # fmt: skip
        """Add the aggregate of one command's trades (all at ``ts``), then evict."""
        key = ts // self.resolution
        keys = self.keys
        if len(keys) > self.head and keys[-1] >= key:
            key = keys[-1]  # same bucket (or time went backwards: join the newest)
            self.closes[-1] = close
            self.last_ids[-1] = last_id
            self.c_volume[-1] += volume
            self.c_quote[-1] += quote
            self.c_count[-1] += count
        else:
            if len(keys) > self.head:
                v0, q0, n0 = self.c_volume[-1], self.c_quote[-1], self.c_count[-1]
            else:
                v0, q0, n0 = self.evicted_volume, self.evicted_quote, self.evicted_count
            keys.append(key)
            self.opens.append(open_)
            self.closes.append(close)
            self.first_ids.append(first_id)
            self.last_ids.append(last_id)
            self.c_volume.append(v0 + volume)
            self.c_quote.append(q0 + quote)
            self.c_count.append(n0 + count)
        hk, hv = self.hi_keys, self.hi_vals
        while len(hk) > self.hi_head and hv[-1] <= high:
            hk.pop()
            hv.pop()
        if len(hk) == self.hi_head or hk[-1] != key:
            hk.append(key)
            hv.append(high)
        lk, lv = self.lo_keys, self.lo_vals
        while len(lk) > self.lo_head and lv[-1] >= low:
            lk.pop()
            lv.pop()
        if len(lk) == self.lo_head or lk[-1] != key:
            lk.append(key)
            lv.append(low)
        self._evict((ts - self.length + 1) // self.resolution)

    def _evict(self, first_key: int) -> None:
        keys, h = self.keys, self.head
        if keys[h] >= first_key:
            return
        n = len(keys)
        while h < n and keys[h] < first_key:
            h += 1
        self.evicted_volume = self.c_volume[h - 1]
        self.evicted_quote = self.c_quote[h - 1]
        self.evicted_count = self.c_count[h - 1]
        self.evicted_close = self.closes[h - 1]
        self.head = h
        hk = self.hi_keys
        while self.hi_head < len(hk) and hk[self.hi_head] < first_key:
            self.hi_head += 1
        lk = self.lo_keys
        while self.lo_head < len(lk) and lk[self.lo_head] < first_key:
            self.lo_head += 1
        if h >= _COMPACT and 2 * h >= n:
            for col in self._columns():
                del col[:h]
            self.head = 0
        if self.hi_head >= _COMPACT and 2 * self.hi_head >= len(hk):
            del hk[: self.hi_head], self.hi_vals[: self.hi_head]
            self.hi_head = 0
        if self.lo_head >= _COMPACT and 2 * self.lo_head >= len(lk):
            del lk[: self.lo_head], self.lo_vals[: self.lo_head]
            self.lo_head = 0

    def _columns(self) -> tuple[list[int], ...]:
        return (
            self.keys, self.opens, self.closes, self.first_ids, self.last_ids,
            self.c_volume, self.c_quote, self.c_count,
        )  # fmt: skip

    def start(self, now: int) -> int:
        """The first nanosecond the window covers at ``now``."""
        return (now - self.length + 1) // self.resolution * self.resolution

    def stats(self, now: int) -> tuple[int, ...] | None:
        """(open, high, low, close, volume, quote, count, first_id, last_id, prev_close)
        at ``now``, or None when the window is empty. Does not change state."""
        first_key = (now - self.length + 1) // self.resolution
        keys = self.keys
        i = bisect_left(keys, first_key, self.head)
        if i == len(keys):
            return None
        if i > self.head:
            v0, q0, n0, prev = (
                self.c_volume[i - 1], self.c_quote[i - 1], self.c_count[i - 1], self.closes[i - 1]
            )  # fmt: skip
        else:
            v0, q0, n0 = self.evicted_volume, self.evicted_quote, self.evicted_count
            prev = self.evicted_close
        high = self.hi_vals[bisect_left(self.hi_keys, first_key, self.hi_head)]
        low = self.lo_vals[bisect_left(self.lo_keys, first_key, self.lo_head)]
        return (
            self.opens[i], high, low, self.closes[-1], self.c_volume[-1] - v0,
            self.c_quote[-1] - q0, self.c_count[-1] - n0, self.first_ids[i], self.last_ids[-1],
            prev,
        )  # fmt: skip

    def prev_close(self, now: int) -> int:
        """The last close before the window at ``now`` (0 if none)."""
        first_key = (now - self.length + 1) // self.resolution
        i = bisect_left(self.keys, first_key, self.head)
        return self.closes[i - 1] if i > self.head else self.evicted_close

    # ------------------------------------------------------------------ snapshot

    def to_snapshot(self) -> list[Any]:
        """Canonical: live rows only, running totals rebased to the evicted totals."""
        h = self.head
        v0, q0, n0 = self.evicted_volume, self.evicted_quote, self.evicted_count
        return [
            self.keys[h:], self.opens[h:], self.closes[h:], self.first_ids[h:],
            self.last_ids[h:], [v - v0 for v in self.c_volume[h:]],
            [q - q0 for q in self.c_quote[h:]], [n - n0 for n in self.c_count[h:]],
            self.evicted_close, self.hi_keys[self.hi_head :], self.hi_vals[self.hi_head :],
            self.lo_keys[self.lo_head :], self.lo_vals[self.lo_head :],
        ]  # fmt: skip

    def load_snapshot(self, row: list[Any]) -> None:
        (
            self.keys, self.opens, self.closes, self.first_ids, self.last_ids, self.c_volume,
            self.c_quote, self.c_count, self.evicted_close, self.hi_keys, self.hi_vals,
            self.lo_keys, self.lo_vals,
        ) = row  # fmt: skip
        self.head = self.hi_head = self.lo_head = 0
        self.evicted_volume = self.evicted_quote = self.evicted_count = 0
